"""`commwatch report`: exact figures on constructed timelines in a real SQLite store (runs,
events as the state engine stores them, results, maintenance), a real engine's history, and the
command's output, formats, schema and exit codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import jsonschema
import pytest

from monitor.config.loader import load_inventory
from monitor.config.maintenance import Window
from monitor.core.events import Event, EventKind, Subject
from monitor.core.model import CheckRef, ProbeResult, Severity
from monitor.engine.pipeline import Monitor
from monitor.engine.run_scope import scope_of
from monitor.engine.views import topology_of
from monitor.output.report import Outage, build_report
from monitor.output.report_formats import render, span
from monitor.store.history import HistoryStore
from monitor.store.runs import RunScope, Watched
from monitor.store.schema import HOUR, MIGRATIONS
from tests.conftest import REPO
from tests.history_support import maintain
from tests.peers.tcp_peers import accepting_listener, closed_port

T0 = 1_800_000_000.0
UNTIL = T0 + 10 * HOUR
SCHEMA = json.loads((REPO / "monitor/output/schema/report.schema.json").read_text())
CHECK, LINK, GROUP = Subject.CHECK, Subject.LINK, Subject.GROUP
PENDING = "PENDING"


def h(hours: float) -> float:
    return T0 + hours * HOUR


def hard(at: float, subject: Subject, subject_id: str, before: str, after: str) -> Event:
    site = subject_id.split("/", 1)[0] if subject is not GROUP else ""
    return Event(at, subject, subject_id, site, EventKind.HARD, before, after, "scripted")


def ref(check_id: str) -> CheckRef:
    site, link, _ = check_id.split("/")
    return CheckRef(
        check_id=check_id,
        site_id=site,
        link_id=link,
        kind="tcp",
        target="127.0.0.1:9",
        host="127.0.0.1",
    )


def scope(*subjects: tuple[Subject, str], windows: tuple[Window, ...] = ()) -> str:
    watched = [Watched(s, i, "" if s is GROUP else i.split("/", 1)[0]) for s, i in subjects]
    return RunScope(tuple(watched), windows).to_json()


def one_off(window_id: str, applies_to: str, start: float, end: float) -> Window:
    return Window(window_id, (applies_to,), "UTC", start, end)


def store_with(path: Path, runs=(), events=(), results=()) -> Path:
    """A store holding `runs` ((start, end or None, last_at, scope JSON)), events, results."""
    with HistoryStore(path, create=True) as store:
        store.write(results, events)
        for start, end, last_at, run_scope in runs:
            run_id = store.start_run(start, run_scope)
            store.write(heartbeat=(run_id, last_at))
            if end is not None:
                store.end_run(run_id, end)
    return path


def report(path: Path, since: float = T0, until: float = UNTIL, **options):
    with HistoryStore(path) as store:
        return build_report(store, since=since, until=until, **options)


def by_id(built):
    return {s.subject_id: s for s in built.subjects}


# --- the live view's states: the engine's own events -------------------------------------

PSAP = (
    (GROUP, "psap"),
    (LINK, "psap/fibre"),
    (LINK, "psap/lte"),
    (CHECK, "psap/fibre/router"),
    (CHECK, "psap/lte/router"),
    (CHECK, "psap/lte/webui"),
)


def test_a_backup_link_whose_deciding_checks_were_ok_is_up_whatever_its_other_checks_said(
    tmp_path,
):
    """lte's availability_from is its router: the web UI's bad certificate (CRIT all along)
    is a finding, not an outage. The engine judged the link UP and stored that, first state
    included; the report shows what the live view showed, not the worst of the link's checks."""
    events = [
        hard(h(0), CHECK, "psap/fibre/router", PENDING, "OK"),
        hard(h(0), CHECK, "psap/lte/router", PENDING, "OK"),
        hard(h(0), CHECK, "psap/lte/webui", PENDING, "CRIT"),
        hard(h(0), LINK, "psap/fibre", PENDING, "UP"),
        hard(h(0), LINK, "psap/lte", PENDING, "UP"),
        hard(h(0), GROUP, "psap", PENDING, "RESILIENT"),
        hard(h(6), CHECK, "psap/fibre/router", "OK", "CRIT"),
        hard(h(6), LINK, "psap/fibre", "UP", "DOWN"),
        hard(h(6), GROUP, "psap", "RESILIENT", "AT RISK"),
        hard(h(7), CHECK, "psap/fibre/router", "CRIT", "OK"),
        hard(h(7), LINK, "psap/fibre", "DOWN", "UP"),
        hard(h(7), GROUP, "psap", "AT RISK", "RESILIENT"),
    ]
    results = [
        ProbeResult(
            check=ref("psap/lte/webui"), started_at=h(i), duration_ms=1.0, severity=Severity.CRIT
        )
        for i in range(10)
    ]
    path = store_with(tmp_path / "h.sqlite3", [(h(0), UNTIL, UNTIL, scope(*PSAP))], events, results)
    subjects = by_id(report(path))
    lte = subjects["psap/lte"]
    assert (lte.source, lte.time_in_state, lte.availability_pct) == (
        "events",
        {"UP": 10 * HOUR},
        100,
    )
    assert lte.last_state == "UP" and lte.outages == ()
    assert subjects["psap/lte/webui"].availability_pct == 0
    fibre = subjects["psap/fibre"]
    assert fibre.time_in_state == {"UP": 9 * HOUR, "DOWN": HOUR}
    assert fibre.outages == (Outage(h(6), h(7), HOUR),) and fibre.mttr_s == HOUR
    psap = subjects["psap"]
    assert psap.subject is GROUP
    assert psap.time_in_state == {"RESILIENT": 9 * HOUR, "AT RISK": HOUR}
    assert psap.availability_pct == 100  # at risk is still up
    assert [s.subject for s in report(path).subjects] == [GROUP, LINK, LINK, CHECK, CHECK, CHECK]


