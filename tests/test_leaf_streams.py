"""Results that queue in NATS at the site: an agent behind a leaf node with JetStream of its own
(the domain `north`) publishes to the stream of that domain (`--leaf-domain`), and the hub's
stream sources it (`cluster: leaf_domains:`) across a leaf link with TLS and a user and
password (tests/peers/nats_peers.py, `running_hub_and_leaf`). Through a WAN outage (the hub
stopped, or the link cut while the hub stays up) the results queue in the leaf node, none in
the agent's spool, and the central's metrics show the leaf unheard; afterwards the central has
every result once, in order per check. A hub's stream made without
the source gets it from a central that names the leaf; until then the agent says so and the
results wait at the site, none lost. And a hub of three nodes whose stream's leader dies
while it sources the leaf's stream loses none and stores none twice."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from prometheus_client.core import Metric

from monitor.cluster import stream
from monitor.cluster.agent import Agent
from monitor.cluster.lease import LeaseFigures, Role
from monitor.cluster.metrics import CentralMetrics, agent_families, leaves_of
from monitor.cluster.stream import (
    QUEUED_PREFIX,
    SUBJECT_PREFIX,
    SUBJECTS,
    StreamError,
    ensure_stream,
    outgoing,
    sources_leaf,
    under,
)
from monitor.config.cluster import ClusterConfig
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.model import ProbeResult, Severity
from monitor.lab.pki import make_ca, make_leaf
from monitor.output.records import iso_time
from tests.central_support import (
    STREAM,
    RunningCentral,
    Runs,
    assert_every_run_once,
    counted_agent,
    running_central,
)
from tests.conftest import REPO, StartCentral
from tests.peers.nats_peers import HUB_DOMAIN, LeafLink, NatsServer, hub_through, running_nats
from tests.peers.nats_peers import running_hub_and_leaf as hub_and_leaf
from tests.peers.nats_peers import running_hub_cluster_and_leaf as hub_cluster_and_leaf
from tests.peers.prometheus_peers import free_port, poll
from tests.peers.proxy import CuttingProxy
from tests.test_central_cli import lines_until, stop
from tests.test_cluster_agent import (
    check_results,
    inventory_text,
    started_ns,
    stream_messages,
)
from tests.test_cluster_agent import tcp_peers as peers
from tests.test_leaf_nodes import AGENT, agent_at_leaf, permitted_agent
from tests.test_metrics import CLUSTER_SECTION, documented, section
from tests.test_nats_security import write_pem

LEAF = "north"  # the site's leaf node's JetStream domain
OUTAGE = 12.0  # seconds the hub is away
VIEWER = "viewer-token-of-the-leaf-test"
LEAF_SECTION = "### A central with leaf nodes"  # of docs/prometheus/README.md


def leaf_link(folder: Path) -> LeafLink:
    """TLS with a certificate of the test's own CA for 127.0.0.1, and a user and password."""
    folder.mkdir()
    ca = make_ca("commwatch test leaf link CA")
    cert, key = write_pem(folder, "hub", make_leaf(ca, ["127.0.0.1"]))
    ca_file, _ = write_pem(folder, "ca", ca)
    return LeafLink(cert, key, ca_file, "north-leaf", secrets.token_hex(16))


def leaf_inventory(tmp_path: Path, ports: list[int], url: str, more: str = "") -> Inventory:
    """One tcp check per port, a history, and the cluster section of a hub (at `url`) whose
    stream sources LEAF; `more`: further keys of it."""
    path = tmp_path / "inventory.yaml"
    servers = ", ".join(url.split(","))
    cluster = (
        f"cluster: {{nats: {{url: [{servers}]}}, domain: {HUB_DOMAIN}, "
        f"leaf_domains: [{LEAF}]{more}}}"
    )
    path.write_text(
        f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n" + inventory_text(ports, cluster)
    )
    return load_inventory(path)


