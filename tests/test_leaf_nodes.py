"""An agent at a site behind a NATS leaf node without JetStream of its own, the central on the
hub whose JetStream has the domain `hub` (tests/peers/nats_peers.py, `running_hub_and_leaf`):
with `cluster: domain: hub` the agent makes sure of the stream, publishes, puts its heartbeat
and follows the others' through the leaf, and the central assigns it its checks. Then the WAN
outage: the hub stopped for 30 s while the agent probes (its connection to the leaf stays up),
started again; the central has every result, in order per check, none shown or stored twice,
and the agent, which could not hear the others meanwhile, judged nobody gone. And the two
commands, the domain given to the agent by `--js-domain`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import nats
import pytest

from monitor.cluster import buckets, connection
from monitor.cluster.agent import Agent
from monitor.cluster.assignment import DEFAULT_POOL, share
from monitor.cluster.membership import Heartbeat, Member, Membership, decode
from monitor.cluster.spool import Spool
from monitor.config.cluster import ClusterConfig
from monitor.config.inventory import Check
from monitor.config.loader import load_inventory
from tests.central_support import (
    RunningCentral,
    assert_every_run_once,
    counted_agent,
    running_central,
)
from tests.conftest import REPO, StartCentral
from tests.peers.nats_peers import HUB_DOMAIN, NatsServer, hub_through, running_hub_and_leaf
from tests.peers.prometheus_peers import poll
from tests.test_central_cli import lines_until, stop
from tests.test_cluster_agent import (
    OUTAGE,
    check_results,
    inventory_text,
    start_agent,
    started_ns,
    stream_messages,
    tcp_peers,
)
from tests.test_cluster_ops import PASSWORDS, documented_authorization

AGENT = "north-1"
OTHER = "north-2"  # an agent of the pool on the hub's side of the WAN


async def seen_on_the_hub(
    central: RunningCentral, cluster: ClusterConfig, checks: Sequence[Check]
) -> None:
    """The agent's heartbeat, put through the leaf, read on the hub; and the central's view of
    the live agents (as its admission follows them) giving the agent every check."""
    js = connection.jetstream(central.client, cluster.domain)
    kv = await buckets.key_value(js, buckets.AGENTS, cluster.heartbeat_ttl)
    entry = await kv.get(AGENT)
    assert entry.value is not None
    assert decode(AGENT, entry.value).pools == frozenset({DEFAULT_POOL})
    membership = Membership(cluster.heartbeat_ttl, domain=cluster.domain)
    following = asyncio.create_task(membership.follow(central.client))
    try:
        await asyncio.wait_for(membership.ready.wait(), 30)
        assert membership.roster().pools_of == {AGENT: frozenset({DEFAULT_POOL})}
        assert len(share(AGENT, checks, membership.roster())) == len(checks)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)


def in_roster(agent: Agent, name: str) -> Callable[[], Awaitable[bool | None]]:
    async def there() -> bool | None:
        return True if name in agent.membership.roster().pools_of else None

    return there


async def test_an_agent_behind_a_leaf_node_outlives_a_wan_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="commwatch")
    async with tcp_peers(3) as ports, running_hub_and_leaf(tmp_path / "nats") as (hub, leaf):
        path = tmp_path / "inventory.yaml"
        cluster = f"cluster: {{nats: {{url: {hub.url}}}, domain: {HUB_DOMAIN}}}"
        # One check of the agent's own, two of the pool default.
        path.write_text(
            f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
            + inventory_text(ports, cluster, vantages=[AGENT, "", ""])
        )
        inventory = load_inventory(path)
        central_cluster = inventory.cluster
        assert central_cluster is not None and central_cluster.domain == HUB_DOMAIN
        # The site's agent is given its leaf node's URL (as --nats does), the same domain.
        agent_cluster = dataclasses.replace(
            central_cluster, nats=dataclasses.replace(central_cluster.nats, url=leaf.url)
        )
        agent, runs = counted_agent(tmp_path, AGENT, inventory, agent_cluster)
        probing = asyncio.create_task(agent.run())
        try:
            async with running_central(central_cluster, inventory) as central:
                await central.until(lambda: len(central.shown) >= 6, "the first results")
                await asyncio.wait_for(agent.membership.ready.wait(), 30)  # read via the leaf
                await seen_on_the_hub(central, central_cluster, inventory.checks)
                # Another agent of the pool, at the hub's side of the WAN.
                other = Member(OTHER, frozenset({DEFAULT_POOL}), time.time(), 1)
                beat = Heartbeat(other, 1.0, central_cluster.heartbeat_ttl, domain=HUB_DOMAIN)
                beating = asyncio.create_task(beat.beat(central.client))
                try:
                    await poll("the agent sees the other agent", in_roster(agent, OTHER), 30)
                    await wan_outage(hub, leaf, agent, agent.spool)
                    # Not heard from for longer than its TTL, but the agent could not hear.
                    assert OTHER in agent.membership.roster().pools_of, "judged unheard"
                    await poll("the other agent's heartbeat back", in_roster(agent, OTHER), 30)
                finally:
                    beating.cancel()
                    await asyncio.gather(beating, return_exceptions=True)
                # The agent's watch carries on after the outage: the other's withdrawal reaches
                # it through the leaf.
                await poll("the central back", lambda: central_connected(central), 30)
                await beat.withdraw(central.client)
                gone = in_roster(agent, OTHER)
                await poll("the other agent gone", lambda: absent(gone), 30)
                agent.stop()
                await asyncio.wait_for(probing, 60)
                assert agent.spool.depth == 0, "results left unpublished"
                made = list(runs.made)
                await central.until(lambda: len(central.shown) >= len(made), "every result", 90)
                shown = list(central.shown)
        finally:
            agent.stop()
            await asyncio.wait_for(probing, 60)
            agent.spool.close()
        messages = await stream_messages(hub.url, at_least=len(runs.msg_ids))
    said = [record.getMessage() for record in caplog.records]
    # What the site's operator reads while the hub is away.
    assert any(
        line.startswith("NATS did not take a result (no stream took it: ")
        and "or a leaf node in between is cut off from its hub" in line
        for line in said
    ), said
    assert any(line.startswith("no JetStream takes this agent's heartbeat") for line in said)
    assert_every_run_once(inventory, made, shown)
    stored = [m.headers["Nats-Msg-Id"] for m in messages]
    assert len(stored) == len(set(stored)), "a result stored twice in the stream"
    assert set(stored) == runs.msg_ids
    for check, ids in check_results(messages).items():
        assert ids == sorted(ids, key=started_ns), f"{check} out of order in the stream"


async def wan_outage(hub: NatsServer, leaf: NatsServer, agent: Agent, spool: Spool) -> None:
    """The hub stopped for OUTAGE seconds while the agent probes and spools (its connection
    to the leaf, and the leaf, stay up), started again; return once the spool is replayed."""
    hub.stop()

    async def spooling() -> bool | None:
        return True if spool.depth >= 3 else None

    await poll("results spooled while the hub is away", spooling, timeout=30)
    await asyncio.sleep(OUTAGE)  # the outage itself: probing goes on meanwhile
    assert agent.figures().connected, "the agent's link to its leaf node broke"
    assert spool.depth >= int(OUTAGE / 2), "results did not queue in the spool"
    await hub.start()
    await hub_through(leaf)

    async def replayed() -> bool | None:
        figures = agent.figures()
        return True if figures.replayed and figures.spooled == 0 else None

    await poll("the spool replayed after the hub came back", replayed, timeout=90)


async def central_connected(central: RunningCentral) -> bool | None:
    return True if central.client.is_connected else None


async def absent(there: Callable[[], Awaitable[bool | None]]) -> bool | None:
    return None if await there() else True


async def agent_at_leaf(
    inventory: Path, leaf: NatsServer, *flags: str
) -> asyncio.subprocess.Process:
    """`commwatch agent INVENTORY --name AGENT --nats LEAF FLAGS...`, its stderr piped."""
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "monitor.cli", "agent", str(inventory), "--name", AGENT),
        *("--nats", leaf.url, *flags),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_the_commands_with_the_domain_given_on_the_command_line(
    tmp_path: Path, start_central: StartCentral
) -> None:
    """`commwatch agent --nats LEAF --js-domain hub` beside `commwatch central --nats HUB`, from
    an inventory without `domain:`: a central on the hub needs none, the agent's results reach
    it, and the agent's start line names the domain."""
    async with tcp_peers(1) as ports, running_hub_and_leaf(tmp_path / "nats") as (hub, leaf):
        path = tmp_path / "inventory.yaml"
        path.write_text(
            f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
            + inventory_text(ports, f"cluster: {{spool: {{path: {tmp_path / 'spool.sqlite3'}}}}}")
        )
        central = await start_central(path, hub.url)
        agent = await agent_at_leaf(path, leaf, "--js-domain", HUB_DOMAIN)
        try:
            shown = await lines_until(central, 3)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, said = await asyncio.wait_for(agent.communicate(), 20)
            await stop(central)
    assert agent.returncode == 0, said.decode()
    assert f"results to {leaf.url} stream COMMWATCH_RESULTS in JetStream domain hub;" in (
        said.decode()
    )
    results = {line.get("check_id") for line in shown if line["type"] == "result"}
    assert "north/fibre/tcp-0" in results, shown


