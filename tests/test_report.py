"""`commwatch report`: exact figures on a constructed timeline in a real SQLite store, and the
command's output, formats, schema and exit codes."""

from __future__ import annotations

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

from monitor.events import Event, EventKind, Subject
from monitor.history import HOUR, HistoryStore
from monitor.model import CheckRef, ProbeResult, Severity
from monitor.report import Outage, build_report, render, span
from tests.conftest import REPO

T0 = 1_800_000_000.0
UNTIL = T0 + 10 * HOUR
SCHEMA = json.loads((REPO / "monitor/schema/report.schema.json").read_text())


def hard(at: float, subject: Subject, subject_id: str, before: str, after: str) -> Event:
    return Event(at, subject, subject_id, "s", EventKind.HARD, before, after, "scripted")


def h(hours: float) -> float:
    return T0 + hours * HOUR


def ref(check: str, link: str = "l") -> CheckRef:
    return CheckRef(f"s/{link}/{check}", "s", link, "tcp", "127.0.0.1:9", "127.0.0.1")


CHECK = Subject.CHECK
TIMELINE = [
    # s/l/a: down since before the window, back at 1h; WARN 4h-5h, down 5h-6h, down from 9h on.
    hard(h(-1), CHECK, "s/l/a", "OK", "CRIT"),
    hard(h(1), CHECK, "s/l/a", "CRIT", "OK"),
    hard(h(4), CHECK, "s/l/a", "OK", "WARN"),
    hard(h(5), CHECK, "s/l/a", "WARN", "CRIT"),
    hard(h(6), CHECK, "s/l/a", "CRIT", "OK"),
    hard(h(9), CHECK, "s/l/a", "OK", "CRIT"),
    hard(h(11), CHECK, "s/l/a", "CRIT", "OK"),  # after the window: not counted
    # A soft deviation is not a state change.
    Event(h(7), CHECK, "s/l/a", "s", EventKind.SOFT, "OK", "CRIT", "one refusal"),
    # s/l/d: not knowing for two hours is not being available.
    hard(h(5), CHECK, "s/l/d", "OK", "UNKNOWN"),
    hard(h(7), CHECK, "s/l/d", "UNKNOWN", "OK"),
    # The group: its state before the first event is that event's `before`.
    hard(h(2), Subject.GROUP, "north", "RESILIENT", "AT RISK"),
    hard(h(3), Subject.GROUP, "north", "AT RISK", "DOWN"),
    hard(h(3.5), Subject.GROUP, "north", "DOWN", "DEGRADED"),
    hard(h(8), Subject.GROUP, "north", "DEGRADED", "RESILIENT"),
    hard(h(2), Subject.LINK, "s/l", "OK", "CRIT"),
    hard(h(2.5), Subject.LINK, "s/l", "CRIT", "OK"),
]
RESULTS = [
    # No events: the results say OK all along (the one before the window sets the start).
    ProbeResult(ref("b"), h(-0.5), 1.0, Severity.OK),
    ProbeResult(ref("b"), h(3), 1.0, Severity.OK),
    # First seen at 2h: the two hours before are "no data".
    ProbeResult(ref("c", "m"), h(2), 1.0, Severity.WARN),
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path, create=True) as store:
        store.write(RESULTS, TIMELINE)
    return path


def by_id(report):
    return {s.subject_id: s for s in report.subjects}


def test_time_before_a_first_state_is_no_data_not_a_state(tmp_path):
    """A subject first known at 4h (its first event is from PENDING) was not observed before."""
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path, create=True) as store:
        store.write(
            (),
            [
                hard(h(4), Subject.GROUP, "south", "PENDING", "AT RISK"),
                hard(h(6), Subject.GROUP, "south", "AT RISK", "DOWN"),
            ],
        )
        south = by_id(build_report(store, since=T0, until=UNTIL))["south"]
    assert south.time_in_state == {"AT RISK": 2 * HOUR, "DOWN": 4 * HOUR}
    assert south.no_data_s == 4 * HOUR
    assert south.outages == (Outage(h(6), None, 4 * HOUR),)


def test_time_in_state_outages_and_mttr_from_events(db):
    with HistoryStore(db) as store:
        subjects = by_id(build_report(store, since=T0, until=UNTIL))
    a = subjects["s/l/a"]
    assert a.source == "events"
    assert a.time_in_state == {"CRIT": 3 * HOUR, "OK": 6 * HOUR, "WARN": HOUR}
    assert a.availability_pct == pytest.approx(70.0)
    assert a.outages == (
        Outage(h(-1), h(1), 2 * HOUR),  # began before the window: counted in full
        Outage(h(5), h(6), HOUR),
        Outage(h(9), None, HOUR),  # still going
    )
    assert a.outage_s == 3 * HOUR
    assert a.mttr_s == pytest.approx(1.5 * HOUR)
    assert a.state_at_end == "CRIT"

    d = subjects["s/l/d"]
    assert d.time_in_state == {"OK": 8 * HOUR, "UNKNOWN": 2 * HOUR}
    assert d.availability_pct == pytest.approx(80.0)
    assert (d.outages, d.mttr_s) == ((), None)

    north = subjects["north"]
    assert north.subject is Subject.GROUP
    assert north.time_in_state == {
        "RESILIENT": 4 * HOUR,
        "AT RISK": HOUR,
        "DOWN": 0.5 * HOUR,
        "DEGRADED": 4.5 * HOUR,
    }
    assert north.availability_pct == pytest.approx(95.0)
    assert north.outages == (Outage(h(3), h(3.5), 0.5 * HOUR),)
    assert north.mttr_s == pytest.approx(1800.0)

    link = subjects["s/l"]
    assert (len(link.outages), link.outage_s, link.availability_pct) == (1, 1800.0, 95.0)


