"""The leader lease of the centrals: which one of several `commwatch central`s delivers the
notifications. Every central judges every result; only the one holding the lease notifies.

The lease is the key `central` of the JetStream key-value bucket `commwatch_leader`
(monitor.cluster.buckets), made with a TTL equal to the lease's (`cluster: lease_ttl:`), so a
key nobody renews disappears on the server after that long. Its value is JSON:
`{"central": NAME, "instance": ID, "token": N, "expires_at": POSIX seconds}`, ID random per
process: a central restarted under its name does not take its dead predecessor's lease for
its own (nor does a second central given the same name by mistake); it waits for it to expire.

- Winning: `kv.create`, which succeeds only while the key does not exist (never written,
  expired, or deleted). The revision it was written at is the **fencing token**: revisions of a
  bucket only grow, so whoever wins later holds a higher token, and a receiver can refuse a
  request carrying a lower one than it has seen.
- Holding: renewed every third of the TTL by `kv.update(last=revision)`, a compare-and-set on
  the revision: it fails once anyone else wrote the key.
- Losing: a failed compare-and-set (the key expired and another central won it), or no
  successful renewal for a TTL. The holder counts by its own monotonic clock from when it *sent*
  its last successful renewal, which the server stored later, so it stops counting itself leader
  before the key can expire on the server and before anyone else can win it (`token()` is
  checked before every request a dispatcher makes).
- A follower tries to win every third of the TTL: once the leader is gone (killed, stopped,
  cut off from NATS) the key expires within a TTL of its last renewal and a follower wins at its
  next try, within 2 TTLs.
- A clean stop deletes the key (a compare-and-set on the revision too), so a follower takes
  over at its next try instead of after the TTL.

A central started without alerting (no notifiers, or `--no-alerts`) only watches the lease:
it could not deliver, so it must not hold what lets only one central deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from monitor.cluster.buckets import LEADER, key_value
from monitor.config.cluster import vantage_name
from monitor.core.logs import BugLog
from monitor.core.options import OptionError

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

log = logging.getLogger("commwatch.lease")
_bugs = BugLog(log)

KEY = "central"
# Of the TTL: renewals (and a follower's tries) come every third of it, and the holder stops
# counting itself leader a tenth before its TTL runs out by its own clock.
RENEW_SHARE = 1 / 3
MARGIN_SHARE = 0.1
RETRY_SHARE = 0.1  # after a renewal NATS did not answer: try again this soon
OPEN_TIMEOUT = 10.0  # seconds for opening a bucket at start

_T = TypeVar("_T")


class LeaseError(Exception):
    """The lease cannot be used as NATS has it; the message says what to do, for the command
    line."""


class Role(enum.StrEnum):
    LEADER = "leader"  # holds the lease: delivers the notifications
    FOLLOWER = "follower"  # would take the lease over; delivers nothing meanwhile
    OBSERVER = "observer"  # runs no alerting: never takes the lease


@dataclass(frozen=True, slots=True)
class LeaseFigures:
    """The lease as one central sees it now (its log, `/api/v1/cluster`, `/healthz`, metrics)."""

    central: str  # this central's name
    role: Role
    leader: bool  # this central holds the lease now: its dispatcher delivers
    # The fencing token of the lease held now, by this central or by the one it last saw hold
    # it; 0 while it has seen none.
    token: int
    holder: str | None  # who holds it, as last seen; None: nobody, or NATS could not be asked
    changes: int  # how often leadership changed as this central saw it, since it started
    ttl: float  # the lease's TTL in seconds, as the bucket has it


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds the lease, as its value in the bucket says."""

    central: str
    token: int
    instance: str | None = None  # the process that wrote it


async def open_lease_bucket(js: JetStreamContext, ttl: float) -> tuple[KeyValue, float]:
    """The bucket `commwatch_leader` (made with `ttl` when missing) and the TTL it has: one made
    earlier keeps its own, which every central must then go by."""
    kv = await opened(key_value(js, LEADER, ttl), LEADER)
    status = await opened(kv.status(), LEADER)
    max_age = status.stream_info.config.max_age
    if not max_age:
        raise LeaseError(
            f"the key-value bucket {LEADER} has no TTL, so a dead leader would keep the lease "
            f"for ever: delete it (nats kv rm {LEADER}) and a central makes it again with "
            "cluster: lease_ttl:"
        )
    if abs(max_age - ttl) > 1e-3:
        log.warning(
            "the key-value bucket %s was made with a TTL of %gs, not the %gs of cluster: "
            "lease_ttl:; the lease goes by the bucket's",
            LEADER,
            max_age,
            ttl,
        )
    return kv, float(max_age)


