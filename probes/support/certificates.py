"""Judging a served certificate chain, shared by the `tls` probe, `https` checks and the audit.

A server's chain arrives as DER blobs, leaf first, in the order served. Each blob is parsed once
per engine run and cached by its SHA-256 fingerprint in the shared resources: a thousand
endpoints usually serve the same few intermediates. `analyse_chain` turns a chain into flat
observations; `certificate_conditions` declares how they are judged; both tls and http use the
same option declarations (`warn_days`, `crit_days`, `pin`, ...) made by the functions below.

What "trusted" means comes from OpenSSL's verification (a handshake with CERT_REQUIRED); all the
rest (names, expiry, structure, key and signature strength, pins) is judged here, so every finding
is named precisely and the same way whether or not OpenSSL accepted the chain.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import ipaddress
import math
import os
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from cryptography import x509

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
from monitor.core.options import (
    OptionError,
    boolean,
    duration,
    each,
    integer,
    is_number,
    number,
    option,
    readable_file,
    text,
)
from monitor.core.secrets import SecretRef, secret_env, secret_file
from probes.support import revocation
from probes.support.certificate_reader import (
    MIN_EC_BITS,
    MIN_RSA_BITS,
    ParsedCertificate,
    Served,
    parse_certificate,
)
from probes.support.revocation_cache import RevocationCache

if TYPE_CHECKING:
    # Only named in annotations; importing probes here would run the probe registry (whose
    # probes import this module) before this module is done.
    from probes.base import ProbeContext

_CACHE_KEY = "certificates.parsed"
_MEMORY_KEY = "certificates.last_leaf"
_DAY = 86400.0


# --- options shared by every TLS-bearing probe -------------------------------------------------


def ca_file(value: Any) -> str:
    """A PEM bundle of CA certificates, checked by loading it the way a handshake will."""
    path = readable_file(value)
    stat = os.stat(path)
    problem = _ca_file_problem(path, stat.st_mtime_ns, stat.st_size)
    if problem is not None:
        raise OptionError(
            f"file {path} holds no usable CA certificate ({problem})",
            "give a PEM file with one or more CA certificates",
        )
    return path


@functools.lru_cache(maxsize=256)
def _ca_file_problem(path: str, _mtime_ns: int, _size: int) -> str | None:
    """Loading a bundle costs about a millisecond; an inventory names the same few bundles on
    thousands of checks. Keyed on the file's mtime and size so an edited file is read again."""
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ValueError) as exc:
        return str(exc)
    return None


def pin(value: Any) -> str:
    """`sha256/BASE64` of a SubjectPublicKeyInfo, as HPKP and curl write it."""
    raw = text(value).strip()
    hint = "write sha256/ followed by the base64 SHA-256 of the public key (SPKI)"
    prefix, _, encoded = raw.partition("/")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except ValueError:
        digest = b""
    if prefix.lower() != "sha256" or len(digest) != 32:
        raise OptionError(f"{raw!r} is not a sha256/BASE64 pin", hint)
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, kw_only=True)
class CertificateOptions:
    """The certificate keys of every TLS-bearing probe (tls, and http for https URLs). Their
    options dataclasses inherit these, so each key is declared, parsed and flagged once."""

    ca_file: str | None = option(
        None,
        parse=ca_file,
        metavar="PATH",
        help="PEM CA bundle to verify against instead of the system store (a device's own "
        "self-signed certificate, to accept it)",
    )
    warn_days: float = option(
        30.0,
        parse=number(0),
        metavar="DAYS",
        help="WARN when a certificate (leaf or intermediate) expires in fewer days",
    )
    crit_days: float = option(
        14.0,
        parse=number(0),
        metavar="DAYS",
        help="CRIT when a certificate (leaf or intermediate) expires in fewer days",
    )
    max_validity_days: int | None = option(
        None,
        parse=integer(1),
        metavar="DAYS",
        help="CRIT when the leaf's validity period is longer (398 for public web PKI)",
    )
    pin: tuple[str, ...] = option(
        (),
        parse=each(pin),
        metavar="sha256/BASE64",
        repeatable=True,
        help="CRIT unless the leaf or a chain element has one of these SPKI SHA-256 pins; "
        "tls checks trust a pinned leaf key, self-signed or not",
    )
    ocsp: bool = option(
        False,
        parse=boolean,
        metavar="BOOL",
        help="ask the leaf's OCSP responder whether it is revoked",
    )
    crl: bool = option(
        False,
        parse=boolean,
        metavar="BOOL",
        help="check the leaf against its CRL (after OCSP, when both are on)",
    )
    revocation_timeout: float = option(
        "5s", parse=duration, metavar="DURATION", help="time allowed for each OCSP or CRL exchange"
    )
    client_cert: str | None = option(
        None,
        parse=readable_file,
        metavar="PATH",
        help="PEM client certificate (and chain) for servers that demand one",
    )
    client_key: str | None = option(
        None, parse=readable_file, metavar="PATH", help="PEM private key of client_cert"
    )
    client_key_passphrase_env: SecretRef | None = option(
        None,
        parse=secret_env,
        metavar="NAME",
        help="environment variable holding the passphrase of client_key",
    )
    client_key_passphrase_file: SecretRef | None = option(
        None, parse=secret_file, metavar="PATH", help="file holding the passphrase of client_key"
    )

    def validate_certificates(self) -> None:
        validate_certificate_options(self)


