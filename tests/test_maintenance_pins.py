"""Maintenance windows at their edges: the exact opening and closing instants, a weekly window
open across local midnight, a zone whose date is not UTC's, one-off times written without an
offset, and the parsers the inventory reads windows with."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from monitor.config.loader import load_inventory
from monitor.config.maintenance import (
    Window,
    clock_time,
    in_maintenance,
    intervals,
    local_time,
    weekdays,
    window_length,
    zone,
)
from monitor.core.options import OptionError

CHICAGO, AUCKLAND, UTC = ZoneInfo("America/Chicago"), ZoneInfo("Pacific/Auckland"), dt.UTC
HOUR = 3600.0


def at(zone_info: ZoneInfo | dt.timezone, *parts: int) -> float:
    return dt.datetime(*parts, tzinfo=zone_info).timestamp()


def weekly(days: tuple[int, ...], hour: int, minute: int, length: float, where: str) -> Window:
    return Window("w", ("site",), where, days=days, at=dt.time(hour, minute), length=length)


# 2026-10-27 is a Tuesday.
LATE_TUESDAY = weekly((1,), 23, 0, 2 * HOUR, "America/Chicago")


@pytest.mark.parametrize(
    ("moment", "covered"),
    [
        (at(CHICAGO, 2026, 10, 27, 22, 59, 59), False),
        (at(CHICAGO, 2026, 10, 27, 23, 0), True),  # the exact opening instant
        (at(CHICAGO, 2026, 10, 27, 23, 59, 59), True),
        (at(CHICAGO, 2026, 10, 28, 0, 0), True),  # past local midnight: Wednesday now
        (at(CHICAGO, 2026, 10, 28, 0, 59, 59), True),
        (at(CHICAGO, 2026, 10, 28, 1, 0), False),  # the closing instant is outside
        (at(CHICAGO, 2026, 11, 3, 23, 30), True),  # a week later (and after DST ended)
        (at(CHICAGO, 2026, 11, 4, 0, 30), True),
        (at(CHICAGO, 2026, 10, 29, 0, 30), False),  # the Thursday after: not the window's day
    ],
)
def test_a_weekly_window_open_across_local_midnight(moment, covered):
    assert LATE_TUESDAY.covers(moment) is covered


def test_a_weekly_window_in_a_zone_whose_date_is_ahead_of_utc():
    """Wednesday 00:30 in Auckland (UTC+13) is still Tuesday in UTC: the window's day is the
    zone's, never the machine's or UTC's."""
    early_wednesday = weekly((2,), 0, 30, 2 * HOUR, "Pacific/Auckland")
    moment = at(AUCKLAND, 2026, 12, 2, 1, 0)
    assert dt.datetime.fromtimestamp(moment, UTC).weekday() == 1  # Tuesday in UTC
    assert early_wednesday.covers(moment)
    assert early_wednesday.covers(at(AUCKLAND, 2026, 12, 2, 0, 30))
    assert not early_wednesday.covers(at(AUCKLAND, 2026, 12, 2, 2, 30))
    assert not early_wednesday.covers(at(UTC, 2026, 12, 2, 1, 0))  # Wednesday in UTC only
    assert intervals(early_wednesday, at(AUCKLAND, 2026, 12, 1), at(AUCKLAND, 2026, 12, 3)) == [
        (at(AUCKLAND, 2026, 12, 2, 0, 30), at(AUCKLAND, 2026, 12, 2, 2, 30))
    ]


def test_a_weekly_window_on_several_days_opens_on_each():
    weekdays_only = weekly((0, 4), 2, 0, HOUR, "UTC")  # Monday and Friday
    monday, friday = at(UTC, 2026, 10, 26, 2, 30), at(UTC, 2026, 10, 30, 2, 30)
    assert weekdays_only.covers(monday) and weekdays_only.covers(friday)
    assert not weekdays_only.covers(at(UTC, 2026, 10, 27, 2, 30))


