"""A probe's memory of earlier polls, kept between `commwatch probe` invocations in a file.

A monitoring system starts a plugin afresh for every check, so what a probe remembers in a
long run (SNMP counters for rates, sysUpTime for reboots, the TLS leaf seen last) would be lost
between polls. As `check_snmp_int` does, `commwatch probe` keeps it in a state file:

- in `$XDG_STATE_HOME/commwatch/probe/` (XDG_STATE_HOME is `~/.local/state` when unset, the home
  from HOME or else the account's entry); when no such folder can be made (a service account
  with no home, an empty environment), in a private `commwatch-UID` folder of the system's
  temporary folder; when neither can be had, the probe runs without memory and says so;
- one file per kind, target and options (a digest of them names it), so two checks never share
  memory and a changed check starts afresh;
- written atomically (a private temporary file renamed over the old one): an invocation racing
  another reads the old poll or the new one, whole, never half of each; the last one wins;
- bounded: a file over 1 MiB is not read, files untouched for 30 days are removed;
- no secrets: memory holds counters, indexes, times and fingerprints, options name secrets only
  by reference, and only a digest of the options is written, in the file's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_BYTES = 1024 * 1024
KEEP_UNUSED = 30 * 86400.0
_SUFFIX = ".json"
_TEMPORARY = ".tmp"


@dataclass(frozen=True)
class Folder:
    path: Path
    private: bool = False  # inside a temporary folder others write to: must be ours alone


@dataclass(frozen=True)
class StateFile:
    """One check's memory between invocations: read from the first of `folders` that holds it,
    written to the first that can be written (made only then, when there is memory to keep).
    Entries named in `monotonic_keys` are `time.monotonic()` readings: they are stored as
    wall-clock times and read back on this process's monotonic clock."""

    name: str
    folders: tuple[Folder, ...]
    monotonic_keys: tuple[str, ...] = ()

    def load(self) -> dict[str, Any]:
        """The memory the last invocation saved; empty when there is none or it is unusable."""
        for folder in self.folders:
            path = folder.path / self.name
            try:
                with path.open("rb") as handle:
                    raw = handle.read(MAX_BYTES + 1)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                log.warning("cannot read the state file %s: %s", path, exc.strerror)
                continue
            return self._memory(path, raw)
        return {}

    def _memory(self, path: Path, raw: bytes) -> dict[str, Any]:
        try:
            document = json.loads(raw) if len(raw) <= MAX_BYTES else None
        except ValueError:
            document = None
        if (
            not isinstance(document, dict)
            or document.get("version") != STATE_VERSION
            or not isinstance(document.get("memory"), dict)
        ):
            log.warning("the state file %s is not one commwatch wrote; starting afresh", path)
            return {}
        memory: dict[str, Any] = document["memory"]
        shift = time.monotonic() - time.time()
        for key in self.monotonic_keys:
            if isinstance(memory.get(key), int | float):
                memory[key] += shift
        return memory

    def save(self, memory: dict[str, Any]) -> None:
        """Replace the file with `memory` (nothing to keep, no file); failures are reported,
        never raised: the poll's result stands without them."""
        if not memory:
            return
        stored = dict(memory)
        shift = time.time() - time.monotonic()
        for key in self.monotonic_keys:
            if isinstance(stored.get(key), int | float):
                stored[key] += shift
        try:
            text = json.dumps(
                {"version": STATE_VERSION, "memory": stored}, allow_nan=False, separators=(",", ":")
            )
        except (TypeError, ValueError) as exc:
            log.warning("cannot keep the probe's memory: %s", exc)
            return
        if len(text) > MAX_BYTES:
            log.warning("the probe's memory is over %d bytes: not kept", MAX_BYTES)
            return
        folder = next((f.path for f in self.folders if _usable(f)), None)
        if folder is None:
            log.warning(
                "no folder to keep the probe's state in (%s): rates and reboots cannot be told "
                "from a single poll",
                ", ".join(str(f.path) for f in self.folders) or "no XDG_STATE_HOME nor home",
            )
            return
        try:
            _write_atomically(folder / self.name, text)
        except OSError as exc:
            log.warning("cannot write the state file %s: %s", folder / self.name, exc)
            return
        _remove_unused(folder)


def _write_atomically(path: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=_TEMPORARY)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def state_file(
    kind: str,
    target: str,
    options: Any,
    monotonic_keys: tuple[str, ...] = (),
    directory: Path | None = None,
) -> StateFile:
    """The state file of a check: in `directory` when given, else in the default folders."""
    # repr() of options names secrets by reference only (SecretRef), never by their values.
    digest = hashlib.sha256(f"{kind}\0{target}\0{options!r}".encode()).hexdigest()[:32]
    folders = (Folder(directory),) if directory is not None else default_folders()
    return StateFile(f"{kind}-{digest}{_SUFFIX}", folders, monotonic_keys)


def default_folders() -> tuple[Folder, ...]:
    folders = []
    configured = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(configured):  # the XDG spec: a relative path is to be ignored
        folders.append(Folder(Path(configured) / "commwatch" / "probe"))
    home = os.path.expanduser("~")  # HOME, else the account's entry; "~" when neither exists
    if os.path.isabs(home):
        folders.append(Folder(Path(home) / ".local" / "state" / "commwatch" / "probe"))
    private = Path(tempfile.gettempdir()) / f"commwatch-{os.getuid()}"
    folders.append(Folder(private / "probe", private=True))
    return tuple(folders)


def _usable(folder: Folder) -> bool:
    """Whether `folder` exists or can be made, and written. A private one, and the one it is
    in, must be real folders of ours that others cannot enter."""
    chain = (folder.path.parent, folder.path) if folder.private else (folder.path,)
    for path in chain:
        try:
            path.mkdir(mode=0o700, parents=not folder.private, exist_ok=True)
            status = path.lstat()
        except OSError:
            return False
        if not stat.S_ISDIR(status.st_mode):
            return False
        if folder.private and (status.st_uid != os.getuid() or status.st_mode & 0o077):
            return False
    return os.access(folder.path, os.W_OK | os.X_OK)


def _remove_unused(folder: Path) -> None:
    """State of checks no longer run, and temporary files a killed invocation left behind."""
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            keep = KEEP_UNUSED if entry.name.endswith(_SUFFIX) else 3600.0
            if entry.name.endswith((_SUFFIX, _TEMPORARY)) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < now - keep:
                        os.unlink(entry.path)
