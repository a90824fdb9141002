"""`commwatch run`: the selected checks headless, one sweep (`--once`: one JSON document or a
table, exit code the worst severity) or continuously (one line per result and per state change,
until SIGINT/SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence

from monitor.cli.commands.selection import selection
from monitor.cli.commands.sweep import collect, interrupted, stop_on_signals
from monitor.cli.parsing import EXIT_UNKNOWN
from monitor.config.inventory import Check, Inventory
from monitor.core.events import Event, EventKind
from monitor.core.model import ProbeResult
from monitor.core.text import printable
from monitor.engine.pipeline import Monitor, group_summaries, sweep_state
from monitor.output import records, tables, terminal
from monitor.store.schema import HistoryError


def run(args: argparse.Namespace) -> int:
    selected = selection(args)
    if selected is None:
        return EXIT_UNKNOWN
    if args.once:
        return asyncio.run(_sweep(selected.inventory, selected.checks, args.format))
    return asyncio.run(watch(selected.inventory, selected.checks, args))


async def _sweep(inventory: Inventory, checks: Sequence[Check], fmt: str) -> int:
    started = time.time()
    results, complete = await collect(inventory, checks)
    finished = time.time()
    groups = group_summaries(inventory, *sweep_state(inventory, checks, results))
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


async def watch(inventory: Inventory, checks: Sequence[Check], args: argparse.Namespace) -> int:
    """Run `checks` continuously, a line for each result and state change, in `args.format`,
    until SIGINT/SIGTERM (`commwatch run` without --once, and `commwatch demo --headless`)."""
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
            # The cause quotes the result's summary: peer text.
            line = printable(
                f"{records.iso_time(event.at)}  {event.subject} {event.subject_id}: "
                f"{event.before} -> {event.after}  {event.cause}{held}"
            )
        else:
            line = records.json_line(records.event_record(event))
        terminal.write_line(sys.stdout, line)

    monitor = Monitor(
        inventory,
        checks,
        on_result=on_result,
        on_event=on_event,
        history=not args.no_history,
        alerts=not args.no_alerts,
    )
    note = tables.not_evaluated_note(group_summaries(inventory, monitor.topology, monitor.state))
    if note is not None:
        print(note, file=sys.stderr)
    stop_on_signals(monitor.stop)
    try:
        await monitor.run()
    except HistoryError as exc:
        print(f"commwatch: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    return 0
