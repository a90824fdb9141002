"""The history database's tables and their versions: opening a file (WAL, busy timeout, never
assuming it is alone), creating or upgrading its schema, and refusing one it cannot read.

This module owns the tables `results`, `results_hourly`, `events`, `runs`, `controls`, `acks`
and `meta` (the schema version lives under the key `history.schema_version`, the stream's
numbering under `history.store_id`, `history.last_id` and `history.deleted_through`: see
monitor.store.numbering), and creates `certificates_seen`, which monitor/store/certificates.py
owns; the alerts' outbox keeps its own tables in the same file.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from monitor.store import certificates
from monitor.store.runs import Span, merge_spans

SCHEMA_VERSION = 4
HOUR = 3600.0  # what a row of results_hourly covers
_VERSION_KEY = "history.schema_version"
# The stream's numbering (monitor.store.numbering): who numbers, the highest id handed out at
# a commit, the highest id retention or downsampling deleted.
STORE_ID_KEY = "history.store_id"
LAST_ID_KEY = "history.last_id"
DELETED_THROUGH_KEY = "history.deleted_through"
# How long a connection waits for another one's write lock (the outbox's, say) before failing.
BUSY_TIMEOUT_MS = 5000


class HistoryError(Exception):
    """The store cannot be opened or read; the message says which file and why."""


_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    check_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    link_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    error_class TEXT,
    error_message TEXT,
    latency_ms REAL,
    observations TEXT NOT NULL,
    verdicts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_check_time ON results (check_id, started_at);
CREATE INDEX IF NOT EXISTS results_time ON results (started_at);
CREATE TABLE IF NOT EXISTS results_hourly (
    check_id TEXT NOT NULL,
    hour REAL NOT NULL,
    site_id TEXT NOT NULL,
    link_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ok INTEGER NOT NULL,
    warn INTEGER NOT NULL,
    crit INTEGER NOT NULL,
    unknown INTEGER NOT NULL,
    latency_count INTEGER NOT NULL,
    latency_min REAL,
    latency_avg REAL,
    latency_max REAL,
    PRIMARY KEY (check_id, hour)
);
CREATE INDEX IF NOT EXISTS results_hourly_time ON results_hourly (hour);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    at REAL NOT NULL,
    subject TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    cause TEXT NOT NULL,
    suppressed TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (at);
CREATE INDEX IF NOT EXISTS events_subject_time ON events (subject, subject_id, at);
"""


_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    last_at REAL NOT NULL,
    ended_at REAL,
    scope TEXT,
    learned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_time ON runs (started_at);
"""


# Version 3: what operators do, in the stream's order, and the acknowledgements in force
# (monitor.store.controls); one sequence of ids across results, events and controls from now
# on, named by a store id of its own.
_SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS controls (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS controls_time ON controls (at);
CREATE TABLE IF NOT EXISTS acks (
    subject_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    state TEXT NOT NULL,
    comment TEXT NOT NULL,
    by TEXT NOT NULL,
    at REAL NOT NULL,
    expires REAL NOT NULL
);
"""


def _execute_script(connection: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def _migrate_to_1(connection: sqlite3.Connection) -> None:
    _execute_script(connection, _SCHEMA_V1)


def _migrate_to_2(connection: sqlite3.Connection) -> None:
    _execute_script(connection, _SCHEMA_V2)
    connection.executemany(
        "INSERT INTO runs (started_at, last_at, ended_at, learned) VALUES (?, ?, ?, 1)",
        ((start, end, end) for start, end in learn_runs(connection)),
    )


def _migrate_to_3(connection: sqlite3.Connection) -> None:
    _execute_script(connection, _SCHEMA_V3)
    set_meta(connection, STORE_ID_KEY, secrets.token_hex(8))
    # Before this version results and events were numbered apart, so their ids overlap: no
    # stream position reaches back into them (they were never stream positions either).
    (highest,) = connection.execute(
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM results), 0), "
        "COALESCE((SELECT MAX(id) FROM events), 0))"
    ).fetchone()
    raise_meta(connection, DELETED_THROUGH_KEY, highest)


