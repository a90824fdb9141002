"""Several vantage points on one check, through a real nats-server and a real central: a check
seen CRIT by one of three vantage points is WARN ("seen down from psap-north only"), by two
CRIT; each vantage point's result is in the JSON lines, the API's state document and the
dashboard's detail pane; a check with one vantage point goes to the engine as it came.

First with results published as agents publish them (the `Commwatch-Vantage` header set by the
test, as the pools work makes agents send it), into a central engine in the test's process;
then end to end with three `commwatch agent` processes named in `vantage:`, a `commwatch
central` process with its API, and the dashboard attached to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
from nats.js.client import JetStreamContext
from yarl import URL

from monitor.api.client import ApiClient
from monitor.cluster.central import Rejection
from monitor.cluster.stream import VANTAGE_HEADER
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.events import EventKind
from monitor.core.model import ErrorClass, ProbeError, ProbeResult, Severity
from monitor.engine.quorum import combine
from monitor.output.records import result_record
from monitor.store.history import HistoryStore
from tests.central_support import VIEWER, VIEWER_ENV, central, jetstream, publish, state_document
from tests.conftest import REPO
from tests.peers.nats_peers import NatsServer, running_nats
from tests.peers.tcp_peers import accepting_listener, closed_port
from tests.tui_support import rendered, until
from tests.viewer_support import free_port
from tui.app import CommwatchApp
from tui.remote import RemoteApp
from tui.widgets.detail_pane import DetailPane

QUORUM = "north/wan/c"  # seen from psap-north, noc and dispatch; CRIT when 2 see it down
SINGLE = "north/wan/d"  # seen from the pool "default" alone
# Real times: the central judges freshness by its own clock too.
T0 = float(int(time.time()) - 600)
SCHEMAS = REPO / "monitor/output/schema"
STATE_SCHEMA = json.loads((SCHEMAS / "state.schema.json").read_text())
RESULT_SCHEMA = json.loads((SCHEMAS / "result.schema.json").read_text())
REGISTRY = referencing.Registry().with_resources(
    [(s["$id"], referencing.Resource.from_contents(s)) for s in (STATE_SCHEMA, RESULT_SCHEMA)]
)


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


def inventory(tmp_path: Path) -> Inventory:
    path = tmp_path / "inventory.yaml"
    # The targets are never connected to: the central probes nothing.
    path.write_text(
        f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
        "defaults: {retries: 1}\n"
        "sites:\n  - id: north\n    links:\n      - id: wan\n        checks:\n"
        "          - {id: c, kind: tcp, target: '127.0.0.1:9',"
        " vantage: [psap-north, noc, dispatch], quorum: 2}\n"
        "          - {id: d, kind: tcp, target: '127.0.0.1:9'}\n"
    )
    return load_inventory(path)


def seen(inv: Inventory, severity: Severity, at: float, check: str = QUORUM) -> ProbeResult:
    ref = next(c.ref for c in inv.checks if c.ref.check_id == check)
    error = ProbeError(ErrorClass.REFUSED, "connection refused")
    return ProbeResult(
        check=ref,
        started_at=at,
        duration_ms=1.5,
        severity=severity,
        observations={"connect_ms": 1.5 if severity is Severity.OK else None},
        error=error if severity is Severity.CRIT else None,
    )


async def from_vantage(js: JetStreamContext, vantage: str, *results: ProbeResult) -> None:
    """As agent `vantage` publishes results for the vantage point of its own name."""
    await publish(js, *results, agent=vantage, headers={VANTAGE_HEADER: vantage})


def validate_state(document: Any) -> None:
    jsonschema.Draft202012Validator(STATE_SCHEMA, registry=REGISTRY).validate(document)


def parts(record: dict[str, Any]) -> list[tuple[str, str, bool, str | None]]:
    """Each vantage point of a result record: name, severity counted, fresh, its summary."""
    return [
        (p["name"], p["severity"], p["fresh"], p["result"] and p["result"]["summary"])
        for p in record["vantage"]
    ]


async def test_seen_crit_by_one_of_three_vantage_points_it_is_warn_by_two_crit(
    tmp_path: Path, js: JetStreamContext
) -> None:
    inv = inventory(tmp_path)
    async with central(js, inv, watched=QUORUM) as c:
        await from_vantage(js, "psap-north", seen(inv, Severity.CRIT, T0))
        await from_vantage(js, "noc", seen(inv, Severity.OK, T0 + 0.1))
        await from_vantage(js, "dispatch", seen(inv, Severity.OK, T0 + 0.2))
        await c.seen.until(lambda: len(c.seen.results) == 3)
        first, second, third = c.seen.results
        # Before the others report, the one down is all the central knows, and says so.
        assert first.severity is Severity.WARN
        assert first.summary() == (
            "seen down from psap-north only; no fresh result from noc and dispatch: WARN"
        )
        assert second.summary() == (
            "seen down from psap-north only; no fresh result from dispatch: WARN"
        )
        assert third.severity is Severity.WARN
        assert third.summary() == "seen down from psap-north only: WARN"
        document = await state_document(c)
        validate_state(document)
        [entry] = [e for e in document["checks"] if e["check_id"] == QUORUM]
        record = entry["last_result"]
        assert (record["severity"], record["summary"]) == (
            "WARN",
            "seen down from psap-north only: WARN",
        )
        assert parts(record) == [
            ("psap-north", "CRIT", True, "refused: connection refused"),
            ("noc", "OK", True, "OK"),
            ("dispatch", "OK", True, "OK"),
        ]
        assert document["engine_state"]["checks"][QUORUM]["hard"] == "WARN"
        [described] = [
            check
            for site in document["inventory"]["sites"]
            for link in site["links"]
            for check in link["checks"]
            if check["id"] == QUORUM
        ]
        assert (described["vantage"], described["quorum"]) == (["psap-north", "noc", "dispatch"], 2)

        # A second vantage point sees it down: the quorum is met.
        await from_vantage(js, "noc", seen(inv, Severity.CRIT, T0 + 30))
        await c.seen.until(lambda: len(c.seen.results) == 4)
        crit = c.seen.results[-1]
        assert crit.severity is Severity.CRIT
        assert crit.summary() == "seen down from psap-north and noc: CRIT"
        assert crit.started_at == T0 + 30
        await c.seen.until(lambda: (EventKind.HARD, "CRIT") in c.seen.check_events())
        assert c.seen.check_events() == [(EventKind.HARD, "WARN"), (EventKind.HARD, "CRIT")]
        document = await state_document(c)
        [entry] = [e for e in document["checks"] if e["check_id"] == QUORUM]
        assert parts(entry["last_result"])[:2] == [
            ("psap-north", "CRIT", True, "refused: connection refused"),
            ("noc", "CRIT", True, "refused: connection refused"),
        ]
        await c.seen.until(lambda: c.consumer.figures().settled == 4)
    # The history keeps what the engine judged: the combination, once per result taken.
    with HistoryStore(tmp_path / "history.sqlite3") as store:
        kept = [(r.severity, r.summary) for r in store.recent_results(QUORUM)]
    assert kept[-1] == (Severity.CRIT, "seen down from psap-north and noc: CRIT")
    assert [severity for severity, _ in kept] == [Severity.WARN] * 3 + [Severity.CRIT]


async def test_each_vantage_point_is_its_own_for_duplicates_and_a_stranger_is_refused(
    tmp_path: Path, js: JetStreamContext
) -> None:
    inv = inventory(tmp_path)
    async with central(js, inv, watched=QUORUM) as c:
        await from_vantage(js, "noc", seen(inv, Severity.OK, T0 + 5))
        # Older than noc's, but psap-north's first: not a duplicate of noc's.
        await from_vantage(js, "psap-north", seen(inv, Severity.CRIT, T0 + 4))
        # Older than noc's own last: that one is.
        await from_vantage(js, "noc", seen(inv, Severity.CRIT, T0 + 4.5))
        # A vantage point the check does not name, even from an agent it names.
        await publish(
            js, seen(inv, Severity.CRIT, T0 + 6), agent="noc", headers={VANTAGE_HEADER: "south"}
        )
        # An agent's record with a vantage list of its own, as only a central makes one: it
        # would be shown as though the central had combined it.
        combined = combine(inv.checks[0], {"noc": seen(inv, Severity.OK, T0 + 8)}, now=time.time())
        for check in (QUORUM, SINGLE):
            forged = seen(inv, Severity.OK, T0 + 8, check=check)
            forged = replace(forged, vantage=combined.vantage)
            await from_vantage(js, "noc", forged)
        # An agent named in `vantage:` that leaves the header out speaks for itself.
        await publish(js, seen(inv, Severity.CRIT, T0 + 7), agent="dispatch")
        await c.seen.until(lambda: len(c.seen.results) == 3)
        async with asyncio.timeout(10):
            while sum(c.consumer.figures().rejected.values()) + c.consumer.figures().duplicates < 4:
                await asyncio.sleep(0.05)
        figures = c.consumer.figures()
        assert (figures.taken, figures.duplicates) == (3, 1)
        assert figures.rejected == {Rejection.UNASSIGNED: 1, Rejection.FORGED: 2}
        last = c.seen.results[-1]
        assert [(p.name, p.severity) for p in last.vantage] == [
            ("psap-north", Severity.CRIT),
            ("noc", Severity.OK),
            ("dispatch", Severity.CRIT),
        ]
        assert last.summary() == "seen down from psap-north and dispatch: CRIT"
        # The combination starts when the newest of its parts did.
        assert [r.started_at for r in c.seen.results] == [T0 + 5, T0 + 5, T0 + 7]


async def test_a_check_seen_from_one_vantage_point_reaches_the_engine_as_it_was_published(
    tmp_path: Path, js: JetStreamContext
) -> None:
    inv = inventory(tmp_path)
    published = seen(inv, Severity.CRIT, T0, check=SINGLE)
    async with central(js, inv, watched=SINGLE) as c:
        # Whatever vantage header comes with it: one vantage point has nothing to combine.
        await publish(js, published, agent="noc", headers={VANTAGE_HEADER: "default"})
        await c.seen.until(lambda: len(c.seen.results) == 1)
        [taken] = c.seen.results
        assert taken == published
        assert taken.vantage == ()
        document = await state_document(c)
        [entry] = [e for e in document["checks"] if e["check_id"] == SINGLE]
        assert entry["last_result"] == result_record(published)
        assert "vantage" not in entry["last_result"]


async def test_a_restarted_central_knows_each_checks_last_run_and_waits_for_the_others(
    tmp_path: Path, js: JetStreamContext
) -> None:
    inv = inventory(tmp_path)
    async with central(js, inv, watched=QUORUM) as first:
        await from_vantage(js, "psap-north", seen(inv, Severity.CRIT, T0 + 1))
        await from_vantage(js, "noc", seen(inv, Severity.CRIT, T0 + 2))
        await first.seen.until(lambda: first.consumer.figures().settled == 2)
    # A central that lost its consumer reads the stream again: the history says what it took.
    async with central(js, inv, durable="central-after-a-loss", watched=QUORUM) as second:
        async with asyncio.timeout(20):
            while second.consumer.figures().duplicates < 2:
                await asyncio.sleep(0.05)
        await from_vantage(js, "dispatch", seen(inv, Severity.OK, T0 + 3))
        await second.seen.until(lambda: len(second.seen.results) == 1)
        # What the others said before the restart is not in the history: until they report
        # again it is not known, and the summary says so.
        [after] = second.seen.results
        assert after.summary() == "no fresh result from psap-north and noc: UNKNOWN"


# --- the dashboard --------------------------------------------------------------------------


def pane(app: CommwatchApp) -> str:
    """The detail pane's text, runs of spaces (grid padding) made one."""
    text = rendered(app.dashboard.query_one(DetailPane).content)
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