def test_a_check_critical_for_its_whole_run_is_0_percent_available_not_99(tmp_path):
    """Monitoring began an hour before the end of a 7-day period: the six days and 23 hours
    before it are not observed, and count neither way."""
    until = T0 + 7 * 24 * HOUR
    began = until - HOUR
    path = store_with(
        tmp_path / "h.sqlite3",
        [(began, None, until, scope((CHECK, "s/l/dead")))],
        [hard(began + 5, CHECK, "s/l/dead", PENDING, "CRIT")],
        [
            ProbeResult(
                check=ref("s/l/dead"), started_at=began + 5, duration_ms=1.0, severity=Severity.CRIT
            )
        ],
    )
    dead = by_id(report(path, since=T0, until=until))["s/l/dead"]
    assert dead.availability_pct == 0
    assert dead.observed_s == HOUR - 5
    assert dead.not_observed_s == 7 * 24 * HOUR - (HOUR - 5)
    assert dead.outages == (Outage(began + 5, None, HOUR - 5),)


def test_time_when_commwatch_was_not_running_is_not_observed_and_an_outage_spans_it(tmp_path):
    """Run 1 0h-2h, run 2 5h-10h. The check went down at 1h; run 2 restored it CRIT and it
    recovered at 6h: one outage of 2 observed hours. The link was evaluated afresh in run 2
    (its first event there comes from PENDING): unknown until then."""
    events = [
        hard(h(0), CHECK, "s/l/c", PENDING, "OK"),
        hard(h(0), LINK, "s/l", PENDING, "UP"),
        hard(h(1), CHECK, "s/l/c", "OK", "CRIT"),
        hard(h(1), LINK, "s/l", "UP", "DOWN"),
        hard(h(5.5), LINK, "s/l", PENDING, "DOWN"),
        hard(h(6), CHECK, "s/l/c", "CRIT", "OK"),
        hard(h(6), LINK, "s/l", "DOWN", "UP"),
    ]
    watched = scope((LINK, "s/l"), (CHECK, "s/l/c"))
    runs = [(h(0), h(2), h(2), watched), (h(5), None, h(10), watched)]
    path = store_with(tmp_path / "h.sqlite3", runs, events)
    built = report(path)
    assert (built.runs, built.watched_s) == (2, 7 * HOUR)
    c = by_id(built)["s/l/c"]
    assert c.time_in_state == {"OK": 5 * HOUR, "CRIT": 2 * HOUR}
    assert c.not_observed_s == 3 * HOUR
    assert c.outages == (Outage(h(1), h(6), 2 * HOUR),)
    assert c.mttr_s == 2 * HOUR
    link = by_id(built)["s/l"]
    assert link.time_in_state == {"UP": 5 * HOUR, "DOWN": 1.5 * HOUR}
    assert link.not_observed_s == 3.5 * HOUR
    assert link.outages == (Outage(h(1), h(6), 1.5 * HOUR),)


