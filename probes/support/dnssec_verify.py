"""The signatures of one RRset checked against a zone's keys, with a reason when none holds.

Time is judged here, before any cryptography, so an expired or not yet valid signature is named
as such; only signatures within their validity period are verified, each against the keys its
tag and algorithm select. Verifications are bounded per RRset and per check: a KeyTrap answer
(CVE-2023-50387) pairs many keys of one tag with many signatures to keep a validator busy for
minutes, and here it costs a bounded number of verifications and is called bogus.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.dnssec
import dns.exception
import dns.name
import dns.node
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
from dns.dnssecalgs import get_algorithm_cls
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.RRSIG import RRSIG

from probes.support.dnssec_words import algorithm_name, show, what, when

# At most this many signatures of one RRset are looked at, and this many keys tried for each:
# a zone in an algorithm rollover signs with two keys, a KSK rollover shows three or four.
MAX_SIGNATURES_PER_RRSET = 8
MAX_KEYS_PER_SIGNATURE = 4
# Every verification of one check, the whole chain included; a deep chain needs about 20.
MAX_VERIFICATIONS = 64

MISSING = "missing RRSIG"
EXPIRED = "expired signature"
NOT_YET_VALID = "signature not yet valid"
BAD = "bad signature"
NO_KEY = "no DNSKEY for the signature"
UNSUPPORTED = "unsupported algorithm"
TOO_MANY = "too many signatures to check"
# What is wrong when several signatures fail differently: the first of these found.
_PRIORITY = (BAD, EXPIRED, NOT_YET_VALID, NO_KEY, UNSUPPORTED)

_ZONE_FLAG = 0x0100
_REVOKE_FLAG = 0x0080


@dataclass(frozen=True)
class Checked:
    """What the signatures of one RRset said: valid or why not (`reason`, the gist, and
    `detail`, which RRset, signer, key and time), and until when the RRset validates."""

    valid: bool
    reason: str
    detail: str
    expires: float | None  # the latest expiry of a valid signature (all expired: of those)
    algorithms: frozenset[int]
    labels: int | None = None  # a valid signature's label count: fewer than the owner's, a wildcard


class Budget:
    """The verifications left to one check."""

    def __init__(self, limit: int = MAX_VERIFICATIONS) -> None:
        self.left = limit

    def spend(self) -> bool:
        self.left -= 1
        return self.left >= 0


def validates(algorithm: int) -> bool:
    """Whether a validator verifies signatures of `algorithm`: one dnspython implements and
    RFC 8624 lets validators use (RSAMD5, DSA and ECC-GOST no longer)."""
    try:
        get_algorithm_cls(algorithm)
    except dns.exception.UnsupportedAlgorithm:
        return False
    # The policy judges a key by its algorithm alone; dnspython leaves DNSKEY() unannotated.
    probe = DNSKEY(dns.rdataclass.IN, dns.rdatatype.DNSKEY, 257, 3, algorithm, b"")  # type: ignore[no-untyped-call]
    return dns.dnssec.default_policy.ok_to_validate(probe)


def check(
    rrset: dns.rrset.RRset,
    signatures: Iterable[RRSIG],
    signer: dns.name.Name,
    keys: Sequence[DNSKEY],
    budget: Budget,
    now: float | None = None,
) -> Checked:
    """Whether a signature by `signer` over `rrset` verifies with one of `keys` now."""
    moment = time.time() if now is None else now
    mine = [s for s in signatures if s.signer == signer and s.type_covered == rrset.rdtype][
        :MAX_SIGNATURES_PER_RRSET
    ]
    if not mine:
        return Checked(
            False, MISSING, f"{what(rrset)} has no RRSIG by {show(signer)}", None, frozenset()
        )
    problems: dict[str, str] = {}
    valid: list[RRSIG] = []
    for signature in mine:
        problem = _problem(rrset, signature, keys, budget, moment)
        if problem is None:
            valid.append(signature)
        elif problem[0] == TOO_MANY:
            return Checked(False, TOO_MANY, problem[1], None, frozenset())
        else:
            problems.setdefault(problem[0], problem[1])
    if valid:
        latest = float(max(s.expiration for s in valid))
        algorithms = frozenset(s.algorithm for s in valid)
        return Checked(True, "", "", latest, algorithms, max(s.labels for s in valid))
    reason = next(r for r in _PRIORITY if r in problems)
    expired = [s.expiration for s in mine if s.expiration < moment]
    expires = float(max(expired)) if reason == EXPIRED else None
    return Checked(False, reason, problems[reason], expires, frozenset())


def _problem(
    rrset: dns.rrset.RRset,
    signature: RRSIG,
    keys: Sequence[DNSKEY],
    budget: Budget,
    moment: float,
) -> tuple[str, str] | None:
    """What is wrong with one signature, or None when it verifies."""
    by = f"{what(rrset)}: RRSIG by {show(signature.signer)} key {signature.key_tag}"
    if signature.expiration < moment:
        return EXPIRED, f"{by} expired {when(signature.expiration)}"
    if signature.inception > moment:
        return NOT_YET_VALID, f"{by} valid only from {when(signature.inception)}"
    candidates = [key for key in keys if _selects(signature, key)]
    if not candidates:
        return NO_KEY, f"{by} ({algorithm_name(signature.algorithm)}): no such key in the zone"
    usable = [key for key in candidates if validates(key.algorithm)][:MAX_KEYS_PER_SIGNATURE]
    if not usable:
        return UNSUPPORTED, f"{by}: {algorithm_name(signature.algorithm)} is not validated"
    for key in usable:
        if not budget.spend():
            return TOO_MANY, f"{by}: more than {MAX_VERIFICATIONS} verifications in one answer"
        if _verifies(rrset, signature, key, moment):
            return None
    return BAD, f"{by} ({algorithm_name(signature.algorithm)}) does not verify"


def _selects(signature: RRSIG, key: DNSKEY) -> bool:
    """Whether `key` is one a validator tries for `signature` (RFC 4034 2.1.1, RFC 5011 2.1)."""
    revoked = bool(key.flags & _REVOKE_FLAG) and signature.type_covered != dns.rdatatype.DNSKEY
    return (
        key.algorithm == signature.algorithm
        and key.key_id() == signature.key_tag
        and bool(key.flags & _ZONE_FLAG)
        and key.protocol == 3
        and not revoked
    )


def _verifies(rrset: dns.rrset.RRset, signature: RRSIG, key: DNSKEY, moment: float) -> bool:
    one_key: dict[dns.name.Name, dns.node.Node | dns.rdataset.Rdataset] = {
        signature.signer: dns.rdataset.from_rdata(0, key)
    }
    try:
        dns.dnssec.validate_rrsig(rrset, signature, one_key, now=moment)
    except (dns.exception.ValidationFailure, dns.exception.UnsupportedAlgorithm):
        return False
    except (dns.exception.DNSException, ValueError):
        # A hostile signature can fail to parse as the algorithm's key or signature format.
        return False
    return True
