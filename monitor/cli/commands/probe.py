"""`commwatch probe KIND TARGET`: one check with no inventory, as a monitoring plugin runs it:
every outcome, usage errors included, is a status line (and an exit code) of the plugin
guidelines; what the probe remembers between polls is kept in a state file."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from monitor.cli import probe_state
from monitor.cli.parsing import EXIT_UNKNOWN, plugin_status
from monitor.cli.probe_flags import flag_name, option_values
from monitor.config.checks import adhoc_check
from monitor.config.inventory import Check, Concurrency
from monitor.core.model import ProbeResult
from monitor.core.options import OptionError
from monitor.engine.runner import run_check
from monitor.engine.scheduler import Scheduler
from monitor.output import plugin, records, tables, terminal
from probes.base import SharedResources


def run(args: argparse.Namespace) -> int:
    if args.source is not None:
        if args.kind is not None:
            args._parser.error("--from reads a result from an engine: no KIND")
        from monitor.cli.commands import probe_from

        return probe_from.run(args)
    if args.kind is None:
        args._parser.error("name a KIND (tcp, http, ...) or use --from URL CHECK_ID")
    try:
        check = adhoc_check(args.kind, option_values(args.kind, args))
    except OptionError as exc:
        where = "TARGET" if exc.key in (None, "target") else flag_name(args.kind, exc.key)
        # A usage error is an outcome too: a plugin line on stdout, the detail on stderr.
        print(plugin_status(args.kind.upper(), f"{where}: {exc}"))
        print(f"commwatch probe {args.kind}: {where}: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    state = probe_state.state_file(
        args.kind, check.ref.target, check.options, check.probe.memory_clocks, args.state_dir
    )
    memory = state.load()
    result = asyncio.run(_probe_once(check, memory))
    state.save(memory)
    if args.nagios:
        print(plugin.nagios_line(result))
    elif args.format == "json":
        print(json.dumps(records.result_record(result), indent=2, allow_nan=False))
    else:
        print(tables.verdict_list(result, terminal.use_colour(sys.stdout)))
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