def validate_certificate_options(options: Any) -> None:
    """Cross-field checks of the shared certificate keys."""
    if options.crit_days > options.warn_days:
        raise OptionError(
            "crit_days is above warn_days",
            "the warning must come first: make crit_days <= warn_days",
            key="crit_days",
        )
    if (options.client_cert is None) != (options.client_key is None):
        raise OptionError(
            "client_cert and client_key go together",
            "give both the certificate and its private key",
            key="client_cert" if options.client_cert is None else "client_key",
        )
    if options.client_key_passphrase_env and options.client_key_passphrase_file:
        raise OptionError(
            "two passphrases for client_key",
            "keep one of client_key_passphrase_env and client_key_passphrase_file",
            key="client_key_passphrase_file",
        )
    if (
        options.client_key_passphrase_env or options.client_key_passphrase_file
    ) and options.client_key is None:
        raise OptionError(
            "a passphrase without client_key",
            "give client_cert and client_key, or drop the passphrase",
            key="client_key_passphrase_env"
            if options.client_key_passphrase_env
            else "client_key_passphrase_file",
        )


def load_client_certificate(context: ssl.SSLContext, options: Any) -> None:
    """Present the configured client certificate; the passphrase is read only here."""
    if options.client_cert is None:
        return
    secret: SecretRef | None = (
        options.client_key_passphrase_env or options.client_key_passphrase_file
    )
    context.load_cert_chain(
        options.client_cert,
        options.client_key,
        password=None if secret is None else secret.reveal,
    )


# --- parsing, once per fingerprint -----------------------------------------------------------


async def parse_chain(served: Sequence[Served], ctx: ProbeContext) -> list[ParsedCertificate]:
    """Parse a served chain through the per-run cache; also records it in `ctx.certificates`.
    Never fails for what is in a certificate: what cannot be read is a finding of its own."""

    async def new_cache() -> dict[bytes, ParsedCertificate]:
        return {}

    cache: dict[bytes, ParsedCertificate] = await ctx.shared.get(_CACHE_KEY, new_cache)
    chain = []
    for position, certificate in enumerate(served):
        key = hashlib.sha256(certificate.der).digest()
        parsed = cache.get(key)
        if parsed is None:
            parsed = cache[key] = parse_certificate(certificate.der, certificate.openssl)
        chain.append(parsed)
        ctx.certificates.append(dataclasses.replace(parsed.info, position=position))
    return chain


# --- the analysis ----------------------------------------------------------------------------