def test_a_period_starting_before_monitoring_began_counts_from_the_first_state(tmp_path):
    path = store_with(
        tmp_path / "h.sqlite3",
        [(h(3), None, h(10), scope((CHECK, "s/l/c")))],
        [hard(h(3.25), CHECK, "s/l/c", PENDING, "OK")],
    )
    c = by_id(report(path))["s/l/c"]
    assert (c.time_in_state, c.availability_pct) == ({"OK": 6.75 * HOUR}, 100)
    assert c.not_observed_s == 3.25 * HOUR  # before the run, and PENDING within it


def test_an_outage_begun_before_the_period_and_still_open_at_its_end(tmp_path):
    events = [
        hard(h(0), CHECK, "s/l/c", PENDING, "OK"),
        hard(h(1), CHECK, "s/l/c", "OK", "CRIT"),
        # Announced once nothing held it any more (before == after): still the same outage.
        Event(h(2), CHECK, "s/l/c", "s", EventKind.HARD, "CRIT", "CRIT", "confirmed"),
    ]
    path = store_with(
        tmp_path / "h.sqlite3", [(h(0), None, h(10), scope((CHECK, "s/l/c")))], events
    )
    c = by_id(report(path, since=h(4)))["s/l/c"]
    assert c.time_in_state == {"CRIT": 6 * HOUR}
    assert c.outages == (Outage(h(1), None, 9 * HOUR),)  # followed from when it began
    assert c.mttr_s is None and c.last_state == "CRIT"
    assert "1+" in render(report(path, since=h(4)), "table")


def test_time_before_a_first_state_is_no_data_not_a_state(tmp_path):
    """A subject first known at 4h (its first event is from PENDING) was not observed before,
    though commwatch was watching (a run that did not say what it watched)."""
    events = [
        hard(h(4), GROUP, "south", PENDING, "AT RISK"),
        hard(h(6), GROUP, "south", "AT RISK", "DOWN"),
    ]
    path = store_with(tmp_path / "history.sqlite3", [(h(0), None, UNTIL, None)], events)
    south = by_id(report(path))["south"]
    assert south.time_in_state == {"AT RISK": 2 * HOUR, "DOWN": 4 * HOUR}
    assert south.not_observed_s == 4 * HOUR
    assert south.outages == (Outage(h(6), None, 4 * HOUR),)


def test_unknown_counts_against_availability_and_soft_events_change_nothing(tmp_path):
    events = [
        hard(h(0), CHECK, "s/l/c", PENDING, "OK"),
        Event(h(3), CHECK, "s/l/c", "s", EventKind.SOFT, "OK", "CRIT", "one refusal"),
        hard(h(5), CHECK, "s/l/c", "OK", "UNKNOWN"),
        hard(h(7), CHECK, "s/l/c", "UNKNOWN", "OK"),
        hard(h(0), GROUP, "g", PENDING, "UNKNOWN"),
        hard(h(2), GROUP, "g", "UNKNOWN", "DEGRADED"),
    ]
    runs = [(h(0), None, h(10), scope((GROUP, "g"), (CHECK, "s/l/c")))]
    subjects = by_id(report(store_with(tmp_path / "h.sqlite3", runs, events)))
    c = subjects["s/l/c"]
    assert (c.time_in_state, c.availability_pct) == ({"OK": 8 * HOUR, "UNKNOWN": 2 * HOUR}, 80)
    g = subjects["g"]
    assert g.time_in_state == {"UNKNOWN": 2 * HOUR, "DEGRADED": 8 * HOUR}
    assert (g.availability_pct, g.outages) == (80, ())


# --- maintenance ---------------------------------------------------------------------------


def test_maintenance_the_run_had_is_left_out_without_an_inventory(tmp_path):
    windows = (
        one_off("swap", "s/l", h(5), h(6.5)),  # a link's window covers its checks
        one_off("site", "s", h(-5), h(0.5)),
        one_off("again", "s", h(0), h(1)),  # overlapping windows count once
    )
    events = [
        hard(h(0), CHECK, "s/l/c", PENDING, "OK"),
        hard(h(5), CHECK, "s/l/c", "OK", "CRIT"),  # wholly in maintenance: no outage
        hard(h(6), CHECK, "s/l/c", "CRIT", "OK"),
        hard(h(8), CHECK, "s/l/c", "OK", "CRIT"),
        hard(h(0), CHECK, "s/m/d", PENDING, "OK"),
    ]
    watched = scope((CHECK, "s/l/c"), (CHECK, "s/m/d"), windows=windows)
    path = store_with(tmp_path / "h.sqlite3", [(h(0), None, h(10), watched)], events)
    subjects = by_id(report(path))
    c = subjects["s/l/c"]
    assert c.maintenance_s == 2.5 * HOUR
    assert c.time_in_state == {"OK": 5.5 * HOUR, "CRIT": 2 * HOUR}
    assert c.outages == (Outage(h(8), None, 2 * HOUR),)
    assert subjects["s/m/d"].maintenance_s == HOUR  # only the site's windows cover it
    # The inventory's windows count too (declared afterwards, say).
    later = RunScope((Watched(CHECK, "s/m/d", "s"),), (one_off("late", "s/m/d", h(9), h(10)),))
    d = by_id(report(path, inventory=later))["s/m/d"]
    assert (d.maintenance_s, d.time_in_state) == (2 * HOUR, {"OK": 8 * HOUR})


