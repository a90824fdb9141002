"""`commwatch agent`: probe the selected checks here and publish every result to the results
stream on NATS JetStream (monitor.cluster.agent), spooling them while NATS cannot be reached;
a central engine elsewhere judges them. No state engine, history or alerts run here. With
`--listen`, `/healthz` and `/metrics` are served beside it (monitor.cluster.agent_api)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ssl
import sys
from typing import TYPE_CHECKING

from monitor.cli.cluster_extra import cluster_selection
from monitor.cli.commands.run import served_api
from monitor.cli.commands.sweep import stop_on_signals
from monitor.cli.parsing import EXIT_UNKNOWN
from monitor.config.api import ApiConfig
from monitor.core.options import OptionError
from monitor.core.paths import state_dir

if TYPE_CHECKING:
    from monitor.cluster.agent import Agent


def run(args: argparse.Namespace) -> int:
    started = cluster_selection("agent", args)
    if isinstance(started, int):
        return started
    selected, cluster = started
    if args.leaf_domain is not None:
        if cluster.domain is None or cluster.domain == args.leaf_domain:
            print(
                f"commwatch agent: --leaf-domain {args.leaf_domain} needs the hub's own "
                "JetStream domain, another one, in cluster: domain: or --js-domain: the "
                "heartbeats go to the hub's buckets across the leaf node",
                file=sys.stderr,
            )
            return EXIT_UNKNOWN
        cluster = dataclasses.replace(cluster, leaf_domain=args.leaf_domain)
    # The cluster code loads once nats-py is known to be there and the inventory is good.
    from monitor.cluster.agent import Agent
    from monitor.cluster.assignment import DEFAULT_POOL
    from monitor.cluster.spool import Spool, SpoolError

    path = args.spool or cluster.spool.path or state_dir() / f"spool-{args.name}.sqlite3"
    try:
        spool = Spool(path, cluster.spool.max_age, cluster.spool.max_bytes)
    except SpoolError as exc:
        print(f"commwatch agent: {exc}; nothing was run", file=sys.stderr)
        return EXIT_UNKNOWN
    try:
        figures = spool.figures()
        pools = tuple(dict.fromkeys(args.pool or [DEFAULT_POOL]))
        start_line = (
            f"commwatch agent {args.name} (pool {', '.join(pools)}): "
            f"{len(selected.checks)} checks, results to "
            f"{cluster.results_at}; spool {path} ({figures.depth} waiting, "
            f"{figures.dropped} ever dropped)"
        )
        agent = Agent(
            args.name,
            selected.checks,
            selected.inventory.concurrency,
            cluster,
            spool,
            pools=pools,
        )
        # The api: section's TLS and tokens; its listen: is the central's, so only --listen.
        served = None if args.listen is None else served_api(selected.inventory, args)
        return asyncio.run(_run(agent, served, start_line))
    except (SpoolError, OptionError, ssl.SSLError) as exc:
        print(f"commwatch agent: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    finally:
        spool.close()


async def _run(agent: Agent, served: ApiConfig | None, start_line: str) -> int:
    # Said once SIGINT and SIGTERM stop the agent cleanly: a supervisor that stops it as soon
    # as it has said it started gets exit 0 and its spool closed, not death by the signal.
    stop_on_signals(agent.stop)
    print(start_line, file=sys.stderr, flush=True)
    if served is None:
        return await _probe(agent)
    # aiohttp and the API load only for an agent that serves.
    from monitor.api.server import ApiStartError, Listener
    from monitor.cluster.agent_api import agent_app

    listener = Listener(served, lambda tokens: agent_app(agent, served, tokens))
    try:
        await listener.start()  # before probing: nothing has run when it cannot
    except ApiStartError as exc:
        print(f"commwatch agent: {exc}; nothing was run", file=sys.stderr)
        return EXIT_UNKNOWN
    print(
        f"commwatch agent {agent.name}: serving /healthz and /metrics on {listener.url}",
        file=sys.stderr,
        flush=True,
    )
    try:
        return await _probe(agent)
    finally:
        await listener.stop()


async def _probe(agent: Agent) -> int:
    await agent.run()
    figures = agent.figures()
    print(
        f"commwatch agent {agent.name}: stopped; {figures.published} results published, "
        f"{figures.spooled} in the spool, {figures.dropped} ever dropped",
        file=sys.stderr,
    )
    return 0