async def test_the_detail_pane_shows_each_vantage_points_severity_age_and_summary(
    tmp_path: Path,
) -> None:
    inv = inventory(tmp_path)
    check = next(c for c in inv.checks if c.ref.check_id == QUORUM)
    now = T0 + 100.5
    hostile = seen(inv, Severity.OK, T0 - 200)  # stale by now (window 130 s)
    hostile = ProbeResult(
        check=hostile.check,
        started_at=hostile.started_at,
        duration_ms=1.0,
        severity=Severity.CRIT,
        error=ProbeError(ErrorClass.PROTOCOL, "bad\x1b[2Jgreeting"),
    )
    latest = {"psap-north": seen(inv, Severity.CRIT, T0 + 90), "noc": hostile}
    combined = combine(check, latest, now=now)
    app = CommwatchApp(inv, engine=False, clock=lambda: now)
    async with app.run_test(size=(140, 45)) as pilot:
        app.dashboard.apply_results([combined])
        app.dashboard.table.select_key(QUORUM)
        await until(pilot, lambda: "Vantage points" in pane(app))
        text = pane(app)
    assert "Vantage points (CRIT when 2 of 3 see it down)" in text
    rows = text[text.index("Vantage points") :].splitlines()[1:4]
    assert rows == [
        "✖ CRIT psap-north 10s ago refused: connection refused",
        # Stale: counted UNKNOWN, with what it said last; peer text made inert.
        "? UNKNOWN noc 5m ago stale, last CRIT: protocol: bad\\x1b[2Jgreeting",
        "? UNKNOWN dispatch no result yet",
    ]
    assert "seen down from psap-north only; no fresh result from noc and dispatch" in text