def test_an_outage_running_into_maintenance_counts_only_the_time_outside_it(tmp_path):
    events = [
        hard(h(0), CHECK, "s/l/c", PENDING, "OK"),
        hard(h(2), CHECK, "s/l/c", "OK", "CRIT"),
        hard(h(5), CHECK, "s/l/c", "CRIT", "OK"),
    ]
    watched = scope((CHECK, "s/l/c"), windows=(one_off("w", "s/l/c", h(3), h(4)),))
    c = by_id(report(store_with(tmp_path / "h.sqlite3", [(h(0), None, h(10), watched)], events)))[
        "s/l/c"
    ]
    assert c.outages == (Outage(h(2), h(5), 2 * HOUR),)
    assert (c.outage_s, c.mttr_s, c.maintenance_s) == (2 * HOUR, 2 * HOUR, HOUR)


# --- groups from the store alone -----------------------------------------------------------


def test_groups_are_known_from_the_store_alone_even_never_evaluated(tmp_path):
    watched = scope((GROUP, "paths"), (GROUP, "s"), (LINK, "s/l"), (CHECK, "s/l/c"))
    events = [
        hard(h(0), CHECK, "s/l/c", PENDING, "OK"),
        hard(h(0), LINK, "s/l", PENDING, "UP"),
        hard(h(0), GROUP, "s", PENDING, "AT RISK"),
    ]
    path = store_with(tmp_path / "h.sqlite3", [(h(0), None, h(10), watched)], events)
    subjects = by_id(report(path))
    assert subjects["s"].time_in_state == {"AT RISK": 10 * HOUR}
    paths = subjects["paths"]  # waits for a link nobody reported: PENDING all along
    assert (paths.subject, paths.observed_s, paths.availability_pct) == (GROUP, 0, None)
    assert paths.not_observed_s == 10 * HOUR
    table = render(report(path), "table")
    assert any(line.split()[:3] == ["group", "paths", "no"] for line in table.splitlines())


# --- older history -------------------------------------------------------------------------


def v1_store(path: Path, results: list[tuple[str, float, str]], hourly=()) -> Path:
    """A store as commwatch wrote it before runs were recorded (schema version 1)."""
    with closing(sqlite3.connect(path)) as db, db:
        MIGRATIONS[1](db)
        db.execute("INSERT INTO meta VALUES ('history.schema_version', '1')")
        for check_id, at, severity in results:
            db.execute(
                "INSERT INTO results (check_id, site_id, link_id, kind, started_at, duration_ms,"
                " severity, summary, observations, verdicts) VALUES (?, 's', 'l', 'tcp', ?, 1,"
                " ?, '', '{}', '[]')",
                (check_id, at, severity),
            )
        for check_id, hour, ok, crit in hourly:
            db.execute(
                "INSERT INTO results_hourly VALUES (?, ?, 's', 'l', 'tcp', ?, 0, ?, 0, 0, NULL,"
                " NULL, NULL)",
                (check_id, hour, ok, crit),
            )
    return path


def test_runs_before_they_were_recorded_are_learned_from_the_results_on_upgrade(tmp_path):
    """Every minute from 0h to 2h and from 6h to 8h: commwatch was not running in between. An
    hour already downsampled (9h) counts as watched whole."""
    minutes = [("s/l/c", h(0) + 60 * i, "OK") for i in range(121)]
    minutes += [("s/l/c", h(6) + 60 * i, "OK") for i in range(121)]
    path = v1_store(tmp_path / "h.sqlite3", minutes, [("s/l/c", h(9), 60, 0)])
    HistoryStore(path, create=True).close()  # a writer's open upgrades it
    with HistoryStore(path) as store:
        runs = store.runs(T0, UNTIL)
    assert [(r.started_at, r.end, r.learned, r.scope) for r in runs] == [
        (h(0), h(2), True, None),
        (h(6), h(8), True, None),
        (h(9), h(10), True, None),
    ]
    c = by_id(report(path))["s/l/c"]  # no events: its results say
    assert (c.source, c.time_in_state, c.not_observed_s) == ("results", {"OK": 5 * HOUR}, 5 * HOUR)


