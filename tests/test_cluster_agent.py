"""The agent against a real nats-server with JetStream and real TCP peers on loopback: every
result published once, a 30 s outage spooled by two agents and replayed in order to a central
that then has every result once, a full spool dropping the
oldest and counting them across restarts, no NATS secret in anything it prints, and the one
line that says how to install nats-py when it is missing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import DiscardPolicy, StreamConfig

from monitor.cluster.agent import Agent
from monitor.cluster.spool import Spool
from monitor.cluster.stream import SUBJECTS, ensure_stream, outgoing
from monitor.config.cluster import ClusterConfig, NatsConfig
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.engine.runner import run_check
from probes.base import SharedResources
from tests.central_support import Runs, assert_every_run_once, running_central
from tests.conftest import REPO
from tests.peers.nats_peers import NatsServer, running_nats
from tests.peers.prometheus_peers import poll
from tests.peers.tcp_peers import accepting_listener, closed_port

STREAM = "COMMWATCH_RESULTS"
PASSWORD = "nats-pw-0f9e8d7c6b5a-secret"
TOKEN = "nats-token-1a2b3c4d5e6f-secret"
# The outage, as issue 12 says: many scheduling intervals of every check (1 s) and of nats-py's
# reconnect attempts (every 1 s).
OUTAGE = 30.0


def inventory_text(ports: list[int], cluster: str = "", vantages: list[str] | None = None) -> str:
    """One tcp check per port; `vantages`: each check's vantage point, by position."""
    named = vantages or [""] * len(ports)
    checks = "\n".join(
        f"          - {{id: tcp-{i}, kind: tcp, target: '127.0.0.1:{port}'"
        + (f", vantage: [{vantage}]" if vantage else "")
        + "}"
        for i, (port, vantage) in enumerate(zip(ports, named, strict=True))
    )
    return (
        textwrap.dedent(
            """\
            version: 1
            defaults: {interval: 1s, timeout: 1s}
            sites:
              - id: north
                links:
                  - id: fibre
                    checks:
            """
        )
        + checks
        + "\n"
        + textwrap.dedent(cluster)
    )


@contextlib.asynccontextmanager
async def tcp_peers(count: int) -> AsyncIterator[list[int]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(accepting_listener()) for _ in range(count)]


async def stream_messages(
    url: str | list[str], *, at_least: int = 0, subjects: str = SUBJECTS, **auth: str
) -> list[Any]:
    """Every message of `subjects` ("": all) in the results stream, in the stream's order: read
    until as many as the stream counts, and `at_least` (what a test knows was acknowledged: a
    node of a cluster that is catching up may answer the stream's info with fewer), so that a
    slow fetch on a busy machine is not taken for the end (60 s at most). `url`: a server, or a
    cluster's nodes."""
    nc = await nats.connect(url, **auth)
    try:
        js = nc.jetstream()
        async with asyncio.timeout(60):
            while True:
                try:
                    total = (await js.stream_info(STREAM)).state.messages
                    sub = await js.pull_subscribe(subjects, stream=STREAM)
                    break
                except nats.js.errors.NotFoundError:
                    return []  # no agent has made the stream yet
                except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                    continue  # a cluster's node that has just come back, still catching up
        messages: list[Any] = []
        async with asyncio.timeout(60):
            while len(messages) < max(total, at_least):
                with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):  # either
                    messages += await sub.fetch(500, timeout=2)
        return messages
    finally:
        await nc.close()


def check_results(messages: list[Any]) -> dict[str, list[float]]:
    """Each check's started_at values in the order the stream holds them."""
    order: dict[str, list[float]] = defaultdict(list)
    for message in messages:
        record = json.loads(message.data)
        order[record["check_id"]].append(message.headers["Nats-Msg-Id"])
    return order


def make_agent(server: NatsServer, inventory: Inventory, spool: Spool, **options: Any) -> Agent:
    return Agent(
        "north-1",
        inventory.checks,
        inventory.concurrency,
        ClusterConfig(nats=NatsConfig(url=server.url), stream=STREAM),
        spool,
        **options,
    )


def started_ns(msg_id: str) -> int:
    return int(msg_id.rsplit(".", 1)[1])


