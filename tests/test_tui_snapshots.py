"""Snapshots of the dashboard's key screens at 80x24 and 160x48, compared as SVG screenshots.

pytest-textual-snapshot's syrupy pins pytest below 9, so this is a small comparison of our own:
each screen is exported with `App.export_screenshot()` and compared with tests/snapshots/NAME.svg.
Run with COMMWATCH_UPDATE_SNAPSHOTS=1 to write them after an intended change (then look at them:
they are SVG, any browser shows them). Fixed clock, fixed results, UTC: no real latencies or ages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui_support import (
    GROUPED,
    NOW,
    ROWS,
    acknowledge,
    engine_view,
    help_bindings,
    scenario,
    shown,
    until,
    write_inventory,
)
from tui.app import CommwatchApp
from tui.screens.acknowledge import AckPrompt
from tui.screens.dashboard import FILTER_DELAY
from tui.widgets.filter_input import FilterInput

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("COMMWATCH_UPDATE_SNAPSHOTS") == "1"
NARROW, WIDE = (80, 24), (160, 48)
FOOTER_KEYS = [binding for binding in help_bindings() if binding.show]


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def nothing(pilot: Pilot[None]) -> None:
    pass


async def select_certificate_check(pilot: Pilot[None]) -> None:
    pilot.app.dashboard.table.select_key("psap-north/fibre/cad-api")


async def problems_with_an_ack(pilot: Pilot[None]) -> None:
    pilot.app.dashboard.table.select_key("dispatch/mpls/radio-core")
    await acknowledge(pilot, "radio vendor on site")
    await pilot.press("p")


async def acknowledging_a_link(pilot: Pilot[None]) -> None:
    pilot.app.dashboard.table.select_key("link:dispatch/mpls")
    await pilot.press("a")
    await until(pilot, lambda: isinstance(pilot.app.screen, AckPrompt))
    pilot.app.screen.query_one("#ack-comment", Input).cursor_blink = False
    await pilot.press(*"carrier ticket 7731")


async def filtering(pilot: Pilot[None]) -> None:
    await pilot.press("slash")
    pilot.app.dashboard.query_one(FilterInput).cursor_blink = False
    await pilot.press(*"psap")
    await pilot.pause(FILTER_DELAY + 0.1)


async def help_screen(pilot: Pilot[None]) -> None:
    await pilot.press("question_mark")


async def zoomed_site(pilot: Pilot[None]) -> None:
    pilot.app.dashboard.table.select_key("site:psap-north")
    await pilot.press("enter")


CASES: dict[str, tuple[tuple[int, int], Callable[[Pilot[None]], Awaitable[None]]]] = {
    "dashboard-80x24": (NARROW, nothing),
    "dashboard-160x48": (WIDE, nothing),
    "certificate-detail-80x24": (NARROW, select_certificate_check),
    "certificate-detail-160x48": (WIDE, select_certificate_check),
    "problems-acked-80x24": (NARROW, problems_with_an_ack),
    "problems-acked-160x48": (WIDE, problems_with_an_ack),
    "ack-prompt-80x24": (NARROW, acknowledging_a_link),
    "filter-80x24": (NARROW, filtering),
    "help-80x24": (NARROW, help_screen),
    "help-160x48": (WIDE, help_screen),
    "zoom-80x24": (NARROW, zoomed_site),
    "zoom-160x48": (WIDE, zoomed_site),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_screen_matches_its_snapshot(name, tmp_path):
    size, steps = CASES[name]
    inventory = write_inventory(tmp_path, GROUPED)
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW, operator="noc")
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS + 1)
        app.dashboard.apply_results(*engine_view(inventory, scenario(inventory)))
        # The footer fills in its keys a little later, after the bindings settle (its key
        # widgets are queried by their CSS type: Textual's class for them is private).
        await until(pilot, lambda: len(app.dashboard.query("FooterKey")) >= len(FOOTER_KEYS))
        await steps(pilot)
        await pilot.pause(0.2)
        svg = app.export_screenshot(title=name)
    expected = SNAPSHOTS / f"{name}.svg"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        expected.write_text(svg, encoding="utf-8")
    assert expected.exists(), f"no snapshot {expected}: run with COMMWATCH_UPDATE_SNAPSHOTS=1"
    if svg != expected.read_text(encoding="utf-8"):
        actual = tmp_path / f"{name}.svg"
        actual.write_text(svg, encoding="utf-8")
        raise AssertionError(f"{name} differs from {expected}; this run's screen is {actual}")
