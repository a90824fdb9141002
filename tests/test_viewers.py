"""`commwatch tui --connect`: the dashboard attached to a real engine (`commwatch run --listen`
in a process of its own) watching TCP peers of the test. What the viewer shows is what the
engine holds; commands reach the engine; a cut connection is shown and healed with nothing
lost; the viewer itself probes nothing."""

from __future__ import annotations

import asyncio

from monitor.api.client import ApiClient, backoff_delay
from monitor.api.mirror import Mirror
from tests.history_support import stalled
from tests.peers.proxy import CuttingProxy
from tests.tui_support import acknowledge, cell, log_lines, rendered, toasts, until
from tests.viewer_support import (
    LOOPBACK,
    OPERATOR_ENV,
    TOKENS,
    VIEWER_ENV,
    CountingPeer,
    PtyViewer,
    commwatch,
    free_port,
    running_engine,
)
from tui.remote import RemoteApp
from tui.widgets.summary_bar import SummaryBar

SIZE = (120, 40)
STATUS = {"OK": "✔ OK", "CRIT": "✖ CRIT"}


async def attached(url, token_env: str = OPERATOR_ENV) -> RemoteApp:
    async with ApiClient(url, token=TOKENS[token_env]) as client:
        document = await client.state()
    return RemoteApp(url, document, token=TOKENS[token_env])


def summary(app: RemoteApp) -> str:
    return rendered(app.dashboard.query_one(SummaryBar).content, width=300)


async def test_rows_follow_the_engine_and_run_now_reaches_it_while_the_viewer_probes_nothing(
    tmp_path,
):
    up, down = CountingPeer(), CountingPeer()  # `down` never listens: its check is CRIT
    await up.start()
    try:
        async with running_engine(tmp_path, {"fibre": up, "lte": down}) as engine:
            app = await attached(engine.url)
            async with app.run_test(size=SIZE, notifications=True) as pilot:
                engine_says = await engine.severities()
                assert engine_says == {"psap/fibre/port": "OK", "psap/lte/port": "CRIT"}
                for check_id, severity in engine_says.items():
                    await until(
                        pilot, lambda c=check_id, s=severity: cell(app, c, "status") == STATUS[s]
                    )
                assert cell(app, "psap/lte/port", "info").startswith("refused")
                # The engine ran each check once (interval 1h); the viewer, showing them all
                # for a while, made no connection of its own.
                await pilot.pause(1.0)
                assert up.accepted == 1

                # Run now from the viewer: the engine looks once more, and the result comes back.
                app.dashboard.table.select_key("psap/fibre/port")
                await pilot.press("r")
                await until(pilot, lambda: up.accepted == 2)
                await until(pilot, lambda: len(app.board.states["psap/fibre/port"].history) == 2)
                assert "Running psap/fibre/port now." in toasts(app)

                # A change on the engine's side reaches the row and the event log.
                await up.stop()
                status, _ = await engine.request("POST", "/api/v1/checks/psap/fibre/port/run")
                assert status == 202
                await until(pilot, lambda: cell(app, "psap/fibre/port", "status") == STATUS["CRIT"])
                assert (await engine.severities())["psap/fibre/port"] == "CRIT"
                assert up.accepted == 2
    finally:
        await up.stop()