def is_ip(name: str) -> bool:
    """An IP literal: sent no SNI, matched against IP SANs."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def name_matches(certificate: ParsedCertificate, name: str) -> bool:
    """RFC 6125 matching against the subjectAltName only: IPs against IP entries, names against
    DNS entries with a whole left-most-label wildcard. The CN is never used (CN-only fails)."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        return address in certificate.ip_addresses
    wanted = name.lower().rstrip(".")
    for pattern in certificate.dns_names:
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and pattern.count(".") >= 2:
            head, _, rest = wanted.partition(".")
            if head and rest == pattern[2:]:
                return True
    return False


def _issued_by(child: ParsedCertificate, parent: ParsedCertificate) -> bool:
    # Names and key identifiers, not signatures: cryptography refuses to verify SHA-1 and MD5
    # signatures, which are exactly the chains that need naming.
    if child.issuer_der != parent.subject_der:
        return False
    if child.authority_key_id is not None and parent.subject_key_id is not None:
        return child.authority_key_id == parent.subject_key_id
    return True


@dataclass(frozen=True, slots=True)
class ChainShape:
    """How the served chain is put together: the issuing path from the leaf, and the rest."""

    path: tuple[int, ...]  # positions in the served chain, leaf first
    duplicates: tuple[int, ...]
    extraneous: tuple[int, ...]
    order_ok: bool
    top_issuer_served: bool  # the path ends at a self-signed certificate


def chain_shape(chain: Sequence[ParsedCertificate]) -> ChainShape:
    seen: dict[str, int] = {}
    duplicates = []
    unique = []
    for position, certificate in enumerate(chain):
        if certificate.info.fingerprint_sha256 in seen:
            duplicates.append(position)
        else:
            seen[certificate.info.fingerprint_sha256] = position
            unique.append(position)
    path = [0]
    while not chain[path[-1]].info.self_signed:
        parent = next(
            (p for p in unique if p not in path and _issued_by(chain[path[-1]], chain[p])), None
        )
        if parent is None:
            break
        path.append(parent)
    extraneous = tuple(p for p in unique if p not in path)
    return ChainShape(
        path=tuple(path),
        duplicates=tuple(duplicates),
        extraneous=extraneous,
        order_ok=list(path) == unique[: len(path)],
        top_issuer_served=chain[path[-1]].info.self_signed,
    )


@dataclass(frozen=True, slots=True)
class Verification:
    """OpenSSL's verdict on the chain: the verified path, or the error it stopped at."""

    trusted: bool
    verified: tuple[bytes, ...] = ()  # DER, leaf to trust anchor, when trusted
    code: int = 0
    message: str = ""


def _labels(chain: Sequence[ParsedCertificate], positions: Iterable[int]) -> str:
    return "; ".join(chain[p].label(p) for p in positions)


# How the leaf came to be trusted: the `trust` observation.
VERIFIED = "verified"  # OpenSSL verified the chain against the CA store
PINNED = "pinned"  # the leaf's own key is pinned: the operator vouched for it (a device's
# self-signed certificate, say); the handshake proved the server holds that key
UNTRUSTED = "untrusted"


def trust_source(options: Any) -> str:
    """The CA store a check verifies against, as findings name it."""
    return options.ca_file or "the system CA store"


