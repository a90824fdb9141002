"""The dashboard driving the real engine: real tcp checks against real loopback peers, short
intervals, keys pressed through the Pilot. What is asserted is what the engineer would see."""

from __future__ import annotations

import io
import logging
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.config.inventory import Inventory
from monitor.core.logs import FORMAT, PrintableFormatter
from monitor.core.model import Severity
from tests.peers.tcp_peers import accepting_listener, closed_port
from tests.peers.webhook_peers import WebhookReceiver
from tests.tui_support import (
    ROWS,
    acknowledge,
    cell,
    log_lines,
    log_on_screen,
    rendered,
    shown,
    toasts,
    until,
    write_inventory,
)
from tui.app import CommwatchApp
from tui.widgets.detail_pane import DetailPane

SIZE = (120, 40)


def engine_inventory(
    folder: Path, live: int, dead: int, interval: str, retries: int = 1, retry: str = "200ms"
) -> Inventory:
    text = f"""\
version: 1
defaults: {{interval: {interval}, timeout: 200ms, retries: {retries}, retry_interval: {retry}}}
sites:
  - id: site
    links:
      - id: link
        checks:
          - {{id: live, kind: tcp, target: "127.0.0.1:{live}"}}
          - {{id: dead, kind: tcp, target: "127.0.0.1:{dead}"}}
"""
    return write_inventory(folder, text)


def results_of(app: CommwatchApp, check_id: str) -> int:
    return len(app.board.states[check_id].history)


async def test_results_reach_their_rows(tmp_path):
    async with accepting_listener() as live:
        inventory = engine_inventory(tmp_path, live, closed_port(), "1m")
        app = CommwatchApp(inventory, start_spread=0)
        async with app.run_test(size=SIZE) as pilot:
            await until(
                pilot,
                lambda: results_of(app, "site/link/dead") and results_of(app, "site/link/live"),
            )
            await until(pilot, lambda: cell(app, "site/link/dead", "status") == "✖ CRIT")
            assert cell(app, "site/link/live", "status") == "✔ OK"
            assert cell(app, "site/link/dead", "info").startswith("refused:")
            # The link is down (its worst check is CRIT), and with it the site's only path.
            await until(pilot, lambda: cell(app, "link:site/link", "status") == "✖ DOWN")
            assert cell(app, "site:site", "status") == "✖ DOWN"
            assert cell(app, "site:site", "info").startswith("0 of 1 links up (needs 1)")
            await pilot.press("q")
        assert app.scheduler is not None and app._engine_worker.is_finished


async def test_run_now_runs_the_selected_check_again(tmp_path):
    async with accepting_listener() as live:
        inventory = engine_inventory(tmp_path, live, closed_port(), "1m")
        app = CommwatchApp(inventory, start_spread=0)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(pilot, lambda: results_of(app, "site/link/live") == 1)
            app.dashboard.table.select_key("site/link/live")
            await pilot.press("r")
            # The interval is a minute: only run-now can bring a second result this soon.
            await until(pilot, lambda: results_of(app, "site/link/live") == 2, timeout=20)
            assert results_of(app, "site/link/dead") == 1
            assert "Running site/link/live now." in toasts(app)


async def test_an_acknowledgement_made_on_the_dashboard_is_the_engines_and_outlives_it(tmp_path):
    async with accepting_listener() as live:
        inventory = engine_inventory(tmp_path, live, closed_port(), "1m")
        app = CommwatchApp(inventory, start_spread=0, operator="noc")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(pilot, lambda: cell(app, "site/link/dead", "status") == "✖ CRIT")
            app.dashboard.table.select_key("site/link/dead")
            await acknowledge(pilot, "router swap at 14:00")
            await until(pilot, lambda: cell(app, "site/link/dead", "status") == "✖ CRIT ack")
            assert app.monitor is not None
            ack = app.monitor.acks.get("site/link/dead")
            assert ack is not None and (ack.by, ack.comment) == ("noc", "router swap at 14:00")
            assert abs(ack.expires - ack.at - 4 * 3600) < 5  # the prompt's default
            await until(pilot, lambda: cell(app, "link:site/link", "status") == "✖ DOWN")
            app.dashboard.table.select_key("link:site/link")
            await acknowledge(pilot, "carrier knows", "30m")
            await until(pilot, lambda: app.monitor.acks.get("site/link") is not None)
            await pilot.press("q")
        # The engine stored them: a dashboard started again holds and shows them.
        again = CommwatchApp(inventory, start_spread=0, operator="noc")
        async with again.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: cell(again, "site/link/dead", "status") == "✖ CRIT ack")
            await until(pilot, lambda: cell(again, "link:site/link", "status") == "✖ DOWN ack")
            assert again.monitor is not None
            assert {a.subject_id for a in again.monitor.acks} == {"site/link/dead", "site/link"}
            # Ended here, it ends in the engine.
            again.dashboard.table.select_key("site/link/dead")
            await pilot.press("a")
            await until(pilot, lambda: again.monitor.acks.get("site/link/dead") is None)
            await until(pilot, lambda: cell(again, "site/link/dead", "status") == "✖ CRIT")
            await pilot.press("q")


