"""Conditions judged: bounds exactly met, both directions, missing and non-numeric observations,
the words of each outcome, and the runner judging what a probe returned without."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.config.checks import adhoc_check
from monitor.core.conditions import (
    Expectation,
    Finding,
    Threshold,
    evaluate,
    said,
    told_by_about,
)
from monitor.core.model import Severity, Verdict
from monitor.engine.runner import run_check
from probes.base import ProbeKind

OK, WARN, CRIT, UNKNOWN = Severity.OK, Severity.WARN, Severity.CRIT, Severity.UNKNOWN

LATENCY = Threshold(condition="latency", observation="connect_ms", warn=200, crit=500, unit="ms")
DAYS_LEFT = Threshold(
    condition="expiry", observation="days_left", warn=30, crit=7, unit="d", higher_is_worse=False
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, OK),
        (199.9, OK),
        (200, OK),  # exactly at the warn bound: not above it
        (200.001, WARN),
        (500, WARN),  # exactly at the crit bound
        (500.5, CRIT),
        (10**9, CRIT),
    ],
)
def test_higher_is_worse_breaches_only_above_a_bound(value, expected):
    assert LATENCY.judge(value).severity is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (90, OK),
        (30, OK),  # exactly at the warn bound: not below it
        (29.5, WARN),
        (7, WARN),  # exactly at the crit bound
        (6.99, CRIT),
        (-3, CRIT),
    ],
)
def test_lower_is_worse_breaches_only_below_a_bound(value, expected):
    assert DAYS_LEFT.judge(value).severity is expected


@pytest.mark.parametrize(
    ("warn", "crit", "value", "expected"),
    [
        (None, 500, 400, OK),
        (None, 500, 501, CRIT),  # no warn bound: straight to CRIT
        (200, None, 10**6, WARN),  # no crit bound: never worse than WARN
        (None, None, 10**6, OK),
    ],
)
def test_a_missing_bound_is_never_breached(warn, crit, value, expected):
    condition = dataclasses.replace(LATENCY, warn=warn, crit=crit)
    assert condition.judge(value).severity is expected


@pytest.mark.parametrize("value", [None, True, False, "12", "fast", b"1"])
def test_a_value_that_is_not_a_number_is_unknown_and_not_explained(value):
    explained = dataclasses.replace(LATENCY, explain=said("fast enough"))
    verdict = explained.judge(value)
    assert verdict.severity is UNKNOWN
    # The plain form: the words for a number do not describe a value that is none.
    assert verdict.reason != "fast enough"


def test_a_threshold_verdict_carries_everything_its_consumers_read():
    condition = dataclasses.replace(
        DAYS_LEFT, explain=lambda value, about: Finding("due", f"expires in {value}d ({about})")
    )
    assert condition.judge(12, "#0 CN=gw") == Verdict(
        condition="expiry",
        observation="days_left",
        value=12,
        threshold="warn < 30d, crit < 7d",
        severity=WARN,
        unit="d",
        warn=30,
        crit=7,
        higher_is_worse=False,
        about="#0 CN=gw",
        finding="expires in 12d (#0 CN=gw)",
        reason="due",
        headline=False,
    )


def test_a_headline_threshold_says_so_and_the_plain_words_name_the_value():
    verdict = dataclasses.replace(LATENCY, headline=True).judge(250.5)
    assert verdict.headline is True
    assert (verdict.reason, verdict.finding) == ("latency 250.5ms", "latency 250.5ms")
    assert (verdict.warn, verdict.crit, verdict.higher_is_worse) == (200, 500, True)


@pytest.mark.parametrize(
    ("condition", "described"),
    [
        (LATENCY, "warn > 200ms, crit > 500ms"),
        (DAYS_LEFT, "warn < 30d, crit < 7d"),
        (dataclasses.replace(LATENCY, warn=None), "crit > 500ms"),
        (dataclasses.replace(LATENCY, crit=None, warn=2000000), "warn > 2000000ms"),
        (dataclasses.replace(LATENCY, warn=0.25, crit=None, unit=""), "warn > 0.25"),
        (dataclasses.replace(LATENCY, warn=None, crit=None), "no threshold"),
    ],
)
def test_describe_states_the_bounds_in_plain_decimals(condition, described):
    assert condition.describe() == described
    assert condition.judge(1).threshold == described


def name_expectation(**changes) -> Expectation:
    """Built in each test, never at import: mutation testing swaps a function only for calls
    made while a test runs, and `said()` made at import would be the original."""
    expectation = Expectation(
        condition="tls.name",
        observation="name_matches",
        accepts=lambda value: value is True,
        expected="the certificate to name the host",
        about="leaf",
        failed=said("name mismatch"),
        passed=said("name matches", "the host"),
    )
    return dataclasses.replace(expectation, **changes)


def test_an_expectation_met_is_ok_in_the_words_for_passing():
    verdict = name_expectation().judge(True, "CN=gw")
    assert verdict == Verdict(
        condition="tls.name",
        observation="name_matches",
        value=True,
        threshold="expected the certificate to name the host",
        severity=OK,
        about="CN=gw",
        finding="name matches: CN=gw",
        reason="name matches",
    )
    assert (verdict.warn, verdict.crit) == (None, None)


def test_an_expectation_failed_has_its_severity_in_the_words_for_failing():
    verdict = name_expectation().judge(False, "CN=other")
    assert (verdict.severity, verdict.reason, verdict.finding) == (
        CRIT,
        "name mismatch",
        "name mismatch: CN=other",
    )
    warning = name_expectation(severity=WARN)
    assert warning.judge(False).severity is WARN
    assert warning.judge(True).severity is OK


def test_a_graded_expectation_fails_as_badly_as_its_grade_says_of_the_value():
    """A SIP element answering 404 is alive (WARN), one answering 500 is not (CRIT): one
    condition, one verdict, its severity by the value."""
    status = Expectation(
        condition="status",
        observation="status",
        accepts=lambda code: code == 200,
        expected="200",
        grade=lambda code: WARN if isinstance(code, int) and code < 500 else CRIT,
    )
    assert status.judge(200).severity is OK
    assert status.judge(404).severity is WARN
    assert status.judge(500).severity is CRIT
    assert status.judge(404).threshold == "expected 200"


def test_an_expectation_judges_the_value_it_is_given():
    seen = []
    condition = Expectation(
        condition="rcode",
        observation="rcode",
        accepts=lambda value: seen.append(value) or value == "NOERROR",
        expected="NOERROR",
    )
    assert condition.judge("NXDOMAIN").severity is CRIT
    assert condition.judge("NOERROR").severity is OK
    assert seen == ["NXDOMAIN", "NOERROR"]
    # Without words of its own: "condition value (expected ...)".
    assert condition.judge("NXDOMAIN").finding == "rcode NXDOMAIN (expected NOERROR)"
    assert condition.judge("NOERROR").finding == "rcode NOERROR"


@pytest.mark.parametrize(
    ("make", "words", "about", "finding"),
    [
        (
            said,
            ("weak key",),
            "#0 CN=gw (RSA 1024 bits)",
            Finding("weak key", "weak key: #0 CN=gw (RSA 1024 bits)"),
        ),
        (said, ("weak key",), "", Finding("weak key", "weak key")),
        (said, ("no reboot", "uptime 3d"), "", Finding("no reboot", "no reboot: uptime 3d")),
        # What the verdict is about beats the fixed detail.
        (
            said,
            ("no reboot", "uptime 3d"),
            "sysUpTime",
            Finding("no reboot", "no reboot: sysUpTime"),
        ),
        (told_by_about, ("revoked",), "", Finding("revoked")),
        (
            told_by_about,
            ("revoked",),
            "untrusted root: CN=X is not in ca.pem",
            Finding("untrusted root", "untrusted root: CN=X is not in ca.pem"),
        ),
        # Only the first ": " separates the reason from the detail.
        (told_by_about, ("?",), "a: b: c", Finding("a", "a: b: c")),
        (told_by_about, ("?",), "plain words", Finding("plain words", "plain words")),
    ],
)
def test_explanations_word_the_outcome(make, words, about, finding):
    assert make(*words)(1, about) == finding


def test_a_finding_without_text_reads_as_its_reason():
    condition = name_expectation(failed=told_by_about("mismatch"))
    verdict = condition.judge(False)
    assert (verdict.reason, verdict.finding) == ("mismatch", "mismatch")


# --- evaluate ----------------------------------------------------------------------------------


def test_a_missing_observation_is_unknown_not_ok():
    """The probe did not say: nothing is known, and UNKNOWN says so (never a silent OK)."""
    expectation = name_expectation(accepts=lambda value: True)  # would accept anything
    verdicts = evaluate((LATENCY, expectation), {})
    assert verdicts == (
        Verdict(
            condition="latency",
            observation="connect_ms",
            value=None,
            threshold="not measured",
            severity=UNKNOWN,
            unit="ms",
            finding="latency not measured",
        ),
        Verdict(
            condition="tls.name",
            observation="name_matches",
            value=None,
            threshold="not measured",
            severity=UNKNOWN,
            finding="tls.name not measured",
        ),
    )


def test_a_rate_missing_for_want_of_a_second_poll_is_ok():
    rate = dataclasses.replace(LATENCY, condition="if.1.in_errors", needs_history=True)
    (verdict,) = evaluate((rate,), {"other": 1})
    assert (verdict.severity, verdict.threshold, verdict.finding, verdict.value) == (
        OK,
        "needs two polls",
        "if.1.in_errors needs two polls",
        None,
    )
    # Once there, it is judged like any other value.
    assert evaluate((rate,), {"connect_ms": 900})[0].severity is CRIT


def test_evaluate_judges_each_condition_on_its_observation_in_order():
    observations = {"connect_ms": 250, "days_left": 3, "name_matches": True}
    verdicts = evaluate((DAYS_LEFT, LATENCY, name_expectation()), observations)
    assert [(v.condition, v.value, v.severity) for v in verdicts] == [
        ("expiry", 3, CRIT),
        ("latency", 250, WARN),
        ("tls.name", True, OK),
    ]


@pytest.mark.parametrize(
    ("observations", "about"),
    [
        ({"name_matches": False, "leaf": "CN=gw"}, "CN=gw"),
        ({"name_matches": False, "leaf": 7}, "7"),  # any value, as text
        ({"name_matches": False}, ""),  # the about observation missing
        ({"name_matches": False, "leaf": None}, ""),
    ],
)
def test_the_about_observation_names_what_a_verdict_is_about(observations, about):
    (verdict,) = evaluate((name_expectation(),), observations)
    assert verdict.about == about
    assert verdict.finding == (f"name mismatch: {about}" if about else "name mismatch")


def test_a_condition_without_an_about_observation_is_about_nothing():
    (verdict,) = evaluate((LATENCY,), {"connect_ms": 1, "": "not this"})
    assert verdict.about == ""


# --- through the runner ------------------------------------------------------------------------


async def test_a_probe_that_returns_without_an_observation_is_unknown(shared):
    """A probe that ends without raising but leaves out what a condition needs: UNKNOWN."""

    async def forgets(options, ctx):
        return {"unrelated": 1}

    check = adhoc_check("tcp", {"target": "127.0.0.1:9", "timeout": "300ms"})
    probe = dataclasses.replace(check.probe, measure=forgets)
    assert isinstance(probe, ProbeKind)
    result = await run_check(dataclasses.replace(check, probe=probe), shared)
    assert result.error is None
    assert result.severity is UNKNOWN
    assert [(v.condition, v.severity, v.threshold) for v in result.verdicts] == [
        ("latency", UNKNOWN, "not measured")
    ]
