"""`commwatch central`: the engine of the agents' results. It probes nothing: what agents
publish to the results stream on NATS JetStream reaches it through a durable consumer of its
own (monitor.cluster.central) and goes through what follows the probes in `commwatch run`: the
state engine, history, alerts, a line per result and state change, and the API with
`--listen` or an `api:` section.

Several centrals may run at once, each with its own name, consumer and history: each judges
every result; the one holding the leader lease (monitor.cluster.lease) sends the notifications,
the others fill their outboxes and mark sent what it delivered (monitor.cluster.notified)."""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import sys
from typing import TYPE_CHECKING

from monitor.cli.cluster_extra import cluster_selection
from monitor.cli.commands.run import watch
from monitor.cli.commands.selection import Selection
from monitor.cli.commands.sweep import Signalled, until_signalled
from monitor.cli.parsing import EXIT_UNKNOWN
from monitor.config.cluster import ClusterConfig, vantage_name

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext


def run(args: argparse.Namespace) -> int:
    started = cluster_selection("central", args)
    if isinstance(started, int):
        return started
    selected, cluster = started
    return asyncio.run(_central(selected, cluster, args))


def central_name(host: str) -> str:
    """A central's name from a host name: its first label, lower-cased, every run of other
    characters than letters, digits, '-' and '_' made one '-'; `central` when nothing is left."""
    label = host.split(".")[0].lower()
    name = re.sub(r"[^a-z0-9_-]+", "-", label).lstrip("-_")[:63]
    return vantage_name(name or "central")


async def _central(selected: Selection, cluster: ClusterConfig, args: argparse.Namespace) -> int:
    # The cluster code loads once nats-py is known to be there and the inventory is good.
    from monitor.cluster.admission import admitting
    from monitor.cluster.central import ResultConsumer, connect, durable_name
    from monitor.cluster.connection import jetstream
    from monitor.cluster.lease import Lease, LeaseError, open_lease_bucket
    from monitor.cluster.metrics import CentralMetrics, leaves_of
    from monitor.cluster.notified import LeaderGate, open_notified_bucket
    from monitor.cluster.routes import cluster_routes
    from monitor.cluster.stream import StreamError

    name = args.name or central_name(socket.gethostname())
    consumer_name = durable_name(name)
    # Until the engine runs and takes the signals over; begun before the start line, so that
    # a supervisor stopping it once it said it started never kills it by the signal.
    connecting = until_signalled(connect(cluster.nats))
    print(
        f"commwatch central {name}: results from {cluster.results_at} "
        f"(checks: {len(selected.checks)}), consumer {consumer_name}",
        file=sys.stderr,
        flush=True,
    )
    try:
        client = await connecting
    except Signalled:
        print("commwatch central: stopped before NATS answered", file=sys.stderr)
        return EXIT_UNKNOWN
    consumer = lease = leasing = None
    try:
        js = jetstream(client, cluster.domain)
        if not await _stream_made(js, cluster):
            return EXIT_UNKNOWN
        inventory = selected.inventory
        alerts = inventory.resilience.alerts
        delivers = not args.no_alerts and bool(alerts.notifiers)
        kv, ttl = await open_lease_bucket(js, cluster.lease_ttl)
        lease = Lease(kv, name, ttl, compete=delivers)
        notified = await open_notified_bucket(js, alerts.retention) if delivers else None
        gate = None if notified is None else LeaderGate(lease, notified)
        leasing = asyncio.create_task(lease.run(), name="commwatch-lease")
        history = None if args.no_history else inventory.resilience.history.path
        async with admitting(client, cluster) as admission:
            consumer = ResultConsumer(
                js,
                selected.checks,
                stream=cluster.stream,
                history=history,
                durable=consumer_name,
                admission=admission,
            )
            metrics = CentralMetrics(consumer, client, lease.figures, leaves_of(client, cluster))
            return await watch(
                inventory,
                selected.checks,
                args,
                source=consumer,
                arrivals=consumer.arrivals,
                alert_gate=gate,
                attachments=(cluster_routes(lease, consumer_name),),
                metric_sources=(metrics,),
            )
    except (StreamError, LeaseError) as exc:
        print(f"commwatch central: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    finally:
        # The lease goes last: once alerting stopped, nothing more is delivered by this one.
        if lease is not None and leasing is not None:
            lease.stop()
            await leasing
            await lease.release()
        if consumer is not None:
            await consumer.aclose()
        await client.drain()  # the last acknowledgements go out before it closes


async def _stream_made(js: JetStreamContext, cluster: ClusterConfig) -> bool:
    """The results stream made sure of, JetStream waited for as NATS is (a cluster may be
    electing its leaders; a signal ends the wait: False), what differs from the configuration
    said; StreamError when it cannot serve."""
    from monitor.cluster.stream import ensure_stream_patiently

    try:
        differs = await until_signalled(
            ensure_stream_patiently(js, cluster.stream, cluster.replicas, cluster.leaf_domains)
        )
    except Signalled:
        print("commwatch central: stopped before JetStream answered", file=sys.stderr)
        return False
    if differs is not None:
        print(f"commwatch central: {differs}", file=sys.stderr, flush=True)
    return True
