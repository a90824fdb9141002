"""`commwatch tui`: the live dashboard over the selected checks (the default on a terminal), or,
with `--connect URL`, over an engine running elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import sys

from monitor.cli.commands import attach
from monitor.cli.commands.selection import select_checks, selection, unknown_selection
from monitor.cli.parsing import EXIT_UNKNOWN


def run(args: argparse.Namespace) -> int:
    if args.connect is not None:
        return _attached(args)
    from monitor.cli.commands.run import traps_config
    from tui.app import CommwatchApp

    selected = selection(args)
    if selected is None:
        return EXIT_UNKNOWN
    try:
        traps = traps_config(selected.inventory, args.traps)
    except ValueError as exc:
        print(f"commwatch tui: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    CommwatchApp(
        selected.inventory,
        checks=selected.checks,
        history=not args.no_history,
        alerts=not args.no_alerts,
        traps=traps,
    ).run()
    return 0


def _attached(args: argparse.Namespace) -> int:
    """The dashboard of the engine at --connect: its state is read first, so that a wrong URL
    or token is one line on stderr, not a dashboard with nothing in it. The selection flags
    choose among the engine's checks, as they choose among an inventory's."""
    from monitor.api.client import ApiClient, ApiError
    from monitor.api.readers import RecordError, inventory_from_document
    from tui.remote import RemoteApp

    if args.traps:
        print(
            "commwatch tui: --connect shows the engine's checks: --traps applies to a local run",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN
    try:
        url = attach.target(args.connect)
        token = attach.token(args)

        async def first_document() -> dict[str, object]:
            async with ApiClient(url, token=token, ca_file=args.ca_file) as client:
                return await client.state()

        document = asyncio.run(first_document())
        checks = None
        if args.only or args.site or args.tag or args.kind:
            engines = inventory_from_document(document, str(url))
            problem = unknown_selection(engines, args)
            checks = select_checks(engines, args)
            if problem is None and not checks:
                problem = f"no check of the engine at {url} matches the selection"
            if problem is not None:
                print(f"commwatch tui: {problem}", file=sys.stderr)
                return EXIT_UNKNOWN
        app = RemoteApp(url, document, token=token, ca_file=args.ca_file, checks=checks)
    except (attach.AttachError, ApiError, RecordError, OSError) as exc:
        print(f"commwatch tui: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    app.run()
    return 0
