"""The metric families of `GET /metrics`, made from one `Scrape`: a pure function of what the
engine knew at the moment of the scrape, with no I/O, so that it can run off the event loop.

Names, types, labels and units are a stable, versioned interface (`METRICS_VERSION`),
documented in docs/prometheus/README.md; a test checks that every family made here is
documented there and the other way round. Label values are ids from the inventory, kinds and
fixed words, never a target, a host, peer text or anything that may hold a secret.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from monitor import __version__
from monitor.config.inventory import Inventory
from monitor.core.events import PENDING, GroupStatus, LinkStatus
from monitor.core.model import ProbeResult
from monitor.engine.checks import CheckState
from monitor.engine.pipeline import EngineFigures
from monitor.engine.scheduler import SchedulerFigures
from monitor.engine.state import EngineState
from monitor.engine.topology import Topology
from monitor.engine.views import NOT_EVALUATED, group_summaries
from probes import registry

# Bumped when a name, a type, a label or a meaning changes incompatibly; a new family or a
# new label value is no new version.
METRICS_VERSION = 1

CHECK_LABELS = ("check_id", "site", "link", "kind")
CheckLabels = tuple[str, str, str, str]  # a check's CHECK_LABELS values
LINK_STATES = (*(str(s) for s in LinkStatus), str(PENDING))
GROUP_STATES = (*(str(s) for s in GroupStatus), str(PENDING), str(NOT_EVALUATED))

# An snmp check's observations of one interface: if.<name>.<field>. Gauges per second and
# ratios by (field suffix, direction).
_IF = "if."
_ERRORS = {".in_errors_per_s": "in", ".out_errors_per_s": "out"}
_DISCARDS = {".in_discards_per_s": "in"}
_UTILISATION = {".in_utilisation_pct": "in", ".out_utilisation_pct": "out"}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Scrape:
    """What one scrape shows, taken on the event loop at one moment. Every part is immutable
    or a copy, so the families can be made in another thread while the engine runs on."""

    inventory: Inventory
    topology: Topology
    check_labels: Mapping[str, CheckLabels]  # check id -> its CHECK_LABELS values
    state: EngineState
    latest: Mapping[str, ProbeResult]  # check id -> its latest result shown
    results: Mapping[tuple[str, str], int]  # (kind, severity) -> results shown since start
    events: Mapping[tuple[str, str], int]  # (subject, event kind) -> events shown since start
    figures: EngineFigures
    alerts_pending: Mapping[str, int] | None  # notifier -> messages; None: alerting is off
    ready: bool
    started_at: float | None
    extra: tuple[Metric, ...] = ()  # the process's own families after the engine's (a central)


def families(scrape: Scrape) -> Iterator[Metric]:
    """Every family of the scrape, in the exposition's order: the engine's, the per-check
    ones (`check_families`), then the topology's."""
    yield from engine_families(scrape)
    yield from _checks(scrape)
    yield from topology_families(scrape)


def topology_families(scrape: Scrape) -> Iterator[Metric]:
    yield from _links(scrape)
    yield from _groups(scrape)


def _gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


# --- the engine ------------------------------------------------------------------------------


def build_info() -> Metric:
    """`commwatch_build_info`, the first family of every commwatch process's exposition."""
    info = InfoMetricFamily("commwatch_build", "The running commwatch and its metrics' version.")
    info.add_metric([], {"version": __version__, "metrics_version": str(METRICS_VERSION)})
    return info


