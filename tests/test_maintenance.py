"""Maintenance windows in their own time zones: coverage and the intervals a report subtracts."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from monitor.config.maintenance import Window, in_maintenance, intervals

CHICAGO = ZoneInfo("America/Chicago")
TUESDAY_2AM = dt.time(2, 0)


def at(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=CHICAGO).timestamp()


WEEKLY = Window("tue", ("radio",), "America/Chicago", days=(1,), at=TUESDAY_2AM, length=7200)


def test_weekly_window_follows_local_time_across_daylight_saving():
    # 2026-11-03 is the first Tuesday after DST ended in the US (2026-11-01).
    assert WEEKLY.covers(at(2026, 10, 27, 2, 30))  # CDT
    assert WEEKLY.covers(at(2026, 11, 3, 2, 30))  # CST
    assert not WEEKLY.covers(at(2026, 11, 3, 4, 0))
    assert not WEEKLY.covers(at(2026, 11, 4, 2, 30))  # a Wednesday


def test_intervals_over_two_weeks_and_clipping():
    start, end = at(2026, 10, 26), at(2026, 11, 3, 3, 0)
    assert intervals(WEEKLY, start, end) == [
        (at(2026, 10, 27, 2, 0), at(2026, 10, 27, 4, 0)),
        (at(2026, 11, 3, 2, 0), at(2026, 11, 3, 3, 0)),
    ]
    one_off = Window("swap", ("s",), "UTC", start=100.0, end=200.0)
    assert intervals(one_off, 150.0, 400.0) == [(150.0, 200.0)]
    assert intervals(one_off, 300.0, 400.0) == []


def test_a_window_applies_to_the_ids_it_names():
    moment = at(2026, 10, 27, 2, 30)
    assert in_maintenance([WEEKLY], ("radio/backhaul/router", "radio/backhaul", "radio"), moment)
    assert not in_maintenance([WEEKLY], ("psap/fibre", "psap"), moment)