def test_subjects_without_events_take_their_state_from_results(db):
    with HistoryStore(db) as store:
        subjects = by_id(build_report(store, since=T0, until=UNTIL))
    b = subjects["s/l/b"]
    assert (b.source, b.time_in_state, b.no_data_s, b.availability_pct) == (
        "results",
        {"OK": 10 * HOUR},
        0.0,
        100.0,
    )
    c = subjects["s/m/c"]
    assert (c.time_in_state, c.no_data_s, c.availability_pct) == ({"WARN": 8 * HOUR}, 2 * HOUR, 100)
    # A link with no events of its own: the worst of what its checks' results show.
    assert subjects["s/m"].time_in_state == {"WARN": 8 * HOUR}
    assert [s.subject for s in build_report_order(db)] == [Subject.GROUP] + [Subject.LINK] * 2 + [
        Subject.CHECK
    ] * 4


def build_report_order(db: Path):
    with HistoryStore(db) as store:
        return build_report(store, since=T0, until=UNTIL).subjects


def test_maintenance_is_excluded_from_time_and_outages(db):
    maintenance = [("s/l/a", h(5), h(6.5)), ("north", h(-5), h(0.5)), ("north", h(0), h(1))]
    with HistoryStore(db) as store:
        subjects = by_id(build_report(store, since=T0, until=UNTIL, maintenance=maintenance))
    a = subjects["s/l/a"]
    assert a.maintenance_s == 1.5 * HOUR
    assert a.time_in_state == {"CRIT": 2 * HOUR, "OK": 5.5 * HOUR, "WARN": HOUR}
    assert a.availability_pct == pytest.approx(100 * 6.5 / 8.5)
    # The 5h-6h outage lay wholly in maintenance: it was no outage.
    assert [(o.start, o.end) for o in a.outages] == [(h(-1), h(1)), (h(9), None)]
    assert a.mttr_s == 2 * HOUR
    north = subjects["north"]
    assert north.maintenance_s == HOUR  # overlapping windows count once, and only in the period
    assert north.time_in_state["RESILIENT"] == 3 * HOUR
    assert subjects["s/l/d"].maintenance_s == 0


def test_the_state_at_the_start_comes_from_the_last_event_before_it(db):
    with HistoryStore(db) as store:
        subjects = by_id(build_report(store, since=h(2.5), until=h(4.5)))
    north = subjects["north"]
    assert north.time_in_state == {"AT RISK": 0.5 * HOUR, "DOWN": 0.5 * HOUR, "DEGRADED": HOUR}
    assert north.outages == (Outage(h(3), h(3.5), 0.5 * HOUR),)
    a = subjects["s/l/a"]
    assert a.time_in_state == {"OK": 1.5 * HOUR, "WARN": 0.5 * HOUR}
    assert a.outages == ()


def test_inventory_subjects_with_nothing_recorded_are_listed_as_no_data(db):
    with HistoryStore(db) as store:
        report = build_report(
            store, since=T0, until=UNTIL, subjects=[(Subject.CHECK, "s/x/quiet", "s")]
        )
    quiet = by_id(report)["s/x/quiet"]
    assert (quiet.source, quiet.observed_s, quiet.no_data_s, quiet.availability_pct) == (
        "none",
        0,
        10 * HOUR,
        None,
    )
    assert "no data" in render(report, "table")


def test_json_and_csv_render_the_same_figures(db):
    with HistoryStore(db) as store:
        report = build_report(store, since=T0, until=UNTIL)
    document = json.loads(render(report, "json"))
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    a = next(s for s in document["subjects"] if s["id"] == "s/l/a")
    assert a["availability_pct"] == 70.0
    assert a["outages"]["count"] == 3 and a["outages"]["mttr_s"] == 5400.0
    assert a["outages"]["list"][-1]["end"] is None
    assert document["summary"]["ongoing_outages"] == 1
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(render(report, "csv")))}
    assert rows["s/l/a"]["availability_pct"] == "70.0000"
    assert rows["north"]["at_risk_s"] == "3600.000"
    assert rows["s/l/a"]["mttr_s"] == "5400.000"


def test_span_reads_at_a_glance():
    assert [span(s) for s in (None, 45, 725, 3 * HOUR + 120, 2 * 86400 + 4 * HOUR)] == [
        "-",
        "45s",
        "12m05s",
        "3h02m",
        "2d04h",
    ]


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
    """Events relative to now, as the command reports up to now."""
    now = time.time()
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path, create=True) as store:
        store.write(
            [ProbeResult(ref("b"), now - 2 * HOUR, 1.0, Severity.OK)],
            [
                hard(now - 5 * HOUR, CHECK, "s/l/a", "OK", "CRIT"),
                hard(now - 4 * HOUR, CHECK, "s/l/a", "CRIT", "OK"),
            ],
        )
    return path


def test_report_command_json_is_schema_valid(live_db):
    done = commwatch("report", "--db", str(live_db), "--since", "10h", "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["window_s"] == pytest.approx(36000, abs=0.01)
    a = next(s for s in document["subjects"] if s["id"] == "s/l/a")
    assert a["availability_pct"] == pytest.approx(90.0, abs=0.01)
    assert a["outages"]["mttr_s"] == pytest.approx(3600.0)


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
    assert any(line.split()[:4] == ["check", "s/l/a", "90.000%", "1"] for line in lines)
    assert any("s/l/never" in line and "no data" in line for line in lines)
    done = commwatch("report", "--db", str(live_db), "--format", "csv")
    assert done.returncode == 0
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {r["id"] for r in rows} == {"s/l", "s/l/a", "s/l/b"}


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