def engine_families(scrape: Scrape) -> Iterator[Metric]:
    yield build_info()
    yield GaugeMetricFamily(
        "commwatch_engine_ready",
        "1 while the engine's scheduler runs, else 0.",
        value=1 if scrape.ready else 0,
    )
    if scrape.started_at is not None:
        yield GaugeMetricFamily(
            "commwatch_engine_start_timestamp_seconds",
            "When the engine began running checks (Unix time).",
            value=scrape.started_at,
        )
    kinds = _gauge("commwatch_checks", "Checks the engine runs, by kind.", ("kind",))
    per_kind: dict[str, int] = {}
    for _, _, _, kind in scrape.check_labels.values():
        per_kind[kind] = per_kind.get(kind, 0) + 1
    for kind, count in sorted(per_kind.items()):
        kinds.add_metric([kind], count)
    yield kinds
    results = CounterMetricFamily(
        "commwatch_results",
        "Probe results shown since the engine started, by kind and severity.",
        labels=("kind", "severity"),
    )
    for (kind, severity), count in sorted(scrape.results.items()):
        results.add_metric([kind, severity], count)
    yield results
    events = CounterMetricFamily(
        "commwatch_events",
        "State changes shown since the engine started, by subject and event kind.",
        labels=("subject", "kind"),
    )
    for (subject, kind), count in sorted(scrape.events.items()):
        events.add_metric([subject, kind], count)
    yield events
    yield from scheduler_families(scrape.figures.scheduler)
    yield from _store(scrape.figures)
    yield from _traps(scrape.figures)
    if scrape.alerts_pending is not None:
        outbox = _gauge(
            "commwatch_alert_outbox_depth",
            "Alert messages stored and waiting to be delivered, per notifier.",
            ("notifier",),
        )
        for notifier, count in sorted(scrape.alerts_pending.items()):
            outbox.add_metric([notifier], count)
        yield outbox
    yield from scrape.extra


def scheduler_families(scheduler: SchedulerFigures | None) -> Iterator[Metric]:
    """A scheduler's figures: the engine's, or an agent's."""
    if scheduler is None:
        return  # fed from a source (a central): no checks run here, none queue or lag
    yield GaugeMetricFamily(
        "commwatch_checks_in_flight", "Checks running now.", value=scheduler.in_flight
    )
    yield GaugeMetricFamily(
        "commwatch_checks_queued",
        "Checks due and waiting for a free slot (the global or their host's cap).",
        value=scheduler.queued,
    )
    yield GaugeMetricFamily("commwatch_checks_paused", "Checks paused.", value=scheduler.paused)
    yield GaugeMetricFamily(
        "commwatch_scheduler_lag_seconds",
        "How long the longest-waiting queued check is past due; 0 when none waits.",
        value=scheduler.backlog,
    )
    yield SummaryMetricFamily(
        "commwatch_scheduler_start_lag_seconds",
        "How late each run started after it was due: count of runs, sum of their lateness.",
        count_value=scheduler.started,
        sum_value=scheduler.start_lag_total,
    )


def _store(figures: EngineFigures) -> Iterator[Metric]:
    if figures.store_queued is None:
        return  # no history: nothing is stored, nothing waits
    yield GaugeMetricFamily(
        "commwatch_store_queue_depth",
        "Results and events waiting to be written to the history database.",
        value=figures.store_queued,
    )
    rejected = CounterMetricFamily(
        "commwatch_store_rejected",
        "Results and events the history refused while the database was not keeping up.",
        labels=("item",),
    )
    rejected.add_metric(["result"], figures.store_rejected_results)
    rejected.add_metric(["event"], figures.store_rejected_events)
    yield rejected


def _traps(figures: EngineFigures) -> Iterator[Metric]:
    traps = figures.traps
    if traps is None:
        return  # not listening for traps
    received = CounterMetricFamily(
        "commwatch_traps_received",
        "SNMP traps and informs taken from watched devices, by kind (linkDown, linkUp, "
        "coldStart, warmStart, authenticationFailure, other).",
        labels=("kind",),
    )
    for kind, count in sorted(traps.received.items()):
        received.add_metric([kind], count)
    yield received
    rejected = CounterMetricFamily(
        "commwatch_traps_rejected",
        "SNMP notifications refused, by reason (community, user, auth, priv, time_window, "
        "malformed, not_notification, rate, overload, unknown_source, dropped).",
        labels=("reason",),
    )
    for reason, count in sorted(traps.rejected.items()):
        rejected.add_metric([reason], count)
    yield rejected


# --- checks ----------------------------------------------------------------------------------


class CheckFamilies(NamedTuple, Generic[T]):
    """The families with a series per check, in the order of the exposition: the families
    themselves, or one check's samples of each (`CheckSamples`). Each check's samples depend
    only on its latest result and its state (`check_key`), so that an exposition can keep each
    check's lines until that check changes."""

    severity: T
    hard: T
    flapping: T
    last: T
    duration: T
    latency: T
    expiry: T
    oper: T
    admin: T
    errors: T
    discards: T
    utilisation: T