def clusters(inventory: Inventory, leaf: NatsServer) -> tuple[ClusterConfig, ClusterConfig]:
    """The central's cluster section (the inventory's), and the site agent's: its leaf node's
    URL (as --nats gives it) and domain (as --leaf-domain does)."""
    central = inventory.cluster
    assert central is not None
    agent = dataclasses.replace(
        central, nats=dataclasses.replace(central.nats, url=leaf.url), leaf_domain=LEAF
    )
    return central, agent


async def queued_at(leaf: NatsServer, **auth: str) -> int:
    """How many results the leaf node's own stream holds (`auth`: as whom to ask)."""
    client = await nats.connect(leaf.url, **auth)
    try:
        return (await client.jetstream().stream_info(STREAM)).state.messages
    finally:
        await client.close()


@pytest.fixture
async def probing() -> AsyncIterator[Callable[[Agent], asyncio.Task[None]]]:
    """Runs agents; each one still running at the end stopped, its spool closed."""
    running: list[tuple[Agent, asyncio.Task[None]]] = []

    def start(agent: Agent) -> asyncio.Task[None]:
        task = asyncio.create_task(agent.run())
        running.append((agent, task))
        return task

    yield start
    for agent, task in running:
        agent.stop()
        await asyncio.wait_for(task, 60)
        agent.spool.close()


async def every_result(
    agent: Agent, running: asyncio.Task[None], central: RunningCentral, runs: Runs
) -> list[tuple[str, float]]:
    """The agent stopped; what the central showed once it shows every result the agent made."""
    agent.stop()
    await asyncio.wait_for(running, 60)
    made = list(runs.made)
    await central.until(lambda: len(central.shown) >= len(made), "every result", 90)
    return list(central.shown)


def assert_all_through_the_leaf(
    inventory: Inventory, runs: Runs, shown: list[tuple[str, float]], messages: list[Any]
) -> None:
    """Every run shown and stored once, in order; the hub's stream holds each once, in order
    per check, every one sourced from the leaf's (its subject under commwatch.queued.)."""
    assert_every_run_once(inventory, list(runs.made), shown)
    stored = [m.headers["Nats-Msg-Id"] for m in messages]
    assert len(stored) == len(set(stored)), "a result stored twice in the hub's stream"
    assert set(stored) == runs.msg_ids
    assert {m.subject for m in messages} == {f"{QUEUED_PREFIX}.north.{AGENT}"}
    for check, ids in check_results(messages).items():
        assert ids == sorted(ids, key=started_ns), f"{check} out of order in the hub's stream"


async def leaf_families(central: RunningCentral, cluster: ClusterConfig) -> list[Metric]:
    """The central's families of the leaf nodes, as its `/metrics` serves them."""
    leadership = LeaseFigures("noc", Role.FOLLOWER, False, 0, None, 0, 10.0)
    leaves = leaves_of(central.client, cluster)
    assert leaves is not None
    families = await CentralMetrics(central.consumer, central.client, lambda: leadership, leaves)()
    return [family for family in families if family.name.startswith("commwatch_central_leaf")]


async def leaf_figures(central: RunningCentral, cluster: ClusterConfig) -> dict[str, float]:
    """The central's samples of the leaf node `LEAF`: each one's name and value."""
    families = await leaf_families(central, cluster)
    return {
        sample.name: sample.value
        for family in families
        for sample in family.samples
        if sample.labels == {"domain": LEAF}
    }


def heartbeat_age(agent: Agent) -> float:
    """The agent's `commwatch_agent_heartbeat_age_seconds`, as its `/metrics` serves it."""
    families = agent_families(agent.figures(), agent.spool.figures(), 1 << 20, time.time())
    (age,) = [f for f in families if f.name == "commwatch_agent_heartbeat_age_seconds"]
    return float(age.samples[0].value)


