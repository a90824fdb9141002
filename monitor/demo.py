"""`commwatch demo`: the built-in lab on loopback, and commwatch watching it.

Three ways: the dashboard (default), `--headless` (the continuous headless run, JSON lines or a
table, for `run`/`audit` demonstrations), `--lab-only` (just the lab, until Ctrl-C, for pointing
another commwatch at it, e.g. the shipped inventory.yaml). The lab runs on a thread of its own
(see monitor.lab.lab), its inventory and history in a temporary folder removed at exit.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from monitor.inventory import Inventory, load_inventory
from monitor.lab.demo_inventory import write_demo_inventory
from monitor.lab.lab import Lab, lab_thread
from monitor.lab.layout import PortTaken

EXIT_UNKNOWN = 3
HeadlessRun = Callable[[Inventory], int]


def run_demo(mode: str, headless: HeadlessRun, *, port_offset: int = 0) -> int:
    """`mode` is "dashboard", "headless" or "lab-only"; `headless` runs an inventory
    continuously until SIGINT/SIGTERM (the CLI's `run` without --once)."""
    lab = Lab(port_offset=port_offset)
    try:
        with tempfile.TemporaryDirectory(prefix="commwatch-demo-") as folder, lab_thread(lab):
            lab.export_secrets()
            inventory_path = write_demo_inventory(Path(folder), port_offset)
            if mode == "lab-only":
                return _serve_until_stopped(lab, port_offset)
            inventory = load_inventory(inventory_path)
            print(_lab_note(lab, inventory_path), file=sys.stderr)
            if mode == "headless":
                return headless(inventory)
            return open_dashboard(inventory, _lab_note(lab, inventory_path), headless)
    except PortTaken as exc:
        print(
            f"commwatch demo: {exc}: the lab's fixed ports are taken, most likely by another "
            "`commwatch demo` (stop it, or point commwatch at it: "
            "commwatch run --once inventory.yaml)",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN


def open_dashboard(inventory: Inventory, lab_note: str, headless: HeadlessRun) -> int:
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


def _serve_until_stopped(lab: Lab, port_offset: int) -> int:
    """Lab only: say what is served and how to watch it, then wait for SIGINT/SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"commwatch demo lab is up (started in {lab.started_in or 0:.2f}s):")
    print("\n".join(lab.describe()))
    shifted = f" (ports shifted by {port_offset}: edit its targets to match)" if port_offset else ""
    print(
        f"\nPoint commwatch at it from another terminal, in the source folder{shifted}:\n"
        "    commwatch run --once --format table inventory.yaml\n"
        "SNMP secrets were generated for this run and exported to this process only.\n"
        "Ctrl-C stops the lab.",
        flush=True,
    )
    # A timed wait lets Python run the signal handlers, which only ever run on this thread.
    while not stop.wait(0.2):
        pass
    return 0
