"""The chain of trust from a configured anchor down to an answer (RFC 4035 5), walked with
queries to the same server that gave the answer: the anchor zone's DNSKEY, then at each name
below it the DS (a delegation, or signed proof that there is none), and each delegated zone's
DNSKEY, until the zone that signed the answer. Every RRset met is checked by
probes/support/dnssec_verify.py, every denial judged by probes/support/dnssec_denial.py.

The outcome is one of RFC 4033's four: secure, insecure (a provably unsigned delegation, or
only algorithms validators no longer use), bogus (what a validating resolver answers SERVFAIL
for), or indeterminate (this validator could not tell, with the reason: never OK).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.RRSIG import RRSIG

from monitor.core.errors import AnswerTimeout, ProbeFailure, ProtocolFailure, RefusedFailure
from probes.support import dnssec_denial as proofs
from probes.support import dnssec_keys
from probes.support.dnssec_anchor import AnchorZone, TrustAnchors
from probes.support.dnssec_verify import MISSING, Budget, Checked, check
from probes.support.dnssec_words import (
    BOGUS,
    EDNS_PAYLOAD,
    INDETERMINATE,
    INSECURE,
    SECURE,
    show,
    what,
)

MAX_QUERIES = 40  # a name 12 zones below the root needs about 25
# (query, seconds allowed) -> the server's answer; raises as a dns probe query does.
Ask = Callable[[dns.message.Message, float], Awaitable[dns.message.Message]]
_ANSWER = dns.message.ANSWER
_AUTHORITY = dns.message.AUTHORITY


@dataclass(frozen=True)
class Expiry:
    at: float
    what: str  # "www.sub.example.net A signed by sub.example.net"


@dataclass(frozen=True)
class Validation:
    """What the walk found: the status, why (`reason` the gist, `detail` the sentence), the
    zones whose keys it trusted from the anchor down, the first signature to expire, the
    algorithms that verified and the deprecated ones the chain relies on."""

    status: str
    reason: str = ""
    detail: str = ""
    zones: tuple[str, ...] = ()
    first_expiry: Expiry | None = None
    algorithms: frozenset[int] = frozenset()
    deprecated: tuple[str, ...] = ()
    queries: int = 0


@dataclass(frozen=True)
class _Zone:
    name: dns.name.Name
    status: str  # SECURE or INSECURE
    keys: tuple[DNSKEY, ...] = ()
    reason: str = ""
    detail: str = ""


class _Broken(Exception):
    """The walk ends: bogus or indeterminate, with the reason."""

    def __init__(self, status: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass
class _Walk:
    anchors: TrustAnchors
    ask: Ask
    deadline: float  # time.monotonic()
    recurse: bool
    now: float = field(default_factory=time.time)
    budget: Budget = field(default_factory=Budget)
    queries: int = 0
    zones: dict[dns.name.Name, _Zone] = field(default_factory=dict)
    trusted: list[str] = field(default_factory=list)
    expiries: list[Expiry] = field(default_factory=list)
    algorithms: set[int] = field(default_factory=set)
    deprecated: list[str] = field(default_factory=list)
    insecure: _Zone | None = None

    # --- queries ---------------------------------------------------------------------------

    async def query(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.message.Message:
        """Asks the server, checking disabled: a validating resolver hands over even bogus
        data, whose faults are then named here instead of hidden behind SERVFAIL."""
        label = f"{show(name)} {dns.rdatatype.to_text(rdtype)}"
        if self.queries >= MAX_QUERIES:
            raise _Broken(INDETERMINATE, "chain too long", f"more than {MAX_QUERIES} queries")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise AnswerTimeout(f"DNSSEC chain: no time left to ask {label}")
        self.queries += 1
        query = dns.message.make_query(
            name,
            rdtype,
            use_edns=0,
            want_dnssec=True,
            payload=EDNS_PAYLOAD,
            flags=(dns.flags.RD if self.recurse else 0) | dns.flags.CD,
        )
        response = await asked(self.ask, query, remaining, label)
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise _Broken(
                INDETERMINATE,
                "chain not served",
                f"the server answered {dns.rcode.to_text(rcode)} to {label}: ask a resolver,"
                " or anchor at a zone the server serves",
            )
        return response

    # --- zones -----------------------------------------------------------------------------

    async def zone_for(self, name: dns.name.Name, signer: bool) -> _Zone:
        """The keys that sign `name`'s zone, from the closest anchor down; with `signer`,
        `name` must be the apex of a zone (it signed something)."""
        anchor = self.anchors.covering(name)
        if anchor is None:
            raise _Broken(
                INDETERMINATE,
                "no trust anchor",
                f"{show(name)} is under none of the anchors ({self.anchors.names()})",
            )
        zone = self.zones.get(anchor.name) or await self.anchored(anchor)
        self.zones[anchor.name] = zone
        depth = len(anchor.name)
        while zone.status == SECURE and depth < len(name):
            depth += 1
            below = name.split(depth)[1]
            cached = self.zones.get(below)
            zone = cached or await self.descend(zone, below)
            self.zones[below] = zone
        if signer and zone.status == SECURE and zone.name != name:
            raise _Broken(
                BOGUS,
                "signer is not a zone",
                f"records are signed by {show(name)}, which {show(zone.name)} does not delegate",
            )
        return zone

    async def anchored(self, anchor: AnchorZone) -> _Zone:
        name = anchor.name
        keys, signatures = await self.dnskeys(name, "the trust anchor names keys for it")
        if anchor.ds:
            return self.keys_from_ds(name, keys, signatures, anchor.ds, "the trust anchor's DS")
        self.require(keys, signatures, name, anchor.dnskeys)
        self.trusted.append(show(name))
        return _Zone(name, SECURE, tuple(keys))

    async def dnskeys(self, name: dns.name.Name, why: str) -> tuple[dns.rrset.RRset, list[RRSIG]]:
        response = await self.query(name, dns.rdatatype.DNSKEY)
        keys = response.get_rrset(_ANSWER, name, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        if keys is None:
            raise _Broken(BOGUS, "no DNSKEY", f"{show(name)} serves no DNSKEY RRset, but {why}")
        return keys, _signatures(response, _ANSWER, keys)

    def keys_from_ds(
        self,
        name: dns.name.Name,
        keys: dns.rrset.RRset,
        signatures: list[RRSIG],
        ds_records: Sequence[DS],
        source: str,
    ) -> _Zone:
        """The zone's keys, trusted through the DS records that match one of them."""
        usable = dnssec_keys.usable(ds_records)
        if not usable:
            self.note_deprecated(name, (ds.algorithm for ds in ds_records), ds_records)
            named = dnssec_keys.algorithms_of(ds_records)
            return _Zone(
                name,
                INSECURE,
                reason="unsupported algorithm",
                detail=f"{source} for {show(name)} uses only {named}, which validators no longer"
                " use: they treat the zone as unsigned",
            )
        matched, used = dnssec_keys.vouched(name, keys, usable)
        if not matched:
            tags = ", ".join(sorted({str(ds.key_tag) for ds in usable}))
            served = ", ".join(sorted({str(key.key_id()) for key in keys}))
            raise _Broken(
                BOGUS,
                "no DNSKEY matching DS",
                f"{source} for {show(name)} names key {tags}; the zone serves {served}",
            )
        self.require(keys, signatures, name, matched)
        self.note_deprecated(name, (), used)
        self.trusted.append(show(name))
        return _Zone(name, SECURE, tuple(keys))

    async def descend(self, parent: _Zone, name: dns.name.Name) -> _Zone:
        """The zone in force at `name`, one label below `parent`'s part of the tree."""
        response = await self.query(name, dns.rdatatype.DS)
        ds = response.get_rrset(_ANSWER, name, dns.rdataclass.IN, dns.rdatatype.DS)
        if ds is not None:
            self.require(ds, _signatures(response, _ANSWER, ds), parent.name, parent.keys)
            why = f"{show(parent.name)} has DS records for it"
            keys, signatures = await self.dnskeys(name, why)
            return self.keys_from_ds(
                name, keys, signatures, list(ds), f"the DS in {show(parent.name)}"
            )
        if response.get_rrset(_ANSWER, name, dns.rdataclass.IN, dns.rdatatype.CNAME):
            return parent  # a CNAME is never a zone's apex
        self.served_by_parent(response, parent, name)
        proof = self.prove(response, parent, name, dns.rdatatype.DS)
        if proof.proven in (proofs.OPT_OUT, proofs.COSTLY):
            return _unproven(proof, parent.name, name)
        if proof.proven == proofs.NODATA and dns.rdatatype.SOA in proof.types:
            # The parent's own records at a child's apex: no validator takes this as the
            # absence of a DS (RFC 6840 4.4).
            raise _Broken(
                BOGUS,
                "bad denial proof",
                f"{show(name)} DS: the proof of {show(parent.name)} names an apex at {show(name)}",
            )
        if proof.proven == proofs.NODATA and dns.rdatatype.NS in proof.types:
            detail = f"{show(parent.name)} delegates {show(name)} without DS"
            return _Zone(name, INSECURE, reason="unsigned delegation", detail=detail)
        return parent

    def served_by_parent(
        self, response: dns.message.Message, parent: _Zone, name: dns.name.Name
    ) -> None:
        """A DS denial must come from the parent; a server that answers from the child zone
        (one that serves the child only) cannot show the chain from here."""
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA and rrset.name != parent.name:
                raise _Broken(
                    INDETERMINATE,
                    "chain not served",
                    f"the server answered DS {show(name)} from {show(rrset.name)}, not from"
                    f" {show(parent.name)}: ask a resolver, or anchor at {show(rrset.name)}",
                )

    # --- what is checked -------------------------------------------------------------------

    def require(
        self,
        rrset: dns.rrset.RRset,
        signatures: list[RRSIG],
        signer: dns.name.Name,
        keys: Iterable[DNSKEY],
    ) -> Checked:
        checked = check(rrset, signatures, signer, list(keys), self.budget, self.now)
        if checked.expires is not None:
            self.expiries.append(Expiry(checked.expires, f"{what(rrset)} signed by {show(signer)}"))
        if not checked.valid:
            raise _Broken(BOGUS, checked.reason, checked.detail)
        self.algorithms |= checked.algorithms
        self.note_deprecated(signer, checked.algorithms, ())
        return checked

    def note_deprecated(
        self, zone: dns.name.Name, algorithms: Iterable[int], ds_records: Iterable[DS]
    ) -> None:
        for text in dnssec_keys.deprecations(zone, algorithms, ds_records):
            if text not in self.deprecated:
                self.deprecated.append(text)

    def prove(
        self,
        response: dns.message.Message,
        zone: _Zone,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
    ) -> proofs.Denial:
        """What the answer's validated NSEC or NSEC3 records prove about `name`: a record that
        fails its signature is bogus at once, an unproven denial too."""
        nsec, nsec3 = self.denial_records(response, zone)
        proof = proofs.deny(name, rdtype, zone.name, nsec, nsec3)
        return self.judged(proof, f"{show(name)} {dns.rdatatype.to_text(rdtype)}")

    def judged(self, proof: proofs.Denial, asked: str) -> proofs.Denial:
        if proof.unsupported:
            raise _Broken(INDETERMINATE, "denial not judged", f"{asked}: {proof.problem}")
        if proof.problem and proof.proven not in (proofs.OPT_OUT, proofs.COSTLY):
            raise _Broken(BOGUS, "bad denial proof", f"{asked}: {proof.problem}")
        return proof

    def denial_records(
        self, response: dns.message.Message, zone: _Zone
    ) -> tuple[list[dns.rrset.RRset], list[dns.rrset.RRset]]:
        found: dict[int, list[dns.rrset.RRset]] = {dns.rdatatype.NSEC: [], dns.rdatatype.NSEC3: []}
        for rrset in response.authority:
            if rrset.rdtype in found and rrset.name.is_subdomain(zone.name):
                self.require(rrset, _signatures(response, _AUTHORITY, rrset), zone.name, zone.keys)
                found[rrset.rdtype].append(rrset)
            elif rrset.rdtype == dns.rdatatype.SOA and rrset.name == zone.name:
                self.require(rrset, _signatures(response, _AUTHORITY, rrset), zone.name, zone.keys)
        return found[dns.rdatatype.NSEC], found[dns.rdatatype.NSEC3]

    # --- the answer ------------------------------------------------------------------------

    async def answer(self, response: dns.message.Message, qtype: dns.rdatatype.RdataType) -> None:
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise _Broken(
                INDETERMINATE,
                "no answer to validate",
                f"the server answered {dns.rcode.to_text(rcode)}",
            )
        if any(rrset.rdtype == dns.rdatatype.DNAME for rrset in response.answer):
            raise _Broken(INDETERMINATE, "DNAME not validated", "the answer follows a DNAME")
        assert isinstance(response, dns.message.QueryMessage)
        chain = response.resolve_chaining()
        for rrset in [*chain.cnames, *([chain.answer] if chain.answer is not None else [])]:
            await self.positive(response, rrset)
        if chain.answer is None:
            await self.negative(response, chain.canonical_name, qtype, rcode == dns.rcode.NXDOMAIN)

    async def positive(self, response: dns.message.Message, rrset: dns.rrset.RRset) -> None:
        signatures = _signatures(response, _ANSWER, rrset)
        signer = _signer(rrset.name, signatures)
        zone = await self.zone_for(signer or rrset.name, signer is not None)
        if zone.status == INSECURE:
            self.insecure = self.insecure or zone
            return
        if signer is None:
            raise _Broken(
                BOGUS, MISSING, f"{what(rrset)} has no RRSIG, and {show(zone.name)} is signed"
            )
        checked = self.require(rrset, signatures, signer, zone.keys)
        labels = len(rrset.name) - 1  # the root label is not counted (RFC 4034 3.1.3)
        if checked.labels is not None and checked.labels < labels and not rrset.name.is_wild():
            encloser = rrset.name.split(checked.labels + 1)[1]
            nsec, nsec3 = self.denial_records(response, zone)
            proof = proofs.wildcard_expansion(rrset.name, encloser, zone.name, nsec, nsec3)
            self.judged(proof, f"{what(rrset)} from the wildcard at *.{show(encloser)}")
            if proof.proven in (proofs.OPT_OUT, proofs.COSTLY):
                self.insecure = self.insecure or _unproven(proof, zone.name, rrset.name)

    async def negative(
        self,
        response: dns.message.Message,
        name: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        nxdomain: bool,
    ) -> None:
        _refuse_referral(response, name)
        signatures = [
            sig
            for rrset in response.authority
            if rrset.rdtype == dns.rdatatype.RRSIG
            for sig in rrset
        ]
        signer = _signer(name, signatures)
        zone = await self.zone_for(signer or name, signer is not None)
        if zone.status == INSECURE:
            self.insecure = self.insecure or zone
            return
        asked = f"{show(name)} {dns.rdatatype.to_text(qtype)}"
        if signer is None:
            raise _Broken(
                BOGUS,
                MISSING,
                f"the negative answer to {asked} is unsigned, and {show(zone.name)} is signed",
            )
        proof = self.prove(response, zone, name, qtype)
        wanted = (proofs.NXDOMAIN,) if nxdomain else (proofs.NODATA, proofs.WILDCARD_NODATA)
        if proof.proven in (proofs.OPT_OUT, proofs.COSTLY):
            self.insecure = self.insecure or _unproven(proof, zone.name, name)
        elif proof.proven not in wanted:
            said = "NXDOMAIN" if nxdomain else "NOERROR without data"
            raise _Broken(
                BOGUS,
                "bad denial proof",
                f"{asked}: the server said {said}, its proof {proof.proven}",
            )

    def outcome(self, status: str, reason: str = "", detail: str = "") -> Validation:
        first = min(self.expiries, key=lambda e: e.at, default=None)
        if status == SECURE and self.insecure is not None:
            status, reason, detail = INSECURE, self.insecure.reason, self.insecure.detail
        return Validation(
            status=status,
            reason=reason,
            detail=detail,
            zones=tuple(self.trusted),
            first_expiry=first,
            algorithms=frozenset(self.algorithms),
            deprecated=tuple(self.deprecated),
            queries=self.queries,
        )