def analyse_chain(
    chain: Sequence[ParsedCertificate],
    verification: Verification,
    name: str,
    pins: Sequence[str] = (),
    max_validity_days: int | None = None,
    now: float | None = None,
    trusted_by: str = "the system CA store",
) -> dict[str, ObservationValue]:
    """Flat observations about a served chain (leaf first). `name` is the host name or IP
    address the leaf must cover; `trusted_by` names the CA store, for the findings."""
    at = time.time() if now is None else now
    leaf = chain[0]
    shape = chain_shape(chain)
    leaf_pinned = leaf.info.spki_sha256 in pins
    trust = VERIFIED if verification.trusted else PINNED if leaf_pinned else UNTRUSTED
    leaf_days = leaf.info.days_left(at)
    observations: dict[str, ObservationValue] = {
        "chain_length": len(chain),
        "days_left": None if leaf_days is None else round(leaf_days, 3),
        "hostname_match": name_matches(leaf, name),
        "cn_only": not leaf.has_san,
        "self_signed": leaf.info.self_signed,
        "trusted": verification.trusted,
        "trust": trust,
        "chain_order_ok": shape.order_ok,
        "duplicate_certificates": len(shape.duplicates),
        "extraneous_certificates": len(shape.extraneous),
    }
    # The leaf and the intermediates on its path; a served root is judged by the client's copy.
    on_path = [p for p in shape.path if not (p and chain[p].info.self_signed)]
    # A date no parser could read leaves that certificate out (it is malformed, a finding of
    # its own); with no date at all, expiry is not measured.
    dated = [p for p in on_path if chain[p].info.not_after is not None]
    if dated:
        first = min(dated, key=lambda p: chain[p].info.not_after or 0.0)
        observations["min_days_left"] = round(chain[first].info.days_left(at) or 0.0, 3)
        observations["first_expiring"] = chain[first].label(first)
    not_yet = [p for p in on_path if (chain[p].info.not_before or 0.0) > at]
    observations["not_yet_valid"] = bool(not_yet)
    malformed = [p for p in range(len(chain)) if chain[p].info.malformed]
    observations["malformed"] = bool(malformed)
    if malformed:
        observations["malformed_certificates"] = "; ".join(
            f"{chain[p].label(p)}: {', '.join(chain[p].info.malformed)}" for p in malformed
        )
    weak_keys = [p for p in range(len(chain)) if chain[p].weak_key and p not in shape.duplicates]
    observations["weak_key"] = bool(weak_keys)
    # A root's self-signature is never checked by clients; only signatures they verify count.
    weak_signatures = [p for p in on_path if chain[p].weak_signature]
    observations["weak_signature"] = bool(weak_signatures)
    observations["chain_complete"] = _chain_complete(chain, shape, verification)
    if not_yet:
        observations["not_yet_valid_certificates"] = _labels(chain, not_yet)
    if weak_keys:
        observations["weak_key_certificates"] = "; ".join(
            f"{chain[p].label(p)} ({chain[p].info.key_type} {chain[p].info.key_bits} bits)"
            for p in weak_keys
        )
    if weak_signatures:
        observations["weak_signature_certificates"] = "; ".join(
            f"{chain[p].label(p)} ({chain[p].info.signature_algorithm})" for p in weak_signatures
        )
    if shape.duplicates:
        observations["duplicate_certificate_positions"] = _labels(chain, shape.duplicates)
    if shape.extraneous:
        observations["extraneous_certificate_positions"] = _labels(chain, shape.extraneous)
    if not observations["chain_complete"]:
        top = shape.path[-1]
        observations["missing_issuer"] = (
            f"{chain[top].info.issuer} (issuer of {chain[top].label(top)})"
        )
    if trust == UNTRUSTED:
        observations["trust_error"] = _trust_error(chain, shape, verification, trusted_by, pins)
    if max_validity_days is not None and None not in (leaf.info.not_after, leaf.info.not_before):
        observations["validity_days"] = round(
            ((leaf.info.not_after or 0.0) - (leaf.info.not_before or 0.0)) / _DAY, 3
        )
    if pins:
        served_pins = {c.info.spki_sha256 for c in chain}
        observations["pin_match"] = any(p in served_pins for p in pins)
    return observations


def expiry_fact(result: ProbeResult, now: float) -> tuple[str, ...]:
    """ "cert 12d": the days judged (the first certificate of the chain to expire, else the
    leaf's), or the first served certificate's when the chain was never judged."""
    for key in ("min_days_left", "days_left"):
        days = as_number(result.observations.get(key))
        if days is not None:
            return (f"cert {days:.0f}d",)
    served = result.certificates[0].days_left(now) if result.certificates else None
    return () if served is None else (f"cert {served:.0f}d",)


