"""The dashboard's keys, clicks and panes, fed fabricated results with fixed times (no engine):
what each key does must match what the help screen says it does."""

from __future__ import annotations

import time

import pytest

from monitor.model import CheckRef, ErrorClass, ProbeResult, Severity
from tests.tui_support import (
    NOW,
    cell,
    certificate,
    engine_view,
    failed_result,
    latency_result,
    log_lines,
    rendered,
    scenario,
    shown,
    until,
    write_inventory,
)
from tui.app import CommwatchApp, help_bindings
from tui.present import age_text, info_text, sparkline, status_text
from tui.screens import FILTER_DELAY, HelpScreen
from tui.widgets import DetailPane, SummaryBar

SIZE = (120, 40)
CHECKS = [
    "psap-north/fibre/edge-router",
    "psap-north/fibre/cad-api",
    "psap-north/fibre/resolver",
    "psap-north/lte/lte-router",
    "dispatch/mpls/paging",
    "dispatch/mpls/radio-core",
]


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def inventory(tmp_path):
    return write_inventory(tmp_path)


async def started(app: CommwatchApp, pilot, inventory) -> None:
    await until(pilot, lambda: len(shown(app)) == 11)
    app.dashboard.apply_results(scenario(inventory))
    await pilot.pause()


def checks_shown(app: CommwatchApp) -> list[str]:
    return [key for key in shown(app) if "/" in key and not key.startswith(("site:", "link:"))]


def detail(app: CommwatchApp) -> str:
    """The detail pane's text, runs of spaces (grid padding) made one."""
    text = rendered(app.dashboard.query_one(DetailPane).content)
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def summary(app: CommwatchApp) -> str:
    return rendered(app.dashboard.query_one(SummaryBar).content, width=300)


