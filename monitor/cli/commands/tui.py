"""`commwatch tui`: the live dashboard over the selected checks (the default on a terminal)."""

from __future__ import annotations

import argparse

from monitor.cli.commands.selection import selection
from monitor.cli.parsing import EXIT_UNKNOWN
from tui.app import CommwatchApp


def run(args: argparse.Namespace) -> int:
    selected = selection(args)
    if selected is None:
        return EXIT_UNKNOWN
    CommwatchApp(
        selected.inventory,
        checks=selected.checks,
        history=not args.no_history,
        alerts=not args.no_alerts,
    ).run()
    return 0
