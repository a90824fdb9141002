"""An engine fed from a source (what a central is): results handed in by a source of the test
go through the same state engine, history, watchers and API as a scheduler's, and the engine
probes nothing itself. A listening peer of the test counts connections: it must see none."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from monitor.api.server import ApiServer
from monitor.config.api import ApiConfig, Listen, TokenConfig, TokenRole
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.events import Event, EventKind
from monitor.core.model import ProbeResult, Severity
from monitor.core.secrets import SecretRef
from monitor.engine.commands import NoScheduler
from monitor.engine.pipeline import Monitor
from monitor.store.history import HistoryStore
from tests.central_support import Seen


class QueueSource:
    """Results the test puts in, handed to the engine in order until stopped."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[ProbeResult] = asyncio.Queue()
        self.taken: list[ProbeResult] = []
        self.settled_results: list[ProbeResult] = []
        self._stopped = asyncio.Event()

    async def run(self, take: Callable[[ProbeResult], None]) -> None:
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            while not self._stopped.is_set():
                got = asyncio.ensure_future(self.queue.get())
                await asyncio.wait((got, stopped), return_when=asyncio.FIRST_COMPLETED)
                if not got.done():
                    got.cancel()
                    return
                self.taken.append(got.result())
                take(got.result())
        finally:
            stopped.cancel()

    def stop(self) -> None:
        self._stopped.set()

    def settled(self, result: ProbeResult) -> None:
        self.settled_results.append(result)


class Counting:
    """A TCP listener counting connections: a probe of the engine would be one."""

    def __init__(self) -> None:
        self.connections = 0

    async def start(self) -> tuple[asyncio.Server, int]:
        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]


def inventory(tmp_path: Path, port: int, *, history: bool) -> Inventory:
    path = tmp_path / "inventory.yaml"
    stored = f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n" if history else ""
    path.write_text(
        f"{stored}sites:\n  - id: s\n    links:\n      - id: l\n        checks:\n"
        f"          - {{id: c, kind: tcp, target: '127.0.0.1:{port}', interval: 1s, "
        "timeout: 1s, retries: 2, retry_interval: 1s}\n"
    )
    return load_inventory(path)


def result(inv: Inventory, severity: Severity, at: float) -> ProbeResult:
    return ProbeResult(check=inv.checks[0].ref, started_at=at, duration_ms=1.5, severity=severity)


@contextlib.asynccontextmanager
async def fed(
    tmp_path: Path, *, history: bool
) -> AsyncIterator[tuple[Monitor, QueueSource, Inventory, Seen, Counting]]:
    counting = Counting()
    server, port = await counting.start()
    inv = inventory(tmp_path, port, history=history)
    source = QueueSource()
    shown: list[ProbeResult | Event] = []
    monitor = Monitor(
        inv,
        inv.checks,
        on_result=shown.append,
        on_event=shown.append,
        history=history,
        alerts=False,
        start_spread=0,
        source=source,
    )
    seen = Seen("s/l/c")
    monitor.watch(seen)
    running = asyncio.create_task(monitor.run())
    try:
        async with asyncio.timeout(10):
            await monitor.ready.wait()
        yield monitor, source, inv, seen, counting
        assert shown == seen.items  # the sinks and the watchers saw the same, in order
    finally:
        monitor.stop()
        await asyncio.wait_for(running, 10)
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("history", [False, True])
async def test_a_fed_engine_judges_stores_and_shows_what_its_source_hands_it(
    tmp_path: Path, history: bool
) -> None:
    async with fed(tmp_path, history=history) as (monitor, source, inv, seen, counting):
        assert monitor.scheduler is None
        assert monitor.figures().scheduler is None
        base = 1_800_000_000.0
        for i, severity in enumerate((Severity.OK, Severity.CRIT, Severity.CRIT)):
            source.queue.put_nowait(result(inv, severity, base + i))
        await seen.until(lambda: len(seen.check_events()) == 3)  # HARD OK, SOFT CRIT, HARD CRIT
        # Well past a probe interval of 1 s: a scheduler would have connected by now.
        await asyncio.sleep(1.5)
    results = [item for item in seen.items if isinstance(item, ProbeResult)]
    assert [r.started_at for r in results] == [base, base + 1, base + 2]
    # Each handed back as settled once shown (with history, once stored): the same objects.
    assert [id(r) for r in source.settled_results] == [id(r) for r in source.taken]
    assert [id(r) for r in results] == [id(r) for r in source.taken]
    assert seen.check_events() == [
        (EventKind.HARD, "OK"),
        (EventKind.SOFT, "CRIT"),
        (EventKind.HARD, "CRIT"),
    ]
    check = monitor.state.checks["s/l/c"]
    assert check.hard is Severity.CRIT and check.last_at == base + 2
    assert counting.connections == 0  # nothing probed from here
    if history:
        with HistoryStore(tmp_path / "history.sqlite3") as store:
            stored = store.recent_results("s/l/c")
            hard = store.last_events_before(base + 10)
        assert [(r.started_at, r.severity) for r in stored] == [
            (base, Severity.OK),
            (base + 1, Severity.CRIT),
            (base + 2, Severity.CRIT),
        ]
        assert {e.subject_id: str(e.after) for e in hard} == {
            "s/l/c": "CRIT",
            "s/l": "DOWN",
            "s": "DOWN",
        }


