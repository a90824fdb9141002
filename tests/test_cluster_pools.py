"""Pools of agents against a real nats-server with JetStream, real `commwatch agent`
processes and real TCP peers on loopback: heartbeats in the commwatch_agents bucket, a pool's
checks shared by rendezvous hashing and moved when an agent dies or comes back, an agent named
as a vantage point running its checks, and the central refusing a result from an agent not
assigned to it. Which agent ran which check is read from the stream (every result names its
agent and vantage point)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest

from monitor.cluster.admission import admitting
from monitor.cluster.assignment import Roster, served_entry, winner
from monitor.cluster.central import Rejection, ResultConsumer
from monitor.cluster.membership import Heartbeat, Member
from monitor.cluster.stream import SUBJECTS, ensure_stream, outgoing
from monitor.config.cluster import DEFAULT_HEARTBEAT, DEFAULT_HEARTBEAT_TTL, ClusterConfig
from monitor.config.inventory import Check
from monitor.config.loader import load_inventory
from monitor.core.model import ProbeResult, Severity
from tests.central_support import BASE, jetstream
from tests.central_support import publish as central_publish
from tests.peers.nats_peers import NatsServer, running_nats
from tests.peers.prometheus_peers import poll
from tests.test_api_config import faults, load
from tests.test_central_cli import inventory_file, lines_until, results, stop
from tests.test_cluster_agent import STREAM, start_agent, stream_messages

# --- the cluster: keys ---------------------------------------------------------------------------


def test_heartbeats_default_to_five_seconds_and_three_of_them(tmp_path):
    cluster = load(tmp_path, "cluster: {}\n").cluster
    assert cluster is not None
    assert (cluster.heartbeat, cluster.heartbeat_ttl) == (DEFAULT_HEARTBEAT, DEFAULT_HEARTBEAT_TTL)
    assert (DEFAULT_HEARTBEAT, DEFAULT_HEARTBEAT_TTL) == (5.0, 15.0)


def test_the_ttl_follows_a_heartbeat_given_alone(tmp_path):
    cluster = load(tmp_path, "cluster: {heartbeat: 2s}\n").cluster
    assert cluster is not None
    assert (cluster.heartbeat, cluster.heartbeat_ttl) == (2.0, 6.0)
    both = load(tmp_path, "cluster: {heartbeat: 1s, heartbeat_ttl: 2500ms}\n").cluster
    assert both is not None
    assert (both.heartbeat, both.heartbeat_ttl) == (1.0, 2.5)


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (
            "cluster: {heartbeat: 2s, heartbeat_ttl: 3s}\n",
            "8:41: 'heartbeat_ttl': 3s is less than two heartbeats (2s each)",
        ),
        ("cluster: {heartbeat: 0s}\n", "8:22: 'heartbeat': duration must be greater than zero"),
        ("cluster: {heartbeat_ttl: soon}\n", "'heartbeat_ttl': 'soon' is not a duration"),
    ],
)
def test_heartbeat_faults_are_placed(tmp_path, cluster, expected):
    found = faults(tmp_path, cluster)
    assert any(expected in fault for fault in found), found


# --- real agents sharing a pool -------------------------------------------------------------------

HEARTBEAT, TTL = 1.0, 3.0
CLUSTER = f"cluster: {{heartbeat: {HEARTBEAT:g}s, heartbeat_ttl: {TTL:g}s}}\n"
WINDOW = 4.0  # seconds of steady state looked at: two intervals of every check


@dataclass(frozen=True)
class Run:
    """One result in the stream: who ran which check, for which vantage point, when."""

    agent: str
    vantage: str | None
    check_id: str
    started_at: float


class StreamWatch:
    """Every result published to the stream, as it comes (an ordered consumer of the test's)."""

    def __init__(self) -> None:
        self.runs: list[Run] = []

    async def take(self, msg: Any) -> None:
        msg_id = msg.headers["Nats-Msg-Id"]
        self.runs.append(
            Run(
                agent=msg.headers["Commwatch-Agent"],
                vantage=msg.headers.get("Commwatch-Vantage"),
                check_id=json.loads(msg.data)["check_id"],
                started_at=int(msg_id.rsplit(".", 1)[1]) / 1e9,
            )
        )

    def between(self, start: float, end: float) -> list[Run]:
        return [run for run in self.runs if start <= run.started_at < end]

    def runners(self, start: float, end: float) -> dict[str, set[str]]:
        """check id -> the agents that started it within [start, end)."""
        found: dict[str, set[str]] = defaultdict(set)
        for run in self.between(start, end):
            found[run.check_id].add(run.agent)
        return found


@contextlib.asynccontextmanager
async def watching(server: NatsServer) -> AsyncIterator[StreamWatch]:
    client = await nats.connect(server.url)
    watch = StreamWatch()
    try:
        js = client.jetstream()
        await ensure_stream(js, STREAM)
        await js.subscribe(SUBJECTS, stream=STREAM, cb=watch.take, ordered_consumer=True)
        yield watch
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def answering_hosts(count: int, base: str) -> AsyncIterator[list[tuple[str, int]]]:
    """A TCP listener on each of `count` loopback addresses `base`.1, `base`.2, ...: each
    accepts and closes, so a tcp check of it is OK and holds nothing open."""

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    servers = []
    try:
        for number in range(1, count + 1):
            servers.append(await asyncio.start_server(answer, f"{base}.{number}", 0))
        yield [server.sockets[0].getsockname()[:2] for server in servers]
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


def pool_inventory(path: Path, hosts: list[tuple[str, int]], per_host: int) -> list[str]:
    """`per_host` tcp checks of each host, every 2 s; their full ids."""
    checks = "".join(
        f"          - {{id: h{h}-{k}, kind: tcp, target: '{host}:{port}'}}\n"
        for h, (host, port) in enumerate(hosts)
        for k in range(per_host)
    )
    path.write_text(
        "version: 1\ndefaults: {interval: 2s, timeout: 1s}\n"
        "sites:\n  - id: north\n    links:\n      - id: fibre\n        checks:\n" + checks + CLUSTER
    )
    return [f"north/fibre/h{h}-{k}" for h in range(len(hosts)) for k in range(per_host)]


def agent(folder: Path, inventory: Path, server: NatsServer, name: str, *flags: str):
    # PYTHONFAULTHANDLER: an agent that does not stop tells where it hangs (stop_all).
    return start_agent(
        folder / name,
        str(inventory),
        "--nats",
        server.url,
        "--name",
        name,
        "--spool",
        str(folder / f"{name}.sqlite3"),
        *flags,
        env={"PYTHONFAULTHANDLER": "1"},
    )


def stop_all(*processes: Any) -> None:
    """SIGTERM each agent still running and wait for it; one that does not stop within a
    minute is made to dump its stacks and killed, and the test fails with what it said. None
    is left running whatever happens."""
    failed = []
    for process in processes:
        if process is None or process.process.poll() is not None:
            continue
        try:
            code = process.stop()
        except subprocess.TimeoutExpired:
            process.process.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.process.wait(10)
            process.process.kill()
            process.process.wait()
            code = None
        if code != 0:
            failed.append(f"exit {code}: {process.stderr()[-4000:]}")
    assert not failed, "\n".join(failed)


async def seen_together(processes: list[tuple[Any, int]], line: str) -> None:
    """Until each process has logged `line` at least its count of times."""

    async def logged() -> bool | None:
        for process, count in processes:
            assert process.process.poll() is None, process.stderr()
            if process.stderr().count(line) < count:
                return None
        return True

    await poll(f"the agents logging {line!r}", logged, timeout=60)


async def steady(watch: StreamWatch, checks: list[str], start: float) -> dict[str, set[str]]:
    """Who ran each check in the WINDOW from `start`, once every check has run in it."""
    async with asyncio.timeout(60):
        while True:
            runners = watch.runners(start, start + WINDOW)
            if any(run.started_at >= start + WINDOW + 1 for run in watch.runs):
                missing = set(checks) - set(runners)
                assert not missing, f"not run in the steady window: {sorted(missing)}"
                return runners
            await asyncio.sleep(0.2)


async def settled(watch: StreamWatch, checks: list[str]) -> dict[str, set[str]]:
    """Who ran each check in the steady WINDOW that begins once every check has run since
    now: an agent's first round is paced (0.05 s a check, longer while its CPU is busy)."""
    since = time.time()
    async with asyncio.timeout(60):
        while set(checks) - {run.check_id for run in watch.between(since, float("inf"))}:
            await asyncio.sleep(0.2)
    return await steady(watch, checks, time.time() + 0.5)


def host_of(check_id: str) -> str:
    return check_id.rsplit("/", 1)[1].split("-")[0]


async def test_two_agents_share_a_pool_none_twice_and_take_over_from_a_killed_one(tmp_path):
    both = "pool default: pool-a, pool-b;"
    async with (
        answering_hosts(40, "127.0.1") as hosts,
        running_nats(tmp_path / "nats") as server,
        watching(server) as watch,
    ):
        inventory = tmp_path / "inventory.yaml"
        checks = pool_inventory(inventory, hosts, per_host=5)
        a = agent(tmp_path, inventory, server, "pool-a")
        b = agent(tmp_path, inventory, server, "pool-b")
        restarted = None
        try:
            await seen_together([(a, 1), (b, 1)], both)
            first = await settled(watch, checks)
            twice = {check: agents for check, agents in first.items() if len(agents) > 1}
            assert not twice, twice
            share_b = {check for check, agents in first.items() if agents == {"pool-b"}}
            assert 40 <= len(share_b) <= 160, len(share_b)  # 20 hosts of 40, give or take
            by_host: dict[str, set[str]] = defaultdict(set)
            for check, agents in first.items():
                by_host[host_of(check)] |= agents
            assert all(len(agents) == 1 for agents in by_host.values()), by_host
            assert {run.vantage for run in watch.runs} == {"default"}

            killed_at = time.time()
            b.process.kill()
            b.process.wait(10)

            async def taken_over() -> float | None:
                first_runs: dict[str, float] = {}
                for run in watch.runs:
                    if run.agent == "pool-a" and run.started_at > killed_at:
                        first_runs.setdefault(run.check_id, run.started_at)
                return max(first_runs[c] for c in share_b) if share_b <= set(first_runs) else None

            served_by = await poll("pool-a serving pool-b's checks", taken_over, timeout=60)
            print(f"MEASURED takeover {served_by - killed_at:.2f}s share_b {len(share_b)}")
            assert served_by - killed_at <= 2 * TTL, served_by - killed_at
            after = await steady(watch, checks, served_by + 1)
            assert all(agents == {"pool-a"} for agents in after.values())

            restarted = agent(tmp_path / "again", inventory, server, "pool-b")
            await seen_together([(a, 2), (restarted, 1)], both)
            again = await settled(watch, checks)
            twice = {check: agents for check, agents in again.items() if len(agents) > 1}
            assert not twice, twice
            # The same view of the pool, the same share: rendezvous hashing is deterministic.
            assert {c for c, agents in again.items() if agents == {"pool-b"}} == share_b
        finally:
            stop_all(a, b, restarted)


async def test_an_agent_named_as_a_vantage_point_runs_its_checks_and_a_pool_its_own(tmp_path):
    """north-1 and spare-1 share the pool default; noc-1 is the pool noc alone. The site's
    `vantage: [north-1]` holds for all its links but the one that names the pool noc."""
    async with (
        answering_hosts(6, "127.0.2") as hosts,
        running_nats(tmp_path / "nats") as server,
        watching(server) as watch,
    ):

        def checks(link: str) -> str:
            return "".join(
                f"          - {{id: {link}-{h}, kind: tcp, target: '{host}:{port}'}}\n"
                for h, (host, port) in enumerate(hosts)
            )

        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(
            "version: 1\ndefaults: {interval: 2s, timeout: 1s}\nsites:\n"
            "  - id: north\n    vantage: [north-1]\n    links:\n"
            "      - id: own\n        checks:\n"
            + checks("own")
            + "      - id: noc\n        vantage: [noc]\n        checks:\n"
            + checks("noc")
            + "  - id: south\n    links:\n      - id: pooled\n        checks:\n"
            + checks("pooled")
            + CLUSTER
        )
        loaded = load_inventory(inventory)
        north = agent(tmp_path, inventory, server, "north-1")
        spare = agent(tmp_path, inventory, server, "spare-1", "--pool", "default")
        noc = agent(tmp_path, inventory, server, "noc-1", "--pool", "noc")
        try:
            await seen_together([(north, 1), (spare, 1)], "pool default: north-1, spare-1;")
            ids = [c.ref.check_id for c in loaded.checks]
            ran = await steady(watch, ids, time.time() + 2)
            vantages = {
                (run.check_id, run.agent, run.vantage)
                for run in watch.between(time.time() - WINDOW, time.time())
            }
        finally:
            stop_all(north, spare, noc)
        roster = Roster.of({"north-1": {"default"}, "spare-1": {"default"}, "noc-1": {"noc"}})
        for check in loaded.checks:
            expected = {
                name for name in roster.pools_of if served_entry(name, check, roster) is not None
            }
            assert ran[check.ref.check_id] == expected, check.ref.check_id
        own = [c for c in ids if "/own/" in c]
        assert all(ran[c] == {"north-1"} for c in own)
        assert all(ran[c] == {"noc-1"} for c in ids if "/noc/" in c)
        pooled = [c for c in ids if "/pooled/" in c]
        assert set().union(*(ran[c] for c in pooled)) == {"north-1", "spare-1"}
        # Each result names the vantage point it was run for.
        for check_id, name, vantage in vantages:
            wanted = {"own": "north-1", "noc": "noc", "pooled": "default"}[check_id.split("/")[1]]
            assert vantage == wanted, (check_id, name, vantage)


# --- the central's judgement ----------------------------------------------------------------------


async def test_the_central_rejects_results_from_agents_not_assigned_and_counts_them(
    tmp_path, caplog
):
    cluster = ClusterConfig(heartbeat=0.5, heartbeat_ttl=1.5)
    hosts = [f"127.0.3.{n}" for n in range(1, 21)]
    moving = next(h for h in hosts if winner(h, ["north-1", "north-2"]) == "north-2")
    staying = next(h for h in hosts if winner(h, ["north-1", "north-2"]) == "north-1")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\nsites:\n  - id: north\n    links:\n      - id: wan\n        checks:\n"
        f"          - {{id: moving, kind: tcp, target: '{moving}:9'}}\n"
        f"          - {{id: staying, kind: tcp, target: '{staying}:9'}}\n"
    )
    loaded = load_inventory(inventory)
    moves, stays = loaded.checks

    def made(check: Check) -> ProbeResult:
        return ProbeResult(check.ref, started_at=time.time(), duration_ms=1.0, severity=Severity.OK)

    async with running_nats(tmp_path / "nats") as server:
        client = await nats.connect(server.url)
        js = client.jetstream()
        await ensure_stream(js, STREAM)
        taken: list[str] = []  # check ids
        north_1 = live_agent(client, "north-1", cluster)
        north_2 = None

        async def publish(check: Check, name: str, vantage: str | None = "default") -> None:
            message = outgoing(name, made(check), vantage)
            await js.publish(message.subject, message.data, headers=message.headers)

        try:
            async with admitting(client, cluster) as admission:
                consumer = ResultConsumer(
                    js, loaded.checks, stream=STREAM, history=None, admission=admission
                )

                def take(result: ProbeResult) -> None:
                    taken.append(result.check.check_id)
                    consumer.settled(result)

                running = asyncio.create_task(consumer.run(take))
                await publish(moves, "north-1")  # the only live agent of the pool
                await publish(stays, "rogue")  # no heartbeat: in no pool
                await publish(stays, "rogue", vantage="north-1")  # not the check's vantage point
                # An agent of before pools names none: its check's one vantage point is meant.
                await publish(stays, "north-1", vantage=None)
                await until(lambda: len(taken) + rejected(consumer) == 4)
                assert taken == ["north/wan/moving", "north/wan/staying"]
                assert rejected(consumer) == 2

                north_2 = live_agent(client, "north-2", cluster)
                await asyncio.sleep(cluster.heartbeat)  # the central hears of north-2 meanwhile
                joined = time.time()
                await publish(moves, "north-1")  # within the grace: the check is moving
                await until(lambda: len(taken) == 3)
                await asyncio.sleep(max(0.0, joined + 2 * cluster.heartbeat_ttl - time.time()))
                await publish(moves, "north-1")  # past the grace: north-2 serves it now
                await publish(moves, "north-2")
                await publish(stays, "north-1")
                await until(lambda: len(taken) + rejected(consumer) == 8)
                assert taken[3:] == ["north/wan/moving", "north/wan/staying"]
                assert rejected(consumer) == 3
                consumer.stop()
                await running
        finally:
            for beating in (north_1, north_2):
                if beating is not None:
                    beating.cancel()
            await client.close()
    lines = [r.getMessage() for r in caplog.records if "not assigned" in r.getMessage()]
    assert len(lines) == 1, lines  # one line a minute per kind, however many there are
    assert "'rogue' does not serve 'default' for 'north/wan/staying'" in lines[0]


