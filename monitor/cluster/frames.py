"""The pipe up from a probe worker of `run --workers N` to its parent: each message a pickle of
the very objects the worker made (a `ProbeResult`, `SchedulerFigures`), behind its length.

Why pickle and not the result records every viewer reads: the pipe is private between two
processes of one commwatch run, same user, same code, the worker a child of the parent, which
can already do whatever a pickle could make it do. Nothing from outside reaches it (a probe's
peer text travels as strings inside the objects). A record is the engine's frozen result taken
apart into JSON and rebuilt field by field (its verdicts, headlines, certificates), about half
a millisecond of the parent's CPU per result; a pickle rebuilds the same objects exactly, for a
small part of that. Where input is not ours (NATS, the API) the records and their reader stay.
"""

from __future__ import annotations

import asyncio
import copyreg
import io
import pickle
import struct
from collections.abc import Mapping
from dataclasses import fields
from types import MappingProxyType
from typing import Any

from monitor.core.model import CertificateInfo, CheckRef, ProbeError, ProbeResult, Verdict
from monitor.engine.scheduler import SchedulerFigures

LIMIT = 16 * 1024 * 1024  # bytes in one message: a result with its certificates, and far more
_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """What came up the pipe is not a message of a worker; the text says how, for the log."""


def read_only(values: dict[str, Any]) -> Mapping[str, Any]:
    """A result's observations as the result holds them: read-only (see `_REDUCERS`)."""
    return MappingProxyType(values)


def _reduce_read_only(mapping: MappingProxyType[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    return read_only, (dict(mapping),)


# The frozen dataclasses a worker sends, each with its fields' names in order. dataclasses'
# own unpickling of a slotted class looks its fields up again for every object, most of the
# time a result takes to read (a result holds some twenty of them): here they are looked up once.
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls))
    for cls in (ProbeResult, Verdict, CheckRef, ProbeError, CertificateInfo, SchedulerFigures)
}
_set = object.__setattr__


def rebuild(cls: type, values: tuple[Any, ...]) -> object:
    """A frozen dataclass as `_reduce_frozen` took it apart, made without its __init__ (the
    values are the ones it made)."""
    made: object = object.__new__(cls)
    for name, value in zip(_FIELDS[cls], values, strict=True):
        _set(made, name, value)
    return made


def _reduce_frozen(made: object) -> tuple[Any, tuple[Any, ...]]:
    cls = type(made)
    return rebuild, (cls, tuple(getattr(made, name) for name in _FIELDS[cls]))


# A result's observations are a mappingproxy (frozen, monitor.core.model), which pickle cannot
# take by itself: it is written as its dict and made read-only again when read. The model's
# frozen dataclasses go as their class and values (see `_FIELDS`).
_REDUCERS: dict[type, Any] = {
    **copyreg.dispatch_table,
    MappingProxyType: _reduce_read_only,
    **dict.fromkeys(_FIELDS, _reduce_frozen),
}


def encode(message: object) -> bytes:
    """`message` as one frame: its length (4 bytes, big-endian), then its pickle."""
    buffer = io.BytesIO()
    buffer.write(b"\0" * _LENGTH.size)
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _REDUCERS
    pickler.dump(message)
    frame = buffer.getbuffer()
    _LENGTH.pack_into(frame, 0, len(frame) - _LENGTH.size)
    return bytes(frame)


async def read(stream: asyncio.StreamReader, limit: int = LIMIT) -> object | None:
    """The next message, or None when the writer closed its end between two messages.
    FrameError when the stream ends inside one, when one is longer than `limit`, or when its
    bytes are not a pickle."""
    try:
        head = await stream.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError("the pipe ended inside a message") from None
    (length,) = _LENGTH.unpack(head)
    if length > limit:
        raise FrameError(f"a message of {length} bytes, beyond {limit}")
    try:
        body = await stream.readexactly(length)
    except asyncio.IncompleteReadError:
        raise FrameError("the pipe ended inside a message") from None
    try:
        message: object = pickle.loads(body)
    except Exception as exc:  # whatever a broken pickle raises: the worker is broken
        raise FrameError(f"a message that does not unpickle ({type(exc).__name__})") from None
    return message