def set_meta(connection: sqlite3.Connection, key: str, value: str) -> None:
    connection.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def raise_meta(connection: sqlite3.Connection, key: str, value: int) -> None:
    """Set an integer of `meta` to `value` unless it holds more already."""
    connection.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
        "value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        (key, str(value)),
    )


def meta_int(connection: sqlite3.Connection, key: str) -> int:
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return 0 if row is None else int(row[0])


# A check's results further apart than this many times its usual spacing: commwatch was not
# running in between (a retry comes sooner, never later).
LEARNED_GAP = 3.0


def learn_runs(connection: sqlite3.Connection) -> list[Span]:
    """When commwatch was running, as far as the stored results tell: between two results of a
    check no further apart than LEARNED_GAP times its median spacing, and through every hour
    a downsampled row covers."""
    spans: list[Span] = []
    times: dict[str, list[float]] = {}
    for check_id, started_at in connection.execute(
        "SELECT check_id, started_at FROM results ORDER BY check_id, started_at"
    ):
        times.setdefault(check_id, []).append(started_at)
    for series in times.values():
        gaps = sorted(b - a for a, b in itertools.pairwise(series))
        if not gaps:
            continue
        limit = LEARNED_GAP * max(gaps[len(gaps) // 2], 1e-3)
        spans += [(a, b) for a, b in itertools.pairwise(series) if b - a <= limit]
    spans += [
        (hour, hour + HOUR) for (hour,) in connection.execute("SELECT hour FROM results_hourly")
    ]
    return merge_spans(spans)


def _migrate_to_4(connection: sqlite3.Connection) -> None:
    # Starts empty: the stored results' observations do not keep the certificates they saw.
    _execute_script(connection, certificates.SCHEMA)


# The migration seam: MIGRATIONS[n] takes a store at version n-1 to version n, inside the
# transaction that records n. Version 0 is a file with none of our tables.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_to_1,
    2: _migrate_to_2,
    3: _migrate_to_3,
    4: _migrate_to_4,
}


def connect(path: Path, create: bool) -> sqlite3.Connection:
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.is_file():
        raise HistoryError(f"{path}: no history database there (has commwatch recorded any?)")
    # mode=rw: a reader must not create an empty database where it expected one.
    uri = f"{path.absolute().as_uri()}?mode={'rwc' if create else 'rw'}"
    connection = sqlite3.connect(
        uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise HistoryError(f"{path}: could not switch the database to WAL mode ({mode})")
        connection.execute("PRAGMA synchronous = NORMAL")
        if create:
            _upgrade(connection, path)
        else:
            _check_version(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def _schema_version(connection: sqlite3.Connection) -> int:
    has_meta = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (_VERSION_KEY,)).fetchone()
    return int(row[0]) if row else 0


def _check_version(connection: sqlite3.Connection, path: Path) -> None:
    """A reader neither creates nor upgrades: that is the writer's job (it runs first)."""
    version = _schema_version(connection)
    if version == 0:
        raise HistoryError(f"{path}: not a commwatch history database (no history tables)")
    if version < SCHEMA_VERSION:
        raise HistoryError(
            f"{path}: history schema version {version} is older than this commwatch's "
            f"({SCHEMA_VERSION}); running commwatch once upgrades it"
        )
    _refuse_newer(version, path)


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"{path}: history schema version {version} was written by a newer commwatch "
            f"(this one knows up to {SCHEMA_VERSION})"
        )


def _upgrade(connection: sqlite3.Connection, path: Path) -> None:
    # A current store needs no write lock: readers and the writer open it while others write.
    if _schema_version(connection) == SCHEMA_VERSION:
        return
    # IMMEDIATE: two processes opening a new file at once must not both create the schema.
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(connection)
        _refuse_newer(version, path)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](connection)
            set_meta(connection, _VERSION_KEY, str(target))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, the write lock taken up front: a concurrent writer makes this one
    wait (up to the busy timeout) rather than fail halfway."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