async def test_pause_and_acknowledge_go_to_the_engine_and_a_viewer_token_is_told_why_not(
    tmp_path,
):
    down = CountingPeer()
    async with running_engine(tmp_path, {"lte": down}) as engine:
        app = await attached(engine.url)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(pilot, lambda: cell(app, "psap/lte/port", "status") == STATUS["CRIT"])
            app.dashboard.table.select_key("psap/lte/port")
            await pilot.press("space")
            await until(pilot, lambda: "psap/lte/port" in app.dashboard.paused)
            document = await engine.state()
            assert [c["paused"] for c in document["checks"]] == [True]
            await acknowledge(pilot, "lte modem swap", "2h")
            await until(pilot, lambda: "psap/lte/port" in app.board.acked)
            acks = (await engine.state())["acks"]
            assert [a["subject_id"] for a in acks] == ["psap/lte/port"]
            assert (acks[0]["comment"], acks[0]["by"], acks[0]["state"]) == (
                "lte modem swap",
                "operator",
                "CRIT",
            )
            # A link row is acknowledged as itself, in the engine.
            app.dashboard.table.select_key("link:psap/lte")
            await acknowledge(pilot, "carrier ticket 7731")
            await until(pilot, lambda: "psap/lte" in app.board.acks)
            assert cell(app, "link:psap/lte", "status") == "✖ DOWN ack"
            acks = {a["subject_id"]: a for a in (await engine.state())["acks"]}
            assert set(acks) == {"psap/lte/port", "psap/lte"}
            assert acks["psap/lte"]["comment"] == "carrier ticket 7731"

        looker = await attached(engine.url, VIEWER_ENV)
        async with looker.run_test(size=SIZE, notifications=True) as pilot:
            # What another viewer did shows here: paused and acknowledged, from the engine.
            await until(pilot, lambda: "psap/lte/port" in looker.dashboard.paused)
            await until(pilot, lambda: "psap/lte/port" in looker.board.acked)
            assert "carrier ticket 7731" in looker.board.acks["psap/lte"].comment
            looker.dashboard.table.select_key("psap/lte/port")
            await pilot.press("r")
            await until(pilot, lambda: any("needs an operator token" in t for t in toasts(looker)))
            # Ending one needs an operator too.
            await pilot.press("a")
            await until(
                pilot, lambda: sum("needs an operator token" in t for t in toasts(looker)) > 1
            )
            assert "psap/lte/port" in looker.board.acked
        assert down.accepted == 0


async def test_a_control_the_engines_history_has_not_stored_is_told_as_not_stored_yet(tmp_path):
    """The engine answers a pause, an acknowledgement or its end that its history did not store
    within 5 s (its disk stalled; here another process holds the database's write lock) with
    202: in force, but an engine that dies before its history catches up forgets it. The
    dashboard warns so rather than confirming; with the history healthy the same commands are
    confirmed as usual, and a run now (always 202) is never taken for one not stored."""
    down = CountingPeer()
    async with running_engine(tmp_path, {"lte": down}) as engine:
        app = await attached(engine.url)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(pilot, lambda: cell(app, "psap/lte/port", "status") == STATUS["CRIT"])
            app.dashboard.table.select_key("psap/lte/port")
            await acknowledge(pilot, "lte modem swap")
            await until(pilot, lambda: "Acknowledged psap/lte/port." in toasts(app))
            await pilot.press("r")
            await until(pilot, lambda: "Running psap/lte/port now." in toasts(app))
            assert not [t for t in toasts(app) if "not stored" in t]

            with stalled(tmp_path / "history.sqlite3"):
                await pilot.press("space")
                await until(pilot, lambda: not_stored("Paused psap/lte/port.") in toasts(app), 30)
                await pilot.press("a")  # on an acknowledged row: ends it
                ended = not_stored("Acknowledgement of psap/lte/port ended.")
                await until(pilot, lambda: ended in toasts(app), 30)
                await acknowledge(pilot, "still on it")
                again = not_stored("Acknowledged psap/lte/port.")
                await until(pilot, lambda: again in toasts(app), 30)
                # In force in the engine meanwhile, and shown so here.
                document = await engine.state()
                assert [c["paused"] for c in document["checks"]] == [True]
                assert [a["comment"] for a in document["acks"]] == ["still on it"]
                assert "psap/lte/port" in app.dashboard.paused
                assert app.board.acks["psap/lte/port"].comment == "still on it"
            # Never told as stored.
            assert "Paused psap/lte/port." not in toasts(app)
            assert "Acknowledgement of psap/lte/port ended." not in toasts(app)

            # The history writes again: confirmed as usual, no warning.
            await pilot.press("space")
            await until(pilot, lambda: "Resumed psap/lte/port." in toasts(app))
            await pilot.press("space")
            await until(pilot, lambda: "Paused psap/lte/port." in toasts(app))
            assert not_stored("Resumed psap/lte/port.") not in toasts(app)
            # The stalled pause's warning may still show; the healthy pause adds none.
            assert toasts(app).count(not_stored("Paused psap/lte/port.")) <= 1


