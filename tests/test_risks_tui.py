"""The dashboard names shared risks where people look: a site row says which risk its links
share, the detail pane lists what each link rides and what the design leaves to one risk."""

from __future__ import annotations

import pytest

from monitor.core.model import ErrorClass
from tests.tui_support import (
    NOW,
    cell,
    engine_view,
    failed_result,
    latency_result,
    rendered,
    shown,
    until,
    write_inventory,
)
from tui.app import CommwatchApp
from tui.widgets.detail_pane import DetailPane

SIZE = (160, 40)
INVENTORY = """\
version: 1
defaults: {interval: 30s, timeout: 5s}
sites:
  - id: north
    name: North PSAP
    risks: [power:grid-a]
    links:
      - id: fibre
        role: primary
        medium: fibre
        risks: [carrier:att, conduit:main-st]
        checks: [{id: router, kind: tcp, target: "127.0.40.1:22"}]
      - id: lte
        role: backup
        medium: lte
        risks: [carrier:att]
        checks: [{id: router, kind: tcp, target: "127.0.40.2:22"}]
  - id: south
    name: South PSAP
    links:
      - id: mpls
        role: primary
        risks: [carrier:vz]
        checks: [{id: router, kind: tcp, target: "127.0.41.1:22"}]
      - id: radio
        role: backup
        checks: [{id: router, kind: tcp, target: "127.0.41.2:22"}]
"""
ROWS = 2 + 4 + 4  # sites, links, checks


@pytest.fixture
def inventory(tmp_path):
    return write_inventory(tmp_path, INVENTORY)


def detail(app: CommwatchApp) -> str:
    text = rendered(app.dashboard.query_one(DetailPane).content, width=160)
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


async def test_a_site_row_names_the_risk_its_links_share_and_the_detail_what_each_rides(
    inventory,
):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS)
        results = [
            latency_result(inventory, check.ref.check_id, 5, NOW - 10 + i)
            for i, check in enumerate(inventory.checks)
        ]
        app.dashboard.apply_results(*engine_view(inventory, results))
        await pilot.pause()
        assert cell(app, "site:north", "status") == "▲ AT RISK"
        assert cell(app, "site:north", "info").startswith(
            "2 of 2 links up (needs 1), but fibre and lte both ride power:grid-a and carrier:att "
            "(losing any one of them leaves 0) · north · 2 links"
        )
        # Diverse: nothing to name.
        assert cell(app, "site:south", "status") == "✔ RESILIENT"
        assert cell(app, "site:south", "info").startswith("2 of 2 links up (needs 1) · south")

        app.dashboard.table.select_key("site:north")
        await pilot.pause()
        text = detail(app)
        assert "▲ AT RISK · 2 of 2 links up (needs 1), but fibre and lte both ride" in text
        assert "✔ UP fibre (primary) · rides power:grid-a, carrier:att and conduit:main-st" in text
        assert "✔ UP lte (backup) · rides power:grid-a and carrier:att" in text
        assert (
            "by design, fibre and lte both ride power:grid-a and carrier:att: losing any one of "
            "them leaves 0 of min_up 1"
        ) in text
        app.dashboard.table.select_key("link:north/lte")
        await pilot.pause()
        assert "link north/lte · backup · lte · rides power:grid-a and carrier:att" in detail(app)


async def test_with_a_link_down_the_site_row_still_names_what_the_design_shares(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS)
        results = [
            latency_result(inventory, check.ref.check_id, 5, NOW - 10 + i)
            for i, check in enumerate(inventory.checks)
            if check.ref.check_id != "north/fibre/router"
        ]
        results.append(
            failed_result(inventory, "north/fibre/router", NOW, ErrorClass.REFUSED, "refused")
        )
        app.dashboard.apply_results(*engine_view(inventory, results))
        await pilot.pause()
        assert cell(app, "site:north", "status") == "▲ AT RISK"
        assert cell(app, "site:north", "info").startswith(
            "1 of 2 links up (needs 1) · shared power:grid-a and carrier:att · fibre DOWN · north"
        )
