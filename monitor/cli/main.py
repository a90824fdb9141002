"""The `commwatch` command: what each subcommand does (its flags are in monitor/cli/parser.py)."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import fnmatch
import json
import os
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from monitor.cli import probe_state
from monitor.cli.parser import EXIT_UNKNOWN, build_parser, flag_name, flag_value
from monitor.config.checks import adhoc_check
from monitor.config.inventory import Check, Concurrency, HistoryConfig, Inventory, InventoryErrors
from monitor.config.loader import load_inventory
from monitor.core import logs
from monitor.core.events import Event, EventKind
from monitor.core.model import ProbeResult, Severity
from monitor.core.options import OptionError, option_specs
from monitor.core.text import bounded_message, printable
from monitor.engine.pipeline import Monitor, group_summaries, sweep_state, topology_of
from monitor.engine.run_scope import scope_of
from monitor.engine.runner import run_check
from monitor.engine.scheduler import Scheduler
from monitor.output import audit as audit_report
from monitor.output import render as output
from monitor.output import report as availability
from monitor.store.history import HistoryError, HistoryStore
from probes.base import SharedResources
from probes.registry import REGISTRY


def cmd_check(args: argparse.Namespace) -> int:
    inventory = _load(args.inventory)
    if inventory is None:
        return 2
    kinds = Counter(check.kind for check in inventory.checks)
    roles = Counter(link.role for link in inventory.links)
    print(f"{inventory.path}: valid")
    print(
        f"  {len(inventory.sites)} sites, {len(inventory.links)} links "
        f"({', '.join(f'{n} {role}' for role, n in sorted(roles.items()))}), "
        f"{len(inventory.checks)} checks"
    )
    for kind, count in sorted(kinds.items()):
        print(f"  {count:>5} {kind}")
    return 0


def _load(path: str) -> Inventory | None:
    try:
        return load_inventory(path)
    except InventoryErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{path}: {len(exc.errors)} problem(s); nothing was run", file=sys.stderr)
        return None


_LISTED_IDS = 20  # an inventory of 500 sites must not answer a typo with 500 ids


def unknown_selection(inventory: Inventory, args: argparse.Namespace) -> str | None:
    """What is wrong with a --site or --tag that names nothing in the inventory, listing the
    valid ones: a typo must not read as "nothing matches"."""
    known = {
        "site": sorted(site.id for site in inventory.sites),
        "tag": sorted({tag for check in inventory.checks for tag in check.ref.tags}),
    }
    for flag, valid in known.items():
        for wanted in getattr(args, flag) or ():
            if wanted not in valid:
                close = difflib.get_close_matches(wanted, valid, n=3)
                guess = f"did you mean {' or '.join(close)}? " if close else ""
                listed = ", ".join(valid[:_LISTED_IDS]) if valid else "none"
                if len(valid) > _LISTED_IDS:
                    listed += f" and {len(valid) - _LISTED_IDS} more"
                return bounded_message(
                    f"no {flag} {wanted!r} in {inventory.path} ({guess}{flag}s: {listed})",
                    limit=1000,
                )
    return None


def _selected(inventory: Inventory, args: argparse.Namespace) -> list[Check] | None:
    """The selected checks, or None with the reason printed."""
    problem = unknown_selection(inventory, args)
    if problem is not None:
        print(f"commwatch: {problem}", file=sys.stderr)
        return None
    checks = select_checks(inventory, args)
    if not checks:
        print("commwatch: no check matches the selection", file=sys.stderr)
        return None
    return checks


def select_checks(inventory: Inventory, args: argparse.Namespace) -> list[Check]:
    def wanted(check: Check) -> bool:
        ref = check.ref
        own_id = ref.check_id.rsplit("/", 1)[-1]
        return (
            (
                not args.only
                or any(
                    fnmatch.fnmatchcase(ref.check_id, p) or fnmatch.fnmatchcase(own_id, p)
                    for p in args.only
                )
            )
            and (not args.site or ref.site_id in args.site)
            and (not args.tag or any(tag in ref.tags for tag in args.tag))
            and (not args.kind or ref.kind in args.kind)
        )

    return [check for check in inventory.checks if wanted(check)]


def cmd_run(args: argparse.Namespace) -> int:
    inventory = _load(args.inventory)
    if inventory is None:
        return EXIT_UNKNOWN
    checks = _selected(inventory, args)
    if checks is None:
        return EXIT_UNKNOWN
    if args.once:
        return asyncio.run(_sweep(inventory, checks, args.format))
    return asyncio.run(_stream(inventory, checks, args))


def _install_stop_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


async def _collect(inventory: Inventory, checks: Sequence[Check]) -> tuple[list[ProbeResult], bool]:
    """One sweep of `checks`, with progress on a terminal; results in inventory order, and
    whether the sweep completed (SIGINT/SIGTERM end it early)."""
    results: list[ProbeResult] = []
    show_progress = sys.stderr.isatty()

    def collect(result: ProbeResult) -> None:
        results.append(result)
        if show_progress:
            output.progress(len(results), len(checks))

    scheduler = Scheduler(checks, inventory.concurrency, collect)
    _install_stop_signals(scheduler.stop)
    await scheduler.sweep()
    order = {check.ref.check_id: i for i, check in enumerate(checks)}
    results.sort(key=lambda r: order[r.check.check_id])
    return results, len(results) == len(checks)


async def _sweep(inventory: Inventory, checks: Sequence[Check], fmt: str) -> int:
    started = time.time()
    results, complete = await _collect(inventory, checks)
    finished = time.time()
    groups = group_summaries(inventory, *sweep_state(inventory, checks, results))
    if fmt == "table":
        print(output.table(results, output.use_colour(sys.stdout)))
        print(output.groups_table(groups))
    else:
        document = output.sweep_document(results, started, finished, inventory.path, complete)
        document["groups"] = [output.group_record(g) for g in groups]
        # Indented for a person at a terminal; compact (and with the C encoder, several times
        # faster on large sweeps) for a pipe, where jq does any formatting wanted.
        indent = 2 if sys.stdout.isatty() else None
        sys.stdout.write(json.dumps(document, indent=indent, allow_nan=False) + "\n")
    if not complete:
        print(
            f"commwatch: interrupted after {len(results)} of {len(checks)} checks", file=sys.stderr
        )
        return EXIT_UNKNOWN
    return output.worst(results).value


async def _stream(inventory: Inventory, checks: Sequence[Check], args: argparse.Namespace) -> int:
    colour = output.use_colour(sys.stdout)

    def on_result(result: ProbeResult) -> None:
        if args.format == "table":
            line = (
                f"{output.iso_time(result.started_at)}  "
                f"{output.severity_label(result.severity, colour)}  "
                f"{printable(result.check.check_id)}  {printable(result.summary())}"
            )
        else:
            line = output.result_line(result)
        output.write_line(sys.stdout, line)

    def on_event(event: Event) -> None:
        if args.format == "table":
            if event.kind is EventKind.SOFT:
                return
            held = f"  (held: {', '.join(event.suppressed)})" if event.suppressed else ""
            # The cause quotes the result's summary: peer text.
            line = printable(
                f"{output.iso_time(event.at)}  {event.subject} {event.subject_id}: "
                f"{event.before} -> {event.after}  {event.cause}{held}"
            )
        else:
            line = output.json_line(output.event_record(event))
        output.write_line(sys.stdout, line)

    monitor = Monitor(
        inventory,
        checks,
        on_result=on_result,
        on_event=on_event,
        history=not args.no_history,
        alerts=not args.no_alerts,
    )
    note = output.not_evaluated_note(group_summaries(inventory, monitor.topology, monitor.state))
    if note is not None:
        print(note, file=sys.stderr)
    _install_stop_signals(monitor.stop)
    try:
        await monitor.run()
    except HistoryError as exc:
        print(f"commwatch: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    inventory = _load(args.inventory)
    if inventory is None:
        return EXIT_UNKNOWN
    selected = _selected(inventory, args)
    if selected is None:
        return EXIT_UNKNOWN
    checks = [c for c in selected if c.probe.presents_certificates(c.options)]
    if not checks:
        print("commwatch: no TLS-bearing check (tls, https) in the selection", file=sys.stderr)
        return EXIT_UNKNOWN
    results, complete = asyncio.run(_collect(inventory, checks))
    if not complete:
        print(
            f"commwatch: interrupted after {len(results)} of {len(checks)} endpoints",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN
    report = audit_report.build_report(
        checks,
        results,
        now=time.time(),
        warn_days=args.warn,
        crit_days=args.crit,
        within_days=args.within,
    )
    if args.output:
        _write_atomically(args.output, audit_report.render(report, args.format, colour=False))
    else:
        colour = output.use_colour(sys.stdout)
        print(audit_report.render(report, args.format, colour))
    return report.exit_code


def _write_atomically(path: str, text: str) -> None:
    """A reader (a dashboard, a mail job) never sees half a report."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.replace(temporary, path)


