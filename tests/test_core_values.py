"""What counts as a number, and how a duration reads: one rule each, for every layer."""

from __future__ import annotations

import math

import pytest

from monitor.core.conditions import Threshold
from monitor.core.model import CheckRef, ObservationValue, ProbeResult, Severity
from monitor.core.options import OptionError, is_number, number
from monitor.core.text import duration_text
from monitor.output.report_formats import span
from probes import registry
from tui.present import info_text


@pytest.mark.parametrize(
    ("value", "number_", "whole"),
    [
        (0, True, True),
        (10**400, True, True),  # a Python int has no float range to overflow
        (2.5, True, False),
        (-7.0, True, False),
        (True, False, False),  # Python's True is 1; `true` counts nothing
        (False, False, False),
        (math.nan, False, False),
        (math.inf, False, False),
        (-math.inf, False, False),
        ("30", False, False),
        (None, False, False),
    ],
)
def test_a_number_is_an_int_or_a_finite_float_never_a_bool(value, number_, whole):
    assert is_number(value) is number_
    assert is_number(value, whole=True) is whole


def test_a_threshold_cannot_pass_a_value_that_is_not_a_number():
    # Every comparison with NaN is false: judged as a number it would pass any bound.
    latency = Threshold("latency", "latency_s", warn=0.1, crit=0.5)
    assert latency.judge(0.05).severity is Severity.OK
    assert latency.judge(math.nan).severity is Severity.UNKNOWN
    assert latency.judge(math.inf).severity is Severity.UNKNOWN
    assert latency.judge(True).severity is Severity.UNKNOWN


def test_a_number_option_refuses_what_is_not_a_finite_number():
    assert number(0, 10)(7) == 7.0
    for value in (math.nan, True, "7"):
        with pytest.raises(OptionError, match="expected a number"):
            number(0, 10)(value)


def _result(kind: str, observations: dict[str, ObservationValue]) -> ProbeResult:
    ref = CheckRef(
        check_id=f"s/l/{kind}",
        site_id="s",
        link_id="l",
        kind=kind,
        target="127.0.0.1:1",
        host="127.0.0.1",
    )
    return ProbeResult(
        check=ref, started_at=0.0, duration_ms=1.0, severity=Severity.OK, observations=observations
    )


def test_the_dashboard_shows_no_nan_as_a_latency_or_an_uptime():
    assert registry.main_latency(_result("http", {"latency_ms": math.nan})) is None
    assert registry.main_latency(_result("http", {"latency_ms": 250})) == 250.0
    assert "up " not in info_text(_result("snmp", {"system.uptime_s": math.nan}), 0.0)
    assert info_text(_result("snmp", {"system.uptime_s": 61}), 0.0).startswith("up 1m01s")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (45, "45s"),
        (44.6, "45s"),
        (725, "12m05s"),
        (3 * 3600 + 120, "3h02m"),
        (3 * 86400 + 4 * 3600 + 5, "3d04h"),
        (-3, "0s"),  # a clock that stepped back says no time, not a negative one
    ],
)
def test_one_duration_format_serves_the_report_and_the_dashboard(seconds, shown):
    assert duration_text(seconds) == shown
    assert span(seconds) == shown


def test_a_certificate_finding_takes_no_nan_or_bool_for_days():
    # The explain functions of the certificate conditions word any observation value; one that
    # is not a number is an unknown expiry, never a crash (int(nan)) or "expires in 1.0d".
    from probes.support.certificate_findings import _expiry, _validity

    assert _expiry(math.nan, "").reason == "expiry unknown"
    assert _expiry(True, "").reason == "expiry unknown"
    assert _validity(math.nan, "").reason == "validity unknown"
    assert _expiry(40, "").reason == "expires in 40d"