def not_stored(done: str) -> str:
    """The dashboard's warning of a control in force in the engine but not in its history."""
    return (
        f"{done} In force, but the engine's history has not stored it yet (disk stalled?): an "
        "engine restart would forget it."
    )


async def test_a_cut_connection_shows_since_when_and_resumes_with_nothing_lost(tmp_path):
    up = CountingPeer()
    await up.start()
    try:
        async with running_engine(tmp_path, {"fibre": up}) as engine:
            proxy = CuttingProxy(engine.url)
            await proxy.mend()
            app = await attached(proxy.url)
            async with app.run_test(size=SIZE, notifications=True) as pilot:
                check = "psap/fibre/port"
                await until(pilot, lambda: cell(app, check, "status") == STATUS["OK"])
                await until(pilot, lambda: app.connection is not None and app.connection.connected)
                await proxy.cut()
                await until(pilot, lambda: "disconnected since" in summary(app))
                assert app.connection is not None and not app.connection.connected

                # While the viewer is away, the engine moves on: two results, a state change.
                await up.stop()
                for _ in range(2):
                    before = len((await engine.state())["checks"])
                    status, _ = await engine.request("POST", f"/api/v1/checks/{check}/run")
                    assert status == 202 and before == 1
                    await asyncio.sleep(0.3)
                await until(pilot, lambda: up.accepted == 1)

                await proxy.mend()
                await until(pilot, lambda: "disconnected" not in summary(app))
                await until(pilot, lambda: cell(app, check, "status") == STATUS["CRIT"])
                # Resumed from where it stopped: both results arrived, none twice.
                await until(pilot, lambda: len(app.board.states[check].history) == 3)
                await pilot.pause(0.5)
                assert len(app.board.states[check].history) == 3
                assert proxy.connections >= 3  # the document, the first stream, the resumed one
    finally:
        await up.stop()


async def test_an_engine_restarted_behind_the_same_address_sends_the_viewer_to_its_document(
    tmp_path,
):
    up = CountingPeer()
    await up.start()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    try:
        async with running_engine(first, {"fibre": up}) as engine:
            proxy = CuttingProxy(engine.url)
            await proxy.mend()
            app = await attached(proxy.url)
            async with app.run_test(size=SIZE, notifications=True) as pilot:
                check = "psap/fibre/port"
                await until(pilot, lambda: cell(app, check, "status") == STATUS["OK"])
                await proxy.cut()
                await until(pilot, lambda: "disconnected since" in summary(app))
                await up.stop()
                # Another engine process (another epoch) where the first one was: its first
                # result is CRIT, and the viewer's Last-Event-ID means nothing to it.
                async with running_engine(second, {"fibre": up}) as restarted:
                    proxy.upstream = restarted.url
                    await proxy.mend()
                    await until(pilot, lambda: cell(app, check, "status") == STATUS["CRIT"], 15)
                    await until(pilot, lambda: "disconnected" not in summary(app))
                    assert app.mirror.state is not None
                    assert app.mirror.state.checks[check].hard.name == "CRIT"
    finally:
        await up.stop()


