"""`commwatch report`: availability per check, link and group over a period, from the history
store (and, given an inventory, its subjects and maintenance windows, and the single risks that
would take each group down)."""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import sys
import time

from monitor.cli.commands.selection import load
from monitor.cli.parsing import EXIT_UNKNOWN
from monitor.config.diversity import design_risks
from monitor.config.inventory import HistoryConfig
from monitor.engine import paths
from monitor.engine.run_scope import scope_of
from monitor.engine.views import topology_of
from monitor.output import report as availability
from monitor.output import report_formats
from monitor.store.history import HistoryStore
from monitor.store.schema import HistoryError


def run(args: argparse.Namespace) -> int:
    now = time.time()
    path = args.db or HistoryConfig().path
    scope, diversity = None, None
    inventory = None
    if args.inventory is not None:
        inventory = load(args.inventory)
        if inventory is None:
            return EXIT_UNKNOWN
        path = args.db or inventory.resilience.history.path
        scope = scope_of(topology_of(inventory), inventory.resilience.maintenance)
        diversity = design_risks(inventory)
    try:
        with HistoryStore(path) as store:
            report = availability.build_report(
                store, since=now - args.since, until=now, inventory=scope, diversity=diversity
            )
            if inventory is not None:
                traced = paths.report_paths(inventory, store, now - args.since, now)
                report = dataclasses.replace(report, paths=traced)
    except HistoryError as exc:
        print(f"commwatch: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    except sqlite3.Error as exc:
        print(f"commwatch: {path}: cannot read the history database: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    print(report_formats.render(report, args.format))
    return 0