# --- end to end: agents, nats-server, central, API, dashboard -------------------------------


def cluster_inventory(
    path: Path, tmp_path: Path, ports: tuple[int, int], *, api: int | None = None
) -> Path:
    """Two checks of one link, each run from psap-north, noc and dispatch, CRIT when two see
    it down: `one-down` to port ports[0], `two-down` to ports[1]."""
    head = f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
    if api is not None:
        head += (
            f"api:\n  listen: 127.0.0.1:{api}\n  tokens:\n"
            f"    - {{role: viewer, token_env: {VIEWER_ENV}}}\n"
        )
    path.write_text(
        head + "defaults: {interval: 2s, timeout: 1s, retries: 1, retry_interval: 1s}\n"
        "sites:\n  - id: north\n    vantage: [psap-north, noc, dispatch]\n    quorum: 2\n"
        "    links:\n      - id: wan\n        checks:\n"
        f"          - {{id: one-down, kind: tcp, target: '127.0.0.1:{ports[0]}'}}\n"
        f"          - {{id: two-down, kind: tcp, target: '127.0.0.1:{ports[1]}'}}\n"
    )
    return path


async def spawn(*args: str, log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "monitor.cli", *args),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env={**os.environ, "NO_COLOR": "1"},
        )


async def stopped(process: asyncio.subprocess.Process, log: Path) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.communicate(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()
    assert process.returncode == 0, log.read_text()


@contextlib.asynccontextmanager
async def agents_and_central(
    tmp_path: Path, server: NatsServer
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """Three agents and a central with its API on `port`: every agent probes the same check
    ids, but all three share this machine's loopback, so each sees what its own inventory
    names. To make a vantage point see a check down while the others see it up, its agent's
    inventory points that check at a port nothing listens on: psap-north sees both checks
    down, noc only `two-down`, dispatch neither."""
    async with accepting_listener() as up:
        down = closed_port()
        plans = {
            "psap-north": (down, down),
            "noc": (up, down),
            "dispatch": (up, up),
        }
        port = free_port()
        central_file = cluster_inventory(tmp_path / "central.yaml", tmp_path, (up, up), api=port)
        central_log = tmp_path / "central.log"
        processes: list[tuple[asyncio.subprocess.Process, Path]] = []
        try:
            central_process = await spawn(
                "central", str(central_file), "--nats", server.url, log=central_log
            )
            processes.append((central_process, central_log))
            for name, ports in plans.items():
                folder = tmp_path / name
                folder.mkdir()
                own = cluster_inventory(folder / "inventory.yaml", folder, ports)
                log = folder / "agent.log"
                agent = await spawn(
                    *("agent", str(own), "--nats", server.url, "--name", name),
                    *("--spool", str(folder / "spool.sqlite3")),
                    log=log,
                )
                processes.append((agent, log))
            yield central_process, port
        finally:
            for process, log in reversed(processes):
                await stopped(process, log)


async def records_until(
    process: asyncio.subprocess.Process, done: Any, timeout: float = 60
) -> dict[str, dict[str, Any]]:
    """Read the central's JSON lines until `done(latest result record per check)`."""
    assert process.stdout is not None
    latest: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(timeout):
        while not done(latest):
            line = await process.stdout.readline()
            assert line, "commwatch central ended early"
            record = json.loads(line)
            if record["type"] == "result":
                jsonschema.validate(record, RESULT_SCHEMA)
                latest[record["check_id"]] = record
    return latest


def settled(latest: dict[str, dict[str, Any]]) -> bool:
    """Both checks combined from a fresh result of every vantage point."""
    return all(
        check in latest and all(part["fresh"] for part in latest[check]["vantage"])
        for check in ("north/wan/one-down", "north/wan/two-down")
    )


async def test_agents_named_in_vantage_one_down_is_warn_two_down_is_crit_everywhere(
    tmp_path: Path, server: NatsServer
) -> None:
    async with agents_and_central(tmp_path, server) as (central_process, port):
        latest = await records_until(central_process, settled)
        one, two = latest["north/wan/one-down"], latest["north/wan/two-down"]
        assert (one["severity"], one["summary"]) == ("WARN", "seen down from psap-north only: WARN")
        assert (two["severity"], two["summary"]) == (
            "CRIT",
            "seen down from psap-north and noc: CRIT",
        )
        assert [(p["name"], p["severity"]) for p in one["vantage"]] == [
            ("psap-north", "CRIT"),
            ("noc", "OK"),
            ("dispatch", "OK"),
        ]
        assert [(p["name"], p["severity"]) for p in two["vantage"]] == [
            ("psap-north", "CRIT"),
            ("noc", "CRIT"),
            ("dispatch", "OK"),
        ]
        assert two["vantage"][0]["result"]["error"]["class"] == "refused"

        # The API says the same, and the dashboard attached to it shows each vantage point.
        url = URL(f"http://127.0.0.1:{port}")
        async with ApiClient(url, token=VIEWER) as client:
            document = await client.state()
        validate_state(document)
        assert document["engine_state"]["checks"]["north/wan/two-down"]["hard"] == "CRIT"
        by_id = {e["check_id"]: e["last_result"] for e in document["checks"]}
        assert by_id["north/wan/one-down"]["vantage"][0]["result"]["severity"] == "CRIT"
        app = RemoteApp(url, document, token=VIEWER)
        async with app.run_test(size=(140, 45)) as pilot:
            app.dashboard.table.select_key("north/wan/one-down")
            await until(pilot, lambda: "Vantage points" in pane(app), timeout=20)
            text = pane(app)
        assert "Vantage points (CRIT when 2 of 3 see it down)" in text
        rows = text[text.index("Vantage points") :].splitlines()[1:4]
        assert [row.split(" ago ")[0].rsplit(" ", 1)[0] for row in rows] == [
            "✖ CRIT psap-north",
            "✔ OK noc",
            "✔ OK dispatch",
        ]
        assert rows[0].endswith("refused: Connection refused")