async def heard_again(central: RunningCentral, cluster: ClusterConfig) -> bool | None:
    figures = await leaf_figures(central, cluster)
    return True if figures.get("commwatch_central_leaf_inactive_seconds", 99.0) < 5 else None


@pytest.mark.parametrize("outage", ["hub stopped", "link cut"])
async def test_results_queue_in_the_sites_leaf_node_through_a_wan_outage(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    probing: Callable[[Agent], asyncio.Task[None]],
    outage: str,
) -> None:
    """The outage either way a site meets it: the hub stopped, or the WAN between the leaf
    node and a hub that stays up cut (the central then sees the leaf unheard in its metrics)."""
    caplog.set_level(logging.WARNING, logger="commwatch")
    link, wan = leaf_link(tmp_path / "pki"), CuttingProxy()
    async with (
        peers(3) as ports,
        hub_and_leaf(tmp_path / "nats", LEAF, link, wan) as (hub, leaf),
    ):
        inventory = leaf_inventory(tmp_path, ports, hub.url)
        central_cluster, agent_cluster = clusters(inventory, leaf)
        async with running_central(central_cluster, inventory) as central:
            info = await central.client.jetstream().stream_info(STREAM)
            assert sources_leaf(info.config, LEAF), info.config.sources
            agent, runs = counted_agent(tmp_path, AGENT, inventory, agent_cluster)
            running = probing(agent)
            await central.until(lambda: len(central.shown) >= 6, "the first results")
            await poll("the hub hears the leaf", lambda: heard_again(central, central_cluster), 30)
            if outage == "hub stopped":
                hub.stop()
            else:
                await wan.cut()
            before = await queued_at(leaf)
            await asyncio.sleep(OUTAGE)  # probing goes on
            assert await queued_at(leaf) - before >= OUTAGE, "results did not queue at the leaf"
            assert agent.spool.depth == 0 and agent.figures().connected
            # What tells the site: its heartbeat has not reached the hub since the cut.
            assert heartbeat_age(agent) >= OUTAGE
            if outage == "hub stopped":
                await hub.start()
            else:
                unheard = await leaf_figures(central, central_cluster)
                assert unheard["commwatch_central_leaf_inactive_seconds"] >= OUTAGE - 3, unheard
                exported = {
                    family.name: (family.type, frozenset(family.samples[0].labels))
                    for family in await leaf_families(central, central_cluster)
                }
                assert exported == documented(section(LEAF_SECTION, section(CLUSTER_SECTION)))
                await wan.mend()
            await hub_through(leaf)
            await poll(
                "the hub hears the leaf again", lambda: heard_again(central, central_cluster), 60
            )

            async def beating() -> bool | None:
                return True if heartbeat_age(agent) < 10 else None

            await poll("the agent's heartbeat at the hub again", beating, 30)
            shown = await every_result(agent, running, central, runs)
        messages = await stream_messages(hub.url, at_least=len(runs.msg_ids), subjects="")
    assert_all_through_the_leaf(inventory, runs, shown, messages)
    said = [record.getMessage() for record in caplog.records]
    assert not [line for line in said if "spool" in line or "does not source" in line], said


