"""The quorum of several vantage points on one check (monitor/engine/quorum.py): the latest
result of each combined into the one result the engine judges. CRIT at `quorum` CRIT vantage
points, WARN "seen down from X only" below it, else the worst of the rest; a vantage point
without a result within 2 intervals + timeout counts UNKNOWN, never OK, and the summary says so.
Tables for the words, properties for the rules, and the record the JSON, the API and the
viewers carry."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.api.readers import result_from_record
from monitor.config.inventory import Check
from monitor.config.loader import load_inventory
from monitor.core.model import (
    ErrorClass,
    ProbeError,
    ProbeResult,
    Severity,
    Verdict,
)
from monitor.engine.quorum import Vantages, combine, freshness, seen_from_several
from monitor.output import records

NAMES = ("psap-north", "noc", "dispatch")
INTERVAL, TIMEOUT = 30.0, 5.0
WINDOW = 2 * INTERVAL + TIMEOUT
AT = 1_800_000_000.0
SCHEMA = jsonschema.Draft202012Validator(
    json.loads((Path(records.__file__).parent / "schema" / "result.schema.json").read_text("utf-8"))
)
# No example database either: each run draws afresh.
PROPERTIES = settings(database=None, max_examples=300, deadline=None)


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> Check:
    path = tmp_path_factory.mktemp("quorum") / "inventory.yaml"
    path.write_text(
        "sites:\n  - id: north\n    vantage: [psap-north, noc, dispatch]\n    quorum: 2\n"
        "    links:\n      - id: fibre\n        checks:\n"
        "          - {id: port, kind: tcp, target: '127.0.0.1:9', interval: 30s, timeout: 5s}\n"
    )
    return load_inventory(path).checks[0]


def seen(check: Check, severity: Severity, at: float = AT, **fields: object) -> ProbeResult:
    """A vantage point's own result, with the words a result of that severity has."""
    verdicts: tuple[Verdict, ...] = ()
    error = None
    if severity is Severity.CRIT:
        error = ProbeError(ErrorClass.REFUSED, "connection refused")
    elif severity is Severity.WARN:
        verdicts = (
            Verdict(
                condition="latency",
                observation="latency_ms",
                value=250.0,
                threshold="warn > 200ms",
                severity=Severity.WARN,
                unit="ms",
                warn=200.0,
            ),
        )
    elif severity is Severity.UNKNOWN:
        error = ProbeError(ErrorClass.INTERNAL, "the probe broke")
    observations = {"latency_ms": 1.5 if severity is Severity.OK else None}
    made = {
        "duration_ms": 2.0,
        "observations": observations,
        "verdicts": verdicts,
        "error": error,
        **fields,
    }
    return ProbeResult(check=check.ref, started_at=at, severity=severity, **made)  # type: ignore[arg-type]


# --- the words ------------------------------------------------------------------------------

TABLE = [
    # (each vantage point's severity, or None for no result; quorum) -> severity, summary
    (
        ("CRIT", "OK", "OK"),
        2,
        Severity.WARN,
        "seen down from psap-north only: WARN",
        "down from psap-north only",
    ),
    (
        ("OK", "CRIT", "CRIT"),
        3,
        Severity.WARN,
        "seen down from noc and dispatch only: WARN",
        "down from noc and dispatch only",
    ),
    (
        ("CRIT", "OK", "CRIT"),
        2,
        Severity.CRIT,
        "seen down from psap-north and dispatch: CRIT",
        "down from 2 of 3",
    ),
    (
        ("CRIT", "CRIT", "CRIT"),
        2,
        Severity.CRIT,
        "seen down from psap-north, noc and dispatch: CRIT",
        "down from 3 of 3",
    ),
    (("CRIT", "OK", "OK"), 1, Severity.CRIT, "seen down from psap-north: CRIT", "down from 1 of 3"),
    (
        ("OK", None, "OK"),
        2,
        Severity.UNKNOWN,
        "no fresh result from noc: UNKNOWN",
        "no fresh result from noc",
    ),
    (
        ("CRIT", None, None),
        2,
        Severity.WARN,
        "seen down from psap-north only; no fresh result from noc and dispatch: WARN",
        "down from psap-north only; no fresh result from noc and dispatch",
    ),
    (
        ("CRIT", "CRIT", None),
        2,
        Severity.CRIT,
        "seen down from psap-north and noc; no fresh result from dispatch: CRIT",
        "down from 2 of 3; no fresh result from dispatch",
    ),
    (
        ("OK", "WARN", "OK"),
        2,
        Severity.WARN,
        "noc: latency 250ms (warn > 200ms): WARN",
        "WARN from noc",
    ),
    (
        ("CRIT", "WARN", "OK"),
        2,
        Severity.WARN,
        "seen down from psap-north only; noc: latency 250ms (warn > 200ms): WARN",
        "down from psap-north only; WARN from noc",
    ),
    (
        ("UNKNOWN", "WARN", "OK"),
        2,
        Severity.UNKNOWN,
        "psap-north: internal: the probe broke; noc: latency 250ms (warn > 200ms): UNKNOWN",
        "UNKNOWN from psap-north; WARN from noc",
    ),
    (("OK", "OK", "OK"), 2, Severity.OK, "OK from psap-north, noc and dispatch", None),
]


