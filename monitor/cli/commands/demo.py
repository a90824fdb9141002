"""`commwatch demo`: the built-in lab on loopback, and commwatch watching it.

Three ways: the dashboard (default), `--headless` (the continuous headless run, JSON lines or a
table, for `run`/`audit` demonstrations), `--lab-only` (just the lab, until Ctrl-C, for pointing
another commwatch at it, e.g. the shipped inventory.yaml). The lab runs on a thread of its own
(see monitor.lab.lab), its inventory and history in a temporary folder removed at exit. Its SNMP
secrets, made up at each start, are exported to this process and written to an env file (mode
0600, removed at exit) for commwatch in other terminals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from monitor.cli.commands.run import watch
from monitor.cli.parsing import EXIT_UNKNOWN
from monitor.cli.probe_flags import flag_name
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.lab.demo_inventory import write_demo_inventory
from monitor.lab.lab import SNMP_ENV, Lab, env_file_path, lab_thread, secrets_env_file
from monitor.lab.layout import PortTaken, service

HeadlessRun = Callable[[Inventory], int]


def run(args: argparse.Namespace) -> int:
    def headless(inventory: Inventory) -> int:
        return asyncio.run(watch(inventory, inventory.checks, args))

    mode = "headless" if args.headless else "lab-only" if args.lab_only else "dashboard"
    return _run_demo(mode, headless, port_offset=args.port_offset)


def _run_demo(mode: str, headless: HeadlessRun, *, port_offset: int = 0) -> int:
    """`mode` is "dashboard", "headless" or "lab-only"; `headless` runs an inventory
    continuously until SIGINT/SIGTERM (the CLI's `run` without --once)."""
    lab = Lab(port_offset=port_offset)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="commwatch-demo-") as folder,
            lab_thread(lab),
            contextlib.ExitStack() as stack,
        ):
            lab.export_secrets()
            env_file = _share_secrets(lab, stack)
            inventory_path = write_demo_inventory(Path(folder), port_offset)
            if mode == "lab-only":
                return _serve_until_stopped(lab, port_offset, env_file)
            inventory = load_inventory(inventory_path)
            print(_lab_note(lab, inventory_path), file=sys.stderr)
            if env_file is not None:
                print(f"commwatch demo lab: SNMP secrets in {env_file}", file=sys.stderr)
            if mode == "headless":
                return headless(inventory)
            return _open_dashboard(inventory, _lab_note(lab, inventory_path), headless)
    except PortTaken as exc:
        print(
            f"commwatch demo: {exc}: the lab's fixed ports are taken, most likely by another "
            "`commwatch demo` (stop it, or point commwatch at it: "
            "commwatch run --once inventory.yaml)",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN


def _share_secrets(lab: Lab, stack: contextlib.ExitStack) -> Path | None:
    """The env file other terminals load the lab's secrets from, kept until `stack` closes;
    None (said why) when it cannot be written: the lab itself runs on without it."""
    path = env_file_path(lab.port_offset)
    try:
        return stack.enter_context(secrets_env_file(lab, path))
    except OSError as exc:
        print(
            f"commwatch demo: cannot write {path} ({exc.strerror or exc}): commwatch in other "
            "terminals will not have the lab's SNMP secrets",
            file=sys.stderr,
        )
        return None


def _open_dashboard(inventory: Inventory, lab_note: str, headless: HeadlessRun) -> int:
    """The dashboard over the lab's inventory; headless where there is no terminal to draw on."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("commwatch demo: not a terminal; running headless (see --headless)", file=sys.stderr)
        return headless(inventory)
    from tui.app import CommwatchApp  # Textual loads only when the dashboard is wanted

    app = CommwatchApp(inventory, checks=inventory.checks)
    app.sub_title = lab_note
    app.run()
    return 0


def _lab_note(lab: Lab, inventory_path: Path) -> str:
    first, last = lab.describe()[0].split()[0], lab.describe()[-1].split()[0]
    return (
        f"commwatch demo lab: {len(lab.describe())} services on loopback ({first} ... {last}), "
        f"started in {lab.started_in or 0:.2f}s; inventory {inventory_path}"
    )


def _serve_until_stopped(lab: Lab, port_offset: int, env_file: Path | None) -> int:
    """Lab only: say what is served and how to watch it, then wait for SIGINT/SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"commwatch demo lab is up (started in {lab.started_in or 0:.2f}s):")
    print("\n".join(lab.describe()))
    shifted = f" (ports shifted by {port_offset}: edit its targets to match)" if port_offset else ""
    radio = service("ridge-radio-snmp").endpoint(port_offset)
    load = "" if env_file is None else f"    set -a; . {shlex.quote(str(env_file))}; set +a\n"
    print(
        "\nSNMP secrets were made up for this run"
        + ("" if env_file is None else f": {env_file} (mode 0600, removed when the lab stops)")
        + f".\nPoint commwatch at the lab from another terminal, in the source folder{shifted}:\n"
        + load
        + "    commwatch run --once --format table inventory.yaml\n"
        f"    commwatch probe snmp {radio} {flag_name('snmp', 'version')} 2c "
        f"{flag_name('snmp', 'community_env')} {SNMP_ENV.community}\n"
        "Ctrl-C stops the lab.",
        flush=True,
    )
    # A timed wait lets Python run the signal handlers, which only ever run on this thread.
    while not stop.wait(0.2):
        pass
    return 0