def test_downsampled_history_keeps_its_events_exact(tmp_path):
    """Raw results older than downsample_after become hourly rows; the events, and with them
    the figures, stay exact."""
    events = [
        hard(h(0), CHECK, "s/l/c", PENDING, "OK"),
        hard(h(2.5), CHECK, "s/l/c", "OK", "CRIT"),
        hard(h(2.75), CHECK, "s/l/c", "CRIT", "OK"),
    ]
    results = [
        ProbeResult(
            check=ref("s/l/c"), started_at=h(0) + 60 * i, duration_ms=1.0, severity=Severity.OK
        )
        for i in range(10 * 60)
    ]
    path = store_with(
        tmp_path / "h.sqlite3", [(h(0), h(10), h(10), scope((CHECK, "s/l/c")))], events, results
    )
    before = by_id(report(path))["s/l/c"]
    from monitor.config.inventory import HistoryConfig

    with HistoryStore(path, create=True) as store:
        stats = maintain(store, h(30), HistoryConfig(path=path, downsample_after=HOUR))
    assert stats.downsampled_results == 600
    after = by_id(report(path))["s/l/c"]
    assert after == before
    assert (after.availability_pct, after.outages) == (97.5, (Outage(h(2.5), h(2.75), 900.0),))


def test_history_from_before_first_states_were_events(tmp_path):
    """The engine once stored a link's changes only: its state before the first is that
    event's `before`, from the run's start; a check's from its first result."""
    events = [
        hard(h(4), LINK, "s/l", "UP", "DOWN"),
        hard(h(4), CHECK, "s/l/c", "OK", "CRIT"),
        hard(h(5), LINK, "s/l", "DOWN", "UP"),
        hard(h(5), CHECK, "s/l/c", "CRIT", "OK"),
    ]
    results = [
        ProbeResult(check=ref("s/l/c"), started_at=h(1), duration_ms=1.0, severity=Severity.OK)
    ]
    path = store_with(
        tmp_path / "h.sqlite3",
        [(h(0), None, h(10), scope((LINK, "s/l"), (CHECK, "s/l/c")))],
        events,
        results,
    )
    subjects = by_id(report(path))
    assert subjects["s/l"].time_in_state == {"UP": 9 * HOUR, "DOWN": HOUR}
    assert subjects["s/l/c"].time_in_state == {"OK": 8 * HOUR, "CRIT": HOUR}


# --- a real engine's history ---------------------------------------------------------------


def test_real_runs_report_what_the_live_view_showed_over_the_time_they_watched(tmp_path):
    """commwatch itself (the continuous engine, twice, with a pause between) watches a site
    whose backup link is decided by its router alone: the web UI beside it refuses all along.
    The report of the last hour, from the store alone or with the inventory, shows the backup
    link up throughout, the refusing check as one outage across the restart, and only the two
    runs' time as observed."""
    history = tmp_path / "history.sqlite3"
    inventory_path = tmp_path / "inventory.yaml"

    async def watch(live: int, refused: int) -> tuple[float, float]:
        inventory_path.write_text(
            f"""version: 1
history: {{path: {history}}}
defaults: {{interval: 1s, timeout: 500ms, retries: 1}}
sites:
  - id: s
    links:
      - id: primary
        checks: [{{id: router, kind: tcp, target: '127.0.0.1:{live}'}}]
      - id: backup
        availability_from: [router]
        checks:
          - {{id: router, kind: tcp, target: '127.0.0.1:{live}'}}
          - {{id: webui, kind: tcp, target: '127.0.0.1:{refused}'}}
"""
        )
        inventory = load_inventory(inventory_path)
        seen: list[ProbeResult] = []
        monitor = Monitor(
            inventory,
            inventory.checks,
            on_result=seen.append,
            on_event=lambda e: None,
            alerts=False,
            start_spread=0,
        )
        began = time.time()
        task = asyncio.create_task(monitor.run())
        while len(seen) < 6:
            await asyncio.sleep(0.05)
        monitor.stop()
        await task
        return began, time.time()

    async def twice() -> list[tuple[float, float]]:
        async with accepting_listener("127.0.0.1") as live:
            refused = closed_port()
            first = await watch(live, refused)
            await asyncio.sleep(1.5)  # commwatch is not running
            return [first, await watch(live, refused)]

    runs = asyncio.run(twice())
    now = time.time()
    inventory = load_inventory(inventory_path)
    for scope_given in (None, scope_of(topology_of(inventory), ())):
        built = report(history, since=now - HOUR, until=now, inventory=scope_given)
        assert built.runs == 2
        assert built.watched_s == pytest.approx(sum(b - a for a, b in runs), abs=0.5)
        subjects = by_id(built)
        backup = subjects["s/backup"]
        assert (backup.availability_pct, backup.last_state, backup.outages) == (100, "UP", ())
        assert backup.not_observed_s > HOUR - 10
        webui = subjects["s/backup/webui"]
        assert (webui.availability_pct, webui.last_state) == (0, "CRIT")
        assert len(webui.outages) == 1 and webui.outages[0].end is None  # one, across the gap
        assert webui.outages[0].duration_s < sum(b - a for a, b in runs) + 0.5
        site = subjects["s"]
        assert (site.subject, site.availability_pct, site.last_state) == (GROUP, 100, "RESILIENT")
        assert [s.subject for s in built.subjects] == [GROUP] + [LINK] * 2 + [CHECK] * 3