def test_a_week_long_window_is_still_open_on_its_seventh_day():
    sunday_noon_for_a_week = weekly((6,), 12, 0, 7 * 86400 - 60, "UTC")
    assert sunday_noon_for_a_week.covers(at(UTC, 2026, 11, 8, 11, 58))  # the Sunday after


def test_a_one_off_window_includes_its_start_and_not_its_end():
    swap = Window("swap", ("s",), "UTC", start=100.0, end=200.0)
    assert [swap.covers(moment) for moment in (99.9, 100.0, 199.9, 200.0)] == [
        False,
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.0, 1000.0, [(100.0, 200.0)]),
        (150.0, 160.0, [(150.0, 160.0)]),
        (200.0, 300.0, []),  # touching at the end: nothing covered
        (0.0, 100.0, []),  # touching at the start
    ],
)
def test_one_off_intervals_are_clipped_and_never_empty(start, end, expected):
    swap = Window("swap", ("s",), "UTC", start=100.0, end=200.0)
    assert intervals(swap, start, end) == expected


def test_weekly_intervals_are_never_empty_at_the_edges():
    opens = at(CHICAGO, 2026, 10, 27, 23, 0)
    closes = opens + 2 * HOUR
    assert intervals(LATE_TUESDAY, closes, closes + HOUR) == []
    assert intervals(LATE_TUESDAY, opens - HOUR, opens) == []
    # A report that starts inside a window opened the day before gets the rest of it.
    midnight = at(CHICAGO, 2026, 10, 28, 0, 0)
    assert intervals(LATE_TUESDAY, midnight, midnight + 86400) == [(midnight, closes)]


def test_weekly_intervals_follow_the_zone_not_the_machine():
    """Midnight to midnight in Auckland: the window is found on the zone's dates."""
    early_monday = weekly((0,), 0, 0, HOUR, "Pacific/Auckland")
    start, end = at(AUCKLAND, 2026, 11, 30), at(AUCKLAND, 2026, 11, 30, 12, 0)
    assert intervals(early_monday, start, end) == [(start, start + HOUR)]


def test_intervals_find_a_week_long_window_opened_on_the_zones_date_a_week_before():
    """Tuesday 22:00 in Chicago is Wednesday in UTC; the window that opened the Tuesday before
    is found by counting back from the zone's date."""
    all_week = weekly((1,), 23, 0, 7 * 86400, "America/Chicago")
    start = at(CHICAGO, 2026, 10, 20, 22, 0)
    reopens = at(CHICAGO, 2026, 10, 20, 23, 0)
    assert intervals(all_week, start, start + 2 * HOUR) == [
        (start, reopens),  # the one of 2026-10-13, still open
        (reopens, start + 2 * HOUR),
    ]


def test_in_maintenance_needs_a_named_subject_and_an_open_window():
    moment = at(CHICAGO, 2026, 10, 28, 0, 30)
    assert in_maintenance([LATE_TUESDAY], ["site/link", "site"], moment)
    assert not in_maintenance([LATE_TUESDAY], ["other"], moment)
    assert not in_maintenance([LATE_TUESDAY], ["site"], moment + 86400)
    assert not in_maintenance([], ["site"], moment)


# --- parsers -----------------------------------------------------------------------------------


def test_a_one_off_time_without_an_offset_is_read_in_the_windows_zone():
    assert local_time("2026-12-01T02:00", "America/Chicago") == at(CHICAGO, 2026, 12, 1, 2, 0)
    assert local_time("2026-12-01T02:00", "Pacific/Auckland") == at(AUCKLAND, 2026, 12, 1, 2)
    # An offset written out wins over the zone.
    written = local_time("2026-12-01T02:00+00:00", "America/Chicago")
    assert written == at(UTC, 2026, 12, 1, 2, 0)
    # YAML may hand over a datetime already: naive is local too, aware keeps its offset.
    naive = dt.datetime(2026, 12, 1, 2, 0)
    assert local_time(naive, "America/Chicago") == at(CHICAGO, 2026, 12, 1, 2, 0)
    aware = dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert local_time(aware, "America/Chicago") == at(UTC, 2026, 12, 1, 2, 0)


