"""The dashboard's keys, clicks and panes, fed fabricated results with fixed times (no engine):
what each key does must match what the help screen says it does."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input, Label, Static

from monitor.core.events import Event, EventKind, Subject
from monitor.core.model import CheckRef, ErrorClass, ProbeResult, Severity
from tests.tui_support import (
    GROUPED,
    NOW,
    ROWS,
    acknowledge,
    cell,
    certificate,
    engine_view,
    failed_result,
    help_bindings,
    http_result,
    latency_result,
    log_lines,
    log_on_screen,
    rendered,
    scenario,
    shown,
    toasts,
    until,
    write_inventory,
)
from tui.app import CommwatchApp
from tui.present import age_text, info_text, sparkline, status_text
from tui.screens.acknowledge import AckPrompt
from tui.screens.dashboard import FILTER_DELAY, PROBLEMS_REFRESH
from tui.screens.help import HelpScreen, key_display
from tui.widgets.detail_pane import DetailPane
from tui.widgets.detail_scroll import DetailScroll
from tui.widgets.event_log import EventLog
from tui.widgets.filter_input import FilterInput
from tui.widgets.summary_bar import SummaryBar

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
    await until(pilot, lambda: len(shown(app)) == ROWS)
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
        await until(pilot, lambda: len(shown(app)) == ROWS)
        app.dashboard.apply_results(*engine_view(inventory, scenario(inventory)))
        await pilot.pause()
        # psap-north: the fibre's resolver is UNKNOWN, so only the LTE backup is known up.
        assert cell(app, "link:psap-north/fibre", "status") == "? UNKNOWN"
        assert cell(app, "link:psap-north/lte", "status") == "✔ UP"
        assert cell(app, "site:psap-north", "status") == "▲ AT RISK"
        assert cell(app, "site:psap-north", "info").startswith(
            "1 of 2 links up, 1 unknown (needs 1) · "
        )
        assert cell(app, "link:dispatch/mpls", "status") == "✖ DOWN"
        assert cell(app, "site:dispatch", "status") == "✖ DOWN"
        assert "groups ✖ DOWN 1  ▲ AT RISK 1" in summary(app)
        # The detail pane of a site lists each link's state.
        app.dashboard.table.select_key("site:psap-north")
        await pilot.pause()
        text = detail(app)
        assert "▲ AT RISK · 1 of 2 links up, 1 unknown (needs 1)" in text
        assert "? UNKNOWN fibre (primary)" in text and "✔ UP lte (backup)" in text
        # The engine's events reach the log, first states (from pending) too.
        lines = log_lines(app)
        assert any("· pending → ✖ DOWN  link dispatch/mpls" in line for line in lines)
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
        # Every verdict in words, a threshold with its bounds.
        assert "✔ status 200\n" in text
        assert "✔ latency 33ms (warn > 200ms, crit > 1000ms)" in text
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
        await acknowledge(pilot)
        app.dashboard.table.move_cursor(row=0)
        await pilot.press("n", "n")
        assert app.dashboard.table.selected_key == "psap-north/fibre/resolver"


async def test_acknowledge_dims_a_problem_and_stops_counting_it(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        app.dashboard.table.select_key("dispatch/mpls/radio-core")
        await acknowledge(pilot, "radio vendor on site")
        assert cell(app, "dispatch/mpls/radio-core", "status") == "✖ CRIT ack"
        assert "✖ 1 CRIT" in summary(app) and "1 ack" in summary(app)
        assert "acknowledged" in detail(app)
        # Still visible, also with problems only.
        await pilot.press("p")
        assert "dispatch/mpls/radio-core" in checks_shown(app)
        # The link row no longer draws attention for it once paging (CRIT) recovers, but it
        # does not claim OK either: its problem is there, acknowledged.
        assert cell(app, "link:dispatch/mpls", "status") == "✖ CRIT"
        app.dashboard.apply_results([latency_result(inventory, "dispatch/mpls/paging", 5, NOW)])
        await pilot.pause()
        assert cell(app, "link:dispatch/mpls", "status") == "✖ CRIT ack"
        assert cell(app, "site:dispatch", "status") == "✖ CRIT ack"
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


async def test_the_acknowledge_prompt_asks_why_and_until_when_and_says_what_is_wrong(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW, operator="noc")
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        app.dashboard.table.select_key("dispatch/mpls/radio-core")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AckPrompt))
        prompt = app.screen
        assert "check dispatch/mpls/radio-core (CRIT)" in rendered(
            prompt.query_one("#ack-title", Label).render()
        )
        assert prompt.query_one("#ack-expires", Input).value == "4h"  # the default: a shift
        # No comment: said under the form, and the prompt stays.
        await pilot.press("enter", "enter")
        assert isinstance(app.screen, AckPrompt)
        assert "comment is required" in rendered(prompt.query_one("#ack-error", Static).render())
        await pilot.press(*"vendor called", "enter", *["backspace"] * 2, *"soon", "enter")
        assert isinstance(app.screen, AckPrompt)
        assert "neither a duration" in rendered(prompt.query_one("#ack-error", Static).render())
        await pilot.press(*["backspace"] * 4, *"31d", "enter")
        assert "more than 30 days" in rendered(prompt.query_one("#ack-error", Static).render())
        # Escape: nothing acknowledged.
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, AckPrompt))
        assert app.board.acks == {} and not app.board.acked
        # Answered: until the time asked, with the comment, shown in the row and the pane.
        await acknowledge(pilot, "vendor called", "90m")
        ack = app.board.acks["dispatch/mpls/radio-core"]
        assert (ack.by, ack.comment, ack.expires) == ("noc", "vendor called", NOW + 5400)
        assert cell(app, "dispatch/mpls/radio-core", "status") == "✖ CRIT ack"
        assert "acknowledged by noc until 16:36:40 (1h left): vendor called" in detail(app)
        # a again ends it, without a prompt.
        await pilot.press("a")
        await pilot.pause()
        assert not isinstance(app.screen, AckPrompt)
        assert app.board.acks == {} and cell(app, "dispatch/mpls/radio-core", "status") == "✖ CRIT"


async def test_a_link_or_a_group_row_is_acknowledged_as_itself(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW, operator="noc")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS)
        app.dashboard.apply_results(*engine_view(inventory, scenario(inventory)))
        await pilot.pause()
        app.dashboard.table.select_key("link:dispatch/mpls")
        await acknowledge(pilot, "carrier ticket 7731", "2h")
        assert set(app.board.acks) == {"dispatch/mpls"}
        assert cell(app, "link:dispatch/mpls", "status") == "✖ DOWN ack"
        assert "acknowledged by noc" in detail(app) and "carrier ticket 7731" in detail(app)
        # Its checks are subjects of their own: not acknowledged by it.
        assert cell(app, "dispatch/mpls/radio-core", "status") == "✖ CRIT"
        app.dashboard.table.select_key("site:dispatch")
        await acknowledge(pilot, "site visit booked")
        assert set(app.board.acks) == {"dispatch/mpls", "dispatch"}
        assert cell(app, "site:dispatch", "status") == "✖ DOWN ack"
        # A row whose subject has no problem asks nothing.
        app.dashboard.table.select_key("link:psap-north/lte")
        await pilot.press("a")
        await pilot.pause()
        assert not isinstance(app.screen, AckPrompt) and "psap-north/lte" not in app.board.acks


async def test_help_lists_every_key_and_closes(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = rendered(app.screen.query_one("#help-keys").content)
        for binding in help_bindings():
            assert key_display(app, binding) in text
            assert binding.description in text
            # Every listed key has an action to do what it says.
            action = binding.action.split("(")[0].removeprefix("screen.").removeprefix("app.")
            owners = (app, app.dashboard, *app.dashboard.query("*"))
            assert any(hasattr(o, f"action_{action}") for o in owners), binding
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_every_key_that_works_is_in_the_help(inventory):
    """Whichever pane has the focus, each key bound there is listed: none is undocumented."""
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        listed = {key for binding in help_bindings() for key in binding.key.split(",")}
        await pilot.press("slash")  # the filter box is focusable only while it is shown
        panes = [w for w in app.dashboard.query("*") if w.focusable]
        assert {type(w).__name__ for w in panes} == {
            "CheckTable",
            "EventLog",
            "DetailScroll",
            "FilterInput",
        }
        for pane in panes:
            pane.focus()
            await pilot.pause()
            for key, active in app.active_bindings.items():
                if isinstance(active.node, Input) and active.binding not in FilterInput.BINDINGS:
                    continue  # the editing keys of any text box (the help says so)
                assert key in listed, f"{key} ({active.binding.action}) on {pane} is not in help"


async def test_without_an_engine_run_and_pause_say_so(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(app, pilot, inventory)
        app.dashboard.table.select_key("dispatch/mpls/radio-core")
        await pilot.press("r", "space")
        await until(pilot, lambda: toasts(app) == ["The engine is not running."] * 2)


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
    return CheckRef(
        check_id=f"s/l/{kind}",
        site_id="s",
        link_id="l",
        kind=kind,
        target="127.0.0.1:1",
        host="127.0.0.1",
    )


def test_info_shows_what_tls_snmp_and_dns_results_carry():
    tls = ProbeResult(
        check=_ref("tls"),
        started_at=NOW,
        duration_ms=5,
        severity=Severity.WARN,
        observations={"handshake_ms": 5, "days_left": 12.4},
        certificates=(certificate("CN=a", 12.4, 0, "CN=ca"),),
    )
    assert info_text(tls, NOW) == "cert 12d"
    days_only = ProbeResult(
        check=_ref("tls"),
        started_at=NOW,
        duration_ms=5,
        severity=Severity.OK,
        observations={"days_left": 40.2},
    )
    assert info_text(days_only, NOW) == "cert 40d"
    snmp = ProbeResult(
        check=_ref("snmp"),
        started_at=NOW,
        duration_ms=5,
        severity=Severity.CRIT,
        observations={
            "system.uptime_s": 3 * 86400 + 4 * 3600 + 5,
            "if.eth0.oper_status": "up",
            "if.eth1.oper_status": "down",
        },
    )
    assert info_text(snmp, NOW) == "up 3d04h · if eth1 down"
    healthy = ProbeResult(
        check=_ref("snmp"),
        started_at=NOW,
        duration_ms=5,
        severity=Severity.OK,
        observations={"if.ge-0/0/0.10.oper_status": "up"},
    )
    assert info_text(healthy, NOW) == "if 1/1 up"
    dns = ProbeResult(
        check=_ref("dns"),
        started_at=NOW,
        duration_ms=5,
        severity=Severity.CRIT,
        observations={"rcode": "NXDOMAIN"},
    )
    assert info_text(dns, NOW) == "NXDOMAIN"


WIDE = (160, 48)  # the event log shows 8 entries


def link_event(at: float, link: str, before: str, after: str, cause: str) -> Event:
    site = link.split("/")[0]
    return Event(at, Subject.LINK, link, site, EventKind.HARD, before, after, cause)


def group_event(at: float, group: str, before: str, after: str, cause: str) -> Event:
    return Event(at, Subject.GROUP, group, group, EventKind.HARD, before, after, cause)


def start_up_burst(count: int) -> list[Event]:
    """More first states than the log has lines, all in one batch (as at start)."""
    return [
        link_event(NOW - 100 + i, f"site-{i}/link", "PENDING", "UP", "first result")
        for i in range(count)
    ]


async def deliver(app: CommwatchApp, pilot, events: list[Event]) -> None:
    """Through the engine's sink, as the engine reports them."""
    before = len(log_lines(app))
    for event in events:
        app.deliver_event(event)
    await until(pilot, lambda: len(log_lines(app)) == before + len(events))
    await pilot.pause()


