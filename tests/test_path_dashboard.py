"""Path diversity where people look: the dashboard's site row names where its links' routes
converge, and the detail pane lists each link's hops. The routes are real: traced by
`commwatch probe path` in the site namespace of the routed network the test builds
(tests/peers/path_topology.py), through the one router both links are sent through."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from monitor.api.readers import result_from_record
from monitor.config.inventory import Inventory
from monitor.core.model import ProbeResult
from monitor.engine import paths
from tests.peers.path_topology import TARGETS, Network, left, network, right
from tests.tui_support import cell, engine_view, log_lines, rendered, until, write_inventory
from tui.app import CommwatchApp
from tui.widgets.detail_pane import DetailPane

SIZE = (160, 40)
COMMWATCH = str(Path(sys.executable).with_name("commwatch"))
INVENTORY = f"""\
version: 1
sites:
  - id: site
    name: Site
    links:
      - id: a
        edge_hops: 1
        checks:
          - id: route
            kind: path
            target: {TARGETS["a"][0]}
      - id: b
        edge_hops: 1
        checks:
          - id: route
            kind: path
            target: {TARGETS["b"][0]}
"""
MEETING = f"site/a and site/b pass {right(7)} at hop 3"


def traced(net: Network, inventory: Inventory, link: str, state: Path) -> ProbeResult:
    check = next(c for c in inventory.checks if c.ref.check_id == f"site/{link}/route")
    command = [COMMWATCH, "probe", "path", "--format", "json", "--state-dir", str(state)]
    done = subprocess.run(
        net.probe(*command, TARGETS[link][0]), capture_output=True, text=True, timeout=60
    )
    # The plugin's result is of an ad hoc check: made the inventory's.
    return dataclasses.replace(result_from_record(json.loads(done.stdout)), check=check.ref)


async def test_site_row_names_the_convergence_and_the_pane_the_hops(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, INVENTORY)
    with network() as net:
        results = [traced(net, inventory, "a", tmp_path)]
        net.converge()  # a rerouted through x, one hop longer: a path change
        results += [traced(net, inventory, link, tmp_path) for link in ("a", "b")]
    shown, events, state = engine_view(inventory, results)
    routes = paths.PathState()
    for result in results:
        routes, changed = paths.observe(paths.path_policy(inventory), routes, result)
        events += changed
    app = CommwatchApp(inventory, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.dashboard.table.shown) == 5)
        app.dashboard.apply_results(shown, events, state)
        await pilot.pause()
        assert any(
            "⇄ path changed  link site/a  path to 10.90.100.1 changed at hop 3" in line
            for line in log_lines(app)
        ), log_lines(app)
        assert MEETING in cell(app, "site:site", "info")
        app.dashboard.table.select_key("site:site")
        await pilot.pause()
        text = rendered(app.dashboard.query_one(DetailPane).content, width=200)
        lines = [" ".join(line.split()) for line in text.splitlines()]
        assert (
            f"route → {TARGETS['a'][0]}: {left(1)} {right(3)} {right(7)} {TARGETS['a'][0]}" in lines
        )
        assert (
            f"route → {TARGETS['b'][0]}: {left(2)} {right(4)} {right(7)} {TARGETS['b'][0]}" in lines
        )
        assert any(MEETING in line for line in lines)
