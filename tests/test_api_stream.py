"""The state document and the event stream with real parts: a real Monitor (history on, real
tcp probes of real loopback peers), `stream.attach` on a real aiohttp server on 127.0.0.1, and
real aiohttp clients reading the Server-Sent Events off the socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import jsonschema
import referencing
from aiohttp import web

from monitor.api import codec, stream
from monitor.api import feed as feed_module
from monitor.api.feed import RING_SIZE, Feed
from monitor.api.roles import Role, required_role
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.engine.pipeline import Monitor
from monitor.engine.state import EngineState
from monitor.output.records import event_record, result_record
from monitor.store.numbering import StreamOrigin
from tests.conftest import REPO
from tests.peers.tcp_peers import accepting_listener, closed_port
from tests.sse_reader import SseMessage, SseStream, open_stream

SCHEMAS = REPO / "monitor/output/schema"
STATE_SCHEMA = json.loads((SCHEMAS / "state.schema.json").read_text())
RESULT_SCHEMA = json.loads((SCHEMAS / "result.schema.json").read_text())
REGISTRY = referencing.Registry().with_resources(
    [(s["$id"], referencing.Resource.from_contents(s)) for s in (STATE_SCHEMA, RESULT_SCHEMA)]
)
WAIT = 30.0  # seconds: generous, for a shared machine


def validate(document: object, definition: str | None = None) -> None:
    schema = (
        STATE_SCHEMA
        if definition is None
        else {"$ref": f"{STATE_SCHEMA['$id']}#/$defs/{definition}"}
    )
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(document)


@dataclass(frozen=True)
class Limits:
    max_stream_clients: int = 8
    stream_queue: int = 1000


@dataclass
class Served:
    port: int
    monitor: Monitor
    feed: Feed
    published: list[ProbeResult | Event] = field(default_factory=list)  # what the sinks saw
    states: list[EngineState] = field(default_factory=list)  # the state with each item
    watched: list[bool] = field(default_factory=list)  # did anyone subscribe as it came
    # Every item of the engine's stream, controls too, with its id and the state then.
    numbered: list[tuple[int | None, object, EngineState]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not condition():
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"no {what} within {WAIT} s") from None


def write_inventory(
    folder: Path, up_port: int, down_port: int, checks: int, history: str = ""
) -> Path:
    """`checks` checks on two sites: one link of each refuses (its check goes CRIT, its
    group AT RISK), the rest accept. `history`: more keys of the history block."""
    lines = [
        f"history: {{path: {folder}/history.sqlite3{history}}}",
        "defaults: {interval: 100ms, timeout: 90ms, retries: 2, retry_interval: 50ms}",
        "sites:",
    ]
    for site in ("north", "south"):
        lines += [f"  - id: {site}", "    links:", "      - id: fibre", "        checks:"]
        lines += [
            f'          - {{id: c{i}, kind: tcp, target: "127.0.0.1:{up_port}"}}'
            for i in range(checks // 2)
        ]
        lines += ["      - id: lte", "        checks:"]
        lines += [f'          - {{id: router, kind: tcp, target: "127.0.0.1:{down_port}"}}']
    path = folder / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


class _Numbered:
    """A stream watcher of the test's: every item with its id, after the feed's."""

    def __init__(self, into: list[tuple[int | None, object, EngineState]]) -> None:
        self.into = into

    def opened(self, origin: StreamOrigin) -> None:
        pass

    def published(self, item_id: int | None, item: object, state: EngineState) -> None:
        self.into.append((item_id, item, state))


@contextlib.asynccontextmanager
async def served(
    folder: Path,
    limits: Limits = Limits(),
    checks: int = 6,
    keepalive: float = stream.KEEPALIVE,
    *,
    history: bool = True,
    history_keys: str = "",
    ring_size: int = RING_SIZE,
    ports: tuple[int, int] | None = None,
) -> AsyncIterator[Served]:
    """An engine serving its stream; `ports` (accepting, refusing) for its peers, else its
    own: an engine started again on the same ports runs the same inventory."""
    async with contextlib.AsyncExitStack() as peers:
        if ports is None:
            ports = (await peers.enter_async_context(accepting_listener()), closed_port())
        inventory = load_inventory(write_inventory(folder, *ports, checks, history_keys))
        published: list[ProbeResult | Event] = []
        monitor = Monitor(
            inventory,
            inventory.checks,
            on_result=published.append,
            on_event=published.append,
            alerts=False,
            history=history,
        )
        app = web.Application()
        feed = stream.attach(app, monitor, limits, keepalive=keepalive, ring_size=ring_size)
        states: list[EngineState] = []
        watched: list[bool] = []
        numbered: list[tuple[int | None, object, EngineState]] = []

        def record(_item: ProbeResult | Event, state: EngineState) -> None:
            states.append(state)
            watched.append(bool(feed.subscriptions))

        monitor.watch(record)  # after the feed's watcher
        monitor.watch_stream(_Numbered(numbered))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        running = asyncio.create_task(monitor.run())
        try:
            yield Served(port, monitor, feed, published, states, watched, numbered)
        finally:
            await runner.cleanup()
            monitor.stop()
            await asyncio.wait_for(running, WAIT)


async def read(stream_: SseStream, count: int) -> list[SseMessage]:
    messages = []
    async with asyncio.timeout(WAIT):
        while len(messages) < count:
            message = await stream_.next()
            assert message is not None, f"the stream ended after {len(messages)} messages"
            messages.append(message)
    return messages


async def read_through(stream_: SseStream, seq: int) -> list[SseMessage]:
    """Messages up to and including number `seq`."""
    messages: list[SseMessage] = []
    async with asyncio.timeout(WAIT):
        while not messages or messages[-1].seq < seq:
            message = await stream_.next()
            assert message is not None
            messages.append(message)
    return messages


def item_record(item: ProbeResult | Event) -> dict:
    return result_record(item) if isinstance(item, ProbeResult) else event_record(item)


def message_record(message: SseMessage) -> dict:
    data = message.json()
    return data["result"] if message.event == "result" else data["event"]


def quiet_monitor(inventory: Inventory) -> Monitor:
    """A monitor that is never run: for what the routes and the document say before any result."""
    return Monitor(
        inventory,
        inventory.checks,
        on_result=lambda _: None,
        on_event=lambda _: None,
        history=False,
        alerts=False,
    )


def test_both_routes_need_a_viewer(tmp_path):
    app = web.Application()
    inventory = load_inventory(write_inventory(tmp_path, 1, 2, 2))
    monitor = quiet_monitor(inventory)
    stream.attach(app, monitor, Limits())
    roles = {r.resource.canonical: required_role(r.handler) for r in app.router.routes()}
    assert roles == {"/api/v1/state": Role.VIEWER, "/api/v1/events": Role.VIEWER}


async def test_a_viewer_gets_every_result_and_change_in_order_and_mirrors_the_state(tmp_path):
    async with served(tmp_path) as engine, aiohttp.ClientSession() as session:
        await engine.until(lambda: engine.feed.seq >= 5, "some items")
        async with session.get(engine.url("/api/v1/state")) as answer:
            assert answer.status == 200
            document = await answer.json()
        validate(document)
        epoch, start = document["stream"]["epoch"], document["stream"]["seq"]
        mirror = codec.engine_state_from_json(document["engine_state"])
        # The document is the state as of its own position in the stream: its last result's.
        last_result = max(
            seq for seq in range(1, start + 1) if isinstance(engine.published[seq - 1], ProbeResult)
        )
        assert mirror == engine.states[last_result - 1]
        assert {c["check_id"]: c["last_result"] for c in document["checks"] if c["last_result"]}

        viewer = await open_stream(
            session, engine.url("/api/v1/events"), {"Last-Event-ID": f"{epoch}.{start}"}
        )
        assert viewer.response.headers["Content-Type"] == "text/event-stream"
        # Long enough for the refusing links to be confirmed CRIT and their sites AT RISK.
        messages = await read(viewer, 120)
        viewer.close()
        assert viewer.retry == 2000
        assert [m.seq for m in messages] == list(range(start + 1, start + 121))
        assert {m.id.partition(".")[0] for m in messages} == {epoch}
        assert [m.event for m in messages] == [
            "result" if isinstance(item, ProbeResult) else "change"
            for item in engine.published[start : start + 120]
        ]
        assert [message_record(m) for m in messages] == [
            item_record(item) for item in engine.published[start : start + 120]
        ]
        changes = [m.json()["event"] for m in messages if m.event == "change"]
        assert ("group", "AT RISK") in {(c["subject"], c["after"]) for c in changes}
        for message in messages:
            validate(message.json(), f"{message.event}Message")
            if message.event == "result":
                mirror = codec.apply_patch(mirror, message.json()["state"])
                assert mirror == engine.states[message.seq - 1]


async def test_a_dropped_viewer_resumes_with_nothing_lost_and_nothing_repeated(tmp_path):
    async with served(tmp_path) as engine, aiohttp.ClientSession() as session:
        await engine.until(lambda: engine.feed.seq >= 3, "some items")
        steady = await open_stream(session, engine.url("/api/v1/events"))
        dropping = await open_stream(session, engine.url("/api/v1/events"))
        before = await read(dropping, 30)
        dropping.close()  # mid-stream
        last = before[-1]
        await engine.until(lambda: engine.feed.seq >= last.seq + 40, "items while away")
        # The header, then the query parameter (for clients that cannot set headers).
        resumed = await open_stream(
            session, engine.url("/api/v1/events"), {"Last-Event-ID": last.id}
        )
        after = await read(resumed, 60)
        resumed.close()
        again = await open_stream(
            session, engine.url(f"/api/v1/events?last_event_id={after[-1].id}")
        )
        third = await read(again, 10)
        again.close()
        seen = [m.seq for m in before + after + third]
        reference = await read_through(steady, seen[-1])
        steady.close()
        assert (
            seen == [m.seq for m in reference][-len(seen) :] == list(range(seen[0], seen[-1] + 1))
        )
        assert [m.data for m in before + after + third] == [m.data for m in reference][-len(seen) :]


async def resync_of(engine: Served, session: aiohttp.ClientSession, last_event_id: str) -> str:
    viewer = await open_stream(
        session, engine.url("/api/v1/events"), {"Last-Event-ID": last_event_id}
    )
    message = await viewer.next()
    assert message is not None and message.event == "resync" and message.id is None
    validate(message.json(), "resyncMessage")
    assert await viewer.next() is None  # the stream ends: refetch the state
    viewer.close()
    return message.json()["reason"]


async def test_a_position_of_another_store_or_ahead_gets_a_resync_and_a_bad_one_400(tmp_path):
    async with served(tmp_path) as engine, aiohttp.ClientSession() as session:
        await engine.until(lambda: engine.feed.seq >= 2, "some items")
        epoch = engine.feed.epoch
        first_seq = engine.feed.seq
        assert "another engine or history store" in await resync_of(
            engine, session, f"{'0' * 16}.{first_seq}"
        )
        assert "ahead" in await resync_of(engine, session, f"{epoch}.{first_seq + 10**6}")
        for bad in ("nonsense", f"{epoch}.", f"{epoch}.-3", f"{epoch}.١٢"):
            async with session.get(
                engine.url("/api/v1/events"), headers={"Last-Event-ID": bad}
            ) as answer:
                assert answer.status == 400
                error = (await answer.json())["error"]
                assert error["status"] == 400 and "EPOCH.SEQ" in error["message"]


async def test_a_position_older_than_the_history_keeps_gets_a_resync(tmp_path):
    async with (
        served(tmp_path, history_keys=", retention: 1s", ring_size=10) as engine,
        aiohttp.ClientSession() as session,
    ):
        await engine.until(lambda: engine.feed.seq >= 2, "some items")
        old = f"{engine.feed.epoch}.{engine.feed.seq}"
        await asyncio.sleep(1.5)  # older than the retention, then deleted by maintenance
        writer = engine.monitor._writer
        assert writer is not None
        stats = await asyncio.wrap_future(writer.request_maintenance())
        assert stats.deleted_results > 0
        assert "older than the history keeps" in await resync_of(engine, session, old)


async def test_without_history_a_position_older_than_the_ring_gets_a_resync(tmp_path):
    async with (
        served(tmp_path, history=False, ring_size=10) as engine,
        aiohttp.ClientSession() as session,
    ):
        await engine.until(lambda: engine.feed.seq >= 2, "some items")
        epoch, first_seq = engine.feed.epoch, engine.feed.seq
        await engine.until(lambda: engine.feed.seq >= first_seq + 11, "the ring to move on")
        assert "older than the last 10 items" in await resync_of(
            engine, session, f"{epoch}.{first_seq}"
        )
        # The oldest position the ring still follows resumes.
        resumable = engine.feed.seq - 10
        viewer = await open_stream(
            session, engine.url("/api/v1/events"), {"Last-Event-ID": f"{epoch}.{resumable}"}
        )
        (message,) = await read(viewer, 1)
        viewer.close()
        assert message.seq == resumable + 1


async def test_a_viewer_further_behind_than_the_replay_limit_gets_a_resync(tmp_path, monkeypatch):
    monkeypatch.setattr(feed_module, "REPLAY_LIMIT", 20)
    async with (
        served(tmp_path, ring_size=10) as engine,
        aiohttp.ClientSession() as session,
    ):
        await engine.until(lambda: engine.feed.seq >= 2, "some items")
        epoch, first_seq = engine.feed.epoch, engine.feed.seq
        await engine.until(lambda: engine.feed.seq >= first_seq + 21, "more than the limit")
        assert "more than 20 items were missed" in await resync_of(
            engine, session, f"{epoch}.{first_seq}"
        )


async def test_a_reader_that_never_reads_is_dropped_and_holds_up_nobody(tmp_path):
    limits = Limits(stream_queue=100)
    # Few checks: the fast reader shares this loop with the engine, and under load must keep
    # within the small queue that drops the stalled one.
    async with served(tmp_path, limits, checks=10) as engine, aiohttp.ClientSession() as session:
        await engine.until(lambda: engine.feed.seq >= 3, "some items")
        fast = await open_stream(session, engine.url("/api/v1/events"))
        fast_seen: list[SseMessage] = []
        reading = asyncio.create_task(read_all(fast, fast_seen))
        await engine.until(lambda: len(engine.feed.subscriptions) == 1, "the fast reader")
        (fast_subscription,) = engine.feed.subscriptions
        # A client that asks and then never reads, with a receive window as small as can be.
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        stalled.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(stalled, ("127.0.0.1", engine.port))
            await loop.sock_sendall(stalled, b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            await engine.until(lambda: len(engine.feed.subscriptions) == 2, "the stalled reader")
            (slow,) = [s for s in engine.feed.subscriptions if s is not fast_subscription]
            await engine.until(lambda: slow.dropped, "drop of the stalled reader")
            assert slow.peak <= limits.stream_queue
            assert slow not in engine.feed.subscriptions
            # The engine went on, and the fast reader with it, missing nothing.
            results_then, seen_then = result_count(engine), len(fast_seen)
            await engine.until(lambda: result_count(engine) > results_then + 50, "more results")
            await engine.until(lambda: len(fast_seen) > seen_then + 50, "more for the fast one")
            seqs = [m.seq for m in fast_seen]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert fast_subscription.peak <= limits.stream_queue
            assert not fast_subscription.dropped
            # The stalled connection was closed by the server: reading it now ends.
            async with asyncio.timeout(WAIT):
                with contextlib.suppress(ConnectionResetError):  # closed by an RST
                    while await loop.sock_recv(stalled, 65536):
                        pass
        finally:
            reading.cancel()
            stalled.close()
            fast.close()


def result_count(engine: Served) -> int:
    return sum(isinstance(item, ProbeResult) for item in engine.published)


async def read_all(reader: SseStream, into: list[SseMessage]) -> None:
    while (message := await reader.next()) is not None:
        into.append(message)


async def test_streams_beyond_the_limit_get_503_and_a_freed_place_is_taken(tmp_path):
    async with (
        served(tmp_path, Limits(max_stream_clients=2)) as engine,
        aiohttp.ClientSession() as session,
    ):
        first = await open_stream(session, engine.url("/api/v1/events"))
        second = await open_stream(session, engine.url("/api/v1/events"))
        await engine.until(lambda: len(engine.feed.subscriptions) == 2, "two streams")
        async with session.get(engine.url("/api/v1/events")) as refused:
            assert refused.status == 503
            assert refused.headers["Retry-After"]
            assert (await refused.json())["error"] == {
                "status": 503,
                "message": "the event stream serves at most 2 clients",
            }
        first.close()
        # The server notices at its next write to the closed connection.
        await engine.until(lambda: len(engine.feed.subscriptions) == 1, "a freed place")
        third = await open_stream(session, engine.url("/api/v1/events"))
        assert third.response.status == 200
        assert (await read(third, 1))[0].event in {"result", "change"}
        third.close()
        second.close()


async def test_an_idle_stream_gets_keepalive_comments(tmp_path):
    async with served(tmp_path, keepalive=0.05) as engine, aiohttp.ClientSession() as session:
        engine.monitor.scheduler.stop()  # nothing more is published
        await engine.until(lambda: not engine.monitor.ready.is_set(), "the engine stopped")
        viewer = await open_stream(session, engine.url("/api/v1/events"))
        lines = []
        async with asyncio.timeout(WAIT):
            while lines.count(": keepalive") < 3:
                lines.append((await viewer.response.content.readline()).decode().rstrip("\n"))
        viewer.close()
        assert set(lines) == {"retry: 2000", "", ": keepalive"}


async def test_shutdown_ends_every_stream(tmp_path):
    async with served(tmp_path) as engine, aiohttp.ClientSession() as session:
        viewer = await open_stream(session, engine.url("/api/v1/events"))
        await engine.until(lambda: len(engine.feed.subscriptions) == 1, "a stream")
        engine.feed.close()
        async with asyncio.timeout(WAIT):
            while await viewer.next() is not None:
                pass
        viewer.close()
        assert engine.feed.subscriptions == ()


async def test_the_only_viewer_resumes_its_mirror_across_a_time_nobody_watched(tmp_path):
    """While nobody subscribes no patch is made; the one owed reaches the newest result before
    anyone reads it, so the viewer's mirror is whole again once it has read that far."""
    async with served(tmp_path) as engine, aiohttp.ClientSession() as session:
        await engine.until(lambda: engine.feed.seq >= 3, "some items")
        async with session.get(engine.url("/api/v1/state")) as answer:
            document = await answer.json()
        mirror = codec.engine_state_from_json(document["engine_state"])
        position = f"{document['stream']['epoch']}.{document['stream']['seq']}"
        viewer = await open_stream(
            session, engine.url("/api/v1/events"), {"Last-Event-ID": position}
        )
        first = await read(viewer, 20)
        viewer.close()
        await engine.until(lambda: not engine.feed.subscriptions, "the server to notice")
        away_from = engine.feed.seq
        await engine.until(lambda: engine.feed.seq >= away_from + 40, "items while away")
        viewer = await open_stream(
            session, engine.url("/api/v1/events"), {"Last-Event-ID": first[-1].id}
        )
        # Read well past the reconnection: the server may have sent the first viewer far more
        # than it read, so the time away can span more items than any fixed count.
        back_at = engine.feed.seq
        await engine.until(lambda: engine.feed.seq >= back_at + 20, "items once back")
        second = await read_through(viewer, back_at + 20)
        viewer.close()
        messages = first + second
        assert [m.seq for m in messages] == list(range(messages[0].seq, messages[-1].seq + 1))
        results = [m for m in messages if m.event == "result"]
        watched = [engine.watched[m.seq - 1] for m in results]
        assert watched[-1], "the last result read came while the viewer was back"
        # A result nobody watched carries no patch, but the newest of each such run (the one
        # a subscription settled when it came) carries what was owed. Such runs happen while
        # the viewer was away, and may also happen between the document and the first
        # subscription, when the engine is quick.
        owed = [not seen and watched[i + 1] for i, seen in enumerate(watched[:-1])] + [False]
        assert sum(not seen for seen in watched) > 5
        for message, seen, settled in zip(results, watched, owed, strict=True):
            if not seen and not settled:
                assert message.json()["state"] == {}, message.seq
            mirror = codec.apply_patch(mirror, message.json()["state"])
            # Whole at every result but those nobody watched: the newest of them, which
            # carries what was owed, makes it whole again before anything else is read.
            if seen or settled:
                assert mirror == engine.states[message.seq - 1], message.seq