async def test_a_hubs_stream_made_without_the_leaf_sources_it_once_a_central_names_it(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    probing: Callable[[Agent], asyncio.Task[None]],
) -> None:
    caplog.set_level(logging.WARNING, logger="commwatch")
    async with peers(2) as ports, hub_and_leaf(tmp_path / "nats", LEAF) as (hub, leaf):
        path = tmp_path / "inventory.yaml"
        path.write_text(
            f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
            + inventory_text(ports, f"cluster: {{nats: {{url: {hub.url}}}, domain: {HUB_DOMAIN}}}")
        )
        inventory = load_inventory(path)
        central_cluster, agent_cluster = clusters(inventory, leaf)
        client = await nats.connect(hub.url)
        try:
            await ensure_stream(client.jetstream(), STREAM)  # as an agent on the hub makes it
        finally:
            await client.close()
        agent, runs = counted_agent(tmp_path, AGENT, inventory, agent_cluster)
        running = probing(agent)

        async def told() -> bool | None:
            return (
                True if any("does not source" in r.getMessage() for r in caplog.records) else None
            )

        await poll("the agent says the hub does not source its leaf", told, timeout=30)
        [line] = [r.getMessage() for r in caplog.records if "does not source" in r.getMessage()]
        assert line == (
            f"stream {STREAM} of JetStream domain {HUB_DOMAIN} does not source this leaf node's "
            f"(domain {LEAF}): results wait at the site until it does; add {LEAF} to cluster: "
            "leaf_domains: and restart a central"
        )

        async def waiting() -> bool | None:
            return True if await queued_at(leaf) >= 4 else None

        await poll("results waiting at the leaf", waiting, timeout=30)
        named = dataclasses.replace(central_cluster, leaf_domains=(LEAF,))
        async with running_central(named, inventory) as central:
            shown = await every_result(agent, running, central, runs)
        messages = await stream_messages(hub.url, at_least=len(runs.msg_ids), subjects="")
    assert_all_through_the_leaf(inventory, runs, shown, messages)


async def test_a_three_node_hub_whose_stream_leader_dies_keeps_sourcing_the_leaf(
    tmp_path: Path, probing: Callable[[Agent], asyncio.Task[None]]
) -> None:
    """The hub a NATS cluster of three, its stream replicated three times: the node leading it
    (which runs its sourcing of the leaf's stream) SIGKILLed while the agent probes; another
    takes over the sourcing where it was, and no result is lost or stored twice."""
    async with peers(3) as ports, hub_cluster_and_leaf(tmp_path / "nats", LEAF) as (hub, leaf):
        inventory = leaf_inventory(tmp_path, ports, hub.url, ", replicas: 3")
        central_cluster, agent_cluster = clusters(inventory, leaf)
        async with running_central(central_cluster, inventory) as central:
            agent, runs = counted_agent(tmp_path, AGENT, inventory, agent_cluster)
            running = probing(agent)
            await central.until(lambda: len(central.shown) >= 6, "the first results")
            leader = await hub.stream_leader(STREAM)
            before = len(central.shown)
            leader.stop(signal.SIGKILL)
            await central.until(
                lambda: len(central.shown) >= before + 15, "more after the leader died", 90
            )
            assert await hub.stream_leader(STREAM) is not leader
            await leader.start()
            await hub.ready()
            shown = await every_result(agent, running, central, runs)
        await hub.stream_leader(STREAM)
        messages = await stream_messages(
            hub.url.split(","), at_least=len(runs.msg_ids), subjects=""
        )
    assert_all_through_the_leaf(inventory, runs, shown, messages)