# One check's samples of one family: (label values, value) each, in the order added.
Samples = list[tuple[Sequence[str], float]]
CheckSamples = CheckFamilies[Samples]


def check_families() -> CheckFamilies[GaugeMetricFamily]:
    """The per-check families, empty."""
    labelled = CHECK_LABELS
    interfaced = (*CHECK_LABELS, "interface")
    directed = (*interfaced, "direction")
    return CheckFamilies(
        severity=_gauge(
            "commwatch_check_severity",
            "The latest result's severity: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN (the plugin exit code).",
            labelled,
        ),
        hard=_gauge(
            "commwatch_check_hard_severity",
            "The confirmed (hard) severity, 0-3 as commwatch_check_severity; absent while PENDING.",
            labelled,
        ),
        flapping=_gauge("commwatch_check_flapping", "1 while the check flaps, else 0.", labelled),
        last=_gauge(
            "commwatch_check_last_result_timestamp_seconds",
            "When the latest result's attempt started (Unix time).",
            labelled,
        ),
        duration=_gauge(
            "commwatch_check_duration_seconds", "How long the latest attempt took.", labelled
        ),
        latency=_gauge(
            "commwatch_check_latency_seconds",
            "The latest result's main latency, the one its kind's latency threshold judges;"
            " absent when the kind has none or it was not measured.",
            labelled,
        ),
        expiry=_gauge(
            "commwatch_certificate_expiry_timestamp_seconds",
            "When each certificate the latest result saw expires (Unix time, notAfter);"
            " position 0 is the leaf, then in the order served.",
            (*CHECK_LABELS, "position"),
        ),
        oper=_gauge(
            "commwatch_snmp_interface_oper_status",
            "IF-MIB ifOperStatus: 1 up, 2 down, 3 testing, 4 unknown, 5 dormant, 6 notPresent,"
            " 7 lowerLayerDown.",
            interfaced,
        ),
        admin=_gauge(
            "commwatch_snmp_interface_admin_status",
            "IF-MIB ifAdminStatus: 1 up, 2 down, 3 testing.",
            interfaced,
        ),
        errors=_gauge(
            "commwatch_snmp_interface_errors_per_second",
            "Errored packets per second between the last two polls.",
            directed,
        ),
        discards=_gauge(
            "commwatch_snmp_interface_discards_per_second",
            "Discarded packets per second between the last two polls.",
            directed,
        ),
        utilisation=_gauge(
            "commwatch_snmp_interface_utilisation_ratio",
            "Share of the interface's speed used between the last two polls (0-1).",
            directed,
        ),
    )


def check_key(state: CheckState | None, result: ProbeResult | None) -> Hashable:
    """Everything one check's samples are made of: equal keys, equal samples."""
    return (None if state is None else (state.hard, state.flapping), result)


def check_samples(
    labels: CheckLabels, state: CheckState | None, result: ProbeResult | None
) -> CheckSamples:
    """One check's samples of each per-check family: a function of `check_key(state, result)`.
    Plain tuples, not the library's Samples: a kept exposition compares them with what it
    kept, and has the library make Samples of the few that differ (`add_check`)."""
    made: CheckSamples = CheckFamilies(*([] for _ in CheckFamilies._fields))
    if state is not None:
        if state.hard is not PENDING:
            made.hard.append((labels, int(state.hard)))
        made.flapping.append((labels, 1 if state.flapping else 0))
    if result is None:
        return made
    made.severity.append((labels, int(result.severity)))
    made.last.append((labels, result.started_at))
    made.duration.append((labels, result.duration_ms / 1000))
    main = registry.main_latency(result)
    if main is not None:
        made.latency.append((labels, main / 1000))
    for certificate in result.certificates:
        if certificate.not_after is not None:
            made.expiry.append(((*labels, str(certificate.position)), certificate.not_after))
    if result.check.kind == "snmp":
        _add_interfaces(made, labels, result)
    return made


def add_samples(family: GaugeMetricFamily, samples: Samples) -> None:
    for label_values, value in samples:
        family.add_metric(label_values, value)


