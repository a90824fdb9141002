"""Judging a served certificate chain, as the `tls` probe, `https` checks and the audit use it.

The options live in probes/support/certificate_options.py, the analysis in certificate_chain.py,
the conditions and their words in certificate_findings.py; here they meet: `judge_chain` gives a
probe its observations (analysis, change detection, revocation), and `certificate_condition_names`
tells the audit which conditions are about certificates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from monitor.core.model import ObservationValue, as_number
from probes.base import ProbeContext
from probes.support import validity_schedule
from probes.support.certificate_chain import Verification, analyse_chain
from probes.support.certificate_findings import certificate_conditions
from probes.support.certificate_options import CertificateOptions, trust_source
from probes.support.certificate_reader import ParsedCertificate, parse_certificate
from probes.support.revocation_cache import RevocationCache

if TYPE_CHECKING:
    import aiohttp

_MEMORY_KEY = "certificates.last_leaf"
_DAY = 86400.0


def unexpected_change(
    memory: dict[str, Any],
    leaf: ParsedCertificate,
    warn_days: float,
    now: float | None = None,
    renewal_due: float = 1.0,
) -> bool:
    """Did the leaf change since the last poll while the old one was far from expiry and its
    renewal not yet due?

    A renewal replaces a certificate once `renewal_due` of its validity has passed (two thirds,
    as ACME clients do), or at the latest shortly before it expires; a different leaf while the
    one seen last still had more than `warn_days` to run and was not due for renewal is what
    interception or a misrouted address looks like. The first poll of a check has nothing to
    compare and is never a change.
    """
    at = time.time() if now is None else now
    previous = _last_leaf(memory)
    info = leaf.info
    due = (
        None
        if info.not_before is None or info.not_after is None
        else info.not_before + renewal_due * (info.not_after - info.not_before)
    )
    memory[_MEMORY_KEY] = (info.fingerprint_sha256, info.not_after, due)
    if previous is None:
        return False
    fingerprint, not_after, renewal_at = previous
    if fingerprint == info.fingerprint_sha256:
        return False
    if renewal_at is not None and at >= renewal_at:
        return False
    # An old leaf whose expiry could not be read gives nothing to measure the change against.
    return not_after is not None and (not_after - at) / _DAY > warn_days


def _last_leaf(memory: dict[str, Any]) -> tuple[str, float | None, float | None] | None:
    """The leaf seen last, (fingerprint, notAfter, renewal due), when the memory holds it as
    written here (a state file of an older version holds no renewal date): a state file of
    another version, or a damaged one, may hold anything (then nothing is known)."""
    value = memory.get(_MEMORY_KEY)
    if not isinstance(value, list | tuple) or len(value) not in (2, 3):
        return None
    fingerprint, not_after, *rest = value
    due = rest[0] if rest else None
    expiry, renewal = as_number(not_after), as_number(due)
    if not isinstance(fingerprint, str) or (not_after is not None and expiry is None):
        return None
    if due is not None and renewal is None:
        return None
    return fingerprint, expiry, renewal


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
    observations["unexpected_change"] = unexpected_change(
        ctx.memory, chain[0], options.warn_days, renewal_due=options.renewal_due
    )
    # Publicly trusted: verified by the system store. A `ca_file` is a private CA's bundle.
    public = verification.trusted and options.ca_file is None
    rule, words = validity_schedule.judge(chain[0].info, public, trust_source(options))
    observations["public_validity"] = rule
    observations["public_validity_detail"] = words
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
    # Loaded only for checks that ask: aiohttp alone takes 0.17 s to import, which a sweep of
    # tls checks without ocsp or crl (the default) would pay in every process.
    import aiohttp
    from cryptography import x509

    from probes.support import revocation

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