async def opened(opening: Awaitable[_T], bucket: str) -> _T:
    """A key-value bucket opened (or asked about), or LeaseError saying what it takes."""
    import nats.errors

    try:
        return await asyncio.wait_for(opening, OPEN_TIMEOUT)
    except (nats.errors.Error, TimeoutError) as exc:
        raise LeaseError(
            f"cannot open the key-value bucket {bucket} ({type(exc).__name__}): the central "
            "needs JetStream's key-value store, and its NATS user the right to use it"
        ) from None


def read_holder(value: bytes | None, revision: int) -> Holder | None:
    """The lease's holder from its value; None for a value commwatch did not write. A value
    written at winning has no token yet: the revision it was written at is its token."""
    try:
        record = json.loads(value or b"")
        central = vantage_name(record["central"])
        token = record.get("token")
        instance = record.get("instance")
    except (ValueError, TypeError, KeyError, OptionError):
        return None
    if not isinstance(instance, str):
        instance = None
    if token is None:
        return Holder(central, revision, instance)
    if not isinstance(token, int) or isinstance(token, bool) or token <= 0:
        return None
    return Holder(central, token, instance)


@dataclass(frozen=True, slots=True)
class _Held:
    revision: int  # the key's revision, for the next compare-and-set
    token: int  # the revision the lease was won at
    valid_until: float  # by the lease's clock: it counts itself leader until then