def cmd_report(args: argparse.Namespace) -> int:
    now = time.time()
    path = args.db or HistoryConfig().path
    scope = None
    if args.inventory is not None:
        inventory = _load(args.inventory)
        if inventory is None:
            return EXIT_UNKNOWN
        path = args.db or inventory.resilience.history.path
        scope = scope_of(topology_of(inventory), inventory.resilience.maintenance)
    try:
        with HistoryStore(path) as store:
            report = availability.build_report(
                store, since=now - args.since, until=now, inventory=scope
            )
    except HistoryError as exc:
        print(f"commwatch: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    except sqlite3.Error as exc:
        print(f"commwatch: {path}: cannot read the history database: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    print(availability.render(report, args.format))
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    inventory = _load(args.inventory)
    if inventory is None:
        return EXIT_UNKNOWN
    checks = _selected(inventory, args)
    if checks is None:
        return EXIT_UNKNOWN
    from tui.app import CommwatchApp  # Textual loads only when the dashboard is wanted

    CommwatchApp(
        inventory, checks=checks, history=not args.no_history, alerts=not args.no_alerts
    ).run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.cli import demo  # the lab's peers load only for this command

    def headless(inventory: Inventory) -> int:
        return asyncio.run(_stream(inventory, inventory.checks, args))

    mode = "headless" if args.headless else "lab-only" if args.lab_only else "dashboard"
    return demo.run_demo(mode, headless, port_offset=args.port_offset)


def cmd_probe(args: argparse.Namespace) -> int:
    probe_kind = REGISTRY[args.kind]
    values: dict[str, Any] = {"target": args.target}
    for spec in option_specs(probe_kind.options):
        raw = getattr(args, spec.name, None)
        if spec.name != "target" and raw is not None:
            values[spec.name] = flag_value(spec, raw)
    values["timeout"] = args.timeout
    try:
        check = adhoc_check(args.kind, values)
    except OptionError as exc:
        where = "TARGET" if exc.key in (None, "target") else flag_name(args.kind, exc.key)
        # A usage error is an outcome too: a plugin line on stdout, the detail on stderr.
        print(output.plugin_status_line(args.kind.upper(), Severity.UNKNOWN, f"{where}: {exc}"))
        print(f"commwatch probe {args.kind}: {where}: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    state = probe_state.state_file(
        args.kind, check.ref.target, check.options, check.probe.memory_clocks, args.state_dir
    )
    memory = state.load()
    result = asyncio.run(_probe_once(check, memory))
    state.save(memory)
    if args.nagios:
        print(output.nagios_line(result))
    elif args.format == "json":
        print(json.dumps(output.result_record(result), indent=2, allow_nan=False))
    else:
        print(output.verdict_list(result, output.use_colour(sys.stdout)))
    return result.severity.value


async def _probe_once(check: Check, memory: dict[str, Any]) -> ProbeResult:
    """One attempt, with what earlier invocations remembered (`memory` is updated in place)."""

    async def remembering(check: Check, shared: SharedResources, _: Any) -> ProbeResult:
        return await run_check(check, shared, memory)

    results: list[ProbeResult] = []
    scheduler = Scheduler(
        [check], Concurrency(global_limit=1, per_host=1), results.append, runner=remembering
    )
    await scheduler.sweep()
    return results[0]


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "check": cmd_check,
        "run": cmd_run,
        "audit": cmd_audit,
        "report": cmd_report,
        "demo": cmd_demo,
        "probe": cmd_probe,
        "tui": cmd_tui,
    }
    if args.command is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            return EXIT_UNKNOWN
        args = parser.parse_args(["tui"])
    try:
        return handlers[args.command](args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if args.command == "probe":  # a plugin's every outcome is a status line
            print(output.plugin_status_line(args.kind.upper(), Severity.UNKNOWN, "interrupted"))
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