async def test_rows_are_the_site_link_check_tree(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        assert shown(app)[:3] == ["site:dispatch", "link:dispatch/mpls", "dispatch/mpls/paging"]
        assert sorted(checks_shown(app)) == sorted(CHECKS)
        assert cell(app, "link:psap-north/lte", "info") == "backup · lte · LTE failover"
        assert cell(app, "dispatch/mpls/radio-core", "status") == "✖ CRIT"
        assert cell(app, "psap-north/fibre/resolver", "status") == "? UNKNOWN"
        assert cell(app, "psap-north/lte/lte-router", "status") == "▲ WARN"
        assert cell(app, "psap-north/fibre/edge-router", "age") == "1m"  # 73 s ago
        assert cell(app, "psap-north/fibre/cad-api", "info") == "cert 9d · HTTP 200"
        assert cell(app, "dispatch/mpls/paging", "info") == "HTTP 503"
        assert cell(app, "psap-north/lte/lte-router", "trend") == "▁▂▃▅▆█"[-8:]
        text = summary(app)
        for part in ("✖ 2 CRIT", "? 1 UNKNOWN", "▲ 1 WARN", "✔ 2 OK", "since 15:06:40"):
            assert part in text


async def test_site_and_link_rows_show_redundancy_from_the_state_engine(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == 11)
        app.dashboard.apply_results(*engine_view(inventory, scenario(inventory)))
        await pilot.pause()
        # psap-north: the fibre's resolver is UNKNOWN, so only the LTE backup is known up.
        assert cell(app, "link:psap-north/fibre", "status") == "? UNKNOWN"
        assert cell(app, "link:psap-north/lte", "status") == "✔ UP"
        assert cell(app, "site:psap-north", "status") == "▲ AT RISK"
        assert cell(app, "site:psap-north", "info").startswith("1 of 2 links up (needs 1) · ")
        assert cell(app, "link:dispatch/mpls", "status") == "✖ DOWN"
        assert cell(app, "site:dispatch", "status") == "✖ DOWN"
        assert "groups ✖ DOWN 1  ▲ AT RISK 1" in summary(app)
        # The detail pane of a site lists each link's state.
        app.dashboard.table.select_key("site:psap-north")
        await pilot.pause()
        text = detail(app)
        assert "▲ AT RISK · 1 of 2 links up (needs 1)" in text
        assert "? UNKNOWN fibre (primary)" in text and "✔ UP lte (backup)" in text
        # The engine's events reach the log (a link's first status is not news: no event).
        lines = log_lines(app)
        assert any("✔ OK → ✖ CRIT  dispatch/mpls/radio-core" in line for line in lines)
        assert any("· pending → ✖ CRIT  dispatch/mpls/paging" in line for line in lines)


async def test_filter_as_you_type_and_escape_clears_it(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        await pilot.press("slash", *"radio")
        await pilot.pause(FILTER_DELAY + 0.1)
        assert shown(app) == ["site:dispatch", "link:dispatch/mpls", "dispatch/mpls/radio-core"]
        # A site or link name matches all that is under it.
        await pilot.press(*["backspace"] * 5, *"lte failover")
        await pilot.pause(FILTER_DELAY + 0.1)
        assert checks_shown(app) == ["psap-north/lte/lte-router"]
        await pilot.press("escape")
        assert len(checks_shown(app)) == 6
        assert app.focused is app.dashboard.table


async def test_problems_only_toggle(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        await pilot.press("p")
        assert sorted(checks_shown(app)) == sorted(
            [
                "dispatch/mpls/paging",
                "dispatch/mpls/radio-core",
                "psap-north/fibre/resolver",
                "psap-north/lte/lte-router",
            ]
        )
        await pilot.press("p")
        assert len(checks_shown(app)) == 6


async def test_sort_by_severity_then_age_by_key_and_by_header_click(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        await pilot.press("s")
        assert app.dashboard.sort.value == "severity"
        checks = checks_shown(app)
        # Sites by their worst check: dispatch (CRIT) first; within a link, worst first.
        assert checks[:2] == ["dispatch/mpls/paging", "dispatch/mpls/radio-core"]
        assert checks[2:5] == [
            "psap-north/fibre/resolver",  # UNKNOWN before OK
            "psap-north/fibre/cad-api",
            "psap-north/fibre/edge-router",
        ]
        await pilot.press("s")
        assert app.dashboard.sort.value == "age"
        # Oldest result first, at every level: psap-north's freshest is older than dispatch's.
        assert checks_shown(app) == [
            "psap-north/lte/lte-router",
            "psap-north/fibre/edge-router",
            "psap-north/fibre/resolver",
            "psap-north/fibre/cad-api",
            "dispatch/mpls/radio-core",
            "dispatch/mpls/paging",
        ]
        await pilot.click("#checks", offset=(14, 0))  # the Name header
        assert app.dashboard.sort.value == "name"
        await pilot.click("#checks", offset=(2, 0))  # the Status header
        assert app.dashboard.sort.value == "severity"


async def test_clicking_a_row_selects_it_and_fills_the_detail_pane(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        row = shown(app).index("psap-north/fibre/cad-api")
        await pilot.click("#checks", offset=(20, row + 1))  # +1: the header line
        assert app.dashboard.table.selected_key == "psap-north/fibre/cad-api"
        text = detail(app)
        assert "psap-north/fibre/cad-api" in text
        assert "http https://127.0.40.2:8443/health · every 30s" in text
        # Every verdict with value and threshold.
        assert "✔ status 200 expected 200" in text
        assert "✔ latency 33ms warn > 200ms, crit > 1000ms" in text
        # The certificate chain, leaf first.
        assert text.index("CN=cad.example.net") < text.index("issuer CN=Example Issuing CA")
        assert "not after 2025-06-24 (9 days left) · EC 256 · ecdsa-with-SHA256" in text
        assert "#1 CN=Example Issuing CA" in text
        assert "History (last 4)" in text


async def test_detail_pane_shows_the_error_and_history(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        app.dashboard.table.select_key("dispatch/mpls/radio-core")
        await pilot.pause()
        text = detail(app)
        assert "✖ CRIT since 15:06:10" in text
        assert "Error\nrefused: connection refused" in text
        history = text[text.index("History (last 2)") :].splitlines()[1:3]
        assert history[0].startswith("15:06:10 ✖ CRIT") and "refused" in history[0]
        assert history[1].startswith("15:05:30 ✔ OK") and "latency 3ms" in history[1]


async def test_next_problem_skips_acknowledged_ones(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        app.dashboard.table.move_cursor(row=0)
        visited = []
        for _ in range(4):
            await pilot.press("n")
            visited.append(app.dashboard.table.selected_key)
        assert visited == [
            "dispatch/mpls/paging",
            "dispatch/mpls/radio-core",
            "psap-north/fibre/resolver",
            "psap-north/lte/lte-router",
        ]
        app.dashboard.table.select_key("dispatch/mpls/radio-core")
        await pilot.press("a")
        app.dashboard.table.move_cursor(row=0)
        await pilot.press("n", "n")
        assert app.dashboard.table.selected_key == "psap-north/fibre/resolver"


async def test_acknowledge_dims_a_problem_and_stops_counting_it(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        app.dashboard.table.select_key("dispatch/mpls/radio-core")
        await pilot.press("a")
        assert cell(app, "dispatch/mpls/radio-core", "status") == "✖ CRIT ack"
        assert "✖ 1 CRIT" in summary(app) and "1 ack" in summary(app)
        assert "acknowledged" in detail(app)
        # Still visible, also with problems only.
        await pilot.press("p")
        assert "dispatch/mpls/radio-core" in checks_shown(app)
        # The link row no longer draws attention for it: only paging (CRIT) is left there.
        app.dashboard.apply_results([latency_result(inventory, "dispatch/mpls/paging", 5, NOW)])
        await pilot.pause()
        assert cell(app, "link:dispatch/mpls", "status") == "✔ OK"
        # A new state is news again: the acknowledgement ends.
        app.dashboard.apply_results(
            [failed_result(inventory, "dispatch/mpls/radio-core", NOW, ErrorClass.TIMEOUT, "x")]
        )
        await pilot.pause()
        assert cell(app, "dispatch/mpls/radio-core", "status") == "? UNKNOWN"
        # Pressing a on an OK check acknowledges nothing.
        app.dashboard.table.select_key("dispatch/mpls/paging")
        await pilot.press("a")
        assert not app.board.acked - {"dispatch/mpls/radio-core"}


async def test_help_lists_every_key_and_closes(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = rendered(app.screen.query_one("#help-keys").content)
        for binding in help_bindings():
            assert app.get_key_display(binding) in text
            assert binding.description in text
            # Every listed key has an action to do what it says.
            owner = next(
                o
                for o in (app, app.dashboard, app.dashboard.table)
                if hasattr(o, f"action_{binding.action}")
            )
            assert owner is not None
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_without_an_engine_run_and_pause_say_so(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        app.dashboard.table.select_key("dispatch/mpls/radio-core")
        await pilot.press("r", "space")
        assert any("not running" in n.message for n in app._notifications)


def test_status_age_and_sparkline_text():
    assert status_text(None) == "· pending"
    assert status_text(Severity.UNKNOWN, acked=True) == "? UNKN ack"
    assert [age_text(s) for s in (0, 59, 60, 3599, 3600, 86400 * 3)] == [
        "0s",
        "59s",
        "1m",
        "59m",
        "1h",
        "3d",
    ]
    assert sparkline([1, 2, None, 8], 8) == "▁▂ █"
    assert sparkline([5, 5], 8) == "▁▁"
    assert sparkline(list(range(30)), 4) == "▁▃▆█"


def _ref(kind: str) -> CheckRef:
    return CheckRef(f"s/l/{kind}", "s", "l", kind, "127.0.0.1:1", "127.0.0.1")


def test_info_shows_what_tls_snmp_and_dns_results_carry():
    tls = ProbeResult(
        _ref("tls"),
        NOW,
        5,
        Severity.WARN,
        {"handshake_ms": 5, "days_left": 12.4},
        certificates=(certificate("CN=a", 12.4, 0, "CN=ca"),),
    )
    assert info_text(tls, NOW) == "cert 12d"
    days_only = ProbeResult(_ref("tls"), NOW, 5, Severity.OK, {"days_left": 40.2})
    assert info_text(days_only, NOW) == "cert 40d"
    snmp = ProbeResult(
        _ref("snmp"),
        NOW,
        5,
        Severity.CRIT,
        {
            "uptime_s": 3 * 86400 + 4 * 3600 + 5,
            "if.eth0.oper_status": "up",
            "if.eth1.oper_status": "down",
        },
    )
    assert info_text(snmp, NOW) == "up 3d4h · if eth1 down"
    healthy = ProbeResult(_ref("snmp"), NOW, 5, Severity.OK, {"if.ge-0/0/0.10.oper_status": "up"})
    assert info_text(healthy, NOW) == "if 1/1 up"
    dns = ProbeResult(_ref("dns"), NOW, 5, Severity.CRIT, {"rcode": "NXDOMAIN"})
    assert info_text(dns, NOW) == "NXDOMAIN"
