"""The durable side of alerting: its tables in the history database.

Three tables live beside the history store's own, in the same SQLite file (WAL mode, other
connections welcome):

- `alert_inbox`: every event alerting accepted, keyed by `event_id`. An event waits here (no
  `flushed_at`) while its site's group window is open, so a crash inside the window loses
  nothing; an event seen again (a replay after restart) is recognised and ignored.
- `notify_state`: per notifier, the problems it was told about and not yet told are resolved,
  with when it was last told (re-notification) and how many reminders went out.
- `outbox`: every message to send, rendered, with its notifier and idempotency key
  (UNIQUE together, so a replay cannot enqueue it twice), and its delivery status.

Every database call runs on one worker thread owned by the `Outbox`, so the event loop (and the
probes it runs) never waits on SQLite, and calls happen in the order they were made. Sending the
rows is `monitor.alerts.dispatcher`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from monitor.alerts.message import event_from_record, event_record
from monitor.core.events import Event

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_inbox (
    event_id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL,
    event TEXT NOT NULL,
    received_at REAL NOT NULL,
    flushed_at REAL
);
CREATE INDEX IF NOT EXISTS alert_inbox_waiting ON alert_inbox (flushed_at);
CREATE TABLE IF NOT EXISTS notify_state (
    notifier TEXT NOT NULL,
    subject TEXT NOT NULL,
    event TEXT NOT NULL,
    last_sent REAL NOT NULL,
    renotified INTEGER NOT NULL,
    PRIMARY KEY (notifier, subject)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    notifier TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    site_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    finished_at REAL,
    UNIQUE (notifier, key)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, notifier, next_attempt_at);
"""


# --- events as stored ----------------------------------------------------------------------


def _dump_event(event: Event) -> str:
    return json.dumps(event_record(event), separators=(",", ":"))


def _load_event(text: str) -> Event:
    return event_from_record(json.loads(text))


# --- what crosses the module boundary -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """A subject a notifier was told is not OK, and has not yet been told is OK again."""

    notifier_id: str
    event: Event  # the subject's latest HARD event (notifiable or not)
    last_sent: float
    renotified: int = 0

    @property
    def subject_key(self) -> str:
        return subject_key(self.event)


ProblemKey = tuple[str, str]  # (notifier id, subject key)


def subject_key(event: Event) -> str:
    return f"{event.subject}:{event.subject_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRow:
    """A rendered message, ready to be written to the outbox."""

    notifier_id: str
    key: str
    kind: str
    site_id: str
    content_type: str
    body: bytes


class RowStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRow(NewRow):
    """A stored message and where its delivery stands."""

    id: int
    created_at: float
    status: RowStatus
    attempts: int
    next_attempt_at: float
    last_error: str | None


# --- storage -------------------------------------------------------------------------------