async def test_an_outage_is_spooled_and_replayed_in_order_none_lost_or_twice(tmp_path):
    """NATS stopped for 30 s while two agents probe (issue 12): afterwards the central has
    every result, in order per check, none shown or stored twice, and the stream holds each
    once."""
    async with tcp_peers(6) as ports, running_nats(tmp_path / "nats") as server:
        path = tmp_path / "inventory.yaml"
        # Each agent the vantage point of three checks (a pool would give them all to one: they
        # share a host).
        names = ["north-1"] * 3 + ["north-2"] * 3
        path.write_text(
            f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
            + inventory_text(ports, vantages=names)
        )
        inventory = load_inventory(path)
        cluster = ClusterConfig(nats=NatsConfig(url=server.url), stream=STREAM)
        agents: list[tuple[Agent, Runs]] = []
        for name in ("north-1", "north-2"):
            spool = Spool(tmp_path / f"spool-{name}.sqlite3", max_age=3600, max_bytes=10 * 1024**2)
            runs = Runs(name)
            agent = Agent(
                name,
                inventory.checks,
                inventory.concurrency,
                cluster,
                spool,
                start_spread=0,
                runner=runs,
            )
            agents.append((agent, runs))
        async with running_central(cluster, inventory) as central:
            running = [asyncio.create_task(agent.run()) for agent, _ in agents]
            try:
                await central.until(lambda: len(central.shown) >= 12, "the first results")
                server.stop()
                before = [len(runs.made) for _, runs in agents]

                async def spooling() -> bool | None:
                    return True if all(a.spool.depth >= 3 for a, _ in agents) else None

                await poll("results spooled while NATS is down", spooling, timeout=30)
                await asyncio.sleep(OUTAGE)  # the outage itself: probing goes on meanwhile
                assert not any(agent.figures().connected for agent, _ in agents)
                assert not central.client.is_connected
                during = [
                    len(runs.made) - made for (_, runs), made in zip(agents, before, strict=True)
                ]
                assert all(count >= 3 * int(OUTAGE / 2) for count in during), during
                await server.start()

                async def replayed() -> bool | None:
                    for (agent, _), made, more in zip(agents, before, during, strict=True):
                        figures = agent.figures()
                        done = figures.connected and figures.spooled == 0 and figures.replayed
                        if not done or figures.published < made + more:
                            return None
                    return True

                await poll("the spools replayed after NATS came back", replayed, timeout=90)
            finally:
                for agent, _ in agents:
                    agent.stop()
                await asyncio.wait_for(asyncio.gather(*running), 60)
            made = [run for _, runs in agents for run in runs.made]
            await central.until(lambda: len(central.shown) >= len(made), "every result", 90)
            shown = list(central.shown)
        messages = await stream_messages(server.url)
    assert_every_run_once(inventory, made, shown)
    stored = [m.headers["Nats-Msg-Id"] for m in messages]
    assert len(stored) == len(set(stored)), "a result stored twice in the stream"
    assert set(stored) == set().union(*(runs.msg_ids for _, runs in agents))
    for check, ids in check_results(messages).items():
        assert ids == sorted(ids, key=started_ns), f"{check} out of order in the stream"
    for agent, _ in agents:
        assert agent.figures().spooled == 0 and agent.figures().dropped == 0
        agent.spool.close()


async def test_a_replayed_result_the_server_has_is_stored_once(tmp_path):
    """A publish whose acknowledgement was lost is spooled although the server stored it; the
    replay must not store it a second time."""
    async with tcp_peers(1) as ports, running_nats(tmp_path / "nats") as server:
        path = tmp_path / "inventory.yaml"
        path.write_text(inventory_text(ports))
        inventory = load_inventory(path)
        result = await run_check(inventory.checks[0], SharedResources(), {})
        entry = outgoing("north-1", result)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_stream(js, STREAM)
        await js.publish(entry.subject, entry.data, headers=entry.headers, stream=STREAM)
        await nc.close()
        spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=10 * 1024**2)
        spool.append(entry)
        agent = make_agent(server, inventory, spool)
        running = asyncio.create_task(agent.run())
        try:

            async def replayed() -> bool | None:
                return True if agent.figures().replayed >= 1 and spool.depth == 0 else None

            await poll("the spooled result replayed", replayed, timeout=30)
        finally:
            agent.stop()
            await asyncio.wait_for(running, 30)
        assert agent.figures().duplicates >= 1
        ids = [m.headers["Nats-Msg-Id"] for m in await stream_messages(server.url)]
        assert ids.count(entry.msg_id) == 1
        spool.close()


