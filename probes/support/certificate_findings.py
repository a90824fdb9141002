"""How the observations of a served chain are judged, and in what words.

`certificate_conditions` declares the conditions for the options every TLS-bearing probe shares;
each outcome has words of its own ("name mismatch: ...", "expires in 9.2d (#1 CN=...)").
"""

from __future__ import annotations

import math
from typing import Any

from monitor.core.conditions import (
    Condition,
    Expectation,
    Explain,
    Finding,
    Threshold,
    said,
    told_by_about,
)
from monitor.core.model import ObservationValue, ProbeResult, Severity, as_number
from monitor.core.options import is_number
from probes.support.certificate_chain import PINNED, UNTRUSTED
from probes.support.certificate_options import trust_source
from probes.support.certificate_reader import MIN_EC_BITS, MIN_RSA_BITS
from probes.support.validity_schedule import BALLOT, EXCEEDS


def _is(expected: bool) -> Any:
    return lambda value: value is expected


def _is_zero(value: ObservationValue) -> bool:
    return value == 0


def _days(days: float) -> str:
    """A span of days, to a tenth when it is short enough for the tenth to matter."""
    return f"{days:.1f}d" if days < 10 else f"{math.floor(days)}d"


def _expiry(days: ObservationValue, about: str) -> Finding:
    which = f" ({about})" if about else ""
    if not is_number(days):
        return Finding("expiry unknown")
    if days < 0:
        gist = f"expired {_days(-days)} ago"
        return Finding(gist, f"cert {gist}{which}")
    gist = f"expires in {_days(days)}"
    return Finding(gist, f"cert {gist}{which}")


def _validity(days: ObservationValue, _about: str) -> Finding:
    return Finding(f"valid for {days:g}d" if is_number(days) else "validity unknown")


def _trusted(trust_source: str) -> Explain:
    def explain(value: ObservationValue, _about: str) -> Finding:
        if value == PINNED:
            return Finding("leaf key pinned", "trusted: the leaf's key matches a configured pin")
        return Finding("trusted", f"chain verified by {trust_source}")

    return explain


def _incomplete(_value: ObservationValue, about: str) -> Finding:
    return Finding("incomplete chain", f"incomplete chain: {about} not sent" if about else "")


def _revocation_said(value: ObservationValue, about: str) -> Finding:
    gist = f"revocation {str(value).replace('_', ' ')}"
    return Finding(gist, f"{gist}: {about}" if about else gist)


def _revoked(_value: ObservationValue, about: str) -> Finding:
    return Finding("revoked", about)


def certificate_conditions(options: Any, name: str) -> tuple[Condition, ...]:
    """How the observations of `analyse_chain` are judged, for the options shared by every
    TLS-bearing probe. `name` is what the leaf must cover."""
    return (
        *_readable_and_current(options),
        *_named(name),
        *_trusted_and_complete(options),
        *_strong(),
        _unchanged(options),
        _public_validity(),
        *_configured(options),
        *revocation_conditions(options),
    )


def _readable_and_current(options: Any) -> tuple[Condition, ...]:
    """Expiry (the first certificate of the path to expire), parsing, and validity start."""
    return (
        Threshold(
            condition="expiry",
            observation="min_days_left",
            warn=options.warn_days,
            crit=options.crit_days,
            unit="d",
            higher_is_worse=False,
            about="first_expiring",
            explain=_expiry,
            headline=True,
        ),
        Expectation(
            condition="malformed",
            observation="malformed",
            accepts=_is(False),
            expected="certificates every client can parse",
            about="malformed_certificates",
            failed=said("malformed certificate"),
            passed=said("certificates well-formed"),
        ),
        Expectation(
            condition="not_yet_valid",
            observation="not_yet_valid",
            accepts=_is(False),
            expected="every certificate valid now",
            about="not_yet_valid_certificates",
            failed=said("not yet valid"),
            passed=said("valid now"),
        ),
    )


def _named(name: str) -> tuple[Condition, ...]:
    """The leaf covers `name`, in a subjectAltName."""
    return (
        Expectation(
            condition="hostname",
            observation="hostname_match",
            accepts=_is(True),
            expected=f"{name} in the leaf's subjectAltName",
            failed=said("name mismatch", f"{name} not in the leaf's subjectAltName"),
            passed=said("name matches", f"{name} in the leaf's subjectAltName"),
        ),
        Expectation(
            condition="cn_only",
            observation="cn_only",
            accepts=_is(False),
            expected="a leaf with a subjectAltName (CN-only certificates fail name checks)",
            failed=said("CN-only leaf", "no subjectAltName, and clients ignore the CN"),
            passed=said("leaf has a subjectAltName"),
        ),
    )


