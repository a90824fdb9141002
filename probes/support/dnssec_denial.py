"""What validated NSEC or NSEC3 records prove about a name that has no answer (RFC 4035 5.4,
RFC 5155 8, RFC 4592 wildcards), as data: which kind of denial, or why none.

Only records whose signatures were already verified reach these functions; they judge the
proof, never the cryptography. NSEC3 hashing is bounded: above 150 iterations a zone is judged
insecure, as RFC 9276 lets validators do and BIND and unbound do.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.NSEC import NSEC
from dns.rdtypes.ANY.NSEC3 import NSEC3

from probes.support.dnssec_words import show

MAX_NSEC3_ITERATIONS = 150
_SHA1 = 1
_OPT_OUT = 0x01

NODATA = "nodata"  # the name exists; `types` are its types
NXDOMAIN = "nxdomain"  # the name does not exist, nor a wildcard that would cover it
WILDCARD_NODATA = "wildcard nodata"  # a wildcard covers the name, without the type
OPT_OUT = "opt-out"  # an NSEC3 opt-out span: an unsigned delegation may be there
COSTLY = "costly"  # NSEC3 iterations above the limit: insecure, by RFC 9276


@dataclass(frozen=True)
class Denial:
    """What the records prove about a name: `proven` (one of the words above, or "" with
    `problem` saying why nothing is), and the types at the name for NODATA."""

    proven: str
    types: frozenset[int] = frozenset()
    problem: str = ""
    unsupported: bool = False  # a proof of a kind this validator cannot judge


def _types(rdata: NSEC | NSEC3) -> frozenset[int]:
    found: set[int] = set()
    for window, bitmap in rdata.windows:
        for index, byte in enumerate(bitmap):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    found.add(window * 256 + index * 8 + bit)
    return frozenset(found)


def _type_problem(
    name: dns.name.Name, qtype: dns.rdatatype.RdataType, types: frozenset[int], source: str
) -> str:
    if qtype in types:
        return f"the {source} at {show(name)} says it has {dns.rdatatype.to_text(qtype)}"
    if dns.rdatatype.CNAME in types and qtype != dns.rdatatype.CNAME:
        return f"the {source} at {show(name)} says it is a CNAME"
    return ""


def deny(
    qname: dns.name.Name,
    qtype: dns.rdatatype.RdataType,
    zone: dns.name.Name,
    nsec: Sequence[dns.rrset.RRset],
    nsec3: Sequence[dns.rrset.RRset],
) -> Denial:
    """What the validated `nsec` or `nsec3` RRsets of `zone` prove about `qname` and `qtype`."""
    if nsec:
        return _deny_nsec(qname, qtype, zone, nsec)
    if nsec3:
        return _deny_nsec3(qname, qtype, zone, nsec3)
    return Denial("", problem=f"no NSEC or NSEC3 record proves that {show(qname)} has no answer")


# --- NSEC ----------------------------------------------------------------------------------


def _nsec_covers(rrset: dns.rrset.RRset, name: dns.name.Name, zone: dns.name.Name) -> bool:
    record: NSEC = rrset[0]
    owner, following = rrset.name, record.next
    if following <= owner:  # the last record of the chain points back to the apex
        return bool(owner < name) and name.is_subdomain(zone)
    return bool(owner < name < following)


def _deny_nsec(
    qname: dns.name.Name,
    qtype: dns.rdatatype.RdataType,
    zone: dns.name.Name,
    records: Sequence[dns.rrset.RRset],
) -> Denial:
    usable = [r for r in records if r.name.is_subdomain(zone) and len(r)]
    for rrset in usable:
        if rrset.name == qname:
            types = _types(rrset[0])
            return Denial(NODATA, types, _type_problem(qname, qtype, types, "NSEC"))
    cover = next((r for r in usable if _nsec_covers(r, qname, zone)), None)
    if cover is None:
        return Denial("", problem=f"no NSEC record matches or covers {show(qname)}")
    if _delegates_above(cover, qname):
        return Denial("", problem=f"the NSEC at {show(cover.name)} is a delegation's, not proof")
    following: dns.name.Name = cover[0].next
    if following.is_subdomain(qname) and following != qname:
        return Denial(NODATA)  # an empty non-terminal: names exist below it, no data at it
    encloser = max(qname.fullcompare(cover.name)[2], qname.fullcompare(following)[2], len(zone))
    closest = qname.split(encloser)[1]
    wildcard = dns.name.Name((b"*", *closest.labels))
    for rrset in usable:
        if rrset.name == wildcard:
            types = _types(rrset[0])
            problem = _type_problem(wildcard, qtype, types, "NSEC")
            return Denial(WILDCARD_NODATA, types, problem)
    if any(_nsec_covers(r, wildcard, zone) for r in usable):
        return Denial(NXDOMAIN)
    return Denial("", problem=f"no NSEC record proves that {show(wildcard)} does not exist")


def _delegates_above(rrset: dns.rrset.RRset, name: dns.name.Name) -> bool:
    """An NSEC at a delegation point proves nothing about names below it (RFC 6840 4.1)."""
    types = _types(rrset[0])
    below = name.is_subdomain(rrset.name) and name != rrset.name
    return below and dns.rdatatype.NS in types and dns.rdatatype.SOA not in types


# --- NSEC3 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hashed:
    owner: str  # the base32hex hash of the owner name, upper case
    following: str
    record: NSEC3

    def covers(self, digest: str) -> bool:
        if self.following <= self.owner:  # the last of the chain wraps around
            return digest > self.owner or digest < self.following
        return self.owner < digest < self.following


class _Chain:
    """The NSEC3 records of one zone in an answer, and the hashing they ask for."""

    def __init__(self, zone: dns.name.Name, records: Sequence[dns.rrset.RRset]) -> None:
        self.zone = zone
        self.items = [
            _Hashed(
                r.name.labels[0].decode("ascii", errors="replace").upper(),
                base64.b32hexencode(r[0].next).decode("ascii"),
                r[0],
            )
            for r in records
            if r.name.parent() == zone and len(r)
        ]

    def unusable(self) -> Denial | None:
        """Why these records prove nothing here (none, mixed, unknown or costly hashing)."""
        if not self.items:
            return Denial("", problem=f"no NSEC3 record of {show(self.zone)} in the answer")
        first = self.items[0].record
        params = (first.algorithm, first.iterations, first.salt)
        if any((h.record.algorithm, h.record.iterations, h.record.salt) != params for h in self):
            return Denial("", problem="NSEC3 records with different parameters in one answer")
        if first.algorithm != _SHA1:
            return Denial("", problem=f"NSEC3 hash algorithm {first.algorithm}", unsupported=True)
        if first.iterations > MAX_NSEC3_ITERATIONS:
            detail = f"NSEC3 with {first.iterations} iterations (over {MAX_NSEC3_ITERATIONS})"
            return Denial(COSTLY, problem=detail)
        return None

    def __iter__(self) -> Iterator[_Hashed]:
        return iter(self.items)

    def digest(self, name: dns.name.Name) -> str:
        first = self.items[0].record
        return dns.dnssec.nsec3_hash(name, first.salt, first.iterations, _SHA1)

    def matching(self, name: dns.name.Name) -> _Hashed | None:
        wanted = self.digest(name)
        return next((h for h in self if h.owner == wanted), None)

    def covering(self, name: dns.name.Name) -> _Hashed | None:
        wanted = self.digest(name)
        return next((h for h in self if h.covers(wanted)), None)


def _deny_nsec3(
    qname: dns.name.Name,
    qtype: dns.rdatatype.RdataType,
    zone: dns.name.Name,
    records: Sequence[dns.rrset.RRset],
) -> Denial:
    chain = _Chain(zone, records)
    refused = chain.unusable()
    if refused is not None:
        return refused
    exact = chain.matching(qname)
    if exact is not None:
        types = _types(exact.record)
        return Denial(NODATA, types, _type_problem(qname, qtype, types, "NSEC3"))
    if qname == zone:
        return Denial("", problem=f"no NSEC3 record matches the apex {show(zone)}")
    return _closest_encloser_proof(qname, qtype, chain)


def _closest_encloser_proof(
    qname: dns.name.Name, qtype: dns.rdatatype.RdataType, chain: _Chain
) -> Denial:
    """RFC 5155 8.3: the closest ancestor that exists, and proof the next name down does not."""
    closer = qname
    encloser = qname.parent()
    while chain.matching(encloser) is None:
        if encloser == chain.zone:
            return Denial("", problem=f"no NSEC3 record matches an ancestor of {show(qname)}")
        closer, encloser = encloser, encloser.parent()
    covering = chain.covering(closer)
    if covering is None:
        return Denial("", problem=f"no NSEC3 record covers {show(closer)}")
    if covering.record.flags & _OPT_OUT:
        return Denial(OPT_OUT)
    wildcard = dns.name.Name((b"*", *encloser.labels))
    found = chain.matching(wildcard)
    if found is not None:
        types = _types(found.record)
        return Denial(WILDCARD_NODATA, types, _type_problem(wildcard, qtype, types, "NSEC3"))
    if chain.covering(wildcard) is not None:
        return Denial(NXDOMAIN)
    return Denial("", problem=f"no NSEC3 record proves that {show(wildcard)} does not exist")


# --- wildcard answers ----------------------------------------------------------------------


def wildcard_expansion(
    qname: dns.name.Name,
    encloser: dns.name.Name,
    zone: dns.name.Name,
    nsec: Sequence[dns.rrset.RRset],
    nsec3: Sequence[dns.rrset.RRset],
) -> Denial:
    """Whether an answer synthesised from the wildcard at `encloser` comes with its proof that
    no closer name exists (RFC 4035 5.3.4, RFC 5155 8.8): NXDOMAIN for the closer name when
    it does."""
    if not nsec and not nsec3:
        return Denial(
            "", problem=f"no NSEC or NSEC3 record proves that {show(qname)} does not exist"
        )
    if nsec:
        usable = [r for r in nsec if r.name.is_subdomain(zone) and len(r)]
        if any(_nsec_covers(r, qname, zone) for r in usable):
            return Denial(NXDOMAIN)
        return Denial("", problem=f"no NSEC record proves that {show(qname)} does not exist")
    chain = _Chain(zone, nsec3)
    refused = chain.unusable()
    if refused is not None:
        return refused
    closer = qname.split(len(encloser) + 1)[1]
    covering = chain.covering(closer)
    if covering is None:
        return Denial("", problem=f"no NSEC3 record proves that {show(closer)} does not exist")
    return Denial(OPT_OUT if covering.record.flags & _OPT_OUT else NXDOMAIN)