@pytest.mark.parametrize(("severities", "quorum", "severity", "summary", "reason"), TABLE)
def test_the_combination_in_words(
    check: Check,
    severities: tuple[str | None, ...],
    quorum: int,
    severity: Severity,
    summary: str,
    reason: str | None,
) -> None:
    check = replace(check, quorum=quorum)
    latest = {
        name: seen(check, Severity[word], AT - i)
        for i, (name, word) in enumerate(zip(NAMES, severities, strict=True))
        if word is not None
    }
    combined = combine(check, latest, now=AT + 1)
    assert combined.severity is severity
    assert combined.summary() == summary
    [verdict] = combined.verdicts
    # The verdict carries its sentence and its gist as every other does.
    assert verdict.condition == "quorum"
    assert (verdict.describe() if severity is not Severity.OK else verdict.finding) == summary
    assert [v.reason for v in combined.failing()] == ([] if reason is None else [reason])
    assert verdict.value == severities.count("CRIT")
    assert verdict.threshold == f"CRIT when down from {quorum} of 3 vantage points"


def test_names_are_in_inventory_order_whatever_order_the_results_came_in(check: Check) -> None:
    arrived = {
        "dispatch": seen(check, Severity.CRIT, AT),
        "psap-north": seen(check, Severity.CRIT, AT - 2),
        "noc": seen(check, Severity.OK, AT - 1),
    }
    combined = combine(check, arrived, now=AT)
    assert combined.summary() == "seen down from psap-north and dispatch: CRIT"
    assert [part.name for part in combined.vantage] == list(NAMES)


def test_a_result_counts_for_two_intervals_and_the_timeout_then_is_unknown(check: Check) -> None:
    assert freshness(check) == WINDOW
    newest = seen(check, Severity.OK, AT)
    edge = {"psap-north": newest, "noc": seen(check, Severity.CRIT, AT - WINDOW)}
    both = combine(replace(check, quorum=1), edge, now=AT)
    assert both.severity is Severity.CRIT  # just within the window: it counts
    gone = {"psap-north": newest, "noc": seen(check, Severity.CRIT, AT - WINDOW - 0.001)}
    stale = combine(replace(check, quorum=1), gone, now=AT)
    # Stale is unknown, not OK, and not the CRIT it last said either.
    assert stale.severity is Severity.UNKNOWN
    assert stale.summary() == "no fresh result from noc and dispatch: UNKNOWN"
    noc = stale.vantage[1]
    assert (noc.name, noc.fresh, noc.severity) == ("noc", False, Severity.UNKNOWN)
    assert noc.result == gone["noc"]  # still shown, with its age
    assert stale.vantage[2].result is None


def test_freshness_is_judged_by_the_central_clock_but_no_later_than_the_newest_result(
    check: Check,
) -> None:
    latest = {name: seen(check, Severity.OK, AT - i) for i, name in enumerate(NAMES)}
    # A backlog read an hour late (a central catching up) is judged as when it was made.
    assert combine(check, latest, now=AT + 3600).severity is Severity.OK
    # An agent whose clock runs ahead cannot make the others look stale: the central's clock
    # bounds how late "now" is.
    ahead = {**latest, "dispatch": seen(check, Severity.OK, AT + 3600)}
    assert combine(check, ahead, now=AT).severity is Severity.OK
    # Only a central that has heard nothing from a vantage point for that long calls it stale.
    lagging = {**latest, "dispatch": seen(check, Severity.OK, AT - 3600)}
    assert combine(check, lagging, now=AT + 1).summary() == (
        "no fresh result from dispatch: UNKNOWN"
    )


