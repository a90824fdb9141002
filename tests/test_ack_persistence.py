"""Acknowledgements kept in the history store and honoured by alerting: a real Monitor (a real
tcp check of a real loopback port that refuses, history on, alerting on) sending to a real
webhook receiver of the test's. An acknowledgement outlives a restart of the engine, holds the
problem's reminders back until it expires, and one that cannot hold any more ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from monitor.config.loader import load_inventory
from monitor.core.events import Subject
from monitor.engine.pipeline import Monitor
from monitor.store.controls import Ack, AckChange, AckEnd
from monitor.store.history import HistoryStore
from monitor.store.queries import HistoryReader
from tests.peers.tcp_peers import closed_port
from tests.peers.webhook_peers import WebhookReceiver

CHECK = "hq/wan/router"
WAIT = 30.0


def inventory(folder: Path, receiver: WebhookReceiver, port: int) -> Path:
    path = folder / "inventory.yaml"
    path.write_text(f"""\
history: {{path: {folder}/history.sqlite3}}
defaults: {{interval: 200ms, timeout: 150ms, retries: 1}}
alerts:
  group_window: 50ms
  retry_base: 50ms
  notifiers:
    - {{id: ops, kind: webhook, url: "{receiver.base_url}/ops", renotify_interval: 300ms}}
sites:
  - id: hq
    links:
      - id: wan
        checks:
          - {{id: router, kind: tcp, target: "127.0.0.1:{port}"}}
""")
    return path


@contextlib.asynccontextmanager
async def engine(path: Path) -> AsyncIterator[Monitor]:
    loaded = load_inventory(path)
    monitor = Monitor(loaded, loaded.checks, on_result=lambda _: None, on_event=lambda _: None)
    running = asyncio.create_task(monitor.run())
    try:
        await until(monitor.ready.is_set, "the engine to start")
        yield monitor
    finally:
        monitor.stop()
        await asyncio.wait_for(running, WAIT)


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"no {what} within {WAIT} s") from None


def reminders(receiver: WebhookReceiver) -> list[float]:
    """When each reminder of the check's problem arrived (monotonic seconds). Its link and
    site, down with it, are subjects of their own, acknowledged or not on their own."""
    return sorted(
        r.at
        for r in receiver.accepted.values()
        if r.json["kind"] == "reminder" and CHECK in {e["subject_id"] for e in r.json["events"]}
    )


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    peer = WebhookReceiver()
    await peer.start()
    yield peer
    await peer.stop()


def crit(monitor: Monitor) -> bool:
    return monitor.confirmed_state(Subject.CHECK, CHECK) is not None


async def test_an_acknowledgement_outlives_a_restart_and_holds_reminders_until_it_expires(
    tmp_path, receiver
):
    path = inventory(tmp_path, receiver, closed_port())
    async with engine(path) as first:
        await until(lambda: crit(first), "the check's confirmed CRIT")
        await until(lambda: len(reminders(receiver)) >= 1, "reminders of the problem")
        ack = first.acknowledge(
            CHECK, comment="fibre cut, carrier ticket 42", by="noc", expires=time.time() + 4.0
        )
        assert ack.state == "CRIT"
    # Stopped: what it held is in the store, written before the engine ended.
    with HistoryReader(tmp_path / "history.sqlite3") as store:
        assert store.acks() == [ack]
    quiet_from = time.monotonic()
    async with engine(path) as second:
        assert second.acks.get(CHECK) == ack  # taken up again, for the same problem
        # Reminders fall due every 300 ms; none goes out while the acknowledgement holds.
        await asyncio.sleep(max(0.0, ack.expires - time.time() - 0.3))
        assert [at for at in reminders(receiver) if at > quiet_from + 0.2] == []
        # It expires (the engine ends it), and reminding resumes.
        await until(lambda: second.acks.get(CHECK) is None, "the expiry")
        expired_at = time.monotonic()
        await until(
            lambda: len([at for at in reminders(receiver) if at >= expired_at - 0.2]) >= 2,
            "reminders after the expiry",
        )
    with HistoryReader(tmp_path / "history.sqlite3") as store:
        assert store.acks() == []
        log = [
            item for _, item in store.stream_page(0, 10**9, 10**6) if isinstance(item, AckChange)
        ]
    assert [(c.ack, c.ended) for c in log] == [(ack, None), (None, (ack, AckEnd.EXPIRED))]
    assert receiver.duplicates == []


@pytest.mark.parametrize(
    ("subject_id", "expires_in", "state", "why"),
    [
        (CHECK, -1.0, "CRIT", AckEnd.EXPIRED),  # expired while the engine was stopped
        (CHECK, 3600.0, "WARN", AckEnd.STATE_CHANGED),  # made for another problem
        ("hq/wan/gone", 3600.0, "CRIT", AckEnd.UNWATCHED),  # no longer in the inventory
    ],
)
async def test_a_stored_acknowledgement_that_cannot_hold_any_more_ends_at_the_start(
    tmp_path, receiver, subject_id, expires_in, state, why
):
    path = inventory(tmp_path, receiver, closed_port())
    async with engine(path) as first:
        await until(lambda: crit(first), "the check's confirmed CRIT")
    now = time.time()
    stored = Ack(Subject.CHECK, subject_id, "on it", "noc", now - 60, now + expires_in, state)
    with HistoryStore(tmp_path / "history.sqlite3") as store:
        store.write(controls=[(AckChange(subject_id, stored), now - 60)])
    async with engine(path) as second:
        assert second.acks.get(subject_id) is None
        await until(lambda: store_acks(tmp_path) == [], "the end to be stored")
    with HistoryReader(tmp_path / "history.sqlite3") as reader:
        log = [i for _, i in reader.stream_page(0, 10**9, 10**6) if isinstance(i, AckChange)]
    assert log[-1] == AckChange(subject_id, None, (stored, why))


def store_acks(folder: Path) -> list[Ack]:
    with HistoryReader(folder / "history.sqlite3") as reader:
        return reader.acks()