def live_agent(client: Any, name: str, cluster: ClusterConfig) -> asyncio.Task[None]:
    member = Member(name, frozenset({"default"}), time.time(), 1)
    return asyncio.create_task(
        Heartbeat(member, cluster.heartbeat, cluster.heartbeat_ttl).beat(client)
    )


def rejected(consumer: ResultConsumer) -> int:
    return consumer.figures().rejected.get(Rejection.UNASSIGNED, 0)


async def until(condition: Any, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_an_outage_of_nats_moves_no_checks(tmp_path):
    """Neither agent hears the other while NATS is down: each keeps its share, rather than
    taking over the other's as if it were gone, and nothing moves when NATS is back."""
    both = "pool default: pool-a, pool-b;"
    async with answering_hosts(10, "127.0.4") as hosts, running_nats(tmp_path / "nats") as server:
        inventory = tmp_path / "inventory.yaml"
        checks = pool_inventory(inventory, hosts, per_host=2)
        a = agent(tmp_path, inventory, server, "pool-a")
        b = agent(tmp_path, inventory, server, "pool-b")
        try:
            await seen_together([(a, 1), (b, 1)], both)
            views = [process.stderr().count("live agents:") for process in (a, b)]

            async def stored(count: int) -> bool | None:
                return True if len(await stream_messages(server.url)) >= count else None

            await poll("results of every check", lambda: stored(2 * len(checks)), timeout=60)
            server.stop()
            down, up = time.time(), time.time() + 2 * TTL + 1
            await asyncio.sleep(up - down)
            await server.start()
            await seen_together([(a, 1), (b, 1)], "the spool is replayed")
            await asyncio.sleep(2 * TTL)  # long enough for a stray change to show
            assert [process.stderr().count("live agents:") for process in (a, b)] == views
        finally:
            stop_all(a, b)
        runs: dict[str, set[str]] = defaultdict(set)
        for message in await stream_messages(server.url):
            started = int(message.headers["Nats-Msg-Id"].rsplit(".", 1)[1]) / 1e9
            if down <= started < up:
                runs[json.loads(message.data)["check_id"]].add(message.headers["Commwatch-Agent"])
        assert set(runs) == set(checks)  # probing went on, spooled and replayed
        twice = {check: agents for check, agents in runs.items() if len(agents) > 1}
        assert not twice, twice


async def test_commwatch_central_judges_who_sent_a_result(tmp_path, start_central):
    """The command as a user runs it: a result from an agent with no heartbeat is not shown,
    the one from the live agent is, and the rejection is logged."""
    async with running_nats(tmp_path / "nats") as server, jetstream(server.url) as js:
        path = inventory_file(tmp_path)
        inv = load_inventory(path)
        process = await start_central(path, server.url)
        try:
            rogue, live = results(inv, (0, Severity.CRIT, BASE), (0, Severity.OK, BASE + 1))
            await central_publish(js, rogue, agent="rogue")
            await central_publish(js, live)  # AGENT, live in the pool default
            async with asyncio.timeout(30):
                while True:
                    (line,) = await lines_until(process, 1)
                    if line["type"] == "result":
                        break
            assert (line["started_at"], line["severity"]) == ("2027-01-15T08:00:01.000+00:00", "OK")
        finally:
            stderr = await stop(process)
        assert (
            "rejected a not assigned message on commwatch.results.north.rogue: "
            "'rogue' does not serve 'default' for 'north/wan/c0'"
        ) in stderr


class CountingClient(nats.aio.client.Client):
    """A real client that counts how often its connection is looked at."""

    looks = 0

    @property
    def is_connected(self) -> bool:
        self.looks += 1
        return super().is_connected


async def test_a_heartbeat_waits_quietly_while_nats_is_away(tmp_path):
    """A heartbeat that is due while disconnected stays due, but is not looked at again
    and again without pause: that spun the agent's loop."""
    async with running_nats(tmp_path / "nats") as server:
        client = CountingClient()
        await client.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=1)
        member = Member("north-1", frozenset({"default"}), time.time(), 1)
        beating = asyncio.create_task(Heartbeat(member, 0.5, 1.5).beat(client))
        try:
            await asyncio.sleep(0.3)
            server.stop()
            await until(lambda: not client.is_connected)
            await asyncio.sleep(1.0)  # the put falls due meanwhile
            before = client.looks
            await asyncio.sleep(1.0)
            assert client.looks - before <= 20, client.looks - before  # about 4: every TICK
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            await client.close()