async def test_an_engine_restarted_on_its_store_resumes_the_viewer_with_nothing_lost(tmp_path):
    """The same store, so the same numbering: the viewer's Last-Event-ID means something to the
    new process, which replays from its store what the viewer missed of the old one."""
    up = CountingPeer()
    await up.start()
    check = "psap/fibre/port"
    try:
        async with running_engine(tmp_path, {"fibre": up}) as engine:
            proxy = CuttingProxy(engine.url)
            await proxy.mend()
            app = await attached(proxy.url)
            async with app.run_test(size=SIZE, notifications=True) as pilot:
                await until(pilot, lambda: cell(app, check, "status") == STATUS["OK"])
                await until(pilot, lambda: app.connection is not None and app.connection.connected)
                await proxy.cut()
                await until(pilot, lambda: "disconnected since" in summary(app))
                # While the viewer is away the check goes CRIT, and the engine stops.
                await up.stop()
                status, _ = await engine.request("POST", f"/api/v1/checks/{check}/run")
                assert status == 202
                async with asyncio.timeout(10):
                    while (await engine.severities())[check] != "CRIT":
                        await asyncio.sleep(0.1)
                engine.process.terminate()
                await engine.process.wait()
                # Started again on the same store: its first run finds the check CRIT again.
                async with running_engine(tmp_path, {"fibre": up}) as restarted:
                    proxy.upstream = restarted.url
                    await proxy.mend()
                    await until(pilot, lambda: "disconnected" not in summary(app))
                    # OK, the CRIT while away (replayed from the store), the restart's CRIT:
                    # a viewer sent back to the document would have missed the middle one.
                    await until(pilot, lambda: len(app.board.states[check].history) == 3, 15)
                    await pilot.pause(0.5)
                    assert [line.severity.name for line in app.board.states[check].history] == [
                        "OK",
                        "CRIT",
                        "CRIT",
                    ]
                    changes = [line for line in log_lines(app) if f"→ ✖ CRIT  {check}" in line]
                    assert len(changes) == 1, log_lines(app)
                    assert app.mirror.state is not None and not app.mirror.stale
                    assert app.mirror.state.checks[check].hard.name == "CRIT"
    finally:
        await up.stop()


def test_the_backoff_doubles_from_one_second_to_thirty_with_jitter_and_honours_retry():
    for attempt, step in enumerate([1, 2, 4, 8, 16, 30, 30, 30]):
        waits = [backoff_delay(attempt) for _ in range(200)]
        assert all(step / 2 <= wait <= step for wait in waits)
        assert len(set(waits)) > 150  # spread out, not one value for every viewer
    assert min(backoff_delay(0, floor=2.0) for _ in range(50)) == 2.0


async def test_a_viewer_that_cannot_attach_says_why_in_one_line(tmp_path):
    nobody = f"http://{LOOPBACK}:{free_port()}"
    code, _, err = await commwatch("tui", "--connect", nobody, "--token-env", VIEWER_ENV)
    assert code == 3
    assert err.startswith(f"commwatch tui: cannot reach the engine at {nobody}")
    assert err.count("\n") == 1 and "Traceback" not in err


def fibre_changes(app: RemoteApp) -> list[str]:
    """The event log's changes of the fibre link and its check (subjects not selected)."""
    subjects = ("  psap/fibre/port  ", "  link psap/fibre  ")
    return [line for line in log_lines(app) if any(s in line for s in subjects)]