async def test_the_commands_with_a_leaf_domain(
    tmp_path: Path, start_central: StartCentral, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`commwatch central` with `cluster: leaf_domains:` makes the hub's stream source the
    leaf's and serves the leaf's families; `commwatch agent --leaf-domain` publishes to the
    leaf's stream, and its results reach the central through the source."""
    monkeypatch.setenv("CW_TEST_VIEWER", VIEWER)
    async with peers(1) as ports, hub_and_leaf(tmp_path / "nats", LEAF) as (hub, leaf):
        path = tmp_path / "inventory.yaml"
        path.write_text(
            f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
            "api: {tokens: [{role: viewer, token_env: CW_TEST_VIEWER}]}\n"
            + inventory_text(
                ports,
                f"cluster: {{domain: {HUB_DOMAIN}, leaf_domains: [{LEAF}], "
                f"spool: {{path: {tmp_path / 'spool.sqlite3'}}}}}",
            )
        )
        port = free_port()
        central = await start_central(path, hub.url, "--listen", f"127.0.0.1:{port}")
        agent = await agent_at_leaf(path, leaf, "--leaf-domain", LEAF)
        try:
            shown = await lines_until(central, 3)

            async def leaf_served() -> str | None:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(
                        f"http://127.0.0.1:{port}/metrics",
                        headers={"Authorization": f"Bearer {VIEWER}"},
                    ) as response,
                ):
                    text = await response.text()
                return text if f'commwatch_central_leaf_lag{{domain="{LEAF}"}}' in text else None

            served = await poll("the central's leaf families", leaf_served, timeout=30)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, said = await asyncio.wait_for(agent.communicate(), 20)
            await stop(central)
        client = await nats.connect(hub.url)
        try:
            info = await client.jetstream().stream_info(STREAM)
        finally:
            await client.close()
    assert agent.returncode == 0, said.decode()
    assert f"results to {leaf.url} stream {STREAM} in JetStream domain {LEAF};" in said.decode()
    assert sources_leaf(info.config, LEAF), info.config.sources
    assert f'commwatch_central_leaf_inactive_seconds{{domain="{LEAF}"}}' in served
    results = {line.get("check_id") for line in shown if line["type"] == "result"}
    assert "north/fibre/tcp-0" in results, shown


DISTRIBUTED = REPO / "docs" / "distributed.md"
NORTH_PASSWORD = "north-leaf-user-pw-5d1e8b"
WATCHER = {"user": "watcher", "password": "leaf-watcher-pw-2c7f0a"}  # the test's own


def documented_leaf_authorization() -> str:
    """The leaf node's `authorization` block docs/distributed.md gives, the password put in,
    and a user of the test's own that may do anything, to watch the leaf's stream."""
    text = DISTRIBUTED.read_text(encoding="utf-8")
    text = text.split("#### A leaf node with JetStream: results queue at the site", 1)[1]
    (block,) = [b for b in text.split("```conf\n")[1:] if b.startswith("authorization {")]
    block = block.split("```", 1)[0]
    assert "PSAP_NORTH_PASSWORD" in block
    watcher = f"{{user: {WATCHER['user']}, password: {WATCHER['password']}}}\n"
    return block.replace("PSAP_NORTH_PASSWORD", NORTH_PASSWORD).replace(
        "users = [\n", "users = [\n    " + watcher, 1
    )


async def test_an_agent_behind_a_leaf_node_with_the_documented_permissions(
    tmp_path: Path, start_central: StartCentral
) -> None:
    """The leaf node's users as docs/distributed.md gives them: psap-north makes its leaf's
    stream, puts its heartbeat in the hub's bucket and its results reach the central through
    the source, none refused; a client with its password publishing in another agent's name
    at the leaf is refused."""
    domain = "psap-north"
    (tmp_path / "psap-north.password").write_text(NORTH_PASSWORD + "\n")
    config = documented_leaf_authorization()
    async with (
        peers(1) as ports,
        hub_and_leaf(tmp_path / "nats", domain, leaf_config=config, leaf_client=WATCHER) as (
            hub,
            leaf,
        ),
    ):
        cluster = f"domain: {HUB_DOMAIN}, leaf_domains: [{domain}]"
        async with permitted_agent(
            start_central,
            tmp_path,
            ports,
            hub,
            leaf,
            "psap-north",
            cluster,
            "--leaf-domain",
            domain,
        ):
            assert await queued_at(leaf, **WATCHER) >= 1
            forger = await nats.connect(leaf.url, user="psap-north", password=NORTH_PASSWORD)
            refusals: list[str] = []

            async def told(exc: Exception) -> None:
                refusals.append(str(exc).lower())

            forger._error_cb = told  # nats-py calls it with the server's -ERR
            try:
                await forger.publish(f"{QUEUED_PREFIX}.north.psap-south", b"{}")
                await forger.flush()

                async def refused() -> bool | None:
                    return True if any("permissions violation" in r for r in refusals) else None

                await poll("the forged publish refused", refused, timeout=10)
            finally:
                await forger.close()