async def test_publishes_in_flight_keep_each_checks_order_through_a_refusal(tmp_path):
    """Replayed with many publishes awaiting their acknowledgements at once, 1,000 spooled
    results of 20 checks meet a stream that refuses all beyond its first 300: the rest stay
    spooled, and once it takes them again each is stored once, each check's in order."""
    checks, runs, room = 20, 50, 300
    async with tcp_peers(1) as ports, running_nats(tmp_path / "nats") as server:
        path = tmp_path / "inventory.yaml"
        path.write_text(inventory_text(ports))
        inventory = load_inventory(path)
        first = await run_check(inventory.checks[0], SharedResources(), {})
        spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=10 * 1024**2)
        for run in range(runs):
            for index in range(checks):
                check = dataclasses.replace(first.check, check_id=f"north/fibre/tcp-{index}")
                result = dataclasses.replace(first, check=check, started_at=first.started_at + run)
                spool.append(outgoing("north-1", result))
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        config = StreamConfig(
            name=STREAM, subjects=[SUBJECTS], max_msgs=room, discard=DiscardPolicy.NEW
        )
        await js.add_stream(config)
        # An agent of no checks of its own: what it publishes is the spool's.
        agent = Agent(
            "north-1",
            (),
            inventory.concurrency,
            ClusterConfig(nats=NatsConfig(url=server.url), stream=STREAM),
            spool,
        )
        running = asyncio.create_task(agent.run())
        try:

            async def refused() -> bool | None:
                return True if agent.figures().replayed >= room and spool.depth else None

            await poll("the stream's room filled", refused, timeout=30)
            assert agent.figures().replayed == room
            assert spool.depth == checks * runs - room
            config.max_msgs = -1
            await js.update_stream(config)

            async def replayed() -> bool | None:
                return True if spool.depth == 0 else None

            await poll("the rest replayed", replayed, timeout=60)
        finally:
            await nc.close()
            agent.stop()
            await asyncio.wait_for(running, 30)
        messages = await stream_messages(server.url)
        ids = [m.headers["Nats-Msg-Id"] for m in messages]
        assert len(ids) == len(set(ids)) == checks * runs
        for check_id, order in check_results(messages).items():
            started = [started_ns(msg_id) for msg_id in order]
            assert started == sorted(started), check_id
        spool.close()


async def test_a_stream_deleted_under_the_agent_is_made_again(tmp_path):
    async with tcp_peers(3) as ports, running_nats(tmp_path / "nats") as server:
        path = tmp_path / "inventory.yaml"
        path.write_text(inventory_text(ports))
        inventory = load_inventory(path)
        spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=10 * 1024**2)
        agent = make_agent(server, inventory, spool, start_spread=0)
        running = asyncio.create_task(agent.run())
        nc = await nats.connect(server.url)
        try:

            async def stored(count: int) -> bool | None:
                return True if len(await stream_messages(server.url)) >= count else None

            await poll("first results stored", lambda: stored(3), timeout=30)
            await nc.jetstream().delete_stream(STREAM)
            await poll("results stored in the stream made again", lambda: stored(6), timeout=60)
        finally:
            await nc.close()
            agent.stop()
            await asyncio.wait_for(running, 30)
        spool.close()


# --- the command --------------------------------------------------------------------------------


