"""`commwatch run`: the selected checks headless, one sweep (`--once`: one JSON document or a
table, exit code the worst severity) or continuously (one line per result and per state change,
until SIGINT/SIGTERM), the engine served over HTTP beside it with `--listen` or an `api:`
section (monitor.api.server), SNMP traps and informs taken with `--traps` or a `traps:` section
(monitor.engine.traps). With `--workers N` above 1 the probes run in N processes
(monitor.cluster.workers) and everything else here, unchanged."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from monitor.cli.commands.selection import selection
from monitor.cli.commands.sweep import collect, interrupted, stop_on_signals
from monitor.cli.parsing import EXIT_UNKNOWN
from monitor.cli.values import worker_count
from monitor.config.api import ApiConfig, Listen
from monitor.config.inventory import Check, Inventory
from monitor.config.traps import TrapsConfig
from monitor.core.events import Event, EventKind
from monitor.core.model import ProbeResult
from monitor.core.text import printable
from monitor.engine import paths
from monitor.engine.views import group_summaries, sweep_state
from monitor.output import records, tables, terminal

if TYPE_CHECKING:
    from monitor.alerts.dispatcher import Gate
    from monitor.api.metrics import MetricSource
    from monitor.api.server import Attach
    from monitor.engine.pipeline import Arrivals, Monitor, ResultSource


def run(args: argparse.Namespace) -> int:
    selected = selection(args)
    if selected is None:
        return EXIT_UNKNOWN
    workers = worker_count(args.workers, len(selected.checks))
    if args.once:
        for flag, given in (("--listen", args.listen), ("--traps", args.traps)):
            if given is not None:
                print(
                    f"commwatch run: {flag} is for a continuous run: drop --once", file=sys.stderr
                )
                return EXIT_UNKNOWN
        return asyncio.run(_sweep(selected.inventory, selected.checks, args.format, workers))
    try:
        traps = traps_config(selected.inventory, args.traps)
    except ValueError as exc:
        print(f"commwatch run: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    return asyncio.run(
        watch(selected.inventory, selected.checks, args, workers=workers, traps=traps)
    )


async def _sweep(inventory: Inventory, checks: Sequence[Check], fmt: str, workers: int) -> int:
    started = time.time()
    results, complete = await collect(inventory, checks, workers)
    finished = time.time()
    routes = paths.observed(paths.path_policy(inventory), results)
    groups = group_summaries(inventory, *sweep_state(inventory, checks, results), routes)
    if fmt == "table":
        print(tables.table(results, terminal.use_colour(sys.stdout)))
        print(tables.groups_table(groups))
    else:
        document = records.sweep_document(results, started, finished, inventory.path, complete)
        document["groups"] = [records.group_record(g) for g in groups]
        # Indented for a person at a terminal; compact (and with the C encoder, several times
        # faster on large sweeps) for a pipe, where jq does any formatting wanted.
        indent = 2 if sys.stdout.isatty() else None
        sys.stdout.write(json.dumps(document, indent=indent, allow_nan=False) + "\n")
    if not complete:
        interrupted(len(results), len(checks), "checks")
        return EXIT_UNKNOWN
    return records.worst(results).value


async def watch(
    inventory: Inventory,
    checks: Sequence[Check],
    args: argparse.Namespace,
    *,
    source: ResultSource | None = None,
    arrivals: Arrivals | None = None,
    alert_gate: Gate | None = None,
    attachments: Sequence[Attach] = (),
    workers: int = 1,
    traps: TrapsConfig | None = None,
    metric_sources: Sequence[MetricSource] = (),
) -> int:
    """Run `checks` continuously, in `workers` processes above 1 (or judge what `source` hands
    in: `commwatch central`), a line for each result and state change, in `args.format`, until
    SIGINT/SIGTERM (`commwatch run` without --once, and `commwatch demo --headless`). A central
    also gives when its results arrived, the gate its alerting delivers through, routes of its
    own for its API, and what its /metrics shows after the engine's (its consumer, its lease);
    with `traps`, it listens for SNMP traps and informs."""
    # The engine (alerting, its HTTP clients, the history writer) loads only for a continuous
    # run: a one-shot sweep from cron starts without it.
    from monitor.engine.pipeline import Monitor

    on_result, on_event = _line_writers(args)
    steering = None
    if source is None and workers > 1:
        # Loaded only for a run that uses more than one process.
        from monitor.cluster.workers import WorkerPool

        source = steering = WorkerPool(inventory, checks, workers)
    monitor = Monitor(
        inventory,
        checks,
        on_result=on_result,
        on_event=on_event,
        history=not args.no_history,
        alerts=not args.no_alerts,
        source=source,
        arrivals=arrivals,
        alert_gate=alert_gate,
        steering=steering,
        traps=traps,
    )
    # Before anything is said on stderr: a supervisor that stops the run as soon as it said it
    # serves gets a clean stop (monitor.stop before monitor.run is no run), never a death by
    # the signal.
    stop_on_signals(monitor.stop)
    if steering is not None:
        print(f"commwatch run: {steering.describe()}", file=sys.stderr, flush=True)
    note = tables.not_evaluated_note(group_summaries(inventory, monitor.topology, monitor.state))
    if note is not None:
        print(note, file=sys.stderr)
    failures = monitor.start_errors()
    served = served_api(inventory, args)
    if served is None:
        return await _run_monitor(monitor, failures)
    # aiohttp and the API load only for a run that serves.
    from monitor.api.server import ATTACHMENTS, ApiServer, ApiStartError

    server = ApiServer(
        monitor, served, attachments=(*ATTACHMENTS, *attachments), metric_sources=metric_sources
    )
    try:
        await server.start()  # before the engine: nothing has run when it cannot
    except ApiStartError as exc:
        print(f"commwatch: {exc}; nothing was run", file=sys.stderr)
        return EXIT_UNKNOWN
    print(f"commwatch: serving the engine on {server.url}", file=sys.stderr, flush=True)
    try:
        return await _run_monitor(monitor, failures)
    finally:
        await server.stop()


def _line_writers(
    args: argparse.Namespace,
) -> tuple[Callable[[ProbeResult], None], Callable[[Event], None]]:
    """What `watch` writes on stdout for each result and each state change, in `args.format`."""
    colour = terminal.use_colour(sys.stdout)

    def on_result(result: ProbeResult) -> None:
        if args.format == "table":
            line = (
                f"{records.iso_time(result.started_at)}  "
                f"{terminal.severity_label(result.severity, colour)}  "
                f"{printable(result.check.check_id)}  {printable(result.summary())}"
            )
        else:
            line = records.result_line(result)
        terminal.write_line(sys.stdout, line)

    def on_event(event: Event) -> None:
        if args.format == "table":
            if event.kind is EventKind.SOFT:
                return
            held = f"  (held: {', '.join(event.suppressed)})" if event.suppressed else ""
            change = "trap" if event.kind is EventKind.TRAP else f"{event.before} -> {event.after}"
            # The cause quotes the result's summary (or a trap's varbinds): peer text.
            line = printable(
                f"{records.iso_time(event.at)}  {event.subject} {event.subject_id}: "
                f"{change}  {event.cause}{held}"
            )
        else:
            line = records.json_line(records.event_record(event))
        terminal.write_line(sys.stdout, line)

    return on_result, on_event


def served_api(inventory: Inventory, args: argparse.Namespace) -> ApiConfig | None:
    """The API to serve beside the run: the inventory's api: section with the flags over it;
    None when neither asks for one."""
    if inventory.api is None and args.listen is None:
        return None
    config = inventory.api or ApiConfig()
    if args.listen is not None:
        config = dataclasses.replace(config, listen=args.listen)
    if args.allow_insecure_remote:
        config = dataclasses.replace(config, allow_insecure_remote=True)
    return config


def traps_config(inventory: Inventory, listen: Listen | None) -> TrapsConfig | None:
    """The traps to listen for: the inventory's traps: section, at the --traps address when
    given; None when neither asks. ValueError: --traps without the section, which alone names
    whose notifications to accept."""
    if inventory.traps is None:
        if listen is None:
            return None
        raise ValueError(
            "--traps listens for the senders the inventory's traps: section accepts, and it has"
            " none: add traps: with communities: or users: (secrets by reference)"
        )
    if listen is None:
        return inventory.traps
    return dataclasses.replace(inventory.traps, listen=listen)


async def _run_monitor(monitor: Monitor, failures: tuple[type[Exception], ...]) -> int:
    """Run `monitor` until a signal; a failure to start one of its parts (history, the trap
    listener), one line and exit 3."""
    announcing = asyncio.create_task(_announce_traps(monitor))
    try:
        await monitor.run()
    except failures as exc:
        print(f"commwatch: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    finally:
        announcing.cancel()
    return 0


async def _announce_traps(monitor: Monitor) -> None:
    """Where the trap receiver listens, once it does (port 0 is known only then)."""
    if monitor.traps is not None:
        await monitor.ready.wait()
        print(
            f"commwatch: listening for SNMP traps and informs on {monitor.traps.address}",
            file=sys.stderr,
            flush=True,
        )