def test_a_spooled_subject_goes_under_the_prefix_its_agent_publishes_with_now():
    results, queued = f"{SUBJECT_PREFIX}.north.{AGENT}", f"{QUEUED_PREFIX}.north.{AGENT}"
    assert under(results, QUEUED_PREFIX) == queued
    assert under(queued, SUBJECT_PREFIX) == results
    assert under(queued, QUEUED_PREFIX) == queued
    assert under("other.north.x", QUEUED_PREFIX) == "other.north.x"


async def test_a_result_spooled_before_the_agent_moved_behind_the_leaf_reaches_the_central(
    tmp_path: Path, probing: Callable[[Agent], asyncio.Task[None]]
) -> None:
    """An agent that spooled while it published to the hub's stream, restarted behind its
    site's leaf node with JetStream: the spooled result goes to the leaf's stream too, not to
    commwatch.results.> at the leaf (which, during a WAN outage, nothing would take)."""
    async with peers(1) as ports, hub_and_leaf(tmp_path / "nats", LEAF) as (hub, leaf):
        inventory = leaf_inventory(tmp_path, ports, hub.url)
        central_cluster, agent_cluster = clusters(inventory, leaf)
        ref = inventory.checks[0].ref
        earlier = ProbeResult(ref, time.time() - 60, 1.0, Severity.OK)
        spooled = outgoing(AGENT, earlier)
        assert spooled.subject.startswith(f"{SUBJECT_PREFIX}.")
        async with running_central(central_cluster, inventory) as central:
            agent, _ = counted_agent(tmp_path, AGENT, inventory, agent_cluster)
            agent.spool.append(spooled)
            probing(agent)
            # As the record carries it, to the millisecond.
            await central.until(
                lambda: iso_time(earlier.started_at) in [iso_time(at) for _, at in central.shown],
                "the spooled result",
            )
        messages = await stream_messages(hub.url, subjects="")
    [first] = [m for m in messages if m.headers["Nats-Msg-Id"] == spooled.msg_id]
    assert first.subject == f"{QUEUED_PREFIX}.north.{AGENT}"


async def test_a_hubs_stream_that_takes_the_leaf_nodes_subjects_itself_is_refused(
    tmp_path: Path,
) -> None:
    """With leaf domains, a hub's stream that also takes leaf nodes' subjects (an operator's
    `commwatch.queued.*.*`, or `commwatch.>`) would store each leaf's results twice, straight
    and sourced: refused, in words that say what to change; without leaf domains it serves."""
    async with running_nats(tmp_path / "nats") as server:
        client = await nats.connect(server.url)
        try:
            js = client.jetstream()
            await js.add_stream(name=STREAM, subjects=[SUBJECTS, "commwatch.queued.*.*"])
            with pytest.raises(StreamError) as refused:
                await ensure_stream(js, STREAM, leaves=(LEAF,))
            assert await ensure_stream(js, STREAM) is None
            assert not (await js.stream_info(STREAM)).config.sources
        finally:
            await client.close()
    assert str(refused.value) == (
        f"stream {STREAM} takes commwatch.queued.*.*, which holds the leaf nodes' "
        "commwatch.queued.>: their results would come straight across the leaf links as well as "
        "sourced, twice and out of order; take it out of the stream's subjects"
    )


@pytest.mark.parametrize(
    ("pattern", "takes"),
    [
        ("commwatch.>", True),
        ("commwatch.queued.>", True),
        ("commwatch.*.site.agent", True),
        ("commwatch.results.>", False),
        ("commwatch.queued.*", False),
        ("commwatch.queued.site.agent.more", False),
        (">", True),
    ],
)
def test_which_subjects_take_the_leaf_nodes_results(pattern: str, takes: bool) -> None:
    assert stream._covers(pattern, stream.QUEUED_SAMPLE) is takes