async def test_event_log_follows_the_newest_event_unless_scrolled_back(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS)
        log = app.dashboard.query_one(EventLog)
        burst = log.size.height + 1  # one more than the log has lines
        await deliver(app, pilot, start_up_burst(burst))
        assert log_on_screen(app)[-1].endswith(f"link site-{burst - 1}/link  first result")
        # A change after the burst is in view as it happens, without a key pressed.
        down = link_event(NOW, "radio-ridge/microwave", "UP", "DOWN", "site-router is CRIT")
        await deliver(app, pilot, [down])
        assert "✔ UP → ✖ DOWN  link radio-ridge/microwave" in log_on_screen(app)[-1]
        assert log.border_title == "Events"
        # A long burst, many batches: still the newest in view.
        await deliver(app, pilot, start_up_burst(40))
        assert log_on_screen(app)[-1].endswith("link site-39/link  first result")
        # Scrolled back, the log stays where the user looks, and says what is below.
        await pilot.press("e", "pageup")
        assert app.focused is log
        looked_at = log_on_screen(app)
        assert not any("microwave" in line for line in looked_at)
        at_risk = group_event(
            NOW + 1,
            "radio-ridge",
            "RESILIENT",
            "AT RISK",
            "link radio-ridge/microwave DOWN; 1 of 2 links up (needs 1)",
        )
        await deliver(app, pilot, [at_risk])
        assert log_on_screen(app) == looked_at
        assert log.border_title == "Events · 1 newer below · End follows"
        # End follows again: the newest is in view, and so is the next one.
        await pilot.press("end")
        assert "✔ RESILIENT → ▲ AT RISK  group radio-ridge" in log_on_screen(app)[-1]
        assert log.border_title == "Events"
        up = link_event(NOW + 2, "radio-ridge/microwave", "DOWN", "UP", "site-router is OK")
        await deliver(app, pilot, [up])
        assert "✖ DOWN → ✔ UP  link radio-ridge/microwave" in log_on_screen(app)[-1]
        # Scrolling back down to the bottom (here line by line) follows too.
        await pilot.press("up", "up")
        assert not log.following
        await pilot.press("down", "down")
        assert log.following
        await deliver(app, pilot, [down])
        assert "✔ UP → ✖ DOWN" in log_on_screen(app)[-1]
        # Home shows the oldest at the top, and nothing above it, however far one scrolls.
        await pilot.press("home")
        assert log_on_screen(app)[0].endswith("link site-0/link  first result")
        await pilot.press("pageup", "up")
        lines = [log.render_line(y).text.strip() for y in range(log.size.height)]
        assert lines[0].endswith("link site-0/link  first result") and "" not in lines