# OpenSSL verify codes that mean "could not find the issuer of the top certificate".
_ISSUER_NOT_FOUND = frozenset({2, 20})
_DEPTH_ZERO_SELF_SIGNED = 18
_SELF_SIGNED_IN_CHAIN = 19


def _chain_complete(
    chain: Sequence[ParsedCertificate], shape: ChainShape, verification: Verification
) -> bool:
    """Did the server send every intermediate between its leaf and a trust anchor?

    Verified: every non-anchor certificate of OpenSSL's path must have been served (a client
    without our CA bundle would otherwise fail). Not verified: OpenSSL could not find the issuer
    of the top served certificate; when that certificate is the leaf itself, no intermediate was
    sent at all. A top certificate that is a CA (or an issuer on the path, whatever its
    unreadable extensions say) is taken to be issued by an untrusted root.
    """
    if shape.top_issuer_served:
        return True
    if verification.trusted:
        served = {c.info.fingerprint_sha256 for c in chain}
        needed = [hashlib.sha256(der).hexdigest() for der in verification.verified[:-1]]
        return all(fingerprint in served for fingerprint in needed)
    if verification.code in _ISSUER_NOT_FOUND:
        return _is_issuer(chain, shape.path[-1])
    return True


def _is_issuer(chain: Sequence[ParsedCertificate], position: int) -> bool:
    """A CA by its flag, or by its place: above the leaf on the issuing path."""
    return position > 0 or chain[position].is_ca


def _trust_error(
    chain: Sequence[ParsedCertificate],
    shape: ChainShape,
    verification: Verification,
    trusted_by: str,
    pins: Sequence[str],
) -> str:
    """Why the chain is not trusted, as "reason: detail" (the reason is the short form)."""
    top = shape.path[-1]
    broken = [p for p in shape.path if chain[p].info.malformed]
    if broken:
        # OpenSSL refuses to build a path through a certificate it finds invalid: what it
        # reports then (a missing issuer, say) is about the malformed one.
        return (
            f"not verified: {verification.message or 'certificate verify failed'} "
            f"(the path holds the malformed {_labels(chain, broken)})"
        )
    if verification.code == _DEPTH_ZERO_SELF_SIGNED or (
        chain[0].info.self_signed and len(shape.path) == 1
    ):
        refused = f"is not in {trusted_by}" + (" and matches no pin" if pins else "")
        return (
            f"self-signed leaf: {chain[0].label(0)} {refused} "
            "(to accept it, pin its key or name it as ca_file)"
        )
    if verification.code == _SELF_SIGNED_IN_CHAIN:
        return f"untrusted root: {chain[top].label(top)} is not in {trusted_by}"
    if verification.code in _ISSUER_NOT_FOUND:
        if _is_issuer(chain, top):
            return (
                f"untrusted root: {chain[top].info.issuer} (issuer of {chain[top].label(top)}) "
                f"is not in {trusted_by}"
            )
        return (
            f"incomplete chain: issuer {chain[top].info.issuer} of {chain[top].label(top)} not sent"
        )
    return f"not verified: {verification.message or 'certificate verify failed'}"


# --- change detection ------------------------------------------------------------------------


def unexpected_change(
    memory: dict[str, Any], leaf: ParsedCertificate, warn_days: float, now: float | None = None
) -> bool:
    """Did the leaf change since the last poll while the old one was far from expiry?

    A renewal replaces a certificate shortly before it expires; a different leaf while the one
    seen last still had more than `warn_days` to run is what interception or a misrouted address
    looks like. The first poll of a check has nothing to compare and is never a change.
    """
    at = time.time() if now is None else now
    previous = memory.get(_MEMORY_KEY)
    memory[_MEMORY_KEY] = (leaf.info.fingerprint_sha256, leaf.info.not_after)
    if previous is None:
        return False
    fingerprint, not_after = previous
    if fingerprint == leaf.info.fingerprint_sha256:
        return False
    # An old leaf whose expiry could not be read gives nothing to measure the change against.
    return not_after is not None and (not_after - at) / _DAY > warn_days