def test_a_one_off_window_in_an_inventory_is_read_in_its_timezone(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\n"
        "maintenance:\n"
        "  - {id: quoted, applies_to: [s], timezone: America/Chicago,\n"
        "     start: '2026-12-01T01:00', end: '2026-12-01T03:00'}\n"
        "  - {id: yaml-timestamp, applies_to: [s], timezone: Pacific/Auckland,\n"
        "     start: 2026-12-01 01:00:00, end: 2026-12-01 03:00:00}\n"
        "  - {id: weekly, applies_to: [s], timezone: America/Chicago, days: Tuesday,\n"
        "     at: 02:30, duration: 1h}\n"
        "sites:\n"
        "  - id: s\n"
        "    links: [{id: l, checks: [{id: c, kind: tcp, target: '127.0.0.1:1'}]}]\n"
    )
    quoted, timestamp, tuesday = load_inventory(path).resilience.maintenance
    assert (quoted.start, quoted.end) == (at(CHICAGO, 2026, 12, 1, 1), at(CHICAGO, 2026, 12, 1, 3))
    assert (timestamp.start, timestamp.end) == (
        at(AUCKLAND, 2026, 12, 1, 1),
        at(AUCKLAND, 2026, 12, 1, 3),
    )
    # An unquoted 02:30 (YAML 1.1's sexagesimal 150) is still half past two.
    assert (tuesday.days, tuesday.at, tuesday.length) == ((1,), dt.time(2, 30), HOUR)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("02:00", dt.time(2, 0)),
        ("2:05", dt.time(2, 5)),
        (" 23:59 ", dt.time(23, 59)),
        ("00:00", dt.time(0, 0)),
        (150, dt.time(2, 30)),  # YAML 1.1 read an unquoted 02:30 as 2 * 60 + 30
        (0, dt.time(0, 0)),
        (1439, dt.time(23, 59)),
    ],
)
def test_clock_times(written, expected):
    assert clock_time(written) == expected


@pytest.mark.parametrize("written", ["24:00", "02:60", "2", "02:5", "noon", "", 1440, "2:00pm"])
def test_clock_times_refused(written):
    with pytest.raises(OptionError) as caught:
        clock_time(written)
    assert "is not a time of day" in caught.value.message or "text" in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("tue", (1,)),
        ("Tuesday", (1,)),  # the first three letters name the day
        ("SUN", (6,)),
        (["fri", "mon", "Monday"], (0, 4)),  # sorted, each once
        (["mon", "tue", "wed", "thu", "fri", "sat", "sun"], (0, 1, 2, 3, 4, 5, 6)),
    ],
)
def test_weekdays(written, expected):
    assert weekdays(written) == expected


@pytest.mark.parametrize("written", ["tu", "noday", ["mon", "funday"], 3])
def test_weekdays_refused(written):
    with pytest.raises(OptionError) as caught:
        weekdays(written)
    assert "is not a day of the week" in caught.value.message
    assert caught.value.hint


def test_a_weekly_window_lasts_at_most_a_week():
    assert window_length("7d") == 7 * 86400
    assert window_length("1h30m") == 5400
    for too_long in ("7d1s", "8d", 7 * 86400 + 1):
        with pytest.raises(OptionError) as caught:
            window_length(too_long)
        assert caught.value.message == "a weekly window cannot last more than a week"
        assert caught.value.hint


def test_times_that_are_not_times_are_refused_with_a_hint():
    with pytest.raises(OptionError) as caught:
        local_time("2026-13-01T02:00", "UTC")
    assert caught.value.message == "'2026-13-01T02:00' is not a date and time"
    assert "2026-12-01T02:00" in caught.value.hint


def test_zones():
    assert zone("America/Chicago") == "America/Chicago"
    assert zone("UTC") == "UTC"
    for unknown in ("Mars/Olympus", "../etc/passwd", "America/"):
        with pytest.raises(OptionError) as caught:
            zone(unknown)
        assert caught.value.message == f"{unknown!r} is not a known time zone"
        assert "IANA" in caught.value.hint
