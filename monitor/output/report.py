"""`commwatch report`: availability per group, link and check, from the history store.

The states are the state engine's own: the HARD events it stored for every check, link and group
(first states included, from PENDING). So the report shows what the live view showed, judged by
the same rules (`availability_from`, `min_up`): it never works a link or group out a second time.

Only observed time counts. commwatch was watching during its runs (history records each one and
what it watched; runs from before that are learned from the results): time outside every run is
not observed, and so is time in a run before a subject's first state. At a run's start a subject
has the state it had before (the engine restores it), unless the run's first event for it comes
from PENDING: it was evaluated afresh and is not known until that event. Time in a maintenance
window (those each run had in force, and the INVENTORY's) is left out of every figure.

History written before first states were events: a subject whose first event in a run does not
come from PENDING had that event's `before` from its first result in the run (a check) or the
run's start; a check with no events at all has the state of its first result in each run.

Outages are spans in an outage state: CRIT for a check, DOWN for a link or group. One lasts from
when it began, even before the period, until the subject is seen out of it; a gap in watching
does not end it, but its duration counts observed time only, less maintenance, and one wholly
under maintenance is none. The mean time to recover averages the outages that ended in the
period. Availability is the share of observed time spent neither in an outage nor UNKNOWN.

How the report is written out (table, JSON, CSV) is `monitor.output.report_formats`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from monitor.config.diversity import GroupRisks
from monitor.core.events import (
    PENDING,
    CheckStatus,
    Event,
    EventKind,
    GroupStatus,
    LinkStatus,
    Subject,
)
from monitor.output.report_paths import GroupPaths
from monitor.store.history import HistoryStore
from monitor.store.runs import Run, RunScope, Watched, merge_spans

OUTAGE_STATES: Mapping[Subject, frozenset[str]] = {
    Subject.CHECK: frozenset({CheckStatus.CRIT}),
    Subject.LINK: frozenset({LinkStatus.DOWN}),
    Subject.GROUP: frozenset({GroupStatus.DOWN}),
}
# Not knowing has one word for every kind of subject (each status enum has UNKNOWN).
UNKNOWN_STATE = CheckStatus.UNKNOWN
_SUBJECT_ORDER = {Subject.GROUP: 0, Subject.LINK: 1, Subject.CHECK: 2}

Span = tuple[float, float]
Key = tuple[Subject, str]


@dataclass(frozen=True)
class Outage:
    start: float  # may lie before the period
    end: float | None  # None: still going when last seen
    duration_s: float  # observed time in it, less maintenance (before the period too)


@dataclass(frozen=True)
class SubjectAvailability:
    subject: Subject
    subject_id: str
    site_id: str
    source: str  # "events", "results" or "none": where its states came from
    time_in_state: Mapping[str, float]  # observed seconds in the period, outside maintenance
    maintenance_s: float
    not_observed_s: float  # outside maintenance: commwatch not running, or no state yet
    outages: tuple[Outage, ...]
    last_state: str | None  # the last state seen in the period

    @property
    def observed_s(self) -> float:
        return sum(self.time_in_state.values())

    @property
    def outage_s(self) -> float:
        """Time in an outage state within the period."""
        outage_states = OUTAGE_STATES[self.subject]
        return sum(s for state, s in self.time_in_state.items() if state in outage_states)

    @property
    def availability_pct(self) -> float | None:
        if self.observed_s <= 0:
            return None
        unknown = self.time_in_state.get(UNKNOWN_STATE, 0.0)
        return 100.0 * (self.observed_s - self.outage_s - unknown) / self.observed_s

    @property
    def mttr_s(self) -> float | None:
        recovered = [o.duration_s for o in self.outages if o.end is not None]
        return sum(recovered) / len(recovered) if recovered else None


@dataclass(frozen=True)
class AvailabilityReport:
    generated_at: float
    since: float
    until: float
    database: str
    runs: int  # runs that watched some of the period
    watched_s: float  # how much of the period commwatch was watching
    subjects: tuple[SubjectAvailability, ...]  # per site: groups, then links, then checks
    # The routes path checks traced, by group (monitor.output.report_paths); None without an
    # inventory, which says which checks trace which link.
    paths: tuple[GroupPaths, ...] | None = None
    # Every group's shared risks by design, from the inventory; None without one (the history
    # does not hold what the links ride).
    diversity: tuple[GroupRisks, ...] | None = None


# --- intervals -----------------------------------------------------------------------------


def _covered(start: float, end: float, spans: Sequence[Span]) -> float:
    """How much of [start, end) the (merged) spans cover."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)