# --- the command ---------------------------------------------------------------------------


def commwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def live_db(tmp_path: Path) -> Path:
    """A run of the last 10 hours (as the command reports up to now), still going."""
    now = time.time()
    watched = scope((GROUP, "s"), (LINK, "s/l"), (CHECK, "s/l/a"), (CHECK, "s/l/b"))
    return store_with(
        tmp_path / "history.sqlite3",
        [(now - 10 * HOUR, None, now, watched)],
        [
            hard(now - 10 * HOUR, CHECK, "s/l/a", PENDING, "OK"),
            hard(now - 10 * HOUR, CHECK, "s/l/b", PENDING, "OK"),
            hard(now - 10 * HOUR, LINK, "s/l", PENDING, "UP"),
            hard(now - 10 * HOUR, GROUP, "s", PENDING, "AT RISK"),
            hard(now - 5 * HOUR, CHECK, "s/l/a", "OK", "CRIT"),
            hard(now - 4 * HOUR, CHECK, "s/l/a", "CRIT", "OK"),
        ],
    )


def test_report_command_json_is_schema_valid(live_db):
    done = commwatch("report", "--db", str(live_db), "--since", "20h", "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["window_s"] == pytest.approx(72000, abs=0.01)
    assert document["watching"]["runs"] == 1
    assert document["watching"]["watched_s"] == pytest.approx(36000, abs=60)
    a = next(s for s in document["subjects"] if s["id"] == "s/l/a")
    assert a["availability_pct"] == pytest.approx(90.0, abs=0.1)
    assert a["not_observed_s"] == pytest.approx(36000, abs=60)
    assert a["outages"]["mttr_s"] == pytest.approx(3600.0)
    assert a["last_state"] == "OK"
    group = next(s for s in document["subjects"] if s["id"] == "s")
    assert (group["subject"], group["availability_pct"]) == ("group", 100.0)


def test_report_command_table_and_csv(live_db, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "sites:\n  - id: s\n    links:\n      - id: l\n        checks:\n"
        "          - {id: a, kind: tcp, target: '127.0.0.1:9'}\n"
        "          - {id: never, kind: tcp, target: '127.0.0.1:9'}\n"
    )
    table = commwatch("report", str(inventory), "--db", str(live_db), "--since", "10h")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert "commwatch was watching for" in lines[1] and "1 run)" in lines[1]
    assert any(line.split()[:5] == ["check", "s/l/a", "90.000%", "100.0%", "1"] for line in lines)
    assert any("s/l/never" in line and "no data" in line for line in lines)
    done = commwatch("report", "--db", str(live_db), "--format", "csv")
    assert done.returncode == 0
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(done.stdout))}
    assert set(rows) == {"s", "s/l", "s/l/a", "s/l/b"}
    assert rows["s"]["subject"] == "group"
    assert float(rows["s"]["at_risk_s"]) == pytest.approx(36000, abs=60)
    assert rows["s/l/a"]["mttr_s"] == "3600.000"