async def test_pause_stops_results_and_resume_brings_them_back(tmp_path):
    async with accepting_listener() as live:
        inventory = engine_inventory(tmp_path, live, closed_port(), "200ms")
        app = CommwatchApp(inventory, start_spread=0)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(pilot, lambda: results_of(app, "site/link/live") >= 2)
            app.dashboard.table.select_key("site/link/live")
            await pilot.press("space")
            assert app.scheduler is not None and app.scheduler.is_paused("site/link/live")
            await until(pilot, lambda: "Paused site/link/live." in toasts(app))
            await pilot.pause(0.3)  # a run already in flight may still report
            assert cell(app, "site/link/live", "age").startswith("‖")
            count = results_of(app, "site/link/live")
            dead_before = results_of(app, "site/link/dead")
            await pilot.pause(1.0)
            assert results_of(app, "site/link/live") == count
            assert results_of(app, "site/link/dead") > dead_before  # the others go on
            await pilot.press("space")
            assert not app.scheduler.is_paused("site/link/live")
            await until(pilot, lambda: "Resumed site/link/live." in toasts(app))
            await until(pilot, lambda: results_of(app, "site/link/live") > count)
            assert not cell(app, "site/link/live", "age").startswith("‖")


async def test_a_state_change_reaches_its_row_and_the_event_log(tmp_path):
    listener = accepting_listener()
    live = await listener.__aenter__()
    try:
        inventory = engine_inventory(tmp_path, live, closed_port(), "1s", 2, "700ms")
        app = CommwatchApp(inventory, start_spread=0)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: cell(app, "site/link/live", "status") == "✔ OK")
            await listener.__aexit__(None, None, None)  # the peer goes away: refused from now
            listener = None
            # Seen once, not yet confirmed (retries: 2): the row says so, the log not yet.
            await until(pilot, lambda: cell(app, "site/link/live", "status") == "✖ CRIT 1/2")
            # (Its first state, OK, is in the log: a first state is an event like any other.)
            assert [
                line for line in log_lines(app) if "site/link/live" in line and "CRIT" in line
            ] == []
            await until(pilot, lambda: cell(app, "site/link/live", "status") == "✖ CRIT")
            assert app.board.states["site/link/live"].severity is Severity.CRIT

            def crit_lines() -> list[str]:
                return [
                    line for line in log_lines(app) if "site/link/live" in line and "CRIT" in line
                ]

            await until(pilot, lambda: bool(crit_lines()))
            line = crit_lines()[0]
            assert "✔ OK → ✖ CRIT" in line
            assert "refused" in line
            assert line[:8].count(":") == 2  # it starts with the time of the change
    finally:
        if listener is not None:
            await listener.__aexit__(None, None, None)


def test_no_subcommand_off_a_terminal_prints_help_and_exits_3(capsys):
    # Under pytest stdin is not a terminal: the dashboard must not start.
    assert main([]) == 3
    assert "tui" in capsys.readouterr().out


def test_tui_with_a_broken_inventory_exits_3_and_says_why(tmp_path, capsys):
    broken = tmp_path / "inventory.yaml"
    broken.write_text("version: 1\nsites: [{id: Bad Id}]\n")
    assert main(["tui", str(broken)]) == 3
    assert "inventory.yaml:2" in capsys.readouterr().err