def _outside(start: float, end: float, spans: Sequence[Span]) -> float:
    return max(0.0, end - start) - _covered(start, end, spans)


# --- timelines -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    start: float
    end: float
    state: str


@dataclass(frozen=True)
class _ScopedRun:
    start: float
    end: float
    scope: RunScope | None  # None: not known what it watched (anything with events did)
    watched: frozenset[Key] | None


def _scoped_runs(runs: Iterable[Run], inventory: RunScope | None) -> list[_ScopedRun]:
    scoped = []
    for run in runs:
        scope = RunScope.from_json(run.scope) if run.scope else None
        scope = scope or inventory  # a learned (or unreadable) run: the inventory's, if given
        watched = (
            None if scope is None else frozenset((w.subject, w.subject_id) for w in scope.subjects)
        )
        scoped.append(_ScopedRun(run.started_at, run.end, scope, watched))
    return scoped


def _timeline(
    key: Key,
    runs: Sequence[_ScopedRun],
    prior: Event | None,
    events: Sequence[Event],
    store: HistoryStore,
) -> tuple[list[_Segment], str]:
    """The subject's observed states, run by run, and where they came from."""
    subject, subject_id = key
    state = None if prior is None or prior.after == PENDING else prior.after
    segments: list[_Segment] = []
    source = "none"
    position = 0
    for run in runs:
        while position < len(events) and events[position].at < run.start:
            state = _after(events[position])  # recorded between runs (learned ones)
            position += 1
        in_run = []
        while position < len(events) and events[position].at < run.end:
            in_run.append(events[position])
            position += 1
        if run.watched is not None and key not in run.watched:
            continue
        first = in_run[0] if in_run else None
        current: str | None = None
        known_from = run.start
        if first is not None and first.before == PENDING:
            known_from = first.at  # evaluated afresh: nothing known before its first state
        elif state is not None:
            current = state  # restored, as the engine restores it
        elif first is not None:  # written before first states were events
            current = first.before
            if subject is Subject.CHECK:
                found = store.first_result(subject_id, run.start, run.end)
                known_from = run.start if found is None else found.since
        elif subject is Subject.CHECK:  # no events at all: its results say
            found = store.first_result(subject_id, run.start, run.end)
            if found is not None:
                current, known_from, source = found.severity.name, found.since, "results"
        for event in in_run:
            if current is not None and event.at > known_from:
                segments.append(_Segment(known_from, event.at, current))
            current, known_from = _after(event), max(known_from, event.at)
            source = "events"
        if current is not None and run.end > known_from:
            segments.append(_Segment(known_from, run.end, current))
        if in_run:
            state = _after(in_run[-1])
    if source == "none" and segments:
        source = "events"
    return segments, source


def _after(event: Event) -> str | None:
    return None if event.after == PENDING else event.after


