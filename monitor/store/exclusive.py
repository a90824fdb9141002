"""One engine writes a history database at a time.

The writer numbers what it stores from the highest id the store ever handed out, read once at
its start (monitor.store.numbering): a second engine writing the same file numbers from the
same place, and the first one's next batch collides with the second's ids and is refused again
and again, so that engine stores nothing more, and shows nothing more (it shows an item once
stored). The default history path is one for every inventory, so two engines on it is an easy
mistake (a dashboard on one inventory, `commwatch run` on another).

So the writer holds an exclusive lock (flock(2)) on `PATH.lock` beside the database for as long
as it runs; the kernel drops it when the process ends however it ends (SIGKILL included), so a
lock is never stale. A second writer is refused at its start, naming the one that holds it.
Readers (reports, audits, the API's history) take no lock: WAL lets them read beside the
writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from monitor.store.schema import HistoryError


class HistoryInUse(HistoryError):
    """Another process writes this history database."""


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class WriterLock:
    """The exclusive right to write `database`, held from construction until `release`."""

    def __init__(self, database: Path) -> None:
        path = lock_path(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise HistoryInUse(
                f"{database}: another commwatch{holder} is writing this history, and two "
                "engines on one history lose results; give this inventory a history of its "
                "own (history: {path: ...}) or run it with --no-history"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing drops the lock
            self._descriptor = None


def _holder(descriptor: int) -> str:
    """ " (pid N)" from the lock file, when it names a process; "" otherwise."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(descriptor, 32, 0).decode("ascii").strip())
        if pid > 0:
            return f" (pid {pid})"
    return ""
