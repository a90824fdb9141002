"""Delivery of the outbox's rows: due ones are sent through a caller-supplied `send` coroutine,
at most a notifier's `concurrency` at a time, and each outcome is recorded with backoff.

The dispatcher knows nothing of HTTP (that is `monitor.alerts.delivery`), only of outcomes, the
retry policy and per-notifier concurrency. Delivery is at least once; the idempotency key every
message carries makes it exactly once for a receiver that honours it.

Where several processes hold the same messages (centrals fed the same results) only one may
deliver: a `Gate` (monitor.cluster.notified, for a central) says whether this one may, with the
fencing token to send; it is asked right before every request, so a process that lost the
right sends nothing more. A dispatcher that may not deliver follows: it marks sent what the
gate says another delivered, and leaves the rest pending for whoever may deliver next.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from monitor.alerts.outbox import Outbox, OutboxRow, RowStatus
from monitor.config.alerts import RetryPolicy
from monitor.core.logs import Throttle

log = logging.getLogger("commwatch.alerts")

FOLLOW_INTERVAL = 1.0  # seconds between a follower's looks at what was delivered elsewhere
FOLLOW_BATCH = 500  # pending rows per notifier a follower looks at each time
_LOG_EVERY = 60.0


class Delivery(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # worth trying again later
    FAILED = "failed"  # permanent: the receiver rejected the message itself


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to. `detail` is printable: it never carries a URL's path or query."""

    delivery: Delivery
    detail: str
    retry_after: float | None = None


class Sender(Protocol):
    """One attempt to deliver a row; `fencing_token`, when a `Gate` gave one, goes with it."""

    def __call__(self, row: OutboxRow, fencing_token: int | None) -> Awaitable[Outcome]: ...


class GateError(Exception):
    """The gate cannot tell now (what it asks is out of reach); the message is printable."""


class Gate(Protocol):
    """Whether this process may deliver, when several hold the same messages."""

    def fencing_token(self) -> int | None:
        """The fencing token to send with a request now; None: this process may not deliver."""
        ...

    async def delivered_elsewhere(self, row: OutboxRow) -> str | None:
        """Who delivered this message already (another process, an earlier holder of the
        right), as a note for the row; None when nobody did. GateError when it cannot tell."""
        ...

    async def delivered(self, row: OutboxRow, fencing_token: int) -> None:
        """Record that this process delivered it, before the row is marked sent. GateError
        when it cannot: the row is marked sent all the same (the receiver has it)."""
        ...

    def watch(self, changed: Callable[[], None]) -> None:
        """Call `changed` whenever the answer of `fencing_token` may have changed."""
        ...


