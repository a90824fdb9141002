"""Maintenance windows: when alerts for a subject are held (probing goes on).

A window is one-off (`start`/`end`) or weekly (`days`, `at`, `duration`), always in a named time
zone, because a radio site's Tuesday 02:00 change slot is local time, daylight saving and all.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.core.options import OptionError, duration, text

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    window_id: str
    applies_to: tuple[str, ...]  # site, link (site/link) or check (site/link/check) ids
    zone: str
    start: float | None = None  # one-off: POSIX seconds
    end: float | None = None
    days: tuple[int, ...] = ()  # weekly: 0 = Monday
    at: dt.time | None = None
    length: float = 0.0  # weekly: seconds

    def covers(self, at: float) -> bool:
        if self.start is not None and self.end is not None:
            return self.start <= at < self.end
        assert self.at is not None
        zone = ZoneInfo(self.zone)
        local = dt.datetime.fromtimestamp(at, zone)
        # A window that began yesterday (or up to a week ago) may still be open now.
        for back in range(8):
            day = local.date() - dt.timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            opens = dt.datetime.combine(day, self.at, tzinfo=zone).timestamp()
            if opens <= at < opens + self.length:
                return True
        return False


def intervals(window: Window, start: float, end: float) -> list[tuple[float, float]]:
    """The stretches of [start, end) that `window` covers, for availability reports."""
    if window.start is not None and window.end is not None:
        opens, closes = max(start, window.start), min(end, window.end)
        return [(opens, closes)] if opens < closes else []
    assert window.at is not None
    zone = ZoneInfo(window.zone)
    day = dt.datetime.fromtimestamp(start, zone).date() - dt.timedelta(days=7)
    last = dt.datetime.fromtimestamp(end, zone).date()
    found = []
    while day <= last:
        if day.weekday() in window.days:
            opens = dt.datetime.combine(day, window.at, tzinfo=zone).timestamp()
            lo, hi = max(start, opens), min(end, opens + window.length)
            if lo < hi:
                found.append((lo, hi))
        day += dt.timedelta(days=1)
    return found


def in_maintenance(windows: Iterable[Window], subject_ids: Iterable[str], at: float) -> bool:
    ids = set(subject_ids)
    return any(w.covers(at) for w in windows if ids.intersection(w.applies_to))


# --- parsers (used by the inventory loader) ------------------------------------------------


def zone(value: Any) -> str:
    name = text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise OptionError(
            f"{name!r} is not a known time zone", "use an IANA name such as America/Chicago or UTC"
        ) from None
    return name


def local_time(value: Any, zone_name: str) -> float:
    """An ISO date-time; without an offset it is read in `zone_name`."""
    raw = value.isoformat() if isinstance(value, dt.datetime) else text(value)
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise OptionError(
            f"{raw!r} is not a date and time",
            "write e.g. 2026-12-01T02:00 (local to the window's timezone)",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone_name))
    return moment.timestamp()


def weekdays(value: Any) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    days = []
    for item in items:
        name = str(item).lower()[:3]
        if name not in WEEKDAYS:
            raise OptionError(f"{item!r} is not a day of the week", "use mon, tue, ... sun")
        days.append(WEEKDAYS.index(name))
    return tuple(sorted(set(days)))


def clock_time(value: Any) -> dt.time:
    # YAML 1.1 reads an unquoted 02:00 as the sexagesimal number 120.
    raw = f"{value // 60:02d}:{value % 60:02d}" if isinstance(value, int) else text(value)
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", raw.strip())
    if match is None:
        raise OptionError(f"{raw!r} is not a time of day", "write HH:MM, e.g. '02:00'")
    return dt.time(int(match.group(1)), int(match.group(2)))


def window_length(value: Any) -> float:
    seconds = duration(value)
    if seconds > 7 * 86400:
        raise OptionError("a weekly window cannot last more than a week", "shorten duration")
    return seconds
