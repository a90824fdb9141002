"""A three-node NATS cluster with JetStream on loopback (tests/peers/nats_peers.py) and the
results stream replicated three times: an agent publishes, a central consumes, both given every
node's URL; the stream's leader node is SIGKILLed mid-way (the agent's own node, so that the
agent has to move), then the central's node; no result is lost, none is stored or shown twice,
each check's results stay in order, and both carry on through the other nodes."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import nats
import pytest

from monitor.cluster.agent import Agent
from monitor.cluster.spool import Spool
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from tests.central_support import (
    RunningCentral,
    Runs,
    assert_every_run_once,
    counted_agent,
    running_central,
)
from tests.peers.nats_peers import NatsCluster, NatsServer, running_nats_cluster
from tests.peers.prometheus_peers import poll
from tests.test_cluster_agent import STREAM, inventory_text, stream_messages, tcp_peers

AGENT = "north-1"
AGENT_CLIENT = f"commwatch-agent {AGENT}"  # the name the agent gives NATS
CENTRAL_CLIENT = "commwatch-central"


def cluster_inventory(tmp_path: Path, ports: list[int], url: str) -> Inventory:
    path = tmp_path / "inventory.yaml"
    servers = ", ".join(url.split(","))
    path.write_text(
        f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
        + inventory_text(ports, f"cluster: {{nats: {{url: [{servers}]}}, replicas: 3}}")
    )
    return load_inventory(path)


async def carried_on(agent: Agent, central: RunningCentral, what: str) -> None:
    """Ten more results published and the central showing ten more."""
    published, shown = agent.figures().published, len(central.shown)

    async def more() -> bool | None:
        return True if agent.figures().published >= published + 10 else None

    await poll(f"{what}: the agent publishes", more, timeout=90)
    await central.until(lambda: len(central.shown) >= shown + 10, f"{what}: shows more", 90)


async def kill(cluster: NatsCluster, node: NatsServer, client: str) -> None:
    """SIGKILL `node`; return once `client` is connected to another node."""
    node.stop(signal.SIGKILL)

    async def moved() -> bool | None:
        return True if await cluster.client_node(client) is not node else None

    await poll(f"{client} on another node", moved, timeout=60)


async def test_the_stream_leader_node_killed_loses_no_result(tmp_path: Path) -> None:
    async with tcp_peers(5) as ports, running_nats_cluster(tmp_path / "nats") as cluster:
        inventory = cluster_inventory(tmp_path, ports, cluster.url)
        config = inventory.cluster
        assert config is not None and config.nats.servers == cluster.url.split(",")
        agent, runs = counted_agent(tmp_path, AGENT, inventory, config)
        probing = asyncio.create_task(agent.run())
        try:

            async def published() -> bool | None:
                return True if agent.figures().published >= 5 else None

            await poll("the agent made the stream and publishes", published, timeout=60)
            async with running_central(config, inventory) as central:
                await carried_on(agent, central, "at first")
                info = await stream_info(cluster)
                assert info.config.num_replicas == 3
                assert info.cluster is not None and len(info.cluster.replicas or []) == 2

                # The stream's leader on the agent's node: killing it moves both.
                agent_node = await cluster.client_node(AGENT_CLIENT)
                leader = await cluster.stream_leader(STREAM)
                for _ in range(20):
                    if leader is agent_node:
                        break
                    leader = await cluster.step_down(STREAM)
                assert leader is agent_node, "the stream's leadership never came to the agent"
                await kill(cluster, leader, AGENT_CLIENT)
                await carried_on(agent, central, "after the stream leader's node died")
                assert await cluster.stream_leader(STREAM) is not leader
                await leader.start()
                await cluster.ready()

                # Then the central's node (if the first kill did not move it already).
                central_node = await cluster.client_node(CENTRAL_CLIENT)
                if central_node is not leader:
                    await kill(cluster, central_node, CENTRAL_CLIENT)
                    await carried_on(agent, central, "after the central's node died")
                    await central_node.start()
                    await cluster.ready()
                assert await cluster.client_node(CENTRAL_CLIENT) is not central_node

                agent.stop()
                await asyncio.wait_for(probing, 60)
                assert agent.spool.depth == 0, "results left unpublished"
                made = list(runs.made)
                await central.until(
                    lambda: len(central.shown) >= len(made), "every result the agent made", 90
                )
                shown = list(central.shown)
        finally:
            agent.stop()
            await asyncio.wait_for(probing, 60)
            agent.spool.close()
        await cluster.stream_leader(STREAM)
        messages = await stream_messages(cluster.url.split(","), at_least=len(runs.msg_ids))
        stored = [message.headers["Nats-Msg-Id"] for message in messages]
    assert_every_run_once(inventory, made, shown)
    assert len(stored) == len(set(stored)) and set(stored) == runs.msg_ids


async def stream_info(cluster: NatsCluster) -> Any:
    client = await nats.connect(cluster.url.split(","))
    try:
        return await client.jetstream().stream_info(STREAM)
    finally:
        await client.close()


async def test_a_majority_of_the_nodes_down_spools_until_one_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two of the three nodes killed: the one left takes connections but no results (the
    stream has no majority); the agent says why and spools, and replays once a node is back."""
    caplog.set_level(logging.WARNING, logger="commwatch.agent")
    async with tcp_peers(3) as ports, running_nats_cluster(tmp_path / "nats") as cluster:
        inventory = cluster_inventory(tmp_path, ports, cluster.url)
        assert inventory.cluster is not None
        spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=10 * 1024**2)
        runs = Runs(AGENT)
        agent = Agent(
            AGENT, inventory.checks, inventory.concurrency, inventory.cluster, spool, runner=runs
        )
        probing = asyncio.create_task(agent.run())
        try:

            async def published(count: int) -> bool | None:
                return True if agent.figures().published >= count else None

            await poll("publishing", lambda: published(3), timeout=60)
            survivor = await cluster.client_node(AGENT_CLIENT)
            down = [node for node in cluster.nodes if node is not survivor]
            for node in down:
                node.stop(signal.SIGKILL)

            async def spooled() -> bool | None:
                return True if spool.depth >= 6 and agent.figures().connected else None

            await poll("spooling, still connected to the survivor", spooled, timeout=60)
            await down[0].start()
            await cluster.ready()
            await poll("the spool replayed", lambda: replayed(agent, spool), timeout=90)
            agent.stop()
            await asyncio.wait_for(probing, 60)
            assert agent.spool.depth == 0, "results left unpublished"
        finally:
            agent.stop()
            await asyncio.wait_for(probing, 60)
            agent.spool.close()
        await cluster.stream_leader(STREAM)
        messages = await stream_messages(cluster.url.split(","), at_least=len(runs.msg_ids))
    said = [record.getMessage() for record in caplog.records]
    # Unanswered, or answered that no stream takes it: as the survivor sees its lost peers.
    told = [line for line in said if line.startswith("NATS did not take a result (")]
    assert told and all("a majority of" in line and "replicas is down" in line for line in told)
    stored = [message.headers["Nats-Msg-Id"] for message in messages]
    assert len(stored) == len(set(stored)) and set(stored) == runs.msg_ids


async def replayed(agent: Agent, spool: Spool) -> bool | None:
    figures = agent.figures()
    return True if figures.replayed > 0 and spool.depth == 0 else None