def _trusted_and_complete(options: Any) -> tuple[Condition, ...]:
    """Trust, and a chain served whole, in order, and nothing more."""
    source = trust_source(options)
    return (
        Expectation(
            condition="trusted",
            observation="trust",
            accepts=lambda value: value != UNTRUSTED,
            expected=f"a chain verified by {source}"
            + (" or a pinned leaf key" if options.pin else ""),
            about="trust_error",
            failed=told_by_about("untrusted"),
            passed=_trusted(source),
        ),
        Expectation(
            condition="chain_complete",
            observation="chain_complete",
            accepts=_is(True),
            expected="every intermediate sent by the server",
            about="missing_issuer",
            failed=_incomplete,
            passed=said("chain complete"),
        ),
        Expectation(
            condition="chain_order",
            observation="chain_order_ok",
            accepts=_is(True),
            expected="leaf first, then each issuer in turn",
            severity=Severity.WARN,
            failed=said("chain out of order", "send the leaf first, then each issuer in turn"),
            passed=said("chain in order"),
        ),
        Expectation(
            condition="duplicates",
            observation="duplicate_certificates",
            accepts=_is_zero,
            expected="no certificate sent twice",
            severity=Severity.WARN,
            about="duplicate_certificate_positions",
            failed=said("certificate sent twice"),
            passed=said("no certificate sent twice"),
        ),
        Expectation(
            condition="extraneous",
            observation="extraneous_certificates",
            accepts=_is_zero,
            expected="no certificate outside the leaf's issuing path",
            severity=Severity.WARN,
            about="extraneous_certificate_positions",
            failed=said("extra certificate"),
            passed=said("no extra certificate"),
        ),
    )


def _strong() -> tuple[Condition, ...]:
    """Keys long enough, and no signature a client should refuse."""
    return (
        Expectation(
            condition="weak_key",
            observation="weak_key",
            accepts=_is(False),
            expected=f"RSA keys of {MIN_RSA_BITS}+ bits and EC keys of {MIN_EC_BITS}+ bits",
            about="weak_key_certificates",
            failed=said("weak key"),
            passed=said("keys strong enough"),
        ),
        Expectation(
            condition="weak_signature",
            observation="weak_signature",
            accepts=_is(False),
            expected="no SHA-1 or MD5 signature in the chain",
            about="weak_signature_certificates",
            failed=said("weak signature"),
            passed=said("no SHA-1 or MD5 signature"),
        ),
    )


def _unchanged(options: Any) -> Condition:
    return Expectation(
        condition="unexpected_change",
        observation="unexpected_change",
        accepts=_is(False),
        expected=f"a new leaf only within {options.warn_days:g} days of the old one's expiry "
        f"or once its renewal was due ({options.renewal_due:.0%} of its validity)",
        severity=Severity.WARN,
        failed=said(
            "leaf changed unexpectedly",
            f"a new leaf while the old one had over {options.warn_days:g} days to run and was "
            "not due for renewal",
        ),
        passed=said("no unexpected leaf change"),
    )


def _public_validity() -> Condition:
    """The leaf's validity within the CA/B Forum's maximum on its issuance date, for a publicly
    trusted one: WARN, it is still valid, but its renewal will be shorter."""
    return Expectation(
        condition="public_validity",
        observation="public_validity",
        accepts=lambda value: value != EXCEEDS,
        expected=f"a publicly trusted leaf within the maximum validity of {BALLOT}",
        severity=Severity.WARN,
        about="public_validity_detail",
        failed=lambda _value, about: Finding("validity over the CA/B maximum", about),
        passed=lambda value, about: Finding(f"validity {value}", about),
    )


def _configured(options: Any) -> tuple[Condition, ...]:
    """What only some checks ask for: a maximum validity period, pinned keys."""
    declared: list[Condition] = []
    if options.max_validity_days is not None:
        declared.append(
            Threshold(
                condition="max_validity",
                observation="validity_days",
                warn=None,
                crit=options.max_validity_days,
                unit="d",
                explain=_validity,
            )
        )
    if options.pin:
        declared.append(
            Expectation(
                condition="pin",
                observation="pin_match",
                accepts=_is(True),
                expected="a chain key matching a configured pin",
                failed=said("no pinned key", "no key in the chain matches a configured pin"),
                passed=said("pin matches"),
            )
        )
    return tuple(declared)


def revocation_conditions(options: Any) -> tuple[Condition, ...]:
    """Revoked is CRIT; no valid answer (or a responder that does not know the certificate) is
    WARN, as browsers soft-fail; a certificate naming no responder or CRL is information."""
    if not (options.ocsp or options.crl):
        return ()
    return (
        Expectation(
            condition="revoked",
            observation="revocation",
            accepts=lambda v: v != "revoked",
            expected="not revoked",
            about="revocation_detail",
            failed=_revoked,
            passed=_revocation_said,
        ),
        Expectation(
            condition="revocation_known",
            observation="revocation",
            accepts=lambda v: v not in ("unknown", "unavailable"),
            expected="a valid OCSP or CRL answer",
            severity=Severity.WARN,
            about="revocation_detail",
            failed=_revocation_said,
            passed=_revocation_said,
        ),
    )


def expiry_fact(result: ProbeResult, now: float) -> tuple[str, ...]:
    """The days left, as "cert 12d": those judged (of the first certificate of the chain to
    expire, else the leaf's), or the first served certificate's when the chain was not judged."""
    for key in ("min_days_left", "days_left"):
        days = as_number(result.observations.get(key))
        if days is not None:
            return (f"cert {days:.0f}d",)
    served = result.certificates[0].days_left(now) if result.certificates else None
    return () if served is None else (f"cert {served:.0f}d",)