async def test_the_document_holds_no_secret_and_no_option_value(tmp_path, monkeypatch):
    token, community, passphrase = "tok-3b1e9f", "comm-77aa1c", "pass-5d0c2e"
    monkeypatch.setenv("API_TEST_TOKEN", token)
    monkeypatch.setenv("API_TEST_COMMUNITY", community)
    (tmp_path / "auth.pass").write_text(passphrase + "\n")
    (tmp_path / "inventory.yaml").write_text(f"""\
sites:
  - id: hq
    links:
      - id: wan
        checks:
          - id: portal
            kind: http
            target: http://127.0.0.1:9/status
            headers:
              Authorization: {{env: API_TEST_TOKEN}}
              X-Site-Key: hdrval-0f3a91
          - {{id: core-v2c, kind: snmp, target: "127.0.0.1:9", version: "2c",
              community_env: API_TEST_COMMUNITY}}
          - {{id: core-v3, kind: snmp, target: "127.0.0.1:9", version: "3", user: opsuser-19c2,
              auth_protocol: sha256, auth_passphrase_file: {tmp_path}/auth.pass}}
""")
    inventory = load_inventory(tmp_path / "inventory.yaml")
    monitor = quiet_monitor(inventory)
    app = web.Application()
    stream.attach(app, monitor, Limits())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/state"
            async with session.get(url) as answer:
                text = await answer.text()
    finally:
        await runner.cleanup()
    document = json.loads(text)
    validate(document)
    assert [c["id"] for c in document["inventory"]["sites"][0]["links"][0]["checks"]] == [
        "hq/wan/portal",
        "hq/wan/core-v2c",
        "hq/wan/core-v3",
    ]
    for value in (token, community, passphrase, "hdrval-0f3a91", "X-Site-Key", "opsuser-19c2"):
        assert value not in text
    for reference in ("API_TEST_TOKEN", "API_TEST_COMMUNITY", "auth.pass", "sha256"):
        assert reference not in text
