"""A dispatcher behind a `Gate` (monitor.alerts.dispatcher), as a central's is: it sends only
while the gate gives a fencing token, carries that token, records each delivery with the gate
before marking it sent, skips what was delivered elsewhere, and stops before its next request
once the token is gone. Against a real local webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from monitor.alerts.delivery import FENCING_HEADER, deliver, sign
from monitor.alerts.dispatcher import Dispatcher, GateError
from monitor.alerts.outbox import Outbox, OutboxRow, RowStatus
from monitor.config.alerts import NotifierConfig
from monitor.core.secrets import SecretRef
from tests.peers.webhook_peers import WebhookReceiver
from tests.test_outbox import FAST, notifier, rows, wait_rows

SECRET = "cw-gate-hmac-secret-19d2"


class Gate:
    """A gate of the test's: a token it is told, and what was delivered elsewhere."""

    def __init__(self, outbox: Outbox, token: int | None = None) -> None:
        self.outbox = outbox
        self.token = token
        self.elsewhere: dict[str, str] = {}
        self.recorded: list[tuple[str, int, RowStatus]] = []  # key, token, row status then
        self.unreachable = False
        self._changed: list[Callable[[], None]] = []

    def give(self, token: int | None) -> None:
        self.token = token
        for changed in self._changed:
            changed()

    def fencing_token(self) -> int | None:
        return self.token

    async def delivered_elsewhere(self, row: OutboxRow) -> str | None:
        if self.unreachable:
            raise GateError("the record of deliveries cannot be read")
        return self.elsewhere.get(row.key)

    async def delivered(self, row: OutboxRow, fencing_token: int) -> None:
        (stored,) = [r for r in await self.outbox.rows() if r.id == row.id]
        self.recorded.append((row.key, fencing_token, stored.status))

    def watch(self, changed: Callable[[], None]) -> None:
        self._changed.append(changed)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    peer = WebhookReceiver()
    await peer.start()
    yield peer
    await peer.stop()


@contextlib.asynccontextmanager
async def gated(
    db: Path, target: NotifierConfig, token: int | None = None
) -> AsyncIterator[tuple[Outbox, Dispatcher, Gate]]:
    outbox = await Outbox(db).open()
    gate = Gate(outbox, token)
    async with aiohttp.ClientSession() as session:
        dispatcher = Dispatcher(
            outbox,
            lambda row, token: deliver(session, target, row, time.time(), token),
            {target.id: target.concurrency},
            FAST,
            jitter=lambda: 0.5,
            gate=gate,
        )
        dispatcher.start()
        try:
            yield outbox, dispatcher, gate
        finally:
            await dispatcher.aclose()
            await outbox.close()


async def test_it_sends_only_with_a_token_carries_it_and_records_before_marking_sent(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    async with gated(tmp_path / "db", notifier(f"{receiver.base_url}/ops")) as (
        outbox,
        dispatcher,
        gate,
    ):
        await outbox.commit(rows(2), {}, [], time.time())
        dispatcher.wake()
        await asyncio.sleep(0.5)
        assert receiver.requests == []  # a follower: no token, no request
        gate.give(7)  # won the lease: the dispatcher is told at once
        await receiver.wait_for(lambda r: len(r.accepted) == 2, timeout=2)
        stored = await wait_rows(outbox, lambda s: all(r.status is RowStatus.DELIVERED for r in s))
    assert [r.headers[FENCING_HEADER] for r in receiver.requests] == ["7", "7"]
    assert sorted(gate.recorded) == sorted((r.key, 7, RowStatus.PENDING) for r in stored)


async def test_the_signature_covers_the_fencing_token_and_the_key(
    tmp_path: Path, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver checks the signature from the documented string, token and key in it: a
    request signed without them, or with another token, would be refused (401, never retried
    as delivered)."""
    monkeypatch.setenv("CW_GATE_HMAC", SECRET)
    receiver.secret = SECRET
    signed = notifier(
        f"{receiver.base_url}/signed/ops", hmac_secret=SecretRef("env", "CW_GATE_HMAC")
    )
    async with gated(tmp_path / "db", signed, token=7) as (outbox, dispatcher, _):
        await outbox.commit(rows(2), {}, [], time.time())
        dispatcher.wake()
        await receiver.wait_for(lambda r: len(r.accepted) == 2, timeout=10)
    assert [r.signature_ok for r in receiver.requests] == [True, True]
    for request in receiver.requests:
        timestamp = int(request.headers["X-Commwatch-Timestamp"])
        key, body = request.headers["Idempotency-Key"], request.body
        assert request.headers["X-Commwatch-Signature"] == sign(SECRET, timestamp, key, 7, body)
        assert request.headers["X-Commwatch-Signature"] != sign(SECRET, timestamp, key, 8, body)


async def test_a_follower_marks_sent_what_was_delivered_elsewhere_and_waits_for_the_rest(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    async with gated(tmp_path / "db", notifier(f"{receiver.base_url}/ops")) as (
        outbox,
        dispatcher,
        gate,
    ):
        done, waiting = rows(2)
        gate.elsewhere[done.key] = "delivered by central south (fencing token 3)"
        await outbox.commit([done, waiting], {}, [], time.time())
        dispatcher.wake()
        stored = await wait_rows(outbox, lambda s: s[0].status is RowStatus.DELIVERED)
        await asyncio.sleep(1.5)  # a follower's next looks change nothing more
        stored = await outbox.rows()
    assert [(r.status, r.attempts, r.last_error) for r in stored] == [
        (RowStatus.DELIVERED, 0, "delivered by central south (fencing token 3)"),
        (RowStatus.PENDING, 0, None),
    ]
    assert receiver.requests == []


async def test_a_new_leader_skips_what_an_earlier_one_delivered(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    async with gated(tmp_path / "db", notifier(f"{receiver.base_url}/ops"), token=9) as (
        outbox,
        dispatcher,
        gate,
    ):
        done, fresh = rows(2)
        gate.elsewhere[done.key] = "delivered by central north (fencing token 4)"
        await outbox.commit([done, fresh], {}, [], time.time())
        dispatcher.wake()
        await wait_rows(outbox, lambda s: all(r.status is RowStatus.DELIVERED for r in s))
    assert [r.key for r in receiver.requests] == [fresh.key]


async def test_losing_the_token_stops_before_the_next_request(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    receiver.delay = 0.4
    target = notifier(f"{receiver.base_url}/ops", concurrency=1)
    async with gated(tmp_path / "db", target, token=5) as (outbox, dispatcher, gate):
        await outbox.commit(rows(3), {}, [], time.time())
        dispatcher.wake()
        await receiver.wait_for(lambda r: len(r.requests) == 1, timeout=2)
        gate.give(None)  # lost the lease while the first request is under way
        await wait_rows(outbox, lambda s: s[0].status is RowStatus.DELIVERED)
        await asyncio.sleep(1.5)
        stored = await outbox.rows()
    assert len(receiver.requests) == 1
    assert [r.status for r in stored] == [RowStatus.DELIVERED, RowStatus.PENDING, RowStatus.PENDING]


async def test_a_leader_that_cannot_read_the_record_delivers_under_the_same_key(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    async with gated(tmp_path / "db", notifier(f"{receiver.base_url}/ops"), token=2) as (
        outbox,
        dispatcher,
        gate,
    ):
        gate.unreachable = True
        (row,) = rows(1)
        await outbox.commit([row], {}, [], time.time())
        dispatcher.wake()
        await receiver.wait_for(lambda r: len(r.accepted) == 1, timeout=2)
    assert receiver.requests[0].key == row.key