def redundant_inventory(
    folder: Path, primary: int, backup: int, dead: int | None = None
) -> Inventory:
    """A site with a primary and a backup link; with `dead`, beside it a site whose twelve
    checks all fail from the start (a start-up burst longer than the event log is high)."""
    text = f"""\
version: 1
defaults: {{interval: 200ms, timeout: 200ms, retries: 1, retry_interval: 200ms}}
sites:
  - id: psap
    links:
      - id: fibre
        role: primary
        checks:
          - {{id: router, kind: tcp, target: "127.0.0.1:{primary}"}}
      - id: lte
        role: backup
        checks:
          - {{id: router, kind: tcp, target: "127.0.0.1:{backup}"}}
"""
    if dead is not None:
        text += "  - id: yard\n    links:\n      - id: lan\n        checks:\n" + "".join(
            f'          - {{id: dead-{i}, kind: tcp, target: "127.0.0.1:{dead}"}}\n'
            for i in range(12)
        )
    return write_inventory(folder, text)


async def test_a_primary_link_going_down_puts_its_site_at_risk(tmp_path):
    primary = accepting_listener()
    primary_port = await primary.__aenter__()
    try:
        async with accepting_listener() as backup_port:
            inventory = redundant_inventory(tmp_path, primary_port, backup_port)
            app = CommwatchApp(inventory, start_spread=0)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: cell(app, "site:psap", "status") == "✔ RESILIENT")
                assert cell(app, "site:psap", "info").startswith("2 of 2 links up (needs 1)")
                await primary.__aexit__(None, None, None)  # the fibre is cut: refused from now
                primary = None
                await until(pilot, lambda: cell(app, "site:psap", "status") == "▲ AT RISK")
                assert cell(app, "site:psap", "info").startswith("1 of 2 links up (needs 1)")
                assert "· fibre DOWN ·" in cell(app, "site:psap", "info")  # and which one
                assert cell(app, "link:psap/fibre", "status") == "✖ DOWN"
                assert cell(app, "link:psap/fibre", "info").startswith("router CRIT · primary")
                assert cell(app, "link:psap/lte", "status") == "✔ UP"
                await until(
                    pilot, lambda: any("AT RISK  group psap" in ln for ln in log_lines(app))
                )
                line = next(line for line in log_lines(app) if "AT RISK  group psap" in line)
                assert "✔ RESILIENT → ▲ AT RISK" in line
                assert "link psap/fibre DOWN; 1 of 2 links up (needs 1)" in line
                assert any("✔ UP → ✖ DOWN  link psap/fibre" in line for line in log_lines(app))
                await pilot.press("q")
    finally:
        if primary is not None:
            await primary.__aexit__(None, None, None)


async def test_a_restart_shows_the_stored_sparklines_history_and_events(tmp_path):
    async with accepting_listener() as live:
        inventory = engine_inventory(tmp_path, live, closed_port(), "200ms")
        first = CommwatchApp(inventory, start_spread=0)
        async with first.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: results_of(first, "site/link/live") >= 3)
            await until(pilot, lambda: any("site/link/dead" in line for line in log_lines(first)))
            await pilot.press("q")  # stops the engine, which closes the store
    assert inventory.resilience.history.path.exists()
    # Restarted without an engine: whatever shows came from the store, not from a new result.
    second = CommwatchApp(inventory, engine=False)
    async with second.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: cell(second, "site/link/live", "trend").strip() != "")
        assert second.board.states["site/link/live"].result is None
        assert results_of(second, "site/link/live") >= 3
        await until(pilot, lambda: any("site/link/dead" in line for line in log_lines(second)))
        line = next(line for line in log_lines(second) if "CRIT  site/link/dead" in line)
        assert "· pending → ✖ CRIT" in line and "refused" in line
        second.dashboard.table.select_key("site/link/live")
        await pilot.pause()
        text = rendered(second.dashboard.query_one(DetailPane).content)
        assert "History (last " in text and "✔ OK" in text