async def test_event_log_shows_first_states(inventory):
    """A first state (before it: pending) is an event like any other, for checks, links and
    groups alike."""
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS)
        first = [
            link_event(NOW, "psap-north/lte", "PENDING", "UP", "lte-router is OK"),
            group_event(NOW, "psap-north", "PENDING", "RESILIENT", "2 of 2 links up"),
        ]
        result = latency_result(inventory, "psap-north/lte/lte-router", 5, NOW)
        app.dashboard.apply_results([result], first)
        await pilot.pause()
        lines = log_on_screen(app)
        assert any("· pending → ✔ UP  link psap-north/lte" in line for line in lines)
        assert any("· pending → ✔ RESILIENT  group psap-north" in line for line in lines)
        # Without the engine, a first result that is OK is news too.
        assert any("· pending → ✔ OK  psap-north/lte/lte-router" in line for line in lines)


@pytest.mark.parametrize(
    "keys", [["ctrl+c"], ["slash", "ctrl+c"], ["e", "ctrl+c"], ["question_mark", "ctrl+c"]]
)
async def test_ctrl_c_quits_wherever_the_focus_is(inventory, keys):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        await pilot.press(*keys)
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0


@pytest.fixture
def grouped(tmp_path):
    return write_inventory(tmp_path, GROUPED)