class Dispatcher:
    """Sends due outbox rows, at most `limits[notifier]` at a time per notifier, and records
    each outcome. Rows of notifiers missing from `limits` are left alone."""

    def __init__(
        self,
        outbox: Outbox,
        send: Sender,
        limits: Mapping[str, int],
        policy: RetryPolicy,
        *,
        describe: Callable[[str], str] = str,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float],
        gate: Gate | None = None,
    ) -> None:
        self._outbox = outbox
        self._send = send
        self._limits = dict(limits)
        self._policy = policy
        self._describe = describe
        self._clock = clock
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._busy: dict[str, int] = dict.fromkeys(self._limits, 0)
        self._task: asyncio.Task[None] | None = None
        self._gate = gate
        self._throttle = Throttle(_LOG_EVERY)

    def start(self) -> None:
        if self._gate is not None:
            self._gate.watch(self.wake)
        self._task = asyncio.create_task(self._loop(), name="commwatch-alert-delivery")

    def wake(self) -> None:
        self._wake.set()

    async def aclose(self, grace: float = 2.0) -> None:
        """Stop sending. Deliveries in flight get `grace` seconds to finish, so a receiver that
        answered is not sent the message again by the next process; ones cut short stay
        pending: delivery is at least once, and the idempotency key makes it exactly once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        in_flight = list(self._in_flight.values())
        if in_flight:
            await asyncio.wait(in_flight, timeout=grace)
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_due = await self._start_due()
            except sqlite3.Error:
                # The rows are safe on disk; look again shortly rather than stop delivering.
                log.exception("cannot read the alert outbox; retrying")
                next_due = self._clock() + 1.0
            timeout = None if next_due is None else max(0.0, next_due - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _start_due(self) -> float | None:
        """Start what is due and has room; return when the next waiting row falls due (None
        when only a finishing delivery or a new message can change anything)."""
        if self._gate is not None and self._gate.fencing_token() is None:
            await self._follow(self._gate)
            return self._clock() + FOLLOW_INTERVAL
        next_due: float | None = None
        now = self._clock()
        for notifier, limit in self._limits.items():
            room = limit - self._busy[notifier]
            if room <= 0:
                continue
            for row in await self._outbox.pending(notifier, limit + self._busy[notifier]):
                if row.id in self._in_flight:
                    continue
                if row.next_attempt_at > now:
                    due = row.next_attempt_at
                    next_due = due if next_due is None else min(next_due, due)
                    break
                if room <= 0:
                    break
                room -= 1
                self._busy[notifier] += 1
                self._in_flight[row.id] = asyncio.create_task(self._deliver(row))
        return next_due

    async def _follow(self, gate: Gate) -> None:
        """Mark sent what was delivered elsewhere; the rest waits for whoever may deliver."""
        for notifier in self._limits:
            for row in await self._outbox.pending(notifier, FOLLOW_BATCH):
                if row.id in self._in_flight:
                    continue
                try:
                    note = await gate.delivered_elsewhere(row)
                except GateError as exc:
                    self._gate_trouble(exc)
                    return
                if note is not None:
                    now = self._clock()
                    await self._outbox.record(
                        row.id, RowStatus.DELIVERED, note, now, now, tried=False
                    )

    def _gate_trouble(self, exc: GateError) -> None:
        held = self._throttle.let_through("gate")
        if held is not None:
            log.warning("%s (%d more such since the last line)", exc, held)

    async def _permit(self, row: OutboxRow) -> tuple[bool, int | None]:
        """Whether to send `row` now, and the fencing token to send it with."""
        gate = self._gate
        if gate is None:
            return True, None
        try:
            note = await gate.delivered_elsewhere(row)
        except GateError as exc:
            # Sent anyway: a copy the receiver already has carries the same idempotency key.
            self._gate_trouble(exc)
            note = None
        if note is not None:
            now = self._clock()
            await self._outbox.record(row.id, RowStatus.DELIVERED, note, now, now, tried=False)
            return False, None
        token = gate.fencing_token()  # the last thing before the request: no token, no request
        return token is not None, token

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            try:
                send, token = await self._permit(row)
            except sqlite3.Error:
                log.exception("cannot record message %s as delivered elsewhere", row.key)
                return
            if not send:
                return
            try:
                outcome = await self._send(row, token)
            except Exception as exc:
                # A bug in a sender must not stop delivery; the type alone is printed because an
                # HTTP library's message may carry the URL.
                outcome = Outcome(Delivery.RETRY, f"internal error: {type(exc).__name__}")
            if outcome.delivery is Delivery.DELIVERED and self._gate is not None:
                assert token is not None  # a gate gave it, or nothing was sent
                try:
                    await self._gate.delivered(row, token)
                except GateError as exc:
                    self._gate_trouble(exc)
            try:
                await self._record(row, outcome)
            except sqlite3.Error:
                # Unrecorded, the row stays pending: it is sent again, and the key dedupes it.
                log.exception("cannot record the outcome of message %s", row.key)
        finally:
            self._busy[row.notifier_id] -= 1
            del self._in_flight[row.id]
            self._wake.set()

    async def _record(self, row: OutboxRow, outcome: Outcome) -> None:
        now, attempt = self._clock(), row.attempts + 1
        where = f"notifier {row.notifier_id} ({self._describe(row.notifier_id)})"
        if outcome.delivery is Delivery.DELIVERED:
            await self._outbox.record(row.id, RowStatus.DELIVERED, None, now, now)
            if row.attempts:
                log.info("%s: message %s delivered on attempt %d", where, row.key, attempt)
            return
        if outcome.delivery is Delivery.RETRY and now - row.created_at > self._policy.give_up_after:
            outcome = Outcome(
                Delivery.FAILED, f"{outcome.detail}; gave up after {attempt} attempts"
            )
        if outcome.delivery is Delivery.FAILED:
            await self._outbox.record(row.id, RowStatus.FAILED, outcome.detail, now, now)
            log.error("%s: message %s not delivered: %s", where, row.key, outcome.detail)
            return
        delay = self._policy.delay(attempt, self._jitter())
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, self._policy.backoff_cap))
        await self._outbox.record(row.id, RowStatus.PENDING, outcome.detail, now + delay, now)
        log.warning(
            "%s: message %s attempt %d failed: %s; retrying in %.3gs",
            where,
            row.key,
            attempt,
            outcome.detail,
            delay,
        )