def inventories(tmp_path: Path, ports: list[int], user: str, cluster: str) -> tuple[Path, Path]:
    """The agent's inventory, with `user`'s password from `tmp_path/USER.password`, and the
    central's, without credentials (the hub here takes none); `cluster`: the rest of both
    `cluster:` sections."""
    agent_path, central_path = tmp_path / "inventory.yaml", tmp_path / "central.yaml"
    credentials = f"{{user: {user}, password_file: {tmp_path / f'{user}.password'}}}"
    for written, nats_section in (
        (agent_path, f"nats: {{credentials: {credentials}}}, "),
        (central_path, ""),
    ):
        written.write_text(
            f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
            + inventory_text(ports, f"cluster: {{{nats_section}{cluster}}}")
        )
    return agent_path, central_path


async def agents_bucket_made(url: str) -> None:
    """Return once the heartbeats' bucket exists (a central makes it; the documented agents'
    users may not)."""
    client = await nats.connect(url)
    try:

        async def made() -> bool | None:
            try:
                return bool(await client.jetstream().stream_info("KV_commwatch_agents"))
            except nats.js.errors.NotFoundError:
                return None

        await poll("the heartbeats' bucket", made, timeout=30)
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def permitted_agent(
    start_central: StartCentral,
    tmp_path: Path,
    ports: list[int],
    hub: NatsServer,
    leaf: NatsServer,
    name: str,
    cluster: str,
    *flags: str,
) -> AsyncIterator[None]:
    """The commands with the documented permissions: a central on the hub (it makes the
    stream and the heartbeats' bucket, which an agent's user may not), then `commwatch agent
    --name NAME FLAGS...` at the leaf as its own user (`inventories`). The block runs once the
    central shows results and the agent's heartbeat is in the hub's bucket; then both stop,
    and the agent must have exited 0 with nothing refused and nothing spooled."""
    path, central_path = inventories(tmp_path, ports, name, cluster)
    central = await start_central(central_path, hub.url)
    await agents_bucket_made(hub.url)
    agent = start_agent(
        tmp_path / "agent",
        *(str(path), "--name", name, "--nats", leaf.url, *flags),
        *("--spool", str(tmp_path / "spool.sqlite3")),
    )
    try:
        shown = await lines_until(central, 3)
        client = await nats.connect(hub.url)
        try:
            kv = await buckets.key_value(client.jetstream(), buckets.AGENTS, 15.0)
            assert (await kv.get(name)).value
        finally:
            await client.close()
        yield
    finally:
        code = agent.stop()
        await stop(central)
    said = agent.stderr()
    assert code == 0, said
    assert "does not let" not in said and "spooling" not in said, said
    results = {line.get("check_id") for line in shown if line["type"] == "result"}
    assert "north/fibre/tcp-0" in results, shown


