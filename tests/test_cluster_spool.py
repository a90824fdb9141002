"""The agent's spool: ordered, durable across a restart, bounded by age and size with the
oldest dropped first and every drop counted for good, and held by one agent at a time."""

from __future__ import annotations

import sqlite3

import pytest

from monitor.cluster.spool import Spool, SpoolError, entry_size
from monitor.cluster.stream import Outgoing


def entry(n: int, payload: int = 100, vantage: str = "noc") -> Outgoing:
    return Outgoing(
        "commwatch.results.s.a",
        f"a.s/l/c.{n:03d}",
        "a",
        f'{{"n":{n:03d},"pad":"{"x" * payload}"}}'.encode(),
        vantage,
    )


def numbers(spool: Spool) -> list[str]:
    return [int(e.msg_id.rsplit(".", 1)[1]) for _, e in spool.oldest(10_000)]


def test_entries_come_back_in_order_and_survive_a_restart(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=10 * 1024**2)
    for n in range(5):
        spool.append(entry(n))
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=10 * 1024**2)
    assert numbers(spool) == [0, 1, 2, 3, 4]
    seq, first = spool.oldest(1)[0]
    assert first == entry(0)
    spool.remove_through(seq)
    assert numbers(spool) == [1, 2, 3, 4] and spool.depth == 4
    spool.append(entry(5))
    assert numbers(spool) == [1, 2, 3, 4, 5]
    assert spool.figures().dropped == 0


def test_full_by_size_drops_the_oldest_first_and_the_count_persists(tmp_path):
    size = entry_size(entry(0))
    limit = 10 * size
    spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=limit)
    dropped = sum(spool.append(entry(n)) for n in range(25))
    assert dropped == 15
    assert numbers(spool) == list(range(15, 25))
    figures = spool.figures()
    assert (figures.depth, figures.size, figures.dropped_size, figures.dropped_age) == (
        10,
        limit,
        15,
        0,
    )
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=limit)
    assert spool.figures().dropped_size == 15
    spool.append(entry(25))
    assert spool.figures().dropped_size == 16
    assert numbers(spool)[0] == 16


def test_older_than_max_age_is_dropped_and_counted(tmp_path):
    now = [1000.0]
    spool = Spool(
        tmp_path / "spool.sqlite3", max_age=60, max_bytes=10 * 1024**2, clock=lambda: now[0]
    )
    spool.append(entry(0))
    now[0] += 30
    spool.append(entry(1))
    now[0] += 31  # entry 0 is 61 s old, entry 1 31 s
    assert numbers(spool) == [1]
    figures = spool.figures()
    assert (figures.dropped_age, figures.dropped_size, figures.depth) == (1, 0, 1)


def test_one_agent_at_a_time(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite3", max_age=60, max_bytes=10 * 1024**2)
    with pytest.raises(SpoolError, match="in use by another agent"):
        Spool(tmp_path / "spool.sqlite3", max_age=60, max_bytes=10 * 1024**2)
    spool.close()
    Spool(tmp_path / "spool.sqlite3", max_age=60, max_bytes=10 * 1024**2).close()


def test_an_unusable_path_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SpoolError, match="cannot open the spool"):
        Spool(tmp_path / "file" / "spool.sqlite3", max_age=60, max_bytes=10 * 1024**2)


def test_a_spool_of_before_pools_opens_its_entries_of_the_default_pool(tmp_path):
    """Version 1 had no vantage point per entry: every result was the pool default's."""
    path = tmp_path / "spool.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE spooled (seq INTEGER PRIMARY KEY AUTOINCREMENT, spooled_at REAL NOT NULL,
            subject TEXT NOT NULL, msg_id TEXT NOT NULL, agent TEXT NOT NULL,
            data BLOB NOT NULL, size INTEGER NOT NULL);
        CREATE TABLE dropped (reason TEXT PRIMARY KEY, count INTEGER NOT NULL);
        INSERT INTO dropped VALUES ('size', 7);
        PRAGMA user_version = 1;
        """
    )
    kept = entry(1, vantage="default")
    old.execute(
        "INSERT INTO spooled (spooled_at, subject, msg_id, agent, data, size)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (1e9, kept.subject, kept.msg_id, kept.agent, kept.data, entry_size(kept)),
    )
    old.commit()
    old.close()
    spool = Spool(path, max_age=1e10, max_bytes=10 * 1024**2)
    spool.append(entry(2))
    assert [e for _, e in spool.oldest(10)] == [kept, entry(2)]
    assert spool.figures().dropped_size == 7
    spool.close()


def test_a_spool_of_a_newer_commwatch_is_refused(tmp_path):
    path = tmp_path / "spool.sqlite3"
    with sqlite3.connect(path) as newer:
        newer.execute("PRAGMA user_version = 99")
    newer.close()
    with pytest.raises(SpoolError, match="of version 99, newer than"):
        Spool(path, max_age=60, max_bytes=10 * 1024**2)