async def test_a_history_file_being_made_is_read_as_nothing_before_this_run(tmp_path):
    """On the first run on a path the engine's writer creates the file, then its tables; the
    dashboard's read of what came before may find the file between the two. It holds nothing
    from before: the dashboard starts as on an empty history (it used to end with a
    HistoryError). Here the file is left so, with no engine to fill it."""
    inventory = engine_inventory(tmp_path, closed_port(), closed_port(), "200ms")
    path = inventory.resilience.history.path
    path.parent.mkdir(parents=True, exist_ok=True)
    sqlite3.connect(path).close()  # the file, no tables yet
    app = CommwatchApp(inventory, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        assert app.is_running
        assert results_of(app, "site/link/live") == 0


async def test_no_history_neither_stores_nor_reads(tmp_path):
    async with accepting_listener() as live:
        inventory = engine_inventory(tmp_path, live, closed_port(), "200ms")
        app = CommwatchApp(inventory, start_spread=0, history=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: results_of(app, "site/link/live") >= 2)
            await pilot.press("q")
    assert not inventory.resilience.history.path.exists()


async def test_the_event_log_shows_the_newest_event_as_it_happens(tmp_path):
    primary = accepting_listener()
    primary_port = await primary.__aenter__()
    try:
        async with accepting_listener() as backup_port:
            inventory = redundant_inventory(tmp_path, primary_port, backup_port, closed_port())
            app = CommwatchApp(inventory, start_spread=0, history=False)
            async with app.run_test(size=(160, 48)) as pilot:
                await until(pilot, lambda: cell(app, "site:psap", "status") == "✔ RESILIENT")
                await until(
                    pilot,
                    lambda: sum("CRIT  yard/lan/dead-" in line for line in log_lines(app)) == 12,
                )
                await pilot.pause(0.3)
                await primary.__aexit__(None, None, None)  # the fibre is cut
                primary = None
                # Nobody presses a key: the change is on screen, at the bottom of the log.
                await until(
                    pilot,
                    lambda: any("AT RISK  group psap" in line for line in log_on_screen(app)),
                )
                assert any("✖ DOWN  link psap/fibre" in line for line in log_on_screen(app))
                await pilot.press("ctrl+c")
            assert app.return_code == 0 and app._engine_worker.is_finished
    finally:
        if primary is not None:
            await primary.__aexit__(None, None, None)


async def test_a_selection_shows_what_it_cannot_judge_as_not_evaluated(tmp_path):
    """`commwatch tui --kind tcp` on a site whose fibre is also decided by an http check: the
    fibre and the site are not evaluated (never "0 of 2 links up"), the lte is judged."""
    async with accepting_listener() as fibre, accepting_listener() as lte:
        inventory = write_inventory(
            tmp_path,
            f"""\
version: 1
defaults: {{interval: 200ms, timeout: 200ms, retries: 1}}
sites:
  - id: psap
    links:
      - id: fibre
        checks:
          - {{id: router, kind: tcp, target: "127.0.0.1:{fibre}"}}
          - {{id: api, kind: http, target: "http://127.0.0.1:{closed_port()}/health"}}
      - id: lte
        checks: [{{id: router, kind: tcp, target: "127.0.0.1:{lte}"}}]
""",
        )
        tcp = [check for check in inventory.checks if check.kind == "tcp"]
        app = CommwatchApp(inventory, checks=tcp, start_spread=0, history=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: cell(app, "link:psap/lte", "status") == "✔ UP")
            await until(pilot, lambda: cell(app, "psap/fibre/router", "status") == "✔ OK")
            assert cell(app, "link:psap/fibre", "status") == "○ not evaluated"
            assert cell(app, "link:psap/fibre", "info").startswith("not selected: api")
            assert cell(app, "site:psap", "status") == "○ not evaluated"
            assert cell(app, "site:psap", "info").startswith(
                "checks deciding psap/fibre are not selected · "
            )
            assert not any("group psap" in line for line in log_lines(app))
            await pilot.press("q")


# --- the terminal is the dashboard's while it runs ---------------------------------------------


class Terminal(io.StringIO):
    """What a log handler writing to the user's terminal writes to (as `logs.configure()` sets
    one up before the dashboard starts)."""

    def isatty(self) -> bool:
        return True


class StrictHandler(logging.StreamHandler):
    """Raises what a handler would otherwise report on stderr and swallow."""

    def handleError(self, record: logging.LogRecord) -> None:
        raise  # the exception the handler is handling


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    """The terminal's log handler on the root logger, as `commwatch tui` runs with it."""
    stream = Terminal()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PrintableFormatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_stderr_and_logging_inside_the_running_dashboard_raise_nothing(tmp_path):
    inventory = write_inventory(tmp_path)
    app = CommwatchApp(inventory, engine=False, history=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS)
        # Textual stands in for stderr while the app runs; flushing it once raised TypeError.
        sys.stderr.flush()
        print("a stray line on stderr", file=sys.stderr, flush=True)
        # A handler made now writes to (and flushes) that stand-in.
        late = StrictHandler()
        logging.getLogger().addHandler(late)
        try:
            logging.getLogger("commwatch.test").warning("a warning while the dashboard runs")
        finally:
            logging.getLogger().removeHandler(late)
        await until(pilot, lambda: any("a warning while" in line for line in log_lines(app)))
        assert app.return_code is None  # still running
        await pilot.press("q")
    assert app.return_code == 0


async def test_log_records_go_to_the_event_log_and_reach_the_terminal_after_it(tmp_path, terminal):
    inventory = write_inventory(tmp_path)
    app = CommwatchApp(inventory, engine=False, history=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: len(shown(app)) == ROWS)
        log = logging.getLogger("commwatch.alerts")
        log.warning("notifier ops: attempt 1 failed: %s; retrying", "HTTP 500\x1b[2J")
        log.error("notifier ops: message %s not delivered", "m1")
        await until(pilot, lambda: any("not delivered" in line for line in log_lines(app)))
        warning = next(line for line in log_lines(app) if "attempt 1 failed" in line)
        assert warning[:8].count(":") == 2  # when, like every entry
        assert "WARNING  commwatch.alerts: notifier ops: attempt 1 failed" in warning
        assert "HTTP 500\\x1b[2J" in warning  # the peer's escape shown, not acted on
        # An error is a notification too: it must not wait for someone to look at the log.
        await until(pilot, lambda: any("not delivered" in toast for toast in toasts(app)))
        # Nothing was written over the screen.
        assert terminal.getvalue() == ""
        await pilot.press("q")
    # The terminal is the user's again: what it missed is there, in order, as commwatch logs.
    lines = terminal.getvalue().splitlines()
    assert lines == [
        "commwatch: WARNING commwatch.alerts: notifier ops: attempt 1 failed: "
        "HTTP 500\\x1b[2J; retrying",
        "commwatch: ERROR commwatch.alerts: notifier ops: message m1 not delivered",
    ]
    # ... and it gets the records of the run that follows, as they come.
    logging.getLogger("commwatch.test").warning("after the dashboard")
    assert terminal.getvalue().endswith("commwatch: WARNING commwatch.test: after the dashboard\n")


async def test_an_engine_warning_shows_in_the_event_log(tmp_path, terminal):
    """A real webhook that fails: the outbox's warning about the retry is in the event log."""
    receiver = WebhookReceiver()
    receiver.fail("500", 1)
    await receiver.start()
    try:
        text = f"""\
version: 1
alerts:
  group_window: 100ms
  retry_base: 100ms
  notifiers:
    - {{id: noc, kind: webhook, url: "{receiver.base_url}/noc"}}
defaults: {{interval: 1m, timeout: 200ms, retries: 1}}
sites:
  - id: site
    links:
      - id: link
        checks: [{{id: dead, kind: tcp, target: "127.0.0.1:{closed_port()}"}}]
"""
        app = CommwatchApp(write_inventory(tmp_path, text), start_spread=0)
        async with app.run_test(size=SIZE) as pilot:

            def retry_logged() -> bool:
                return any("attempt 1 failed" in line for line in log_lines(app))

            await until(pilot, retry_logged, timeout=10)
            line = next(line for line in log_lines(app) if "attempt 1 failed" in line)
            assert "WARNING  commwatch.alerts: notifier noc" in line
            assert "HTTP 500" in line
            await receiver.wait_for(lambda r: r.accepted_on("/noc"))  # the retry got through
            assert terminal.getvalue() == ""
            await pilot.press("q")
    finally:
        await receiver.stop()
