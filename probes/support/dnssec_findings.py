"""How a DNSSEC validation becomes observations and verdicts, and in what words.

Bogus is CRIT: validating resolvers answer SERVFAIL for the name, and a certificate authority,
which must check CAA (and usually the name's own records) through a validating resolver, cannot
issue a certificate for it. Indeterminate (this validator could not judge) is UNKNOWN, never
OK; insecure is as `dnssec_insecure` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from monitor.core.conditions import Condition, Expectation, Finding, Threshold, said
from monitor.core.model import ObservationValue, Severity
from monitor.core.options import format_number, is_number
from probes.support.dnssec_words import (
    BOGUS,
    INDETERMINATE,
    INSECURE,
    SECURE,
    algorithm_name,
    when,
)

if TYPE_CHECKING:  # the validator loads with the first check that validates
    from probes.support.dnssec_chain import Validation

DNSSEC = "dnssec"  # secure, insecure, bogus or indeterminate (RFC 4033 5)
REASON = "dnssec_reason"  # "expired signature: www.example.net A: RRSIG by ..."
RRSIG_DAYS = "rrsig_days"  # days until the first signature along the chain expires
RRSIG_FIRST = "rrsig_first_expiring"
ALGORITHMS = "dnssec_algorithms"
DEPRECATED = "dnssec_deprecated"
CHAIN = "dnssec_chain"
_DAY = 86400.0
_SEVERITY = {"ok": Severity.OK, "warn": Severity.WARN, "crit": Severity.CRIT}
CERTIFICATES_BLOCKED = (
    "validating resolvers answer SERVFAIL, and a CA's CAA check fails, so no certificate can"
    " be issued for the name"
)


def observations(validation: Validation, now: float, retried_with_cd: bool) -> dict[str, Any]:
    zones = validation.zones
    if validation.reason:
        reason = f"{validation.reason}: {validation.detail}"
    elif len(zones) > 1:
        reason = f"chain of trust from {zones[0]} to {zones[-1]}"
    else:
        reason = f"chain of trust at {zones[0]}" if zones else ""
    found: dict[str, ObservationValue] = {
        DNSSEC: validation.status,
        REASON: reason,
        CHAIN: ", ".join(zones),  # the zones whose keys were trusted, the anchor's first
        ALGORITHMS: ", ".join(sorted(algorithm_name(a) for a in validation.algorithms)),
        DEPRECATED: ", ".join(validation.deprecated),
        "dnssec_queries": validation.queries,
        # A validating resolver's SERVFAIL asked again with checking disabled, to learn why.
        "dnssec_cd_retry": retried_with_cd,
    }
    expiry = validation.first_expiry
    if expiry is not None:
        found[RRSIG_DAYS] = round((expiry.at - now) / _DAY, 3)
        found[RRSIG_FIRST] = f"{expiry.what}, expires {when(expiry.at)}"
    return found


def _span(days: float) -> str:
    return f"{format_number(round(abs(days), 1))}d"


def _rrsig(days: ObservationValue, about: str) -> Finding:
    which = f" ({about})" if about else ""
    if not is_number(days):
        return Finding("RRSIG expiry unknown")
    gist = f"RRSIG expired {_span(days)} ago" if days < 0 else f"RRSIG expires in {_span(days)}"
    return Finding(gist, gist + which)


def _unvalidated(value: ObservationValue, about: str) -> Finding:
    gist = about.partition(": ")[0]
    if value == BOGUS:
        return Finding(f"DNSSEC bogus: {gist}", f"DNSSEC bogus: {about}; {CERTIFICATES_BLOCKED}")
    if value == INSECURE:
        return Finding(f"DNSSEC insecure: {gist}", f"DNSSEC insecure: {about}")
    return Finding(f"DNSSEC not validated: {gist}", f"DNSSEC not validated: {about}")


def _validated(value: ObservationValue, about: str) -> Finding:
    return Finding(f"DNSSEC {value}", f"DNSSEC {value}: {about}" if about else f"DNSSEC {value}")


def conditions(options: Any) -> tuple[Condition, ...]:
    """The verdicts of a dns check with `dnssec: true`; none without."""
    if not options.dnssec:
        return ()
    insecure = _SEVERITY[options.dnssec_insecure]
    grades = {BOGUS: Severity.CRIT, INDETERMINATE: Severity.UNKNOWN, INSECURE: insecure}
    return (
        Expectation(
            condition="dnssec",
            observation=DNSSEC,
            accepts=lambda value: (
                value == SECURE or (value == INSECURE and insecure is Severity.OK)
            ),
            expected="a chain of trust from the trust anchor to the answer",
            about=REASON,
            grade=lambda value: grades.get(str(value), Severity.UNKNOWN),
            failed=_unvalidated,
            passed=_validated,
        ),
        Threshold(
            condition="rrsig",
            observation=RRSIG_DAYS,
            warn=options.rrsig_warn,
            crit=options.rrsig_crit,
            unit="d",
            higher_is_worse=False,
            about=RRSIG_FIRST,
            explain=_rrsig,
        ),
        Expectation(
            condition="dnssec_algorithms",
            observation=DEPRECATED,
            accepts=lambda value: value == "",
            expected="no algorithm or digest RFC 8624 deprecates",
            severity=Severity.WARN,
            about=DEPRECATED,
            failed=said("deprecated algorithm"),
            passed=said("current algorithms"),
        ),
    )


def headline(observations: Mapping[str, ObservationValue]) -> tuple[str, ...]:
    """What a passing DNSSEC check adds to the short line: "DNSSEC secure, RRSIG 9.5d"."""
    status = observations.get(DNSSEC)
    if not isinstance(status, str):
        return ()
    days = observations.get(RRSIG_DAYS)
    return (f"DNSSEC {status}, RRSIG {_span(days)}" if is_number(days) else f"DNSSEC {status}",)