@dataclass
class AgentProcess:
    """`commwatch agent` in a process of its own, its output in files."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text()

    def printed(self) -> str:
        return self.out.read_text() + self.err.read_text()

    async def wait_for(self, text: str, what: str) -> None:
        async def shown() -> bool | None:
            assert self.process.poll() is None, self.stderr()
            return True if text in self.stderr() else None

        await poll(what, shown, timeout=60)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def start_agent(folder: Path, *args: str, env: dict[str, str] | None = None) -> AgentProcess:
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "stdout", folder / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "agent", *args],
            cwd=REPO,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
            stdout=stdout,
            stderr=stderr,
        )
    return AgentProcess(process, out, err)


async def test_a_full_spool_drops_the_oldest_and_counts_them_across_restarts(tmp_path):
    url = f"nats://127.0.0.1:{closed_port()}"  # NATS is down throughout
    spool_path = tmp_path / "spool.sqlite3"
    async with tcp_peers(40) as ports:
        path = tmp_path / "inventory.yaml"
        path.write_text(
            inventory_text(ports, f"cluster: {{spool: {{path: {spool_path}, max_bytes: 64KiB}}}}")
        )
        args = (str(path), "--nats", url, "--name", "north-1")
        first = start_agent(tmp_path / "first", *args)
        try:
            await first.wait_for("oldest results dropped", "the spool filled up")
        finally:
            first_code = first.stop()
        assert first_code == 0, first.stderr()
        stopped = first.stderr().rsplit("stopped; ", 1)[1]
        ever = int(stopped.split(" in the spool, ", 1)[1].split(" ever dropped", 1)[0])
        assert ever > 0

        spool = Spool(spool_path, max_age=3600, max_bytes=64 * 1024)
        figures = spool.figures()
        kept = [started_ns(e.msg_id) for _, e in spool.oldest(10_000)]
        spool.close()
        assert (figures.dropped_size, figures.dropped_age) == (ever, 0)
        assert 0 < figures.size <= 64 * 1024 and figures.depth == len(kept)
        assert kept == sorted(kept)

        second = start_agent(tmp_path / "second", *args)
        try:
            await second.wait_for("checks, results to", "the agent started again")
        finally:
            second_code = second.stop()
        assert second_code == 0, second.stderr()
        assert f"({figures.depth} waiting, {ever} ever dropped)" in second.stderr()


@pytest.mark.parametrize("method", ["password", "token"])
async def test_no_nats_secret_in_anything_the_agent_prints(tmp_path, method):
    auth: dict[str, str] = (
        {"user": "north", "password": PASSWORD} if method == "password" else {"token": TOKEN}
    )
    credentials = (
        "{user: north, password_env: CW_NATS_SECRET}"
        if method == "password"
        else "{token_env: CW_NATS_SECRET}"
    )
    secret = PASSWORD if method == "password" else TOKEN
    wrong = "wrong-" + secret
    async with tcp_peers(3) as ports, running_nats(tmp_path / "nats", **auth) as server:
        path = tmp_path / "inventory.yaml"
        path.write_text(inventory_text(ports, f"cluster: {{nats: {{credentials: {credentials}}}}}"))
        args = (str(path), "--nats", server.url, "--name", "north-1")
        loud = {"COMMWATCH_LOG": "DEBUG", "PYTHONASYNCIODEBUG": "1"}
        right = start_agent(tmp_path / "right", *args, env={**loud, "CW_NATS_SECRET": secret})
        try:

            async def published() -> bool | None:
                assert right.process.poll() is None, right.stderr()
                messages = await stream_messages(server.url, **auth)
                return True if len(messages) >= 6 else None

            await poll("the agent's results in the stream", published, timeout=60)
        finally:
            right_code = right.stop()
        assert right_code == 0, right.stderr()
        refused = start_agent(tmp_path / "wrong", *args, env={**loud, "CW_NATS_SECRET": wrong})
        try:
            await refused.wait_for("refused this agent's credentials", "the refusal logged")
        finally:
            refused_code = refused.stop()
        assert refused_code == 0, refused.stderr()
    for process in (right, refused):
        printed = process.printed()
        assert "north-1" in printed
        assert secret not in printed and wrong not in printed
        assert secret[5:-5] not in printed  # not even in part


def test_without_nats_py_the_agent_says_how_to_install_it(tmp_path):
    """As where the cluster extra is not installed: `import nats` fails."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        textwrap.dedent(
            """\
            import sys

            class NoNats:
                def find_spec(self, name, path=None, target=None):
                    if name == "nats" or name.startswith("nats."):
                        raise ImportError(f"No module named {name!r}")
                    return None

            sys.meta_path.insert(0, NoNats())
            """
        )
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_text([9]))
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "agent", str(path), "--name", "north-1"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{shim}{os.pathsep}{REPO}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr == "commwatch agent needs nats-py: pip install 'commwatch[cluster]'\n"
    # The shim does what it says: nats cannot be imported under it.
    probe = subprocess.run(
        [sys.executable, "-c", "import nats"],
        env={**os.environ, "PYTHONPATH": str(shim)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0 and "No module named 'nats'" in probe.stderr


def test_a_credential_that_cannot_be_read_ends_the_agent_before_it_probes(tmp_path):
    (tmp_path / "nats.token").write_bytes(b"\xff\xfe not text")
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_text([9], "cluster: {nats: {credentials: {token_file: nats.token}}}"))
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "agent", str(path), "--name", "north-1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"commwatch agent: secret file {tmp_path / 'nats.token'} is not UTF-8 text "
        "(store the secret as UTF-8)"
    )
    assert "Traceback" not in done.stderr