def behind_a_leaf(block: str) -> str:
    """The hub's documented `authorization` block as docs/distributed.md says it changes for
    a leaf node without JetStream: `$JS.hub.API.` for `$JS.API.`, the heartbeat's key under
    the hub's API prefix."""
    return block.replace("$JS.API.", f"$JS.{HUB_DOMAIN}.API.").replace(
        "$KV.commwatch_agents.", f"$JS.{HUB_DOMAIN}.API.$KV.commwatch_agents."
    )


async def test_an_agent_behind_a_leaf_node_with_the_documented_permissions(
    tmp_path: Path, start_central: StartCentral
) -> None:
    """The leaf node's users as docs/distributed.md says they change behind a leaf without
    JetStream: psap-south's results reach the central on the hub, its heartbeat the hub's
    bucket, nothing it does refused."""
    (tmp_path / "psap-south.password").write_text(PASSWORDS["PSAP_SOUTH_PASSWORD"] + "\n")
    watcher = {"user": "central", "password": PASSWORDS["CENTRAL_PASSWORD"]}
    config = behind_a_leaf(documented_authorization())
    async with (
        tcp_peers(1) as ports,
        running_hub_and_leaf(tmp_path / "nats", leaf_config=config, leaf_client=watcher) as (
            hub,
            leaf,
        ),
        permitted_agent(
            start_central, tmp_path, ports, hub, leaf, "psap-south", f"domain: {HUB_DOMAIN}"
        ),
    ):
        pass  # the helper's checks are the test