async def validate(
    response: dns.message.Message,
    qtype: dns.rdatatype.RdataType,
    anchors: TrustAnchors,
    ask: Ask,
    deadline: float,
    recurse: bool = True,
) -> Validation:
    """Validates `response` (the answer to a query for its question, of `qtype`), asking the
    same server for the chain; `deadline` is a time.monotonic() reading."""
    walk = _Walk(anchors, ask, deadline, recurse)
    try:
        await walk.answer(response, qtype)
    except _Broken as broken:
        return walk.outcome(broken.status, broken.reason, broken.detail)
    return walk.outcome(SECURE)


async def asked(
    ask: Ask, query: dns.message.Message, timeout: float, asked: str
) -> dns.message.Message:
    """The answer to a chain query; a failure says which query failed, as the class of
    failure it is (a timeout, a refusal, garbage)."""
    try:
        return await ask(query, timeout)
    except (dns.exception.Timeout, TimeoutError):
        raise AnswerTimeout(f"DNSSEC chain: no answer to {asked} within {timeout:.1f}s") from None
    except ConnectionRefusedError:
        raise RefusedFailure(f"DNSSEC chain: {asked} refused (connection refused)") from None
    except (ProbeFailure, dns.exception.DNSException, EOFError) as exc:
        raise ProtocolFailure(f"DNSSEC chain: {asked}: {' '.join(str(exc).split())}") from None