def test_ids_and_states_from_the_store_cannot_reach_a_terminal_or_a_spreadsheet(tmp_path):
    """A store is a file anyone may hand over: what it holds is shown, never acted on."""
    hostile = "s/l/\x1b]0;owned\x07=cmd|' /C calc'!A0"
    path = store_with(
        tmp_path / "h.sqlite3",
        [(h(0), None, h(10), scope((CHECK, hostile)))],
        [hard(h(0), CHECK, hostile, PENDING, "OK\x1b[2J")],
    )
    built = report(path)
    table = render(built, "table")
    assert "\x1b" not in table and "\\x1b]0;owned" in table
    cells = [c for row in csv.reader(io.StringIO(render(built, "csv"))) for c in row]
    assert not any(c.startswith(("=", "+", "-", "@")) or "\x1b" in c for c in cells[1:])
    assert json.loads(render(built, "json"))["subjects"][0]["id"] == hostile  # JSON stays exact


def test_span_reads_at_a_glance():
    assert [span(s) for s in (None, 45, 725, 3 * HOUR + 120, 2 * 86400 + 4 * HOUR)] == [
        "-",
        "45s",
        "12m05s",
        "3h02m",
        "2d04h",
    ]


@pytest.mark.parametrize("content", [None, b"this is not a database" * 50])
def test_a_missing_or_unreadable_database_exits_3_with_a_message(tmp_path, content):
    path = tmp_path / "history.sqlite3"
    if content is not None:
        path.write_bytes(content)
    done = commwatch("report", "--db", str(path))
    assert done.returncode == 3
    assert str(path) in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert path.exists() == (content is not None)  # a report never creates a database


def test_a_database_without_history_tables_exits_3(tmp_path):
    path = tmp_path / "other.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE unrelated (x)")
    done = commwatch("report", "--db", str(path))
    assert done.returncode == 3
    assert "not a commwatch history database" in done.stderr
    with closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["unrelated"]  # a reader never writes its schema into a foreign file


@pytest.fixture
def rendered_scene(tmp_path):
    """One 8-hour run inside a 10-hour period: a check down, unknown, back and down again; the
    link it decides down with it (an hour of it under maintenance later); its group at risk;
    and a check the run watched that never had a state."""
    subjects = (
        (GROUP, "psap"),
        (LINK, "psap/fibre"),
        (CHECK, "psap/fibre/router"),
        (CHECK, "psap/lte/webui"),
    )
    works = one_off("works", "psap/fibre", h(6), h(7))
    path = store_with(
        tmp_path / "h.sqlite3",
        [(h(1), h(9), h(9), scope(*subjects, windows=(works,)))],
        [
            hard(h(1), GROUP, "psap", PENDING, "RESILIENT"),
            hard(h(1), LINK, "psap/fibre", PENDING, "UP"),
            hard(h(1), CHECK, "psap/fibre/router", PENDING, "OK"),
            hard(h(2), CHECK, "psap/fibre/router", "OK", "CRIT"),
            hard(h(2), LINK, "psap/fibre", "UP", "DOWN"),
            hard(h(2), GROUP, "psap", "RESILIENT", "AT RISK"),
            hard(h(3.5), CHECK, "psap/fibre/router", "CRIT", "UNKNOWN"),
            hard(h(4), CHECK, "psap/fibre/router", "UNKNOWN", "OK"),
            hard(h(4), LINK, "psap/fibre", "DOWN", "UP"),
            hard(h(4), GROUP, "psap", "AT RISK", "RESILIENT"),
            hard(h(8), CHECK, "psap/fibre/router", "OK", "CRIT"),
        ],
    )
    return report(path, generated_at=UNTIL), str(path)


def test_the_table_byte_for_byte(rendered_scene):
    built, path = rendered_scene
    assert render(built, "table").splitlines() == [
        "Availability 2027-01-15T08:00:00.000+00:00 .. 2027-01-15T18:00:00.000+00:00 (10h00m)"
        f" from {path}",
        "commwatch was watching for 8h00m of it (80.0%, 1 run); the rest is not observed and"
        " counts neither for nor against anything.",
        "",
        "SUBJECT  ID                 AVAILABLE  OBSERVED  OUTAGES  DOWNTIME  MTTR   LAST       "
        "TIME IN STATE",
        "group    psap               100.000%   80.0%     0        0s        -      RESILIENT  "
        "RESILIENT 75.0%, AT RISK 25.0%",
        "link     psap/fibre         71.429%    77.8%     1        2h00m     2h00m  UP         "
        "UP 71.4%, DOWN 28.6%",
        "check    psap/fibre/router  57.143%    77.8%     2+       2h30m     1h30m  CRIT       "
        "OK 57.1%, CRIT 35.7%, UNKNOWN 7.1%",
        "check    psap/lte/webui     no data    0.0%      0        0s        -      -",
        "",
        "AVAILABLE: share of the observed time neither in an outage nor UNKNOWN. OBSERVED: share"
        " of the period (less maintenance) with a known state. OUTAGES: a trailing + means one"
        " is still going. MTTR: mean time to recover.",
        "",
        "Diversity: not judged (give the INVENTORY: the history does not hold the risks).",
    ]


