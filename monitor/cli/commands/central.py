"""`commwatch central`: the engine of the agents' results. It probes nothing: what agents
publish to the results stream on NATS JetStream reaches it through a durable consumer
(monitor.cluster.central) and goes through what follows the probes in `commwatch run`: the
state engine, history, alerts, a line per result and state change, and the API with
`--listen` or an `api:` section."""

from __future__ import annotations

import argparse
import asyncio
import sys

from monitor.cli.cluster_extra import cluster_selection
from monitor.cli.commands.run import watch
from monitor.cli.commands.selection import Selection
from monitor.cli.commands.sweep import stop_on_signals
from monitor.cli.parsing import EXIT_UNKNOWN
from monitor.config.cluster import ClusterConfig


def run(args: argparse.Namespace) -> int:
    started = cluster_selection("central", args)
    if isinstance(started, int):
        return started
    selected, cluster = started
    return asyncio.run(_central(selected, cluster, args))


async def _central(selected: Selection, cluster: ClusterConfig, args: argparse.Namespace) -> int:
    # The cluster code loads once nats-py is known to be there and the inventory is good.
    from monitor.cluster.central import ResultConsumer, connect
    from monitor.cluster.stream import StreamError, ensure_stream

    print(
        f"commwatch central: results from {cluster.nats.url} stream {cluster.stream} "
        f"(checks: {len(selected.checks)})",
        file=sys.stderr,
        flush=True,
    )
    connecting = asyncio.create_task(connect(cluster.nats))

    def give_up() -> None:
        connecting.cancel()

    stop_on_signals(give_up)  # until the engine runs and takes the signals over
    try:
        client = await connecting
    except asyncio.CancelledError:
        print("commwatch central: stopped before NATS answered", file=sys.stderr)
        return EXIT_UNKNOWN
    consumer = None
    try:
        js = client.jetstream()
        await ensure_stream(js, cluster.stream)
        inventory = selected.inventory
        history = None if args.no_history else inventory.resilience.history.path
        consumer = ResultConsumer(js, selected.checks, stream=cluster.stream, history=history)
        return await watch(inventory, selected.checks, args, source=consumer)
    except StreamError as exc:
        print(f"commwatch central: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    finally:
        if consumer is not None:
            await consumer.aclose()
        await client.drain()  # the last acknowledgements go out before it closes