def add_check(
    families: CheckFamilies[GaugeMetricFamily],
    labels: CheckLabels,
    state: CheckState | None,
    result: ProbeResult | None,
) -> None:
    """One check's samples, added to `families`."""
    for family, samples in zip(families, check_samples(labels, state, result), strict=True):
        add_samples(family, samples)


def _checks(scrape: Scrape) -> Iterator[Metric]:
    made = check_families()
    states = scrape.state.checks
    for check_id, labels in scrape.check_labels.items():
        add_check(made, labels, states.get(check_id), scrape.latest.get(check_id))
    yield from made


def _add_interfaces(made: CheckSamples, labels: CheckLabels, result: ProbeResult) -> None:
    oper_numbers, admin_numbers = _if_mib_numbers()
    directed = (
        (made.errors, _ERRORS, 1.0),
        (made.discards, _DISCARDS, 1.0),
        (made.utilisation, _UTILISATION, 0.01),
    )
    for key, value in result.observations.items():
        if not key.startswith(_IF):
            continue
        name, field = _interface_field(key)
        values = (*labels, name)
        if field == ".oper_status" and isinstance(value, str) and value in oper_numbers:
            made.oper.append((values, oper_numbers[value]))
        elif field == ".admin_status" and isinstance(value, str) and value in admin_numbers:
            made.admin.append((values, admin_numbers[value]))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            for samples, fields, scale in directed:
                if field in fields:
                    samples.append(((*values, fields[field]), value * scale))


def _interface_field(key: str) -> tuple[str, str]:
    """`if.<name>.<field>` as (name, ".field"); a name may hold dots (Gi0/1.100)."""
    name, dot, field = key[len(_IF) :].rpartition(".")
    return name, dot + field


@functools.cache
def _if_mib_numbers() -> tuple[Mapping[str, int], Mapping[str, int]]:
    """IF-MIB's numbers of the status words an snmp check observes. Imported on the first snmp
    result, when the snmp kind (and pysnmp with it) is loaded already: an engine of tcp checks
    never loads it."""
    from probes.support.snmp_values import ADMIN_STATUS, OPER_STATUS

    return (
        {word: number for number, word in OPER_STATUS.items()},
        {word: number for number, word in ADMIN_STATUS.items()},
    )


# --- links and groups ------------------------------------------------------------------------


def _state_set(
    family: GaugeMetricFamily, labels: list[str], states: tuple[str, ...], current: str
) -> None:
    for state in states:
        family.add_metric([*labels, state], 1 if state == current else 0)


def _links(scrape: Scrape) -> Iterator[Metric]:
    status = _gauge(
        "commwatch_link_status",
        "1 for the link's current status, 0 for the others (UP, DOWN, UNKNOWN, PENDING).",
        ("link", "site", "status"),
    )
    evaluated = scrape.topology.evaluated_links
    for link_id, policy in sorted(scrape.topology.links.items()):
        if link_id not in evaluated:
            continue  # a selection leaves out checks that decide it: it has no status at all
        current = scrape.state.links.get(link_id)
        _state_set(
            status,
            [link_id, policy.site_id],
            LINK_STATES,
            str(PENDING if current is None else current),
        )
    yield status


def _groups(scrape: Scrape) -> Iterator[Metric]:
    labelled = ("group", "site")
    status = _gauge(
        "commwatch_group_status",
        "1 for the redundancy group's current status, 0 for the others (RESILIENT, DEGRADED,"
        " AT RISK, DOWN, UNKNOWN, PENDING, NOT EVALUATED). A site's own group has its site.",
        (*labelled, "status"),
    )
    up = _gauge("commwatch_group_links_up", "The group's links known to be up.", labelled)
    total = _gauge("commwatch_group_links", "The group's links.", labelled)
    needed = _gauge("commwatch_group_min_links_up", "Links that must be up (min_up).", labelled)
    for group in group_summaries(scrape.inventory, scrape.topology, scrape.state):
        values = [group.group_id, group.site_id]
        _state_set(status, values, GROUP_STATES, str(group.label))
        up.add_metric(values, group.up)
        total.add_metric(values, group.total)
        needed.add_metric(values, group.min_up)
    yield from (status, up, total, needed)
