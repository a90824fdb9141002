"""Checks counted per (severity, acknowledged), for all checks and per group, site and link row.

A site can hold thousands of checks, and its row, the summary bar and the severity sort ask
for these on every batch of results: the counts move with each check's status instead of being
summed again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from monitor.core.model import Severity

Status = tuple[Severity | None, bool]  # a check's severity (None: pending), and if acknowledged
PENDING_STATUS: Status = (None, False)
ALL = ""  # the key of the count over every check


class Tally:
    """`within` names, per check, the keys of the rows it counts in (ALL first): every check
    starts pending."""

    def __init__(self, within: Mapping[str, tuple[str, ...]]) -> None:
        self._within = within
        self._counts: dict[str, Counter[Status]] = {}
        for keys in within.values():
            for key in keys:
                self._counts.setdefault(key, Counter())[PENDING_STATUS] += 1

    def move(self, check_id: str, before: Status, after: Status) -> None:
        """A check's status changed from `before` to `after`."""
        if after != before:
            for key in self._within[check_id]:
                counts = self._counts[key]
                counts[before] -= 1
                counts[after] += 1

    def rows_above(self, check_id: str) -> tuple[str, ...]:
        """The keys of the site, link and group rows whose state a check's result can change."""
        return self._within[check_id][1:]

    def row_status(self, row_key: str) -> Status:
        """What a site, link or group row shows without the state engine: the worst severity
        below needing attention; when nothing does, the worst acknowledged problem, marked as
        acknowledged (never OK while a problem is there); None while nothing has reported."""
        attention = [
            severity
            for (severity, acked), n in self._counts[row_key].items()
            if n and severity is not None and not acked
        ]
        worst = Severity.worst(attention) if attention else None
        if worst is not None and worst is not Severity.OK:
            return worst, False
        acked = [severity for (severity, ack), n in self._counts[row_key].items() if n and ack]
        if acked:
            return Severity.worst(s for s in acked if s is not None), True
        return worst, False

    def row_tally(self, row_key: str) -> Counter[Severity | None]:
        """Checks per severity (None: pending) below a site or link row."""
        tally: Counter[Severity | None] = Counter()
        for (severity, _), n in self._counts[row_key].items():
            tally[severity] += n
        return +tally

    def counts(self) -> Counter[str]:
        """Checks per severity name needing attention, plus 'OK', 'pending' and 'ack'."""
        counts: Counter[str] = Counter()
        for (severity, acked), n in self._counts[ALL].items():
            label = "pending" if severity is None else "ack" if acked else severity.name
            counts[label] += n
        return +counts
