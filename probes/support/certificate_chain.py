"""The analysis of a served certificate chain: its shape, its names, its trust, its defects.

A server's chain arrives as DER blobs, leaf first, in the order served. Each blob is parsed once
per engine run and cached by its SHA-256 fingerprint in the shared resources: a thousand
endpoints usually serve the same few intermediates. `analyse_chain` turns a chain into flat
observations, judged by the conditions of probes/support/certificate_findings.py.

What "trusted" means comes from OpenSSL's verification (a handshake with CERT_REQUIRED); all the
rest (names, expiry, structure, key and signature strength, pins) is judged here, so every finding
is named precisely and the same way whether or not OpenSSL accepted the chain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.core.model import ObservationValue
from probes.base import ProbeContext
from probes.support.certificate_reader import ParsedCertificate, Served, parse_certificate

_CACHE_KEY = "certificates.parsed"
_DAY = 86400.0


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
    observations.update(_dates(chain, on_path, at))
    observations.update(_defects(chain, shape, on_path))
    observations.update(_structure(chain, shape, verification))
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


def _dates(
    chain: Sequence[ParsedCertificate], on_path: Sequence[int], at: float
) -> dict[str, ObservationValue]:
    """The first certificate of the path to expire, and those not valid yet."""
    observations: dict[str, ObservationValue] = {}
    # A date no parser could read leaves that certificate out (it is malformed, a finding of
    # its own); with no date at all, expiry is not measured.
    dated = [p for p in on_path if chain[p].info.not_after is not None]
    if dated:
        first = min(dated, key=lambda p: chain[p].info.not_after or 0.0)
        observations["min_days_left"] = round(chain[first].info.days_left(at) or 0.0, 3)
        observations["first_expiring"] = chain[first].label(first)
    not_yet = [p for p in on_path if (chain[p].info.not_before or 0.0) > at]
    observations["not_yet_valid"] = bool(not_yet)
    if not_yet:
        observations["not_yet_valid_certificates"] = _labels(chain, not_yet)
    return observations


def _defects(
    chain: Sequence[ParsedCertificate], shape: ChainShape, on_path: Sequence[int]
) -> dict[str, ObservationValue]:
    """Certificates malformed, with weak keys, or with weak signatures a client verifies."""
    observations: dict[str, ObservationValue] = {}
    malformed = [p for p in range(len(chain)) if chain[p].info.malformed]
    observations["malformed"] = bool(malformed)
    if malformed:
        observations["malformed_certificates"] = "; ".join(
            f"{chain[p].label(p)}: {', '.join(chain[p].info.malformed)}" for p in malformed
        )
    weak_keys = [p for p in range(len(chain)) if chain[p].weak_key and p not in shape.duplicates]
    observations["weak_key"] = bool(weak_keys)
    if weak_keys:
        observations["weak_key_certificates"] = "; ".join(
            f"{chain[p].label(p)} ({chain[p].info.key_type} {chain[p].info.key_bits} bits)"
            for p in weak_keys
        )
    # A root's self-signature is never checked by clients; only signatures they verify count.
    weak_signatures = [p for p in on_path if chain[p].weak_signature]
    observations["weak_signature"] = bool(weak_signatures)
    if weak_signatures:
        observations["weak_signature_certificates"] = "; ".join(
            f"{chain[p].label(p)} ({chain[p].info.signature_algorithm})" for p in weak_signatures
        )
    return observations


def _structure(
    chain: Sequence[ParsedCertificate], shape: ChainShape, verification: Verification
) -> dict[str, ObservationValue]:
    """Whether every intermediate was sent, and which certificates were sent twice or in vain."""
    observations: dict[str, ObservationValue] = {}
    observations["chain_complete"] = complete = _chain_complete(chain, shape, verification)
    if shape.duplicates:
        observations["duplicate_certificate_positions"] = _labels(chain, shape.duplicates)
    if shape.extraneous:
        observations["extraneous_certificate_positions"] = _labels(chain, shape.extraneous)
    if not complete:
        top = shape.path[-1]
        observations["missing_issuer"] = (
            f"{chain[top].info.issuer} (issuer of {chain[top].label(top)})"
        )
    return observations


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