async def engine_started(app: CommwatchApp, pilot, inventory, rows: int = ROWS + 1) -> None:
    await until(pilot, lambda: len(shown(app)) == rows)
    app.dashboard.apply_results(*engine_view(inventory, scenario(inventory)))
    await pilot.pause()


async def test_a_named_group_has_a_row_with_its_state_and_cause(grouped):
    app = CommwatchApp(grouped, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await engine_started(app, pilot, grouped)
        # Named groups come first, then the sites.
        assert shown(app)[:2] == ["group:county-paths", "site:dispatch"]
        # fibre is UNKNOWN and mpls DOWN: one of three links up, two needed, and the fibre
        # might be up: nobody can say the group is DOWN.
        assert cell(app, "group:county-paths", "status") == "? UNKNOWN"
        assert cell(app, "group:county-paths", "name") == "Every path into the county"
        assert cell(app, "group:county-paths", "info") == (
            "1 of 3 links up, 1 unknown (needs 2) · psap-north/fibre UNKNOWN, dispatch/mpls DOWN"
            " · group county-paths · 2 sites · 6 checks"
        )
        # The summary counts the groups the rows show: two sites' and the named one.
        assert "groups ✖ DOWN 1  ? UNKNOWN 1  ▲ AT RISK 1" in summary(app)
        app.dashboard.table.select_key("group:county-paths")
        await pilot.pause()
        text = detail(app)
        assert "Every path into the county\ngroup county-paths · 3 links in 2 sites" in text
        assert "? UNKNOWN · 1 of 3 links up, 1 unknown (needs 2)" in text
        assert "? UNKNOWN psap-north/fibre (primary): resolver UNKNOWN" in text
        assert "✔ UP psap-north/lte (backup)\n" in text
        assert "✖ DOWN dispatch/mpls (primary): paging CRIT, radio-core CRIT" in text
        # The filter finds it by its name; problems only keeps it (its links have problems).
        await pilot.press("slash", *"every path")
        await pilot.pause(FILTER_DELAY + 0.1)
        assert shown(app) == ["group:county-paths"]
        await pilot.press("escape", "p")
        assert "group:county-paths" in shown(app)


async def test_link_and_site_rows_say_why_they_are_not_up(grouped):
    app = CommwatchApp(grouped, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await engine_started(app, pilot, grouped)
        assert cell(app, "link:dispatch/mpls", "info").startswith("paging CRIT, radio-core CRIT · ")
        assert cell(app, "link:psap-north/fibre", "info").startswith("resolver UNKNOWN · primary")
        assert cell(app, "link:psap-north/lte", "info") == "backup · lte · LTE failover"
        assert cell(app, "site:psap-north", "info").startswith(
            "1 of 2 links up, 1 unknown (needs 1) · fibre UNKNOWN · psap-north"
        )
        app.dashboard.table.select_key("link:dispatch/mpls")
        await pilot.pause()
        assert "link ✖ DOWN · paging CRIT, radio-core CRIT" in detail(app)


async def test_a_link_not_yet_known_says_what_it_waits_for(grouped):
    app = CommwatchApp(grouped, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS + 1)
        only = [latency_result(grouped, "psap-north/fibre/edge-router", 5, NOW)]
        app.dashboard.apply_results(*engine_view(grouped, only))
        await pilot.pause()
        assert cell(app, "link:psap-north/fibre", "status") == "· pending"
        assert cell(app, "link:psap-north/fibre", "info").startswith(
            "waiting for cad-api, resolver · "
        )
        assert cell(app, "site:psap-north", "status") == "· pending"
        assert "waiting for fibre, lte" in cell(app, "site:psap-north", "info")
        assert "groups 3 pending" in summary(app)


async def test_a_link_waiting_on_an_unconfirmed_check_names_it_with_its_count(grouped):
    # At start-up a deciding check has been seen failing but not confirmed: the link is still
    # pending, and what it waits for must not read "waiting for " with nothing after it.
    app = CommwatchApp(grouped, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS + 1)
        results = [
            latency_result(grouped, "psap-north/fibre/edge-router", 5, NOW),
            failed_result(grouped, "psap-north/fibre/cad-api", NOW, ErrorClass.REFUSED, "refused"),
            failed_result(grouped, "psap-north/fibre/resolver", NOW, ErrorClass.REFUSED, "no"),
        ]
        app.dashboard.apply_results(*engine_view(grouped, results, confirm_at_once=False))
        await pilot.pause()
        need = max(1, next(c for c in grouped.checks if c.ref.check_id.endswith("cad-api")).retries)
        assert need > 1  # the inventory's checks need more than one result to confirm a failure
        assert cell(app, "link:psap-north/fibre", "status") == "· pending"
        assert cell(app, "link:psap-north/fibre", "info").startswith(
            f"waiting for cad-api CRIT 1/{need}, resolver CRIT 1/{need} · "
        )


async def test_a_row_above_a_filtered_out_check_still_follows_it(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS)
        app.dashboard.apply_results(*engine_view(inventory, scenario(inventory)))
        await pilot.press("slash", *"edge-router")
        await pilot.pause(FILTER_DELAY + 0.1)
        assert "psap-north/fibre/resolver" not in shown(app)
        assert cell(app, "link:psap-north/fibre", "status") == "? UNKNOWN"
        # The resolver (not shown) answers again: the fibre is up, and the site with it.
        answer = latency_result(inventory, "psap-north/fibre/resolver", 9, NOW)
        _, events, state = engine_view(inventory, [*scenario(inventory), answer])
        app.dashboard.apply_results([answer], events, state)
        await pilot.pause()
        assert cell(app, "link:psap-north/fibre", "status") == "✔ UP"
        assert cell(app, "site:psap-north", "status") == "✔ RESILIENT"


async def test_summary_counts_only_the_groups_it_shows(inventory):
    psap = [c for c in inventory.checks if c.ref.site_id == "psap-north"]
    app = CommwatchApp(inventory, checks=psap, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == 7)  # site, 2 links, 4 checks
        # The engine knows dispatch too (DOWN), but this dashboard has no row for it.
        app.dashboard.apply_results(*engine_view(inventory, scenario(inventory)))
        await pilot.pause()
        assert [key for key in shown(app) if key.startswith("site:")] == ["site:psap-north"]
        assert "groups ▲ AT RISK 1  │" in summary(app)


async def test_a_named_group_shows_in_a_dashboard_of_some_of_its_checks(grouped):
    psap = [c for c in grouped.checks if c.ref.site_id == "psap-north"]
    app = CommwatchApp(grouped, checks=psap, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == 8)  # group, site, 2 links, 4 checks
        assert shown(app)[:2] == ["group:county-paths", "site:psap-north"]
        app.dashboard.apply_results(*engine_view(grouped, scenario(grouped)))
        await pilot.pause()
        # The named group spans dispatch too, whose checks are not selected: not evaluated.
        assert "groups ▲ AT RISK 1  1 not evaluated  │" in summary(app)
        assert cell(app, "group:county-paths", "status") == "○ not evaluated"
        assert cell(app, "group:county-paths", "info").startswith(
            "checks deciding dispatch/mpls are not selected · "
        )


async def test_failing_verdicts_come_first(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        slow = http_result(inventory, "psap-north/fibre/cad-api", 200, 1500.0, NOW)
        assert [v.condition for v in slow.verdicts] == ["status", "latency"]  # probe order
        app.dashboard.apply_results([slow])
        app.dashboard.table.select_key("psap-north/fibre/cad-api")
        await pilot.pause()
        text = detail(app)
        verdicts = text[text.index("Verdicts") :].splitlines()[1:3]
        assert verdicts[0] == "✖ latency 1500ms (warn > 200ms, crit > 1000ms)"
        assert verdicts[1].startswith("✔ status 200")


async def test_enter_zooms_the_selected_row_and_escape_returns(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        app.dashboard.table.select_key("site:psap-north")
        await pilot.pause()
        assert "psap-north/fibre/edge-router" not in detail(app)  # OK: not a problem
        await pilot.press("enter")
        pane = app.dashboard.query_one(DetailScroll)
        assert app.dashboard.maximized is pane and app.focused is pane
        assert "zoomed" in str(pane.border_title)
        # Zoomed, every check below the site, worst first.
        text = detail(app)
        assert text.index("? UNKNOWN psap-north/fibre/resolver") < text.index(
            "✔ OK psap-north/fibre/edge-router"
        )
        await pilot.press("escape")
        assert app.dashboard.maximized is None
        assert app.focused is app.dashboard.table
        assert "psap-north/fibre/edge-router" not in detail(app)
        # Enter toggles, on a check too.
        app.dashboard.table.select_key("dispatch/mpls/radio-core")
        await pilot.press("enter")
        assert app.dashboard.maximized is pane
        await pilot.press("enter")
        assert app.dashboard.maximized is None


async def test_keys_focus_the_event_log_and_the_detail_pane(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        await pilot.press("e")
        assert app.focused is app.dashboard.query_one(EventLog)
        await pilot.press("d")
        assert app.focused is app.dashboard.query_one(DetailScroll)
        await pilot.press("escape")
        assert app.focused is app.dashboard.table
        await pilot.press("tab")
        assert app.focused is app.dashboard.query_one(EventLog)


async def test_severity_sort_follows_changes_and_the_cursor_stays_on_its_row(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        await pilot.press("s")
        fibre = [k for k in checks_shown(app) if k.startswith("psap-north/fibre/")]
        assert fibre[0] == "psap-north/fibre/resolver"  # UNKNOWN first
        app.dashboard.table.select_key("psap-north/fibre/edge-router")
        refused = failed_result(
            inventory, "psap-north/fibre/edge-router", NOW, ErrorClass.REFUSED, "refused"
        )
        app.dashboard.apply_results([refused])
        # Within the refresh, the CRIT check moves above the UNKNOWN one, cursor with it.
        await until(
            pilot,
            lambda: (
                next(k for k in checks_shown(app) if k.startswith("psap-north/fibre/"))
                == "psap-north/fibre/edge-router"
            ),
            timeout=PROBLEMS_REFRESH * 3,
        )
        assert app.dashboard.table.selected_key == "psap-north/fibre/edge-router"


async def test_a_selected_problem_that_recovers_stays_in_the_problems_view(inventory):
    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        await pilot.press("p")
        app.dashboard.table.select_key("dispatch/mpls/radio-core")
        app.dashboard.apply_results([latency_result(inventory, "dispatch/mpls/radio-core", 4, NOW)])
        await pilot.pause(PROBLEMS_REFRESH * 1.5)
        # It recovered under the cursor: it stays, selected, showing that it is OK now.
        assert app.dashboard.table.selected_key == "dispatch/mpls/radio-core"
        assert cell(app, "dispatch/mpls/radio-core", "status") == "✔ OK"
        assert "✔ OK since 15:06:40" in detail(app)
        # Once the cursor moves on, the next refresh leaves it out.
        app.dashboard.table.select_key("dispatch/mpls/paging")
        app.dashboard.apply_results(
            [failed_result(inventory, "psap-north/fibre/edge-router", NOW, ErrorClass.REFUSED, "x")]
        )
        await until(pilot, lambda: "dispatch/mpls/radio-core" not in shown(app))
        assert app.dashboard.table.selected_key == "dispatch/mpls/paging"


async def test_the_detail_pane_says_when_the_leaf_was_first_seen_and_is_due_for_renewal(inventory):
    """What the engine's history of the endpoint adds (observations of the renewal judgement),
    beside the renewal verdict itself."""
    from dataclasses import replace

    from monitor.core.model import Verdict

    app = CommwatchApp(inventory, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, inventory)
        results = scenario(inventory)
        last = [r for r in results if r.check.check_id == "psap-north/fibre/cad-api"][-1]
        overdue = Verdict(
            condition="renewal",
            observation="renewal_due",
            value="2025-06-01",
            threshold="renewed once 67% of its validity has passed (renewal_due)",
            severity=Severity.WARN,
            finding="renewal overdue: should have renewed by 2025-06-01 (67% of its 90-day "
            "validity); no newer certificate seen here",
            reason="renewal overdue",
        )
        judged = replace(
            last,
            started_at=last.started_at + 1,
            severity=Severity.WARN,
            verdicts=(*last.verdicts, overdue),
            observations={
                **last.observations,
                "certificate_first_seen": 1741910400.0,  # 2025-03-14
                "renewal_due_at": 1748736000.0,  # 2025-06-01
            },
        )
        app.dashboard.apply_results([judged])
        app.dashboard.table.select_key("psap-north/fibre/cad-api")
        await pilot.pause()
        text = detail(app)
        assert "leaf first seen 2025-03-14 · renewal due 2025-06-01" in text
        assert "renewal overdue: should have renewed by 2025-06-01" in text
        assert text.index("renewal overdue") < text.index("Certificate chain")