async def test_the_selection_flags_choose_among_the_engines_checks(tmp_path):
    up, down = CountingPeer(), CountingPeer()  # `down` never listens: its check goes CRIT
    await up.start()
    try:
        async with running_engine(tmp_path, {"fibre": up, "lte": down}) as engine:
            url = str(engine.url)
            # A selection that names nothing of the engine's is a typo, answered with the
            # valid names, as for an inventory; one that matches nothing says so.
            token = ("--token-env", VIEWER_ENV)
            code, _, err = await commwatch("tui", "--connect", url, *token, "--site", "psp")
            assert code == 3 and "no site 'psp'" in err and "did you mean psap" in err
            assert err.count("\n") == 1
            code, _, err = await commwatch("tui", "--connect", url, *token, "--only", "nothing*")
            assert code == 3 and "no check of the engine at" in err
            # On a terminal: only the selected check's rows, its link judged by the engine.
            viewer = PtyViewer(
                "tui", "--connect", url, "--token-env", OPERATOR_ENV, "--only", "psap/lte/*"
            )
            await viewer.start()
            try:
                await viewer.wait_for("lte", "CRIT", "refused")
                await asyncio.sleep(1.0)  # time to draw anything else it would
                assert "fibre" not in viewer.text()
            finally:
                await viewer.stop()
            # The dashboard's own: rows, counts and event log of the selection only.
            async with ApiClient(engine.url, token=TOKENS[OPERATOR_ENV]) as client:
                document = await client.state()
            mirror = Mirror(str(engine.url))
            mirror.load(document)
            assert mirror.inventory is not None
            lte = [c for c in mirror.inventory.checks if c.ref.link_id == "lte"]
            app = RemoteApp(engine.url, document, token=TOKENS[OPERATOR_ENV], checks=lte)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: cell(app, "psap/lte/port", "status") == STATUS["CRIT"])
                assert set(app.board.checks) == {"psap/lte/port"}
                assert "psap/fibre/port" not in [row.key for row in app.dashboard.table.shown]
                # The site is the engine's: one link of two down is its state, not "not
                # evaluated" for want of the other's check.
                await until(pilot, lambda: cell(app, "site:psap", "status") != "")
                assert "NOT EVALUATED" not in cell(app, "site:psap", "status")
                await until(pilot, lambda: any("psap/lte/port" in line for line in log_lines(app)))
                assert not fibre_changes(app)
                # Changes of what is not shown do not reach the log.
                await up.stop()
                status, _ = await engine.request("POST", "/api/v1/checks/psap/fibre/port/run")
                assert status == 202
                async with asyncio.timeout(10):
                    while (await engine.severities())["psap/fibre/port"] != "CRIT":
                        await asyncio.sleep(0.1)
                # The site's own change is shown (its row is), and only it.
                down = "→ ✖ DOWN  group psap"
                await until(pilot, lambda: any(down in line for line in log_lines(app)), 10)
                assert not fibre_changes(app)
    finally:
        await up.stop()


async def test_the_engines_stored_history_is_shown_before_what_the_document_said(tmp_path):
    up = CountingPeer()
    await up.start()
    try:
        async with running_engine(tmp_path, {"fibre": up}) as engine:
            check = "psap/fibre/port"
            for runs in (2, 3):
                status, _ = await engine.request("POST", f"/api/v1/checks/{check}/run")
                assert status == 202
                async with asyncio.timeout(10):
                    while up.accepted < runs:
                        await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # stored, then shown: the document holds the third
            app = await attached(engine.url)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: len(app.board.states[check].history) == 3)
                await pilot.pause(0.5)
                lines = app.board.states[check].history
                assert len(lines) == 3  # two from the store, the last from the document
                assert [line.at for line in lines] == sorted(line.at for line in lines)
                assert len(app.board.states[check].latencies) == 3
    finally:
        await up.stop()


async def test_an_attaching_viewers_event_log_starts_with_the_engines_recent_changes(tmp_path):
    """The event log of a viewer that attaches after the changes happened shows them, as a
    local dashboard's shows what its store remembers: from the state document."""
    up, down = CountingPeer(), CountingPeer()  # `down` never listens: its check goes CRIT
    await up.start()
    try:
        async with running_engine(tmp_path, {"fibre": up, "lte": down}) as engine:
            assert await engine.severities() == {"psap/fibre/port": "OK", "psap/lte/port": "CRIT"}
            status, document = await engine.request("GET", "/api/v1/state")
            assert status == 200
            changes = {(e["subject_id"], e["after"]) for e in document["recent_events"]}
            assert ("psap/lte/port", "CRIT") in changes and ("psap/fibre/port", "OK") in changes
            app = await attached(engine.url)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: any("psap/lte/port" in line for line in log_lines(app)))
                shown = [line for line in log_lines(app) if "psap/lte/port" in line]
                assert any("CRIT" in line for line in shown), shown
    finally:
        await up.stop()
