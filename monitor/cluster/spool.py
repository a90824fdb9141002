"""An agent's spool: results that could not be published yet, kept on disk in the order they
were made, until NATS takes them.

SQLite in WAL mode with synchronous=NORMAL: what was appended survives the agent's crash (only
an OS crash or power loss can take the last transactions). Bounded two ways, both from the
inventory's `cluster: spool:`: an entry older than `max_age` is dropped, and beyond `max_bytes`
(the entries' own sizes; the file reuses freed pages rather than shrinking) the oldest are
dropped first. Every drop is counted, by reason, in the file itself, so the count of what was
ever lost survives restarts. The file is locked while an agent has it open: two agents replaying
one spool would publish each result twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.cluster.stream import Outgoing

SCHEMA_VERSION = 2  # 2: the vantage point of each entry
ENTRY_OVERHEAD = 64  # bytes counted per entry besides its text: the row, its keys
_TABLES = (
    """CREATE TABLE IF NOT EXISTS spooled (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        spooled_at REAL NOT NULL,
        subject TEXT NOT NULL,
        msg_id TEXT NOT NULL,
        agent TEXT NOT NULL,
        data BLOB NOT NULL,
        size INTEGER NOT NULL,
        vantage TEXT
    )""",
    "CREATE TABLE IF NOT EXISTS dropped (reason TEXT PRIMARY KEY, count INTEGER NOT NULL)",
    # Every append asks what is past max_age: without it, a scan of the whole spool each time,
    # ever slower the longer NATS is away.
    "CREATE INDEX IF NOT EXISTS spooled_by_age ON spooled (spooled_at)",
)


class SpoolError(Exception):
    """The spool cannot be opened or written (a path, permissions, another agent holding it)."""


@dataclass(frozen=True)
class SpoolFigures:
    depth: int  # entries waiting
    size: int  # their bytes as counted against max_bytes
    dropped_age: int  # ever dropped for being older than max_age
    dropped_size: int  # ever dropped, oldest first, to stay within max_bytes

    @property
    def dropped(self) -> int:
        return self.dropped_age + self.dropped_size


def entry_size(entry: Outgoing) -> int:
    return (
        len(entry.data)
        + len(entry.subject)
        + len(entry.msg_id)
        + len(entry.agent)
        + len(entry.vantage or "")
        + (ENTRY_OVERHEAD)
    )


class Spool:
    def __init__(
        self,
        path: Path,
        max_age: float,
        max_bytes: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=0)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open the spool {path}: {exc}") from None
        try:
            self._db.execute("PRAGMA locking_mode = EXCLUSIVE")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolError(f"cannot put the spool {path} in WAL mode ({mode})")
            self._db.execute("PRAGMA synchronous = NORMAL")
            # The first write takes the exclusive lock, held until close.
            self._db.execute("BEGIN IMMEDIATE")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SpoolError(
                    f"the spool {path} is of version {version}, newer than this commwatch's "
                    f"{SCHEMA_VERSION}: use the newer commwatch, or move the file away"
                )
            for table in _TABLES:
                self._db.execute(table)
            if version == 1:
                # Spooled by an agent of before pools: each of its results was the pool default's.
                self._db.execute("ALTER TABLE spooled ADD COLUMN vantage TEXT DEFAULT 'default'")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise SpoolError(
                    f"the spool {path} is in use by another agent: give each agent a name "
                    "(--name) or a spool path of its own"
                ) from None
            raise SpoolError(f"cannot use the spool {path}: {exc}") from None
        except SpoolError:
            self._db.close()
            raise
        depth, size = self._db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM spooled"
        ).fetchone()
        self._depth: int = depth
        self._size: int = size
        self.trim()

    # --- what an agent does with it -----------------------------------------------------------

    def append(self, entry: Outgoing) -> int:
        """Keep `entry` after every entry already kept, then drop what the bounds exclude;
        how many were dropped."""
        size = entry_size(entry)
        self._write(
            "INSERT INTO spooled (spooled_at, subject, msg_id, agent, data, size, vantage)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self._clock(),
                entry.subject,
                entry.msg_id,
                entry.agent,
                entry.data,
                size,
                entry.vantage,
            ),
        )
        self._depth += 1
        self._size += size
        return self.trim()

    def oldest(self, limit: int) -> list[tuple[int, Outgoing]]:
        """Up to `limit` entries, oldest first, each with its position for `remove_through`."""
        self.trim()
        rows = self._db.execute(
            "SELECT seq, subject, msg_id, agent, data, vantage FROM spooled ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            (seq, Outgoing(subject, msg_id, agent, bytes(data), vantage))
            for seq, subject, msg_id, agent, data, vantage in rows
        ]

    def oldest_at(self) -> float | None:
        """When the oldest entry was spooled (Unix time); None when the spool is empty."""
        if not self._depth:
            return None
        row = self._db.execute("SELECT spooled_at FROM spooled ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def remove_through(self, seq: int) -> None:
        """Forget every entry up to and including position `seq` (published)."""
        self._delete("seq <= ?", (seq,), reason=None)

    def trim(self) -> int:
        """Drop what is older than max_age, then the oldest beyond max_bytes; count both, and
        say how many went."""
        if not self._depth:
            return 0
        dropped = self._delete("spooled_at < ?", (self._clock() - self.max_age,), reason="age")
        if self._size <= self.max_bytes:
            return dropped
        excess, through = self._size - self.max_bytes, None
        for seq, size in self._db.execute("SELECT seq, size FROM spooled ORDER BY seq"):
            excess -= size
            through = seq
            if excess <= 0:
                break
        if through is not None:
            dropped += self._delete("seq <= ?", (through,), reason="size")
        return dropped

    def figures(self) -> SpoolFigures:
        dropped = dict(self._db.execute("SELECT reason, count FROM dropped").fetchall())
        return SpoolFigures(
            depth=self._depth,
            size=self._size,
            dropped_age=dropped.get("age", 0),
            dropped_size=dropped.get("size", 0),
        )

    @property
    def depth(self) -> int:
        return self._depth

    def close(self) -> None:
        self._db.close()

    # --- internals --------------------------------------------------------------------------

    def _write(self, sql: str, parameters: tuple[object, ...]) -> None:
        try:
            self._db.execute(sql, parameters)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write the spool {self.path}: {exc}") from None

    def _delete(self, where: str, parameters: tuple[object, ...], reason: str | None) -> int:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            count, size = self._db.execute(
                f"SELECT count(*), coalesce(sum(size), 0) FROM spooled WHERE {where}", parameters
            ).fetchone()
            if count:
                self._db.execute(f"DELETE FROM spooled WHERE {where}", parameters)
                if reason is not None:
                    self._db.execute(
                        "INSERT INTO dropped (reason, count) VALUES (?, ?)"
                        " ON CONFLICT (reason) DO UPDATE SET count = count + excluded.count",
                        (reason, count),
                    )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise SpoolError(f"cannot write the spool {self.path}: {exc}") from None
        self._depth -= count
        self._size -= size
        return int(count)