def test_the_combined_result_starts_with_the_newest_and_measures_as_the_deciding_one(
    check: Check,
) -> None:
    down = seen(check, Severity.CRIT, AT - 5, duration_ms=1000.0, observations={"latency_ms": None})
    up = seen(check, Severity.OK, AT, observations={"latency_ms": 1.5})
    combined = combine(check, {"psap-north": up, "noc": down, "dispatch": up}, now=AT)
    assert combined.started_at == AT
    # The first vantage point at the worst severity decides: its measurements are shown.
    assert combined.duration_ms == 1000.0
    assert dict(combined.observations) == {"latency_ms": None}
    assert combined.error is None  # the error is noc's, in its part, not the combination's
    assert combined.vantage[1].result == down


def test_a_check_seen_from_one_vantage_point_is_not_combined(check: Check) -> None:
    assert seen_from_several(check)
    assert not seen_from_several(replace(check, vantage=("psap-north",), quorum=1))
    assert not seen_from_several(replace(check, vantage=(), quorum=1))


def test_names_the_check_does_not_have_are_left_out_and_none_at_all_is_an_error(
    check: Check,
) -> None:
    latest = {"stranger": seen(check, Severity.CRIT, AT), "noc": seen(check, Severity.OK, AT)}
    combined = combine(check, latest, now=AT)
    assert [part.name for part in combined.vantage] == list(NAMES)
    assert combined.summary() == "no fresh result from psap-north and dispatch: UNKNOWN"
    with pytest.raises(ValueError, match="no result from any vantage point of north/fibre/port"):
        combine(check, {"stranger": seen(check, Severity.CRIT, AT)}, now=AT)


def test_vantages_keep_each_ones_latest_and_an_older_result_changes_nothing(check: Check) -> None:
    vantages = Vantages()
    first = vantages.take(check, "psap-north", seen(check, Severity.CRIT, AT), now=AT)
    assert (
        first.summary()
        == "seen down from psap-north only; no fresh result from noc and dispatch: WARN"
    )
    second = vantages.take(check, "noc", seen(check, Severity.CRIT, AT + 1), now=AT + 1)
    assert second.severity is Severity.CRIT
    # psap-north's older result, arriving late, does not replace its newer one.
    late = vantages.take(check, "psap-north", seen(check, Severity.OK, AT - 10), now=AT + 1)
    assert late.severity is Severity.CRIT
    assert late.vantage[0].result == first.vantage[0].result
    other = replace(check, ref=replace(check.ref, check_id="north/fibre/other"))
    alone = vantages.take(other, "dispatch", seen(other, Severity.OK, AT), now=AT)
    assert alone.summary() == "no fresh result from psap-north and noc: UNKNOWN"


# --- the record -----------------------------------------------------------------------------


def test_the_record_carries_each_vantage_points_part_and_reads_back_the_same(
    check: Check,
) -> None:
    latest = {
        "psap-north": seen(check, Severity.CRIT, AT - 1),
        "noc": seen(check, Severity.OK, AT - WINDOW - 2),
    }
    combined = combine(check, latest, now=AT)
    record = records.result_record(combined)
    SCHEMA.validate(record)
    parts = record["vantage"]
    assert [(p["name"], p["severity"], p["fresh"]) for p in parts] == [
        ("psap-north", "CRIT", True),
        ("noc", "UNKNOWN", False),
        ("dispatch", "UNKNOWN", False),
    ]
    assert parts[0]["result"]["summary"] == "refused: connection refused"
    assert parts[1]["result"]["severity"] == "OK"  # what it last said, counted UNKNOWN
    assert parts[2]["result"] is None
    assert record["summary"] == (
        "seen down from psap-north only; no fresh result from noc and dispatch: WARN"
    )
    read = result_from_record(json.loads(records.json_line(record)), check.ref)
    assert read == combined


def test_a_result_of_one_vantage_point_has_no_vantage_list(check: Check) -> None:
    record = records.result_record(seen(check, Severity.CRIT))
    assert "vantage" not in record
    SCHEMA.validate(record)


def test_a_viewer_reads_no_vantage_points_nested_inside_a_vantage_points_result(
    check: Check,
) -> None:
    combined = combine(check, {"noc": seen(check, Severity.OK)}, now=AT)
    record = records.result_record(combined)
    # A peer nesting vantage lists without end gets its outer list read, no deeper.
    inner = record["vantage"][1]["result"]
    inner["vantage"] = [dict(record["vantage"][1])] * 2
    read = result_from_record(record, check.ref)
    assert read.vantage[1].result is not None
    assert read.vantage[1].result.vantage == ()