async def test_a_fed_engine_has_nothing_to_run_now_or_pause(tmp_path: Path) -> None:
    async with fed(tmp_path, history=False) as (monitor, _source, _inv, _seen, _counting):
        for command in (monitor.run_now, monitor.pause, monitor.resume):
            with pytest.raises(NoScheduler, match="runs no checks of its own"):
                command("s/l/c")
            with pytest.raises(KeyError):
                command("s/l/nothing")
        assert monitor.is_paused("s/l/c") is False


async def test_the_api_of_a_fed_engine_answers_scheduler_commands_with_409(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CW_TEST_OPERATOR", "operator-token-of-the-test")
    tokens = (TokenConfig(TokenRole.OPERATOR, SecretRef("env", "CW_TEST_OPERATOR"), "noc"),)
    headers = {"Authorization": "Bearer operator-token-of-the-test"}
    async with fed(tmp_path, history=False) as (monitor, source, inv, seen, _counting):
        server = ApiServer(monitor, ApiConfig(listen=Listen("127.0.0.1", 0), tokens=tokens))
        await server.start()
        try:
            source.queue.put_nowait(result(inv, Severity.CRIT, 1_800_000_000.0))
            await seen.until(lambda: len(seen.check_events()) == 1)
            async with aiohttp.ClientSession(headers=headers) as session:
                for command in ("run", "pause", "resume"):
                    url = f"{server.url}/api/v1/checks/s/l/c/{command}"
                    async with session.post(url) as response:
                        assert response.status == 409
                        body = json.loads(await response.text())
                    assert "runs no checks of its own" in body["error"]["message"]
                async with session.post(f"{server.url}/api/v1/checks/s/l/x/run") as response:
                    assert response.status == 404
                async with session.get(f"{server.url}/readyz") as response:
                    assert response.status == 200
                async with session.get(f"{server.url}/api/v1/state") as response:
                    document = json.loads(await response.text())
                async with session.get(f"{server.url}/metrics") as response:
                    metrics = await response.text()
        finally:
            await server.stop()
    (entry,) = document["checks"]
    assert entry["paused"] is False
    assert entry["last_result"]["severity"] == "CRIT"
    assert document["engine"]["ready"] is True
    assert "commwatch_results_total" in metrics
    assert "commwatch_checks_in_flight" not in metrics  # no scheduler, no scheduler figures


async def test_a_fed_engine_stopped_before_it_runs_returns_at_once(tmp_path: Path) -> None:
    inv = inventory(tmp_path, 9, history=False)
    monitor = Monitor(
        inv,
        inv.checks,
        on_result=lambda _: None,
        on_event=lambda _: None,
        history=False,
        alerts=False,
        source=QueueSource(),
    )
    monitor.stop()
    await asyncio.wait_for(monitor.run(), 5)


async def test_a_sink_that_fails_ends_a_fed_run_with_its_error(tmp_path: Path) -> None:
    inv = inventory(tmp_path, 9, history=False)
    source = QueueSource()

    def broken(_result: ProbeResult) -> None:
        raise BrokenPipeError("stdout went away")

    monitor = Monitor(
        inv,
        inv.checks,
        on_result=broken,
        on_event=lambda _: None,
        history=False,
        alerts=False,
        source=source,
    )
    source.queue.put_nowait(result(inv, Severity.OK, 1_800_000_000.0))
    with pytest.raises(BrokenPipeError):
        await asyncio.wait_for(monitor.run(), 5)
