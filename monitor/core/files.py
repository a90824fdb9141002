"""Reading a file the user named (the inventory, a secret) within a bound.

A path can name a device that never ends (/dev/zero), a folder, or a named pipe nobody writes
to: a plain `read_text()` would fill memory, fail obscurely or block forever in `open()`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def read_bounded(path: str | Path, limit: int, *, pipes: bool = False) -> bytes:
    """The bytes of the regular file `path` (or, with `pipes`, of a pipe such as `<(generate)`),
    at most `limit`. Raises OSError: EISDIR for a folder, EINVAL for a device or socket, EFBIG
    for more than `limit` bytes."""
    # O_NONBLOCK: opening a named pipe without a writer must not hang (reading it then ends).
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not (stat.S_ISREG(mode) or (pipes and stat.S_ISFIFO(mode))):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
        chunks, received = [], 0
        while received <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - received))
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
        if received > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)