@pytest.mark.parametrize(
    "part",
    [
        {"name": "noc", "severity": "OK", "fresh": "yes", "result": None},
        {"name": 7, "severity": "OK", "fresh": True, "result": None},
        {"name": "noc", "severity": "OK", "fresh": True, "result": {"check_id": 1}},
        {"name": "noc", "severity": "OK", "fresh": True},
    ],
)
def test_a_vantage_part_that_is_not_what_the_schema_says_is_a_record_error(
    check: Check, part: dict[str, object]
) -> None:
    record = records.result_record(combine(check, {"noc": seen(check, Severity.OK)}, now=AT))
    record["vantage"][0] = part
    with pytest.raises(ValueError, match="the engine sent a result this viewer cannot read"):
        result_from_record(record, check.ref)


# --- the rules, for any results -------------------------------------------------------------

# Each vantage point: no result, or a result of some severity some seconds before the newest.
PART = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(list(Severity)), st.floats(min_value=0, max_value=3 * WINDOW)),
)
FIVE = ("a", "b", "c", "d", "e")


@st.composite
def situations(draw: st.DrawFn) -> tuple[int, int, list[tuple[Severity, float] | None]]:
    size = draw(st.integers(min_value=2, max_value=len(FIVE)))
    parts = draw(st.lists(PART, min_size=size, max_size=size).filter(lambda p: any(p)))
    quorum = draw(st.integers(min_value=1, max_value=size))
    ahead = draw(st.floats(min_value=0, max_value=2 * WINDOW))  # the central's clock, later
    return quorum, round(ahead), parts


def build(
    check: Check, quorum: int, parts: list[tuple[Severity, float] | None]
) -> tuple[Check, dict[str, ProbeResult]]:
    names = FIVE[: len(parts)]
    check = replace(check, vantage=names, quorum=quorum)
    latest = {
        name: seen(check, part[0], AT - part[1])
        for name, part in zip(names, parts, strict=True)
        if part is not None
    }
    return check, latest


@PROPERTIES
@given(situations())
def test_crit_at_quorum_warn_below_it_else_the_worst_of_the_rest(check: Check, situation) -> None:
    quorum, ahead, parts = situation
    check, latest = build(check, quorum, parts)
    newest = max(r.started_at for r in latest.values())
    combined = combine(check, latest, now=newest + ahead)
    counted = [
        Severity.UNKNOWN if part is None or newest - (AT - part[1]) > WINDOW else part[0]
        for part in parts
    ]
    down = [name for name, s in zip(check.vantage, counted, strict=True) if s is Severity.CRIT]
    if len(down) >= quorum:
        assert combined.severity is Severity.CRIT
    elif down:
        assert combined.severity is Severity.WARN
        assert combined.summary().startswith(f"seen down from {down[0]}")
        assert " only" in combined.summary()
    else:
        assert combined.severity is Severity.worst(counted)
    assert [part.severity for part in combined.vantage] == counted
    # Not knowing is never OK.
    if Severity.UNKNOWN in counted:
        assert combined.severity is not Severity.OK
        stale = [n for n, s in zip(check.vantage, counted, strict=True) if s is Severity.UNKNOWN]
        stale = [n for n in stale if not combined.vantage[check.vantage.index(n)].fresh]
        if stale:
            assert "no fresh result from " + stale[0] in combined.summary()
    # Every vantage point seen down is named, in inventory order, and no other.
    if down:
        clause = combined.summary().split(";")[0].removeprefix("seen down from ")
        clause = clause.removesuffix(": WARN").removesuffix(": CRIT").removesuffix(" only")
        assert clause.replace(" and ", ", ").split(", ") == down
    assert combined.started_at == newest
    assert combined.check == check.ref


@PROPERTIES
@given(situations(), st.randoms(use_true_random=False))
def test_the_order_the_results_came_in_changes_nothing(check: Check, situation, rng) -> None:
    quorum, ahead, parts = situation
    check, latest = build(check, quorum, parts)
    shuffled = list(latest.items())
    rng.shuffle(shuffled)
    now = AT + ahead
    assert combine(check, dict(shuffled), now) == combine(check, latest, now)


@settings(PROPERTIES, max_examples=100)
@given(situations())
def test_every_combination_is_a_valid_record_that_reads_back_the_same(
    check: Check, situation
) -> None:
    quorum, ahead, parts = situation
    check, latest = build(check, quorum, parts)
    combined = combine(check, latest, AT + ahead)
    record = json.loads(records.result_line(combined))
    SCHEMA.validate(record)
    # What a viewer reads back writes the same record (times are kept to the millisecond).
    read = result_from_record(record, check.ref)
    assert records.result_record(read) == record
    assert read.summary() == combined.summary()
    assert [part.severity for part in read.vantage] == [part.severity for part in combined.vantage]