class Outbox:
    """Alerting's tables. Every method runs its SQL on the one worker thread."""

    def __init__(self, path: str | Path, busy_timeout: float = 10.0) -> None:
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commwatch-outbox")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> Outbox:
        await self._run(self._open)
        return self

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _open(self) -> None:
        # The outbox may be the first to write to the state folder (`run --no-history`).
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE takes the write lock
        # up front, so a concurrent writer makes us wait instead of failing mid-transaction).
        db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a message reported as enqueued is on disk even if the machine loses power.
        db.execute("PRAGMA synchronous=FULL")
        # Each statement commits on its own; IF NOT EXISTS makes a race with another process
        # creating the same tables harmless.
        db.executescript(_SCHEMA)
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the outbox is not open")
        return self._db

    # inbox

    async def accept(self, events: Sequence[Event], now: float) -> list[Event]:
        """Record events; returns those not seen before, in their order."""

        def run() -> list[Event]:
            db, fresh = self._conn, []
            with _transaction(db):
                for event in events:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO alert_inbox (event_id, site_id, event, received_at)"
                        " VALUES (?, ?, ?, ?)",
                        (event.event_id, event.site_id, _dump_event(event), now),
                    )
                    if cursor.rowcount:
                        fresh.append(event)
            return fresh

        return await self._run(run)

    async def accepted(self, event_ids: Iterable[str]) -> set[str]:
        """Those of `event_ids` the inbox holds."""
        ids = list(event_ids)

        def run() -> set[str]:
            found: set[str] = set()
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                found.update(
                    event_id
                    for (event_id,) in self._conn.execute(
                        "SELECT event_id FROM alert_inbox WHERE event_id IN"
                        f" ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                )
            return found

        return await self._run(run)

    async def waiting(self) -> list[tuple[float, Event]]:
        """Accepted events whose group was never flushed (the process stopped first)."""

        def run() -> list[tuple[float, Event]]:
            rows = self._conn.execute(
                "SELECT received_at, event FROM alert_inbox WHERE flushed_at IS NULL"
                " ORDER BY received_at, rowid"
            ).fetchall()
            return [(received_at, _load_event(text)) for received_at, text in rows]

        return await self._run(run)

    async def problems(self) -> dict[ProblemKey, Problem]:
        def run() -> dict[ProblemKey, Problem]:
            rows = self._conn.execute(
                "SELECT notifier, subject, event, last_sent, renotified FROM notify_state"
            ).fetchall()
            return {
                (notifier, subject): Problem(notifier, _load_event(text), last_sent, renotified)
                for notifier, subject, text, last_sent, renotified in rows
            }

        return await self._run(run)

    async def commit(
        self,
        rows: Iterable[NewRow],
        problems: Mapping[ProblemKey, Problem | None],
        flushed: Iterable[str],
        now: float,
    ) -> int:
        """In one transaction: enqueue messages, record problem changes (None = resolved) and
        mark the events they came from as flushed. Returns how many rows were new."""
        rows, flushed = list(rows), list(flushed)

        def run() -> int:
            db, added = self._conn, 0
            with _transaction(db):
                for row in rows:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO outbox (notifier, key, kind, site_id, content_type,"
                        " body, created_at, status, next_attempt_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            row.notifier_id,
                            row.key,
                            row.kind,
                            row.site_id,
                            row.content_type,
                            row.body,
                            now,
                            RowStatus.PENDING,
                            now,
                        ),
                    )
                    added += cursor.rowcount
                for (notifier, subject), problem in problems.items():
                    if problem is None:
                        db.execute(
                            "DELETE FROM notify_state WHERE notifier = ? AND subject = ?",
                            (notifier, subject),
                        )
                    else:
                        db.execute(
                            "INSERT OR REPLACE INTO notify_state"
                            " (notifier, subject, event, last_sent, renotified)"
                            " VALUES (?, ?, ?, ?, ?)",
                            (
                                notifier,
                                subject,
                                _dump_event(problem.event),
                                problem.last_sent,
                                problem.renotified,
                            ),
                        )
                db.executemany(
                    "UPDATE alert_inbox SET flushed_at = ? WHERE event_id = ?",
                    [(now, event_id) for event_id in flushed],
                )
            return added

        return await self._run(run)

    # outbox rows

    async def pending(self, notifier_id: str, limit: int) -> list[OutboxRow]:
        """The notifier's pending rows, soonest due first."""

        def run() -> list[OutboxRow]:
            rows = self._conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM outbox WHERE status = ? AND notifier = ?"
                " ORDER BY next_attempt_at, id LIMIT ?",
                (RowStatus.PENDING, notifier_id, limit),
            ).fetchall()
            return [_row(values) for values in rows]

        return await self._run(run)

    async def pending_counts(self) -> dict[str, int]:
        """How many messages wait to be delivered, per notifier that has any."""

        def run() -> dict[str, int]:
            rows = self._conn.execute(
                "SELECT notifier, COUNT(*) FROM outbox WHERE status = ? GROUP BY notifier",
                (RowStatus.PENDING,),
            ).fetchall()
            return {notifier: count for notifier, count in rows}

        return await self._run(run)

    async def rows(self, notifier_id: str | None = None) -> list[OutboxRow]:
        """Every row (of one notifier), oldest first: for reports and tests."""

        def run() -> list[OutboxRow]:
            where, args = ("WHERE notifier = ?", (notifier_id,)) if notifier_id else ("", ())
            rows = self._conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM outbox {where} ORDER BY id", args
            ).fetchall()
            return [_row(values) for values in rows]

        return await self._run(run)

    async def record(
        self,
        row_id: int,
        status: RowStatus,
        error: str | None,
        next_attempt_at: float,
        now: float,
        *,
        tried: bool = True,
    ) -> None:
        """Record one attempt's outcome; `tried=False`: a status reached without an attempt of
        this process (delivered by another), `error` the note saying so."""

        def run() -> None:
            with _transaction(self._conn):
                self._conn.execute(
                    # A delivered row keeps its last failure: how it got through is worth knowing.
                    "UPDATE outbox SET status = ?, attempts = attempts + ?,"
                    " last_error = COALESCE(?, last_error),"
                    " next_attempt_at = ?, finished_at = ? WHERE id = ?",
                    (
                        status,
                        int(tried),
                        error,
                        next_attempt_at,
                        None if status is RowStatus.PENDING else now,
                        row_id,
                    ),
                )

        await self._run(run)

    async def fail_orphans(self, known: Iterable[str], now: float) -> int:
        """Give up on pending rows of notifiers that are no longer configured, and forget their
        open problems. Returns how many rows were given up."""
        known = list(known)

        def run() -> int:
            marks = ",".join("?" * len(known)) or "''"
            with _transaction(self._conn):
                self._conn.execute(
                    f"DELETE FROM notify_state WHERE notifier NOT IN ({marks})", known
                )
                return self._conn.execute(
                    f"UPDATE outbox SET status = ?, last_error = ?, finished_at = ?"
                    f" WHERE status = ? AND notifier NOT IN ({marks})",
                    (RowStatus.FAILED, _ORPHANED, now, RowStatus.PENDING, *known),
                ).rowcount

        return await self._run(run)

    async def prune(self, before: float) -> None:
        """Forget finished rows and flushed events older than `before`. A replay of an event
        older than that would be notified again; retention is meant to be far longer than any
        replay the state engine does."""

        def run() -> None:
            with _transaction(self._conn):
                self._conn.execute(
                    "DELETE FROM outbox WHERE status != ? AND finished_at < ?",
                    (RowStatus.PENDING, before),
                )
                self._conn.execute("DELETE FROM alert_inbox WHERE flushed_at < ?", (before,))

        await self._run(run)


_ORPHANED = "notifier no longer configured"
_ID_CHUNK = 500  # ids per IN (...) query: well below SQLite's limit on parameters
_ROW_COLUMNS = (
    "id, notifier, key, kind, site_id, content_type, body, created_at, status, attempts,"
    " next_attempt_at, last_error"
)


def _row(values: tuple[Any, ...]) -> OutboxRow:
    row_id, notifier, key, kind, site, content_type, body, created, status, attempts, due, error = (
        values
    )
    return OutboxRow(
        id=row_id,
        notifier_id=notifier,
        key=key,
        kind=kind,
        site_id=site,
        content_type=content_type,
        body=bytes(body),
        created_at=created,
        status=RowStatus(status),
        attempts=attempts,
        next_attempt_at=due,
        last_error=error,
    )


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
