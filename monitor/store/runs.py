"""The runs history records: when commwatch was watching, and what each run watched (its
checks, the links and groups the state engine judged, and the maintenance windows in force),
stored with the run as JSON so that a report knows every subject, and which time was planned
work, from the store alone. (Runs from before the store recorded them are learned from the
results, once, on upgrade: monitor.store.schema.)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from monitor.config import maintenance
from monitor.config.maintenance import Window
from monitor.core.events import Subject

SCOPE_VERSION = 1

Span = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Run:
    """A span of time commwatch was watching and storing what it saw."""

    started_at: float
    last_at: float  # its last heartbeat: known to be watching until then
    ended_at: float | None  # None: still running, or it died (kill -9, power loss)
    scope: str | None  # what it watched (the caller's JSON); None if not said, or learned
    learned: bool = False  # recorded before runs were: learned from the results

    @property
    def end(self) -> float:
        return self.last_at if self.ended_at is None else self.ended_at


@dataclass(frozen=True)
class Watched:
    subject: Subject
    subject_id: str
    site_id: str  # "" for a group across sites


def maintenance_ids(subject: Subject, subject_id: str, site_id: str) -> tuple[str, ...]:
    """The ids a maintenance window may name to cover this subject (`applies_to`), as the
    state engine matches them: a window on a site covers its links and checks, one on a link
    covers its checks."""
    if subject is Subject.CHECK:
        return (subject_id, subject_id.rsplit("/", 1)[0], site_id)
    if subject is Subject.LINK:
        return (subject_id, site_id)
    return (subject_id, site_id) if site_id else (subject_id,)


@dataclass(frozen=True)
class RunScope:
    subjects: tuple[Watched, ...]
    windows: tuple[Window, ...] = ()

    def maintenance(self, watched: Watched, start: float, end: float) -> list[Span]:
        """The stretches of [start, end) this scope's windows put `watched` under maintenance."""
        ids = set(maintenance_ids(watched.subject, watched.subject_id, watched.site_id))
        return [
            span
            for window in self.windows
            if ids.intersection(window.applies_to)
            for span in maintenance.intervals(window, start, end)
        ]

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": SCOPE_VERSION,
                "subjects": [[str(w.subject), w.subject_id, w.site_id] for w in self.subjects],
                "windows": [_window_to_json(w) for w in self.windows],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> RunScope | None:
        """None for a scope this commwatch cannot read (a newer one wrote it, or it is damaged):
        the report then falls back on what the events and results show."""
        try:
            document = json.loads(text)
            if document.get("version") != SCOPE_VERSION:
                return None
            subjects = tuple(
                Watched(subject=Subject(subject), subject_id=subject_id, site_id=site_id)
                for subject, subject_id, site_id in document["subjects"]
            )
            windows = tuple(_window_from_json(w) for w in document["windows"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return cls(subjects=subjects, windows=windows)


def _window_to_json(window: Window) -> Mapping[str, Any]:
    return {
        "id": window.window_id,
        "applies_to": list(window.applies_to),
        "zone": window.zone,
        "start": window.start,
        "end": window.end,
        "days": list(window.days),
        "at": None if window.at is None else window.at.isoformat(),
        "length": window.length,
    }


def _window_from_json(values: Mapping[str, Any]) -> Window:
    ZoneInfo(values["zone"])  # a zone this machine does not know: the scope cannot be used
    at = values["at"]
    return Window(
        window_id=values["id"],
        applies_to=tuple(values["applies_to"]),
        zone=values["zone"],
        start=values["start"],
        end=values["end"],
        days=tuple(values["days"]),
        at=None if at is None else dt.time.fromisoformat(at),
        length=float(values["length"]),
    )


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """The union of [start, end) spans, sorted, as disjoint spans."""
    merged: list[Span] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
