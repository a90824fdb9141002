"""Resuming the event stream from the history store: beyond the in-memory ring, and across a
restart of the engine on the same store. A real Monitor (real tcp probes of real loopback
peers, history on), the real stream on a real aiohttp server, real clients reading the
Server-Sent Events off the socket; the truth is what the engine published, with its ids, and
what its store holds."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from monitor.api import codec
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.engine.state import EngineState
from monitor.output.records import event_record, result_record
from monitor.store.controls import AckChange, PauseChange
from monitor.store.queries import HistoryReader
from tests.peers.tcp_peers import accepting_listener, closed_port
from tests.sse_reader import SseMessage, SseStream, open_stream
from tests.test_api_stream import Served, read, served, validate


def record_of(item: object) -> dict:
    """The data of the message the stream sends for `item` (a result's patch aside)."""
    if isinstance(item, ProbeResult):
        return {"result": result_record(item)}
    if isinstance(item, Event):
        return {"event": event_record(item)}
    if isinstance(item, PauseChange):
        return {"check_id": item.check_id, "paused": item.paused}
    assert isinstance(item, AckChange)
    return {"subject_id": item.subject_id, "ack": None if item.ack is None else item.ack.comment}


def said(message: SseMessage) -> dict:
    data = message.json()
    if message.event == "result":
        return {"result": data["result"]}
    if message.event == "ack":
        return {**data, "ack": None if data["ack"] is None else data["ack"]["comment"]}
    return data


async def read_until_state(viewer: SseStream) -> tuple[list[SseMessage], SseMessage]:
    """The replayed messages, then the `state` message that ends the replay."""
    replayed: list[SseMessage] = []
    while True:
        (message,) = await read(viewer, 1)
        if message.event == "state":
            return replayed, message
        replayed.append(message)


def numbered_after(engine: Served, last: int) -> list[tuple[int, object, EngineState]]:
    return [(i, item, state) for i, item, state in engine.numbered if i is not None and i > last]


def check_the_live_part(engine: Served, state_message: SseMessage, live: list[SseMessage]) -> None:
    """After the `state` message the viewer's mirror is exact at every result."""
    document = state_message.json()
    validate(document)
    assert f"{document['stream']['epoch']}.{document['stream']['seq']}" == state_message.id
    mirror = codec.engine_state_from_json(document["engine_state"])
    states = {i: state for i, _, state in engine.numbered}
    for message in live:
        if message.event == "result":
            mirror = codec.apply_patch(mirror, message.json()["state"])
            assert mirror == states[message.seq], message.seq


async def test_a_viewer_away_longer_than_the_ring_resumes_from_the_store(tmp_path):
    async with served(tmp_path, ring_size=20) as engine, aiohttp.ClientSession() as session:
        await engine.until(lambda: engine.feed.seq >= 5, "some items")
        viewer = await open_stream(session, engine.url("/api/v1/events"))
        seen = await read(viewer, 10)
        viewer.close()  # mid-stream
        last = seen[-1].seq
        await engine.until(lambda: engine.feed.seq >= last + 150, "the ring to move on far")
        viewer = await open_stream(
            session, engine.url("/api/v1/events"), {"Last-Event-ID": seen[-1].id}
        )
        replayed, state_message = await read_until_state(viewer)
        live = await read(viewer, 40)
        viewer.close()
    expected = numbered_after(engine, last)[: len(replayed)]
    assert [m.seq for m in replayed] == [i for i, _, _ in expected]
    assert [m.seq for m in replayed] == list(range(last + 1, last + 1 + len(replayed)))
    assert len(replayed) >= 150
    assert [said(m) for m in replayed] == [record_of(item) for _, item, _ in expected]
    # What only the store had comes without a patch; what the ring had, with one.
    from_store = [m for m in replayed if m.event == "result" and m.json()["state"] is None]
    assert from_store and all(m.seq <= replayed[-1].seq - 19 for m in from_store)
    for message in replayed:
        validate(message.json(), f"{message.event}Message")
    assert state_message.seq == replayed[-1].seq
    assert live[0].seq == state_message.seq + 1
    check_the_live_part(engine, state_message, live)


async def test_a_viewer_dropped_before_a_restart_misses_nothing_and_sees_nothing_twice(tmp_path):
    """Dropped mid-stream, the engine acknowledges and pauses, stops, starts again on the same
    store, and the viewer comes back to the new process with its Last-Event-ID."""
    async with accepting_listener() as up_port:
        ports = (up_port, closed_port())
        await restarted(tmp_path, ports)


async def restarted(tmp_path: Path, ports: tuple[int, int]) -> None:
    async with served(tmp_path, ports=ports) as first, aiohttp.ClientSession() as session:
        await first.until(lambda: first.feed.seq >= 5, "some items")
        viewer = await open_stream(session, first.url("/api/v1/events"))
        seen = await read(viewer, 25)
        viewer.close()
        last = seen[-1]
        monitor = first.monitor
        await first.until(
            lambda: (
                monitor.subject_of("north/lte/router") is not None
                and monitor.confirmed_state(
                    monitor.subject_of("north/lte/router"), "north/lte/router"
                )
                is not None
            ),
            "the refusing check's confirmed state",
        )
        ack = monitor.acknowledge(
            "north/lte/router", comment="carrier ticket 7", by="noc", expires=time.time() + 3600
        )
        monitor.pause("south/fibre/c0")
        monitor.resume("south/fibre/c0")
        await first.until(
            lambda: any(isinstance(item, AckChange) for _, item, _ in first.numbered),
            "the acknowledgement stored and shown",
        )
        await first.until(lambda: first.feed.seq >= last.seq + 60, "more while away")
    first_items = numbered_after(first, last.seq)
    first_last = first.numbered[-1][0]
    assert first_last is not None

    async with served(tmp_path, ports=ports) as second, aiohttp.ClientSession() as session:
        # The acknowledgement outlived the engine that took it.
        await second.until(second.monitor.ready.is_set, "the engine to start")
        assert second.monitor.acks.get("north/lte/router") == ack
        await second.until(lambda: second.feed.seq >= first_last + 30, "the new process's items")
        assert second.feed.epoch == first.feed.epoch  # one store, one numbering
        viewer = await open_stream(
            session, second.url("/api/v1/events"), {"Last-Event-ID": last.id}
        )
        replayed, state_message = await read_until_state(viewer)
        live = await read(viewer, 30)
        viewer.close()
    expected = first_items + numbered_after(second, first_last)
    assert [m.seq for m in replayed] == [i for i, _, _ in expected][: len(replayed)]
    assert [m.seq for m in replayed] == list(range(last.seq + 1, replayed[-1].seq + 1))
    assert replayed[-1].seq > first_last  # into the new process's items
    assert [said(m) for m in replayed] == [record_of(item) for _, item, _ in expected][
        : len(replayed)
    ]
    assert {"ack", "pause"} <= {m.event for m in replayed}
    # The store holds exactly what was replayed of it.
    with HistoryReader(tmp_path / "history.sqlite3") as store:
        stored = store.stream_page(last.seq, first_last, 10_000)
    assert [i for i, _ in stored] == [m.seq for m in replayed if m.seq <= first_last]
    # The document that ends the replay is the new process's, acknowledgement included.
    document = state_message.json()
    assert [a["subject_id"] for a in document["acks"]] == ["north/lte/router"]
    assert document["acks"][0]["comment"] == "carrier ticket 7"
    check_the_live_part(second, state_message, live)
