"""The engine's stream as the store numbers it: one sequence of ids across results, events and
controls, the ids the API's event stream carries (`id: STORE.ID`).

The writer hands out the ids as items are queued (monitor.store.writer), from the highest one
this store ever handed out, so they only grow, across restarts too, and the engine shows its
items in their order. `store_id` names the database (random, made with it): an id of another
store means nothing here. What a viewer missed is read back in id order (`stream_page`), as
far back as nothing was deleted: retention and downsampling raise `deleted_through`, the
highest id they removed, and a position at or after it has every later item still stored.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from monitor.core.events import Event
from monitor.store.controls import CONTROL_COLUMNS, Control, control_of_row
from monitor.store.rows import (
    EVENT_COLUMNS,
    RESULT_COLUMNS,
    StoredResult,
    event_of_row,
    stored_result,
)
from monitor.store.schema import DELETED_THROUGH_KEY, LAST_ID_KEY, STORE_ID_KEY, meta_int

StoredItem = StoredResult | Event | Control


@dataclass(frozen=True, slots=True)
class StreamOrigin:
    """Where one engine process's items are numbered from: `epoch` names the numbering (the
    store's id; random per process without a store), `after` is the last id before the
    process's first item."""

    epoch: str
    after: int


def stream_origin(db: sqlite3.Connection) -> StreamOrigin:
    """The store's id and the highest id it ever handed out (stored, or deleted since)."""
    (highest,) = db.execute(
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM results), 0), "
        "COALESCE((SELECT MAX(id) FROM events), 0), "
        "COALESCE((SELECT MAX(id) FROM controls), 0))"
    ).fetchone()
    row = db.execute("SELECT value FROM meta WHERE key = ?", (STORE_ID_KEY,)).fetchone()
    floor = max(meta_int(db, LAST_ID_KEY), meta_int(db, DELETED_THROUGH_KEY))
    return StreamOrigin(epoch=str(row[0]), after=max(highest, floor))


def deleted_through(db: sqlite3.Connection) -> int:
    return meta_int(db, DELETED_THROUGH_KEY)


_PAGE_QUERIES = (
    (f"SELECT id, {RESULT_COLUMNS} FROM results", stored_result),
    (f"SELECT id, {EVENT_COLUMNS} FROM events", event_of_row),
    (f"SELECT id, {CONTROL_COLUMNS} FROM controls", control_of_row),
)


def stream_page(
    db: sqlite3.Connection, after: int, through: int, limit: int
) -> list[tuple[int, StoredItem]]:
    """The stored items with ids in (after, through], the first `limit` of them in id order."""
    found: list[tuple[int, StoredItem]] = []
    for query, read in _PAGE_QUERIES:
        rows = db.execute(
            f"{query} WHERE id > ? AND id <= ? ORDER BY id LIMIT ?", (after, through, limit)
        )
        found += [(row[0], read(row[1:])) for row in rows]
    found.sort(key=lambda pair: pair[0])
    return found[:limit]
