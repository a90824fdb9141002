"""What a viewer missed, read back from the history store for the event stream: a page of the
engine's items in id order (monitor.store.numbering), as the values the engine published.

A stored result is all of the result but its certificates (the store keeps none) and its
check's target, host and tags, which come from the engine's inventory; a check it no longer
has keeps what the row names. Reads run in a thread of their own, one connection per page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.core.events import Event
from monitor.core.model import CheckRef, ErrorClass, ProbeError, ProbeResult
from monitor.store.controls import Control
from monitor.store.queries import HistoryReader
from monitor.store.rows import StoredResult

PAGE = 500  # items per read: a catch-up holds at most this many at once


@dataclass(frozen=True, slots=True)
class Page:
    """Items with ids in the range asked, in id order, and the highest id the store deleted
    (a position before it may have lost what followed)."""

    deleted_through: int
    items: tuple[tuple[int, ProbeResult | Event | Control], ...]


def read_page(
    path: Path, refs: Mapping[str, CheckRef], after: int, through: int, limit: int = PAGE
) -> Page:
    """The stored items with ids in (after, through], at most `limit` (blocking: call it in
    a thread). HistoryError when the store cannot be read."""
    with HistoryReader(path) as reader:
        deleted = reader.deleted_through()
        page = reader.stream_page(after, through, limit)
    return Page(
        deleted,
        tuple(
            (item_id, probe_result(item, refs.get(item.check_id)))
            if isinstance(item, StoredResult)
            else (item_id, item)
            for item_id, item in page
        ),
    )


def probe_result(stored: StoredResult, ref: CheckRef | None) -> ProbeResult:
    """A stored result as the engine published it, but for its certificates."""
    if ref is None:
        ref = CheckRef(stored.check_id, stored.site_id, stored.link_id, stored.kind, "", "")
    error = None
    if stored.error_class is not None:
        error = ProbeError(ErrorClass(stored.error_class), stored.error_message or "")
    return ProbeResult(
        check=ref,
        started_at=stored.started_at,
        duration_ms=stored.duration_ms,
        severity=stored.severity,
        observations=stored.observations,
        verdicts=stored.verdicts,
        error=error,
    )