# --- the conditions --------------------------------------------------------------------------


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
    source = trust_source(options)
    days = {"warn": options.warn_days, "crit": options.crit_days, "unit": "d"}
    declared: list[Condition] = [
        Threshold(
            "expiry",
            "min_days_left",
            higher_is_worse=False,
            about="first_expiring",
            explain=_expiry,
            headline=True,
            **days,
        ),
        Expectation(
            "malformed",
            "malformed",
            _is(False),
            "certificates every client can parse",
            about="malformed_certificates",
            failed=said("malformed certificate"),
            passed=said("certificates well-formed"),
        ),
        Expectation(
            "not_yet_valid",
            "not_yet_valid",
            _is(False),
            "every certificate valid now",
            about="not_yet_valid_certificates",
            failed=said("not yet valid"),
            passed=said("valid now"),
        ),
        Expectation(
            "hostname",
            "hostname_match",
            _is(True),
            f"{name} in the leaf's subjectAltName",
            failed=said("name mismatch", f"{name} not in the leaf's subjectAltName"),
            passed=said("name matches", f"{name} in the leaf's subjectAltName"),
        ),
        Expectation(
            "cn_only",
            "cn_only",
            _is(False),
            "a leaf with a subjectAltName (CN-only certificates fail name checks)",
            failed=said("CN-only leaf", "no subjectAltName, and clients ignore the CN"),
            passed=said("leaf has a subjectAltName"),
        ),
        Expectation(
            "trusted",
            "trust",
            lambda value: value != UNTRUSTED,
            f"a chain verified by {source}" + (" or a pinned leaf key" if options.pin else ""),
            about="trust_error",
            failed=told_by_about("untrusted"),
            passed=_trusted(source),
        ),
        Expectation(
            "chain_complete",
            "chain_complete",
            _is(True),
            "every intermediate sent by the server",
            about="missing_issuer",
            failed=_incomplete,
            passed=said("chain complete"),
        ),
        Expectation(
            "chain_order",
            "chain_order_ok",
            _is(True),
            "leaf first, then each issuer in turn",
            severity=Severity.WARN,
            failed=said("chain out of order", "send the leaf first, then each issuer in turn"),
            passed=said("chain in order"),
        ),
        Expectation(
            "duplicates",
            "duplicate_certificates",
            _is_zero,
            "no certificate sent twice",
            severity=Severity.WARN,
            about="duplicate_certificate_positions",
            failed=said("certificate sent twice"),
            passed=said("no certificate sent twice"),
        ),
        Expectation(
            "extraneous",
            "extraneous_certificates",
            _is_zero,
            "no certificate outside the leaf's issuing path",
            severity=Severity.WARN,
            about="extraneous_certificate_positions",
            failed=said("extra certificate"),
            passed=said("no extra certificate"),
        ),
        Expectation(
            "weak_key",
            "weak_key",
            _is(False),
            f"RSA keys of {MIN_RSA_BITS}+ bits and EC keys of {MIN_EC_BITS}+ bits",
            about="weak_key_certificates",
            failed=said("weak key"),
            passed=said("keys strong enough"),
        ),
        Expectation(
            "weak_signature",
            "weak_signature",
            _is(False),
            "no SHA-1 or MD5 signature in the chain",
            about="weak_signature_certificates",
            failed=said("weak signature"),
            passed=said("no SHA-1 or MD5 signature"),
        ),
        Expectation(
            "unexpected_change",
            "unexpected_change",
            _is(False),
            f"a new leaf only within {options.warn_days:g} days of the old one's expiry",
            severity=Severity.WARN,
            failed=said(
                "leaf changed unexpectedly",
                f"a new leaf while the old one had over {options.warn_days:g} days to run",
            ),
            passed=said("no unexpected leaf change"),
        ),
    ]
    if options.max_validity_days is not None:
        declared.append(
            Threshold(
                "max_validity",
                "validity_days",
                warn=None,
                crit=options.max_validity_days,
                unit="d",
                explain=_validity,
            )
        )
    if options.pin:
        declared.append(
            Expectation(
                "pin",
                "pin_match",
                _is(True),
                "a chain key matching a configured pin",
                failed=said("no pinned key", "no key in the chain matches a configured pin"),
                passed=said("pin matches"),
            )
        )
    declared.extend(revocation_conditions(options))
    return tuple(declared)