class Lease:
    """The lease for the central `name`: `run()` until `stop()`, then `release()`. `compete`:
    False for a central that only watches who holds it."""

    def __init__(
        self,
        kv: KeyValue,
        name: str,
        ttl: float,
        *,
        compete: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        instance: str | None = None,
    ) -> None:
        self._kv = kv
        self.name = name
        self.instance = secrets.token_hex(8) if instance is None else instance
        self.ttl = ttl
        self._compete = compete
        self._clock = clock
        self._wall = wall
        self._held: _Held | None = None
        self._seen: Holder | None = None  # who holds it, as last seen
        self._seen_known = False  # whether `_seen` was read (False: not yet, or NATS away)
        self._changes = 0
        self._listeners: list[Callable[[], None]] = []
        self._stopped = asyncio.Event()

    # --- what others read ---------------------------------------------------------------

    def token(self) -> int | None:
        """The fencing token while this central holds the lease and may act on it now; None
        otherwise. Checked before every delivery: a lease past its time by this central's own
        clock (the process was stopped, NATS did not answer) is not held, renewed or not."""
        held = self._held
        if held is None or self._clock() >= held.valid_until:
            return None
        return held.token

    def figures(self) -> LeaseFigures:
        token = self.token()
        seen = self._seen
        holder: str | None
        if token is not None:
            holder, shown = self.name, token
        elif seen is not None and not self._own(seen):
            holder, shown = seen.central, seen.token
        else:
            holder, shown = None, 0
        if not self._compete:
            role = Role.OBSERVER
        else:
            role = Role.FOLLOWER if token is None else Role.LEADER
        return LeaseFigures(
            central=self.name,
            role=role,
            leader=token is not None,
            token=shown,
            holder=holder,
            changes=self._changes,
            ttl=self.ttl,
        )

    def watch(self, changed: Callable[[], None]) -> None:
        """Call `changed` whenever this central wins or loses the lease."""
        self._listeners.append(changed)

    # --- the loop -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        """Hold the lease or try to win it (watch it, without `compete`), until `stop()`."""
        while not self._stopped.is_set():
            try:
                wait = await self._step()
            except Exception as exc:
                # A bug must not end the lease's loop: a central whose loop died would never
                # lead again (holding, it stops by its own clock all the same).
                _bugs.report("the leader lease", exc)
                wait = self.ttl * RETRY_SHARE
            if self._held is not None:
                # Wake in time to notice an expiry by this central's clock, renewed or not.
                wait = min(wait, max(0.0, self._held.valid_until - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), wait)

    async def _step(self) -> float:
        """Renew, or try to win (or watch); how long to wait before the next step."""
        self._expire_if_due()
        if self._held is not None:
            return await self._renew(self._held)
        await self._try_to_win()
        return self.ttl * RENEW_SHARE

    async def release(self) -> None:
        """Give the lease up (a clean stop): deleted, compare-and-set on its revision, so a
        follower wins it at its next try. Without NATS it simply expires."""
        import nats.errors

        held = self._held
        if held is None:
            return
        self._lose("this central is stopping")
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await self._bounded(self._kv.delete(KEY, last=held.revision))

    # --- the steps ------------------------------------------------------------------------

    def _value(self, token: int | None) -> bytes:
        record = {
            "central": self.name,
            "instance": self.instance,
            "token": token,
            "expires_at": self._wall() + self.ttl,
        }
        return json.dumps(record, separators=(",", ":")).encode()

    async def _bounded(self, operation: Awaitable[_T]) -> _T:
        """A KV operation, given at most a third of the TTL: an answer later than that is of no
        use to a lease (nats-py's own default would wait 5 s)."""
        return await asyncio.wait_for(operation, self.ttl * RENEW_SHARE)

    async def _try_to_win(self) -> None:
        import nats.errors
        from nats.js.errors import KeyWrongLastSequenceError

        if not self._compete:
            await self._look()
            return
        sent = self._clock()
        try:
            revision = await self._bounded(self._kv.create(KEY, self._value(None)))
        except KeyWrongLastSequenceError:
            holder, current = await self._look()
            if holder is not None and self._own(holder) and current is not None:
                # The key holds this process's own value: a win or a renewal whose answer was
                # lost. Nobody else wrote it since; claim it by a compare-and-set on it.
                await self._claim(current, holder.token)
            return
        except (nats.errors.Error, TimeoutError):
            self._saw(None, known=False)
            return
        self._won(revision, revision, sent)
        if self._held is not None:
            await self._renew(self._held)  # at once: the value then carries the token

    async def _claim(self, revision: int, token: int) -> None:
        import nats.errors

        sent = self._clock()
        try:
            revision = await self._bounded(self._kv.update(KEY, self._value(token), last=revision))
        except (nats.errors.Error, TimeoutError):
            return
        self._won(revision, token, sent)

    def _won(self, revision: int, token: int, sent: float) -> None:
        self._held = _Held(revision, token, self._valid_from(sent))
        self._saw(Holder(self.name, token, self.instance), known=True)
        log.warning(
            "central %s leads now (fencing token %d): it delivers the notifications",
            self.name,
            token,
        )
        self._changed()

    def _valid_from(self, sent: float) -> float:
        return sent + self.ttl * (1 - MARGIN_SHARE)

    async def _renew(self, held: _Held) -> float:
        """Renew the held lease; how long to wait before the next renewal."""
        import nats.errors
        from nats.js.errors import KeyWrongLastSequenceError

        sent = self._clock()
        try:
            revision = await self._bounded(
                self._kv.update(KEY, self._value(held.token), last=held.revision)
            )
        except KeyWrongLastSequenceError:
            holder, current = await self._look()
            if holder == Holder(self.name, held.token, self.instance) and current is not None:
                # This central's own renewal whose answer was lost: go on from its revision.
                self._held = _Held(current, held.token, held.valid_until)
                return 0.0
            shown = "nobody holds it" if holder is None else f"central {holder.central} holds it"
            self._lose(f"another central took it over: {shown} now")
            return self.ttl * RENEW_SHARE
        except (nats.errors.Error, TimeoutError):
            self._expire_if_due("not renewed within its TTL: NATS did not answer")
            return self.ttl * RETRY_SHARE
        if self._held is held:  # not lost meanwhile
            self._held = _Held(revision, held.token, self._valid_from(sent))
        return self.ttl * RENEW_SHARE

    async def _look(self) -> tuple[Holder | None, int | None]:
        """Who holds the lease and the key's revision (None, None: nobody, or NATS did not
        answer); the log is told when the holder changed."""
        import nats.errors
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self._bounded(self._kv.get(KEY))
        except KeyNotFoundError:  # deleted or expired since
            self._saw(None, known=True)
            return None, None
        except (nats.errors.Error, TimeoutError):
            self._saw(None, known=False)
            return None, None
        revision = entry.revision or 0
        holder = read_holder(entry.value, revision)
        self._saw(holder, known=True)
        return holder, revision

    def _own(self, holder: Holder) -> bool:
        return (holder.central, holder.instance) == (self.name, self.instance)

    def _saw(self, holder: Holder | None, *, known: bool) -> None:
        if (holder, known) == (self._seen, self._seen_known):
            return
        self._seen, self._seen_known = holder, known
        if holder is not None and self._own(holder):
            return  # this process's own lease: said when won or lost
        self._changes += 1
        if holder is not None and holder.central == self.name:
            log.warning(
                "central %s finds the lease held by another process of its name (fencing "
                "token %d): it waits for that lease to expire",
                self.name,
                holder.token,
            )
        elif holder is not None:
            log.warning(
                "central %s follows central %s (fencing token %d)",
                self.name,
                holder.central,
                holder.token,
            )
        elif known:
            log.warning("central %s sees no central holding the lease", self.name)
        else:
            log.warning("central %s cannot read the lease: NATS did not answer", self.name)

    def _expire_if_due(self, reason: str = "not renewed within its TTL") -> None:
        if self._held is not None and self._clock() >= self._held.valid_until:
            self._lose(reason)

    def _lose(self, reason: str) -> None:
        if self._held is None:
            return
        self._held = None
        self._seen, self._seen_known = None, False  # so that the next holder seen is told
        log.warning(
            "central %s no longer leads (%s): it delivers no notifications now", self.name, reason
        )
        self._changed()

    def _changed(self) -> None:
        self._changes += 1
        for listener in tuple(self._listeners):
            listener()
