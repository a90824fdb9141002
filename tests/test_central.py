"""The central engine against a real nats-server with JetStream: results published into the
results stream as an agent publishes them (monitor.cluster.stream: subject, Nats-Msg-Id, the
headers, the record's JSON) reach the central's engine (states, events, history, the API's
state document); a restarted central resumes from its durable consumer; a result delivered
twice is dropped, not counted twice; malformed, forged and unknown-check messages are
terminated and counted while good ones keep flowing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.client import JetStreamContext

from monitor.cluster.central import Rejection, ResultConsumer
from monitor.cluster.stream import SUBJECTS, ensure_stream, outgoing
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.events import EventKind
from monitor.core.model import ProbeResult, Severity
from monitor.store.history import HistoryStore
from tests.central_support import (
    AGENT,
    BASE,
    STREAM,
    VIEWER,
    VIEWER_ENV,
    central,
    jetstream,
    publish,
    state_document,
)
from tests.peers.nats_peers import NatsServer, running_nats


@pytest.fixture(autouse=True)
def viewer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VIEWER_ENV, VIEWER)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    async with running_nats(tmp_path / "nats") as running:
        yield running


@pytest.fixture
async def js(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    async with jetstream(server.url) as context:
        yield context


def inventory(tmp_path: Path, *, retries: int = 2) -> Inventory:
    path = tmp_path / "inventory.yaml"
    # The targets are never connected to: the central probes nothing.
    path.write_text(
        f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
        "sites:\n  - id: north\n    links:\n      - id: wan\n        checks:\n"
        f"          - {{id: c, kind: tcp, target: '127.0.0.1:9', retries: {retries}}}\n"
        f"          - {{id: d, kind: tcp, target: '127.0.0.1:9', retries: {retries}}}\n"
    )
    return load_inventory(path)


def result(inv: Inventory, severity: Severity, at: float, check: int = 0) -> ProbeResult:
    return ProbeResult(
        check=inv.checks[check].ref, started_at=at, duration_ms=2.5, severity=severity
    )


async def consumer_state(js: JetStreamContext, durable: str = "central") -> tuple[int, int, int]:
    """(delivered, waiting for an ack, redelivered) as the server counts them."""
    info = await js.consumer_info(STREAM, durable)
    assert info.delivered is not None
    return info.delivered.stream_seq or 0, info.num_ack_pending or 0, info.num_redelivered or 0


async def settled_on_server(js: JetStreamContext, delivered: int) -> None:
    async with asyncio.timeout(10):
        while await consumer_state(js) != (delivered, 0, 0):
            await asyncio.sleep(0.05)


def stored(tmp_path: Path, check_id: str = "north/wan/c") -> list[tuple[float, Severity]]:
    with HistoryStore(tmp_path / "history.sqlite3") as store:
        return [(r.started_at, r.severity) for r in store.recent_results(check_id)]


async def test_published_results_reach_the_central_engine_history_and_api(
    tmp_path: Path, js: JetStreamContext
) -> None:
    inv = inventory(tmp_path)
    async with central(js, inv) as c:
        await publish(
            js,
            result(inv, Severity.OK, BASE),
            result(inv, Severity.CRIT, BASE + 1),
            result(inv, Severity.CRIT, BASE + 2),
            result(inv, Severity.WARN, BASE + 0.5, check=1),
        )
        await c.seen.until(lambda: len(c.seen.check_events()) == 3)
        await c.seen.until(lambda: len(c.seen.results) == 4)
        document = await state_document(c)
        await settled_on_server(js, delivered=4)
        assert c.consumer.figures().taken == 4 and c.consumer.figures().settled == 4
    assert c.seen.check_events() == [
        (EventKind.HARD, "OK"),
        (EventKind.SOFT, "CRIT"),
        (EventKind.HARD, "CRIT"),
    ]
    assert c.monitor.state.checks["north/wan/c"].hard is Severity.CRIT
    assert stored(tmp_path) == [
        (BASE, Severity.OK),
        (BASE + 1, Severity.CRIT),
        (BASE + 2, Severity.CRIT),
    ]
    # The check's ref is the central's own (its host, which a record does not carry).
    assert c.seen.results[0].check == inv.checks[0].ref
    checks = {entry["check_id"]: entry for entry in document["checks"]}
    assert checks["north/wan/c"]["last_result"]["severity"] == "CRIT"
    assert checks["north/wan/d"]["last_result"]["severity"] == "WARN"
    assert document["engine_state"]["checks"]["north/wan/c"]["hard"] == "CRIT"


async def test_a_restarted_central_resumes_from_its_durable_consumer(
    tmp_path: Path, js: JetStreamContext
) -> None:
    inv = inventory(tmp_path)
    async with central(js, inv) as first:
        await publish(js, result(inv, Severity.OK, BASE), result(inv, Severity.CRIT, BASE + 1))
        await first.seen.until(lambda: len(first.seen.results) == 2)
        await settled_on_server(js, delivered=2)
    # Published while no central runs: kept by the stream for the durable consumer.
    await publish(js, result(inv, Severity.CRIT, BASE + 2), result(inv, Severity.OK, BASE + 3))
    async with central(js, inv) as second:
        await second.seen.until(lambda: len(second.seen.results) == 2)
        await settled_on_server(js, delivered=4)
        figures = second.consumer.figures()
    # Only what it had not taken: nothing delivered again, nothing dropped.
    assert [r.started_at for r in second.seen.results] == [BASE + 2, BASE + 3]
    assert (figures.taken, figures.duplicates) == (2, 0)
    assert stored(tmp_path) == [
        (BASE, Severity.OK),
        (BASE + 1, Severity.CRIT),
        (BASE + 2, Severity.CRIT),
        (BASE + 3, Severity.OK),
    ]
    # The second run went from the restored OK through the SOFT CRIT (its first result) to HARD
    # CRIT, then recovered: the first run's soft attempt was not counted again.
    assert second.seen.check_events() == [(EventKind.SOFT, "CRIT"), (EventKind.HARD, "OK")]


async def test_an_earlier_centrals_consumer_is_made_again_for_every_subject_where_it_was(
    tmp_path: Path, js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    """An earlier commwatch's central consumed `commwatch.results.>` alone, which would miss
    the results the hub's stream sources from the sites' leaf nodes (`commwatch.queued.>`).
    NATS 2.9 widens no consumer's filter: the central makes it again without one, from the
    first result the old one had not acknowledged, so none is lost or taken twice."""
    inv = inventory(tmp_path)
    await publish(js, result(inv, Severity.OK, BASE), result(inv, Severity.CRIT, BASE + 1))
    old = await js.pull_subscribe(SUBJECTS, durable="central", stream=STREAM)  # as it made it
    (first,) = await old.fetch(1, timeout=10)
    await first.ack_sync()
    await old.unsubscribe()
    await publish(js, result(inv, Severity.CRIT, BASE + 2))
    async with central(js, inv) as c:
        await c.seen.until(lambda: len(c.seen.results) == 2)
        await settled_on_server(js, delivered=3)
        info = await js.consumer_info(STREAM, "central")
    assert [r.started_at for r in c.seen.results] == [BASE + 1, BASE + 2]
    assert not info.config.filter_subject
    assert any(
        record.getMessage().startswith(
            "consumer central took only commwatch.results.>: made again for every subject of "
            f"stream {STREAM}, from its sequence 2 on"
        )
        for record in caplog.records
    )


async def test_results_delivered_again_are_dropped_not_stored_or_counted_twice(
    tmp_path: Path, js: JetStreamContext
) -> None:
    """Everything delivered again (a consumer that lost its acknowledgements: a crash between
    the store and the ack, at its worst), and a run published twice (beyond the stream's
    duplicate window, under another message id)."""
    inv = inventory(tmp_path)
    crit = result(inv, Severity.CRIT, BASE + 1)
    async with central(js, inv) as first:
        await publish(js, result(inv, Severity.OK, BASE), crit)
        await first.seen.until(lambda: len(first.seen.check_events()) == 2)
        # The same run again, under an id the server has not seen: in the stream twice.
        again = outgoing(AGENT, crit)
        headers = {**again.headers, "Nats-Msg-Id": again.msg_id + "0"}
        await js.publish(again.subject, again.data, headers=headers)
        await publish(js, result(inv, Severity.OK, BASE + 2))
        await first.seen.until(lambda: len(first.seen.results) == 3)
        await settled_on_server(js, delivered=4)
        assert first.consumer.figures().duplicates == 1
    # One CRIT, not two: it stayed SOFT and the OK after it settled it back (a second count
    # would have confirmed CRIT: retries is 2).
    assert first.seen.check_events() == [(EventKind.HARD, "OK"), (EventKind.SOFT, "CRIT")]
    assert stored(tmp_path) == [
        (BASE, Severity.OK),
        (BASE + 1, Severity.CRIT),
        (BASE + 2, Severity.OK),
    ]
    async with central(js, inv, durable="central-after-a-loss") as second:
        async with asyncio.timeout(20):
            while second.consumer.figures().duplicates < 4:
                await asyncio.sleep(0.05)
        figures = second.consumer.figures()
    assert (figures.taken, figures.duplicates) == (0, 4)
    assert second.seen.items == []
    assert len(stored(tmp_path)) == 3


def forged_variants(inv: Inventory) -> list[tuple[Rejection, str, bytes, dict[str, str]]]:
    good = outgoing(AGENT, result(inv, Severity.CRIT, BASE + 5))
    record = json.loads(good.data)
    h = good.headers  # each is published under an id of its own (the server keeps them all)
    unknown = {**record, "check_id": "north/wan/\x1b[31mnot-here"}
    bare = {key: value for key, value in record.items() if key not in ("site_id", "link_id")}
    elsewhere = {**record, "site_id": "south"}
    return [
        (Rejection.MALFORMED, good.subject, b"not json {", h),
        (Rejection.MALFORMED, good.subject, b"[1, 2, 3]", h),
        (Rejection.MALFORMED, good.subject, b"\xff\xfe", h),
        (Rejection.MALFORMED, good.subject, json.dumps({**record, "severity": "BAD"}).encode(), h),
        (
            Rejection.MALFORMED,
            good.subject,
            json.dumps({"check_id": record["check_id"]}).encode(),
            h,
        ),
        (Rejection.SCHEMA, good.subject, good.data, {**h, "Commwatch-Schema": "1"}),
        (Rejection.SCHEMA, good.subject, good.data, {"Commwatch-Agent": AGENT}),
        (Rejection.UNKNOWN_CHECK, good.subject, json.dumps(unknown).encode(), h),
        (Rejection.FORGED, good.subject, good.data, {**h, "Commwatch-Agent": "psap-south"}),
        (Rejection.FORGED, f"commwatch.results.south.{AGENT}", good.data, h),
        (Rejection.FORGED, good.subject, json.dumps(elsewhere).encode(), h),
        (Rejection.FORGED, good.subject, json.dumps(bare).encode(), h),
        (Rejection.FORGED, good.subject, good.data, {**h, "Nats-Msg-Id": "psap-south.x.1"}),
    ]


async def test_malformed_forged_and_unknown_messages_are_rejected_while_good_ones_flow(
    tmp_path: Path, js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    inv = inventory(tmp_path)
    variants = forged_variants(inv)
    caplog.set_level(logging.WARNING, logger="monitor.cluster.central")
    async with central(js, inv) as c:
        await publish(js, result(inv, Severity.OK, BASE))
        for index, (_kind, subject, data, headers) in enumerate(variants):
            msg_id = headers.get("Nats-Msg-Id", "")
            await js.publish(subject, data, headers={**headers, "Nats-Msg-Id": f"{msg_id}{index}"})
        await publish(
            js, result(inv, Severity.CRIT, BASE + 1), result(inv, Severity.CRIT, BASE + 2)
        )
        await c.seen.until(lambda: len(c.seen.check_events()) == 3)
        delivered = 3 + len(variants)
        await settled_on_server(js, delivered)
        # Terminated, not left to be redelivered: still settled a while later.
        await asyncio.sleep(1)
        assert await consumer_state(js) == (delivered, 0, 0)
        figures = c.consumer.figures()
        assert c.monitor.ready.is_set()
    expected: dict[Rejection, int] = {}
    for kind, *_ in variants:
        expected[kind] = expected.get(kind, 0) + 1
    assert dict(figures.rejected) == expected
    assert figures.taken == 3
    assert c.seen.check_events()[-1] == (EventKind.HARD, "CRIT")
    # One line per kind: the rest are counted, not logged.
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.cluster.central"]
    assert len(lines) == len(expected)
    assert sorted(line.split(" message on ")[0] for line in lines) == sorted(
        f"rejected a {kind}" for kind in expected
    )


async def test_a_central_keeps_consuming_across_a_nats_restart(
    tmp_path: Path, server: NatsServer
) -> None:
    inv = inventory(tmp_path)
    client = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = client.jetstream()
    await ensure_stream(js, STREAM)
    try:
        async with central(js, inv) as c:
            await publish(js, result(inv, Severity.OK, BASE))
            await c.seen.until(lambda: len(c.seen.results) == 1)
            server.stop()
            await server.start()
            async with asyncio.timeout(20):
                while not client.is_connected:
                    await asyncio.sleep(0.05)
            await publish(js, result(inv, Severity.WARN, BASE + 1))
            await c.seen.until(lambda: len(c.seen.results) == 2)
    finally:
        await client.close()
    assert [r.severity for r in c.seen.results] == [Severity.OK, Severity.WARN]


async def test_a_redelivery_while_the_first_is_unsettled_waits_for_the_first(
    tmp_path: Path, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test plays the engine: it takes a result and settles it only later (a store slow
    to commit). JetStream delivers it again meanwhile; acknowledging that delivery would
    acknowledge the message while its result is not stored yet."""
    monkeypatch.setattr("monitor.cluster.central.ACK_WAIT", 1.0)
    inv = inventory(tmp_path)
    consumer = ResultConsumer(js, inv.checks, stream=STREAM, history=None)
    taken: list[ProbeResult] = []
    running = asyncio.create_task(consumer.run(taken.append))
    try:
        await publish(js, result(inv, Severity.CRIT, BASE))
        async with asyncio.timeout(20):
            while consumer.figures().duplicates < 1:  # delivered again after ACK_WAIT
                await asyncio.sleep(0.05)
        assert len(taken) == 1
        await asyncio.sleep(0.3)
        _, waiting, _ = await consumer_state(js)
        assert waiting == 1  # not acknowledged by the second delivery
        consumer.settled(taken[0])
        async with asyncio.timeout(10):
            while (await consumer_state(js))[1] != 0:
                await asyncio.sleep(0.05)
    finally:
        consumer.stop()
        await asyncio.wait_for(running, 10)
        await consumer.aclose()
    assert len(taken) == 1