def certificate_condition_names(options: Any) -> frozenset[str]:
    """The names of the conditions `certificate_conditions` declares for these options (the
    audit lists their failures per endpoint); none for options without certificate keys."""
    if not isinstance(options, CertificateOptions):
        return frozenset()
    return frozenset(c.condition for c in certificate_conditions(options, ""))


async def judge_chain(
    chain: Sequence[ParsedCertificate],
    verification: Verification,
    name: str,
    options: Any,
    ctx: ProbeContext,
) -> dict[str, ObservationValue]:
    """The analysis, change detection and revocation, as a probe reports them."""
    observations = analyse_chain(
        chain,
        verification,
        name,
        options.pin,
        options.max_validity_days,
        trusted_by=trust_source(options),
    )
    observations["unexpected_change"] = unexpected_change(ctx.memory, chain[0], options.warn_days)
    observations.update(await _revocation(chain, verification, options, ctx))
    return observations


def _not_checked(why: str) -> dict[str, ObservationValue]:
    return {"revocation": "not_checked", "revocation_detail": why}


async def _revocation(
    chain: Sequence[ParsedCertificate],
    verification: Verification,
    options: Any,
    ctx: ProbeContext,
) -> dict[str, ObservationValue]:
    """The leaf's revocation status, asked of its verified issuer's responder or CRL. An
    unverified chain is not asked about: its issuer vouches for nothing. Nor is a malformed
    leaf or issuer: what identifies it to a responder (serial, names, extensions) is exactly
    what cannot be read reliably; the malformed finding says why."""
    if not (options.ocsp or options.crl):
        return {}
    if len(verification.verified) < 2:
        if verification.trusted:
            return _not_checked("the leaf is its own trust anchor: no issuer to ask")
        return _not_checked("no verified issuer to ask (the chain is not verified)")
    issuer_parsed = parse_certificate(verification.verified[1])
    for role, parsed in (("leaf", chain[0]), ("issuer", issuer_parsed)):
        if parsed.info.malformed:
            return _not_checked(f"not asked: the {role} is malformed")

    async def new_cache() -> RevocationCache:
        return RevocationCache()

    async def new_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(trust_env=False)

    async def close_session(session: aiohttp.ClientSession) -> None:
        await session.close()

    cache = await ctx.shared.get("revocation.cache", new_cache)
    session = await ctx.shared.get("revocation.session", new_session, close_session)
    # Both parsed cleanly above, so cryptography reads them without complaint here.
    leaf, issuer = (x509.load_der_x509_certificate(der) for der in verification.verified[:2])
    status = await revocation.check_revocation(
        leaf,
        issuer,
        ocsp=options.ocsp,
        crl=options.crl,
        timeout=options.revocation_timeout,
        cache=cache,
        session=session,
    )
    return {
        "revocation": status.status,
        "revocation_method": status.method,
        "revocation_detail": status.message,
    }


def revocation_conditions(options: Any) -> tuple[Condition, ...]:
    """Revoked is CRIT; no valid answer (or a responder that does not know the certificate) is
    WARN, as browsers soft-fail; a certificate naming no responder or CRL is information."""
    if not (options.ocsp or options.crl):
        return ()
    return (
        Expectation(
            "revoked",
            "revocation",
            lambda v: v != "revoked",
            "not revoked",
            about="revocation_detail",
            failed=_revoked,
            passed=_revocation_said,
        ),
        Expectation(
            "revocation_known",
            "revocation",
            lambda v: v not in ("unknown", "unavailable"),
            "a valid OCSP or CRL answer",
            severity=Severity.WARN,
            about="revocation_detail",
            failed=_revocation_said,
            passed=_revocation_said,
        ),
    )
