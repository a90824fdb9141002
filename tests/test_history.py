"""The history store on real SQLite files: writer batching and acknowledgement, reads,
idempotent events, downsampling and retention (with injected clocks), and crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from monitor.config.inventory import DAY, HistoryConfig, default_path
from monitor.core.events import (
    PENDING,
    CheckStatus,
    Event,
    EventKind,
    GroupStatus,
    LinkStatus,
    Subject,
    Suppression,
)
from monitor.core.model import CheckRef, ErrorClass, ProbeError, ProbeResult, Severity, Verdict
from monitor.store.exclusive import HistoryInUse
from monitor.store.history import HistoryStore
from monitor.store.rows import LatencyPoint
from monitor.store.schema import HOUR, HistoryError
from monitor.store.writer import HistoryWriter
from tests.conftest import REPO
from tests.history_support import maintain

NOW = 1_800_000_000.0  # a whole hour: 1800000000 / 3600 = 500000


def ref(check: str = "c", link: str = "l", site: str = "s") -> CheckRef:
    return CheckRef(
        check_id=f"{site}/{link}/{check}",
        site_id=site,
        link_id=link,
        kind="tcp",
        target="127.0.0.1:9",
        host="127.0.0.1",
    )


def result(
    at: float,
    latency: float | None = 5.0,
    severity: Severity = Severity.OK,
    check: CheckRef | None = None,
) -> ProbeResult:
    verdicts = (
        Verdict("latency", "connect_ms", latency, "<= 100ms", severity, unit="ms", warn=100.0),
    )
    return ProbeResult(
        check=check or ref(),
        started_at=at,
        duration_ms=12.5,
        severity=severity,
        observations={} if latency is None else {"connect_ms": latency},
        verdicts=verdicts,
    )


def event(at: float, before: str = "OK", after: str = "CRIT", subject_id: str = "s/l/c") -> Event:
    return Event(at, Subject.CHECK, subject_id, "s", EventKind.HARD, before, after, "refused")


@pytest.fixture
def config(tmp_path: Path) -> HistoryConfig:
    return HistoryConfig(path=tmp_path / "state" / "history.sqlite3")


def count(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# --- opening -------------------------------------------------------------------------------


def test_a_new_store_is_in_wal_mode_with_its_schema_version(config):
    HistoryStore(config.path, create=True).close()
    with closing(sqlite3.connect(config.path)) as db, db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT value FROM meta WHERE key = 'history.schema_version'").fetchone()
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"results", "results_hourly", "events", "runs", "meta"} <= tables


def test_a_reader_does_not_create_a_missing_store(config):
    with pytest.raises(HistoryError, match="no history database"):
        HistoryStore(config.path)
    assert not config.path.exists()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(HistoryError, match="cannot open the history database"):
        HistoryStore(path)


def test_a_store_from_a_newer_commwatch_is_refused(config):
    HistoryStore(config.path, create=True).close()
    with closing(sqlite3.connect(config.path)) as db, db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'history.schema_version'")
    with pytest.raises(HistoryError, match="newer commwatch"):
        HistoryStore(config.path)


def test_a_reader_neither_creates_nor_upgrades_the_schema(config):
    HistoryStore(config.path, create=True).close()
    with closing(sqlite3.connect(config.path)) as db, db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'history.schema_version'")
    with pytest.raises(HistoryError, match="not a commwatch history database"):
        HistoryStore(config.path)
    HistoryStore(config.path, create=True).close()  # the writer's open upgrades it
    HistoryStore(config.path).close()


def test_tables_of_other_modules_in_the_same_file_are_left_alone(config):
    config.path.parent.mkdir()
    with closing(sqlite3.connect(config.path)) as db, db:
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO outbox (body) VALUES ('x')")
    with HistoryStore(config.path, create=True) as store:
        store.write([result(NOW)])
    assert count(config.path, "outbox") == 1
    assert count(config.path, "results") == 1


def test_default_path_follows_xdg_state_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "commwatch" / "history.sqlite3"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local/state/commwatch/history.sqlite3"
    assert HistoryConfig().retention == 90 * DAY
    assert HistoryConfig().downsample_after == 7 * DAY


# --- the writer ----------------------------------------------------------------------------


def test_writer_batches_and_acknowledges_only_what_is_committed(config):
    acknowledged: list[tuple[int, int]] = []

    def on_ack(seq: int) -> None:
        # Runs after the commit: a separate connection must already see every row up to seq.
        acknowledged.append((seq, count(config.path, "results") + count(config.path, "events")))

    writer = HistoryWriter(config, max_batch=10, max_delay=30.0, on_acknowledged=on_ack)
    writer.start()
    seqs = [writer.add_result(result(NOW + i)) for i in range(24)]
    seqs.append(writer.add_event(event(NOW)))
    assert seqs == list(range(1, 26))
    # Two full batches go at once; the last five wait for max_delay (30s) or for close().
    assert writer.wait_acknowledged(20, timeout=5)
    assert writer.acknowledged == 20
    assert writer.close()
    assert acknowledged == [(10, 10), (20, 20), (25, 25)]


def test_a_trickle_is_committed_within_max_delay_in_one_transaction(config):
    acknowledged: list[int] = []
    writer = HistoryWriter(config, max_delay=0.05, on_acknowledged=acknowledged.append)
    writer.start()
    for i in range(3):
        writer.add_result(result(NOW + i))
    assert writer.wait_acknowledged(3, timeout=5)
    assert acknowledged == [3]
    writer.close()


async def test_flush_waits_for_everything_added_and_the_loop_is_never_blocked(config):
    writer = HistoryWriter(config, max_delay=0.01)
    writer.start()
    started = time.perf_counter()
    for i in range(2000):
        writer.add_result(result(NOW + i))
    assert time.perf_counter() - started < 1.0  # queueing only; the disk is another thread's
    await writer.flush()
    assert writer.acknowledged == 2000
    assert count(config.path, "results") == 2000
    assert await writer.aclose()


def test_a_full_queue_rejects_the_newest_and_counts_it(config):
    writer = HistoryWriter(config, capacity=5)
    # Not started: nothing drains the queue, as when the disk stalls.
    accepted = [writer.add_result(result(NOW + i)) for i in range(7)]
    assert accepted == [1, 2, 3, 4, 5, None, None]
    assert writer.rejected_results == 2
    assert [writer.add_event(event(NOW + i)) for i in range(6)] == [6, 7, 8, 9, 10, None]
    assert writer.rejected_events == 1
    writer.start()
    assert writer.close()
    assert writer.acknowledged == 10
    assert count(config.path, "results") == 5
    assert count(config.path, "events") == 5


def test_a_locked_database_stalls_the_writer_not_the_caller(config):
    """Another connection (the outbox, say) holds the write lock: adding stays instant, the
    bounded queue rejects the overflow, and all accepted rows land once the lock is released."""
    HistoryStore(config.path, create=True).close()
    blocker = sqlite3.connect(config.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    writer = HistoryWriter(config, capacity=20, max_delay=0.0)
    writer.start()
    started = time.perf_counter()
    accepted = [s for s in (writer.add_result(result(NOW + i)) for i in range(31)) if s]
    assert time.perf_counter() - started < 0.5
    assert len(accepted) + writer.rejected_results == 31
    assert writer.rejected_results in (10, 11)  # 11 if the writer had not yet taken the first
    assert not writer.wait_acknowledged(1, timeout=0.3)
    blocker.execute("COMMIT")
    blocker.close()
    assert writer.wait_acknowledged(max(accepted), timeout=5)
    writer.close()
    assert count(config.path, "results") == len(accepted)


def test_another_connection_can_write_its_own_tables_meanwhile(config):
    writer = HistoryWriter(config, max_delay=0.0)
    writer.start()
    errors: list[BaseException] = []

    def outbox() -> None:
        try:
            db = sqlite3.connect(config.path, timeout=5, isolation_level=None)
            db.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, n INTEGER)")
            for n in range(200):
                db.execute("INSERT INTO outbox (n) VALUES (?)", (n,))
            db.close()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=outbox)
    thread.start()
    for i in range(1000):
        writer.add_result(result(NOW + i))
    thread.join()
    assert writer.close()
    assert errors == []
    assert count(config.path, "outbox") == 200
    assert count(config.path, "results") == 1000


def test_an_unusable_path_fails_at_start(tmp_path):
    (tmp_path / "file").write_text("")
    writer = HistoryWriter(HistoryConfig(path=tmp_path / "file" / "history.sqlite3"))
    with pytest.raises(OSError):
        writer.start()


# --- reads ---------------------------------------------------------------------------------


def test_results_keep_everything_but_certificates(config):
    failed = ProbeResult(
        check=ref(),
        started_at=NOW,
        duration_ms=1000.0,
        severity=Severity.CRIT,
        observations={"connect_ms": None},
        error=ProbeError(ErrorClass.REFUSED, "Connection refused"),
    )
    with HistoryStore(config.path, create=True) as store:
        store.write([result(NOW - 10, latency=7.25), failed])
        first, second = store.results_since(NOW - 60)
    assert (first.check_id, first.site_id, first.link_id, first.kind) == ("s/l/c", "s", "l", "tcp")
    assert first.started_at == NOW - 10 and first.duration_ms == 12.5
    assert first.latency_ms == 7.25 and first.severity is Severity.OK
    assert first.observations == {"connect_ms": 7.25}
    assert first.verdicts == result(NOW - 10, latency=7.25).verdicts
    assert first.summary == "latency 7.25ms"
    assert second.severity is Severity.CRIT and second.latency_ms is None
    assert (second.error_class, second.error_message) == ("refused", "Connection refused")
    assert second.summary == "refused: Connection refused"


def test_recent_results_and_results_since(config):
    other = ref("d")
    with HistoryStore(config.path, create=True) as store:
        store.write([result(NOW + i) for i in range(10)] + [result(NOW, check=other)])
        assert [r.started_at for r in store.recent_results("s/l/c", 3)] == [
            NOW + 7,
            NOW + 8,
            NOW + 9,
        ]
        since = store.results_since(NOW + 8)
        assert [(r.check_id, r.started_at) for r in since] == [
            ("s/l/c", NOW + 8),
            ("s/l/c", NOW + 9),
        ]
        assert len(store.results_since(NOW, until=NOW + 1)) == 2


def test_recent_latencies_gives_every_check_its_latest_points_in_one_query(config):
    checks = [ref(name) for name in ("a", "b", "c")]
    with HistoryStore(config.path, create=True) as store:
        store.write(
            [result(NOW + i, latency=float(i), check=c) for c in checks for i in range(5)]
            + [result(NOW + 9, latency=None, severity=Severity.CRIT, check=checks[1])]
        )
        series = store.recent_latencies(per_check=3)
    assert set(series) == {"s/l/a", "s/l/b", "s/l/c"}
    assert [p.latency_ms for p in series["s/l/a"]] == [2.0, 3.0, 4.0]
    assert series["s/l/b"] == [
        LatencyPoint(NOW + 3, Severity.OK, 3.0),
        LatencyPoint(NOW + 4, Severity.OK, 4.0),
        LatencyPoint(NOW + 9, Severity.CRIT, None),
    ]


def test_events_round_trip_and_replays_are_stored_once(config):
    original = Event(
        NOW,
        Subject.GROUP,
        "north",
        "s",
        EventKind.HARD,
        "RESILIENT",
        "AT RISK",
        "s/fibre down",
        (Suppression.MAINTENANCE, Suppression.FLAPPING),
    )
    soft = Event(NOW + 1, Subject.CHECK, "s/l/c", "s", EventKind.SOFT, "OK", "CRIT", "refused")
    with HistoryStore(config.path, create=True) as store:
        store.write(events=[original, original, soft])
        store.write(events=[original])
        assert store.events_since(NOW) == [original, soft]
        assert store.events_since(NOW, kinds=[EventKind.HARD]) == [original]
        assert store.events_since(NOW + 1) == [soft]
    assert count(config.path, "events") == 2


def test_event_states_are_stored_as_their_words_and_read_back_as_members(config):
    first = Event(
        at=NOW,
        subject=Subject.GROUP,
        subject_id="north",
        site_id="s",
        kind=EventKind.HARD,
        before=PENDING,
        after=GroupStatus.AT_RISK,
        cause="s/fibre down",
    )
    check = Event(NOW + 1, Subject.CHECK, "s/l/c", "s", EventKind.HARD, CheckStatus.OK, "CRIT", "x")
    newer = Event(NOW + 2, Subject.LINK, "s/l", "s", EventKind.HARD, LinkStatus.UP, "SHED", "y")
    with HistoryStore(config.path, create=True) as store:
        store.write(events=[first, check, newer])
        read = store.events_since(NOW)
    with closing(sqlite3.connect(config.path)) as db:
        rows = db.execute("SELECT event_id, before, after FROM events ORDER BY at").fetchall()
    assert rows == [
        (first.event_id, "PENDING", "AT RISK"),
        (check.event_id, "OK", "CRIT"),
        (newer.event_id, "UP", "SHED"),
    ]
    assert read == [first, check, newer]
    assert (read[0].before, read[0].after) == (PENDING, GroupStatus.AT_RISK)
    assert read[0].after is GroupStatus.AT_RISK and read[1].after is CheckStatus.CRIT
    # A state a newer commwatch wrote stays its word: shown as written, never guessed.
    assert read[2].before is LinkStatus.UP and type(read[2].after) is str
    assert [e.event_id for e in read] == [row[0] for row in rows]  # the same event, the same id


def test_replays_through_the_writer_are_idempotent_too(config):
    writer = HistoryWriter(config, max_batch=2)
    writer.start()
    for _ in range(5):
        writer.add_event(event(NOW))
    writer.close()
    assert count(config.path, "events") == 1


# --- downsampling and retention ------------------------------------------------------------


def test_old_results_become_hourly_rows_and_recent_ones_stay_raw(config):
    old_hour = NOW - 8 * DAY
    with HistoryStore(config.path, create=True) as store:
        store.write(
            [
                result(old_hour + 10, latency=10.0),
                result(old_hour + 20, latency=20.0, severity=Severity.WARN),
                result(old_hour + 30, latency=None, severity=Severity.CRIT),
                result(old_hour + 40, latency=60.0, check=ref("d")),
                result(old_hour + HOUR + 5, latency=1.0),
                result(NOW - DAY, latency=3.0),
            ]
        )
        stats = maintain(store, NOW, config)
        assert stats.downsampled_results == 5
        assert [r.started_at for r in store.results_since(0)] == [NOW - DAY]
        hourly = store.hourly_since(0)
    assert [(h.check_id, h.hour) for h in hourly] == [
        ("s/l/c", old_hour),
        ("s/l/d", old_hour),
        ("s/l/c", old_hour + HOUR),
    ]
    first = hourly[0]
    assert first.counts == {Severity.OK: 1, Severity.WARN: 1, Severity.CRIT: 1, Severity.UNKNOWN: 0}
    assert (first.latency_count, first.latency_min, first.latency_avg, first.latency_max) == (
        2,
        10.0,
        15.0,
        20.0,
    )
    assert (first.site_id, first.link_id, first.kind) == ("s", "l", "tcp")


def test_only_whole_hours_past_downsample_after_are_folded(config):
    cutoff_hour = NOW - 7 * DAY  # NOW is on an hour boundary
    with HistoryStore(config.path, create=True) as store:
        store.write([result(cutoff_hour - 1), result(cutoff_hour), result(cutoff_hour + 1)])
        # 30 minutes later the hour starting at cutoff_hour is not yet entirely old enough.
        assert maintain(store, NOW + HOUR / 2, config).downsampled_results == 1
        assert len(store.results_since(0)) == 2


def test_late_results_merge_into_an_hour_already_downsampled(config):
    hour = NOW - 10 * DAY
    with HistoryStore(config.path, create=True) as store:
        store.write([result(hour + 1, latency=10.0), result(hour + 2, latency=None)])
        maintain(store, NOW, config)
        store.write([result(hour + 3, latency=40.0), result(hour + 4, latency=1.0)])
        maintain(store, NOW, config)
        (merged,) = store.hourly_since(0)
    assert merged.counts[Severity.OK] == 4
    assert (merged.latency_count, merged.latency_min, merged.latency_avg, merged.latency_max) == (
        3,
        1.0,
        17.0,
        40.0,
    )


def test_retention_deletes_results_hourly_rows_and_events_older_than_it(config):
    short = HistoryConfig(path=config.path, retention=30 * DAY, downsample_after=40 * DAY)
    with HistoryStore(config.path, create=True) as store:
        store.write(
            [result(NOW - 31 * DAY), result(NOW - 29 * DAY)],
            [event(NOW - 31 * DAY), event(NOW - 29 * DAY)],
        )
        stats = maintain(store, NOW, short)
        assert (stats.deleted_results, stats.deleted_events, stats.downsampled_results) == (1, 1, 0)
        assert [r.started_at for r in store.results_since(0)] == [NOW - 29 * DAY]
        assert [e.at for e in store.events_since(0)] == [NOW - 29 * DAY]
        # Hourly rows: an hour goes only once all of it is past the retention.
        store.write([result(NOW - 40 * DAY), result(NOW - 30 * DAY + 10)])
        maintain(store, NOW + 41 * DAY, HistoryConfig(path=config.path, retention=1e9))
        assert len(store.hourly_since(0)) == 3
        # Half an hour on, the hour starting 30 days ago is only half past the retention.
        assert maintain(store, NOW + HOUR / 2, short).deleted_hourly == 1
        assert [h.hour for h in store.hourly_since(0)] == [NOW - 30 * DAY, NOW - 29 * DAY]


def test_the_writer_runs_maintenance_on_demand_with_its_clock(config):
    clock = [NOW]
    writer = HistoryWriter(config, clock=lambda: clock[0], max_delay=0.0)
    writer.start()
    writer.add_result(result(NOW - 20 * DAY))
    writer.add_result(result(NOW - 100 * DAY))
    assert writer.wait_acknowledged(2, timeout=5)
    stats = writer.request_maintenance().result(timeout=5)
    assert (stats.downsampled_results, stats.deleted_hourly) == (2, 1)
    clock[0] += 100 * DAY
    assert writer.request_maintenance().result(timeout=5).deleted_hourly == 1
    writer.close()
    assert count(config.path, "results_hourly") == 0


# --- runs ----------------------------------------------------------------------------------


def test_the_writer_records_its_run_with_a_heartbeat_while_idle_and_its_end(config):
    clock = [NOW]
    writer = HistoryWriter(
        config, clock=lambda: clock[0], max_delay=0.0, run_scope='{"x": 1}', heartbeat=0.05
    )
    writer.start()
    seq = writer.add_result(result(NOW))
    assert seq is not None and writer.wait_acknowledged(seq, timeout=5)
    with HistoryStore(config.path) as store:
        (run,) = store.runs(0, NOW + DAY)
    assert (run.started_at, run.last_at, run.ended_at, run.scope) == (NOW, NOW, None, '{"x": 1}')
    clock[0] = NOW + 30  # nothing to write: the heartbeat alone says it is still watching
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with HistoryStore(config.path) as store:
            (run,) = store.runs(0, NOW + DAY)
        if run.last_at == NOW + 30:
            break
        time.sleep(0.02)
    assert run.last_at == NOW + 30
    clock[0] = NOW + 40
    writer.close()
    with HistoryStore(config.path) as store:
        (run,) = store.runs(0, NOW + DAY)
        assert (run.ended_at, run.end) == (NOW + 40, NOW + 40)
        assert store.runs(NOW + 41, NOW + DAY) == []  # it watched nothing of that


def test_retention_deletes_runs_that_ended_before_it(config):
    with HistoryStore(config.path, create=True) as store:
        old = store.start_run(NOW - 40 * DAY)
        store.end_run(old, NOW - 35 * DAY)
        recent = store.start_run(NOW - 40 * DAY)  # began long ago, still watching
        store.write(heartbeat=(recent, NOW))
        stats = maintain(store, NOW, HistoryConfig(path=config.path, retention=30 * DAY))
        assert stats.deleted_runs == 1
        assert [r.last_at for r in store.runs(0, NOW + 1)] == [NOW]


# --- crash safety --------------------------------------------------------------------------


def test_kill_9_loses_nothing_that_was_acknowledged(tmp_path):
    path = tmp_path / "history.sqlite3"
    child = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "history_crash_child.py"), str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    acknowledged = 0
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 20
        while acknowledged < 3000 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, child.stderr.read().decode() if child.stderr else "child exited"
            acknowledged = int(line)
        assert acknowledged >= 3000, "the child stored too little in 20s"
        # While it writes, no other writer may: it would number from the same place.
        with pytest.raises(HistoryInUse, match=rf"another commwatch \(pid {child.pid}\)"):
            HistoryWriter(HistoryConfig(path=path)).start()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        remaining, _ = child.communicate(timeout=10)
    # Lines printed before the kill are acknowledgements too.
    acknowledged = max([acknowledged, *(int(n) for n in remaining.split())])
    assert child.returncode == -signal.SIGKILL
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        results = {
            int(n) for (n,) in db.execute("SELECT json_extract(observations, '$.seq') FROM results")
        }
        events = {int(c.split()[1]) for (c,) in db.execute("SELECT cause FROM events")}
    stored = results | events
    assert set(range(1, acknowledged + 1)) <= stored
    # Nothing unacknowledged is invented either: the store holds only what was sent.
    assert stored <= set(range(1, max(stored) + 1))
    # The run it was: never ended, watching until its last commit, not a moment more.
    with closing(sqlite3.connect(path)) as db:
        (started, last, ended), *others = db.execute(
            "SELECT started_at, last_at, ended_at FROM runs"
        )
    assert others == [] and ended is None
    assert started < last <= time.time()
    # Killed, it holds nothing: the next engine writes at once.
    writer = HistoryWriter(HistoryConfig(path=path))
    writer.start()
    writer.close()


def test_one_writer_at_a_time_and_the_next_once_it_closed(config):
    first = HistoryWriter(config)
    first.start()
    try:
        with pytest.raises(HistoryInUse) as refused:
            HistoryWriter(config).start()
        assert str(refused.value) == (
            f"{config.path}: another commwatch (pid {os.getpid()}) is writing this history, and "
            "two engines on one history lose results; give this inventory a history of its own "
            "(history: {path: ...}) or run it with --no-history"
        )
        first.add_result(result(NOW))
    finally:
        first.close()
    second = HistoryWriter(config)
    second.start()
    assert second.add_result(result(NOW + 1)) is not None
    second.close()