def test_the_csv_byte_for_byte(rendered_scene):
    built, _ = rendered_scene
    assert render(built, "csv").splitlines() == [
        "subject,id,site_id,source,observed_s,maintenance_s,not_observed_s,availability_pct,"
        "outages,downtime_s,mttr_s,last_state,ok_s,crit_s,unknown_s,up_s,down_s,resilient_s,"
        "at_risk_s",
        "group,psap,,events,28800.000,0.000,7200.000,100.0000,0,0.000,,RESILIENT,"
        "0.000,0.000,0.000,0.000,0.000,21600.000,7200.000",
        "link,psap/fibre,psap,events,25200.000,3600.000,7200.000,71.4286,1,7200.000,7200.000,UP,"
        "0.000,0.000,0.000,18000.000,7200.000,0.000,0.000",
        "check,psap/fibre/router,psap,events,25200.000,3600.000,7200.000,57.1429,2,9000.000,"
        "5400.000,CRIT,14400.000,9000.000,1800.000,0.000,0.000,0.000,0.000",
        "check,psap/lte/webui,psap,none,0.000,0.000,36000.000,,0,0.000,,,"
        "0.000,0.000,0.000,0.000,0.000,0.000,0.000",
    ]


def test_the_json_document_in_full(rendered_scene):
    built, path = rendered_scene
    document = json.loads(render(built, "json"))
    jsonschema.Draft202012Validator(SCHEMA).validate(document)

    def subject(kind, id_, site, source, observed, maintenance, unobserved, states, pct, last):
        return {
            "subject": kind,
            "id": id_,
            "site_id": site,
            "source": source,
            "observed_s": observed,
            "maintenance_s": maintenance,
            "not_observed_s": unobserved,
            "time_in_state": states,
            "availability_pct": pct,
            "last_state": last,
        }

    def outages(downtime, mttr, *spans):
        listed = [
            {"start": start, "end": end, "duration_s": duration} for start, end, duration in spans
        ]
        return {"count": len(spans), "downtime_s": downtime, "mttr_s": mttr, "list": listed}

    day = "2027-01-15T"
    assert document == {
        "schema_version": 3,
        "type": "availability-report",
        "generated_at": f"{day}18:00:00.000+00:00",
        "since": f"{day}08:00:00.000+00:00",
        "until": f"{day}18:00:00.000+00:00",
        "window_s": 36000.0,
        "database": path,
        "watching": {"runs": 1, "watched_s": 28800.0},
        "summary": {
            "subjects": 4,
            "groups": 1,
            "links": 1,
            "checks": 2,
            "outages": 3,
            "ongoing_outages": 1,
        },
        "subjects": [
            subject(
                "group",
                "psap",
                "",
                "events",
                28800.0,
                0.0,
                7200.0,
                {"RESILIENT": 21600.0, "AT RISK": 7200.0},
                100.0,
                "RESILIENT",
            )
            | {"outages": outages(0.0, None)},
            subject(
                "link",
                "psap/fibre",
                "psap",
                "events",
                25200.0,
                3600.0,
                7200.0,
                {"UP": 18000.0, "DOWN": 7200.0},
                71.4286,
                "UP",
            )
            | {
                "outages": outages(
                    7200.0, 7200.0, (f"{day}10:00:00.000+00:00", f"{day}12:00:00.000+00:00", 7200.0)
                )
            },
            subject(
                "check",
                "psap/fibre/router",
                "psap",
                "events",
                25200.0,
                3600.0,
                7200.0,
                {"OK": 14400.0, "CRIT": 9000.0, "UNKNOWN": 1800.0},
                57.1429,
                "CRIT",
            )
            | {
                "outages": outages(
                    9000.0,
                    5400.0,
                    (f"{day}10:00:00.000+00:00", f"{day}11:30:00.000+00:00", 5400.0),
                    (f"{day}16:00:00.000+00:00", None, 3600.0),
                )
            },
            subject("check", "psap/lte/webui", "psap", "none", 0.0, 0.0, 36000.0, {}, None, None)
            | {"outages": outages(0.0, None)},
        ],
        "paths": None,  # no inventory given: nothing says which checks trace which link
        "diversity": None,  # made without an inventory
    }