def _signatures(response: dns.message.Message, section: int, rrset: dns.rrset.RRset) -> list[RRSIG]:
    found = response.get_rrset(
        section,
        rrset.name,
        dns.rdataclass.IN,
        dns.rdatatype.RRSIG,
        covers=rrset.rdtype,
    )
    return [] if found is None else [sig for sig in found if isinstance(sig, RRSIG)]


def _signer(name: dns.name.Name, signatures: list[RRSIG]) -> dns.name.Name | None:
    """The zone that signed: the deepest signer name above or at `name` (RFC 4035 5.3.1)."""
    signers = [sig.signer for sig in signatures if name.is_subdomain(sig.signer)]
    return max(signers, key=len, default=None)


def _unproven(proof: proofs.Denial, zone: dns.name.Name, name: dns.name.Name) -> _Zone:
    """What a proof that leaves `name` unsigned says: an opt-out span, or NSEC3 too costly."""
    if proof.proven == proofs.OPT_OUT:
        detail = f"{show(zone)} covers {show(name)} with an NSEC3 opt-out span: no DS there"
        return _Zone(zone, INSECURE, reason="opt-out delegation", detail=detail)
    detail = f"{show(zone)} uses {proof.problem}: validators treat it as unsigned (RFC 9276)"
    return _Zone(zone, INSECURE, reason="costly NSEC3", detail=detail)


def _refuse_referral(response: dns.message.Message, name: dns.name.Name) -> None:
    """An empty answer with NS and no SOA is a referral: nothing here to validate."""
    kinds = {rrset.rdtype for rrset in response.authority}
    if dns.rdatatype.NS in kinds and dns.rdatatype.SOA not in kinds:
        target = next(r.name for r in response.authority if r.rdtype == dns.rdatatype.NS)
        raise _Broken(
            INDETERMINATE,
            "referral",
            f"the server referred {show(name)} to {show(target)}: ask a resolver, or the"
            " zone's own server",
        )