def _availability(
    watched: Watched,
    segments: Sequence[_Segment],
    source: str,
    maintenance: Sequence[Span],
    since: float,
    until: float,
) -> SubjectAvailability:
    outage_states = OUTAGE_STATES[watched.subject]
    time_in_state: dict[str, float] = {}
    outages: list[Outage] = []
    outage_start: float | None = None
    outage_time = 0.0

    def close(end: float | None) -> None:
        if outage_start is not None and outage_time > 0 and (end is None or end > since):
            outages.append(Outage(outage_start, end, outage_time))

    for segment in segments:
        if segment.start >= until:
            break
        end = min(segment.end, until)
        inside = _outside(max(segment.start, since), end, maintenance)
        if inside > 0:
            time_in_state[segment.state] = time_in_state.get(segment.state, 0.0) + inside
        if segment.state in outage_states:
            if outage_start is None:
                outage_start, outage_time = segment.start, 0.0
            outage_time += _outside(segment.start, end, maintenance)
        elif outage_start is not None:
            close(segment.start)
            outage_start = None
    close(None)
    maintenance_s = _covered(since, until, maintenance)
    observed = sum(time_in_state.values())
    last = next((s.state for s in reversed(segments) if s.start < until and s.end > since), None)
    return SubjectAvailability(
        watched.subject,
        watched.subject_id,
        watched.site_id,
        source,
        time_in_state,
        maintenance_s,
        max(0.0, until - since - maintenance_s - observed),
        tuple(outages),
        last,
    )


def _read_from(store: HistoryStore, since: float) -> float:
    """How far back to read so that every outage under way at `since` is followed from when
    it began: the earliest event of its unbroken run of outage states."""
    start = since
    for last in store.last_events_before(since):
        outage_states = OUTAGE_STATES[last.subject]
        if last.after not in outage_states:
            continue
        for event in store.subject_events_before(last.subject, last.subject_id, since):
            if event.after not in outage_states:
                break
            start = min(start, event.at)
    return start


def build_report(
    store: HistoryStore,
    *,
    since: float,
    until: float,
    inventory: RunScope | None = None,
    generated_at: float | None = None,
    diversity: tuple[GroupRisks, ...] | None = None,
) -> AvailabilityReport:
    """Availability in [since, until) of every subject the runs of that period watched, plus
    the inventory's (when given: its maintenance windows count too, and it stands for what a
    run learned from old results watched), and the inventory's `diversity` as given."""
    start = _read_from(store, since)
    prior = {(e.subject, e.subject_id): e for e in store.last_events_before(start)}
    runs = _scoped_runs(store.runs(start, until), inventory)
    events: dict[Key, list[Event]] = {}
    for event in store.events_since(start, until, kinds=[EventKind.HARD]):
        events.setdefault((event.subject, event.subject_id), []).append(event)
    in_period = [r for r in runs if r.end > since]
    subjects: dict[Key, Watched] = {}
    for scope in [*(r.scope for r in in_period), inventory]:
        for w in scope.subjects if scope is not None else ():
            subjects.setdefault((w.subject, w.subject_id), w)
    for key, found in events.items():
        if any(e.at >= since for e in found):
            subjects.setdefault(key, Watched(*key, found[-1].site_id))
    if any(r.scope is None for r in in_period):
        # Nothing says what these runs watched: what they left behind does.
        for key, event in prior.items():
            subjects.setdefault(key, Watched(*key, event.site_id))
        for check_id, result in store.result_states(since, until).items():
            subjects.setdefault(
                (Subject.CHECK, check_id), Watched(Subject.CHECK, check_id, result.site_id)
            )
    report = []
    for key in sorted(subjects, key=lambda k: (subjects[k].site_id, _SUBJECT_ORDER[k[0]], k[1])):
        watched = subjects[key]
        segments, source = _timeline(key, runs, prior.get(key), events.get(key, []), store)
        maintenance = merge_spans(
            [
                *(
                    span
                    for run in runs
                    if run.scope is not None
                    for span in run.scope.maintenance(watched, run.start, run.end)
                ),
                *(inventory.maintenance(watched, start, until) if inventory else ()),
            ]
        )
        report.append(_availability(watched, segments, source, maintenance, since, until))
    watched_spans = merge_spans((max(r.start, since), min(r.end, until)) for r in in_period)
    return AvailabilityReport(
        until if generated_at is None else generated_at,
        since,
        until,
        str(store.path),
        len(in_period),
        _covered(since, until, watched_spans),
        tuple(report),
        diversity=diversity,
    )
