"""Signed zones made in the test with dnspython, and an authoritative DNS server of the test that
serves them on 127.0.0.1 over UDP and TCP, with RRSIGs and NSEC or NSEC3 proofs when the query
sets the DO bit, answering DS queries from the parent zone as real servers do (RFC 4035 3.1.4.1).

dnsmasq can validate but not sign, so the signing is dnspython's: `dns.dnssec.sign_zone` for NSEC
zones, and for NSEC3 zones (which it cannot sign yet) the chain is built here and every RRset
signed with `dns.dnssec.sign`. Knobs make the server misbehave as the tests need: stay silent
or answer garbage for some query types, act as a validating resolver (SERVFAIL unless CD), or
truncate UDP early so the TCP fallback is exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from tests.peers.dns_peers import LOCALHOST, free_port

DAY = 86400
IN = dns.rdataclass.IN
RRSIG = dns.rdatatype.RRSIG


@dataclass(frozen=True)
class Key:
    private: Any
    dnskey: Any  # dns.rdtypes.ANY.DNSKEY.DNSKEY

    @property
    def tag(self) -> int:
        return int(self.dnskey.key_id())


def new_key(algorithm: str = "ECDSAP256SHA256", flags: int = 257) -> Key:
    """A fresh key pair of `algorithm`, as a KSK (257) or a ZSK (256)."""
    if algorithm.startswith("ECDSAP256"):
        private: Any = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "ED25519":
        private = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "DSA":  # what RFC 8624 forbids: a zone still signed so is unsigned
        private = dsa.generate_private_key(key_size=1024)
    else:  # RSASHA1, RSASHA256: 2048 bits, what signers make
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags=flags)
    return Key(private, dnskey)


def zone_from(origin: str, records: Iterable[str] = (), ttl: int = 300) -> dns.zone.Zone:
    """A zone of `origin` with its SOA, NS and the server's address, and `records` (zone-file
    lines, names relative to the origin)."""
    head = [
        f"$TTL {ttl}",
        "@ SOA ns hostmaster 1 7200 3600 1209600 300",
        "@ NS ns",
        f"ns A {LOCALHOST}",
    ]
    text = "\n".join([*head, *records]) + "\n"
    return dns.zone.from_text(text, origin=origin, relativize=False)


def ds_line(child: str, key: Key, digest: str = "SHA256") -> str:
    """The DS record of `key` for the parent's zone file."""
    ds = dns.dnssec.make_ds(child, key.dnskey, digest, policy=dns.dnssec.allow_all_policy)
    return f"{child} DS {ds.to_text()}"


def sign(
    zone: dns.zone.Zone,
    keys: Sequence[Key],
    *,
    inception: float | None = None,
    expiration: float | None = None,
    nsec3: Nsec3 | None = None,
) -> dns.zone.Zone:
    """Signs `zone` in place (valid from an hour ago for 14 days unless told), with an NSEC chain
    by dnspython, or with the NSEC3 chain `nsec3` describes."""
    now = time.time()
    start = now - 3600 if inception is None else inception
    end = now + 14 * DAY if expiration is None else expiration
    pairs = [(key.private, key.dnskey) for key in keys]
    policy = dns.dnssec.allow_all_policy  # a test may sign with what RFC 8624 deprecates
    if nsec3 is None:
        dns.dnssec.sign_zone(
            zone, keys=pairs, inception=start, expiration=end, policy=policy, deterministic=False
        )
        return zone
    with zone.writer() as txn:
        for _, dnskey in pairs:
            txn.add(zone.origin, 300, dnskey)
        txn.add(zone.origin, 0, nsec3.param())
    _add_nsec3_chain(zone, nsec3)
    _sign_every_rrset(zone, pairs, start, end)
    return zone


@dataclass(frozen=True)
class Nsec3:
    iterations: int = 0
    salt: bytes = b""
    opt_out: bool = False

    def param(self) -> Any:
        salt = self.salt.hex() or "-"
        return dns.rdata.from_text(IN, "NSEC3PARAM", f"1 0 {self.iterations} {salt}")

    def digest(self, name: dns.name.Name) -> str:
        return dns.dnssec.nsec3_hash(name, self.salt, self.iterations, 1)


def _delegations(zone: dns.zone.Zone) -> list[dns.name.Name]:
    return [
        name
        for name, node in zone.nodes.items()
        if name != zone.origin and node.get_rdataset(IN, dns.rdatatype.NS)
    ]


def _occluded(name: dns.name.Name, cuts: list[dns.name.Name]) -> bool:
    return any(name != cut and name.is_subdomain(cut) for cut in cuts)


def _add_nsec3_chain(zone: dns.zone.Zone, params: Nsec3) -> None:
    cuts = _delegations(zone)
    names = {n for n in zone.nodes if not _occluded(n, cuts)}
    for name in list(names):  # empty non-terminals have NSEC3 records too (RFC 5155 7.1)
        while name != zone.origin:
            name = name.parent()
            names.add(name)
    types: dict[str, set[int]] = {}
    for name in names:
        node = zone.get_node(name)
        found = {rds.rdtype for rds in node.rdatasets} if node else set()
        if name in cuts:
            signed = dns.rdatatype.DS in found
            if params.opt_out and not signed:
                continue  # opt-out: unsigned delegations get no NSEC3
            found = {dns.rdatatype.NS, *((dns.rdatatype.DS, RRSIG) if signed else ())}
        elif found:
            found.add(RRSIG)
        types[params.digest(name)] = found
    ordered = sorted(types)
    flags = 1 if params.opt_out else 0
    salt = params.salt.hex() or "-"
    with zone.writer() as txn:
        for index, digest in enumerate(ordered):
            following = ordered[(index + 1) % len(ordered)]
            bitmap = " ".join(dns.rdatatype.to_text(t) for t in sorted(types[digest]))
            text = f"1 {flags} {params.iterations} {salt} {following} {bitmap}".strip()
            owner = dns.name.from_text(digest, zone.origin)
            txn.add(owner, 300, dns.rdata.from_text(IN, "NSEC3", text))


def _sign_every_rrset(
    zone: dns.zone.Zone, pairs: list[tuple[Any, Any]], start: float, end: float
) -> None:
    cuts = _delegations(zone)
    signed: list[dns.rrset.RRset] = []
    for name, node in zone.nodes.items():
        if _occluded(name, cuts):
            continue
        for rds in node.rdatasets:
            at_cut = name in cuts and rds.rdtype != dns.rdatatype.DS
            if rds.rdtype != RRSIG and not at_cut:
                signed.append(dns.rrset.from_rdata_list(name, rds.ttl, list(rds)))
    with zone.writer() as txn:
        for rrset in signed:
            for private, dnskey in pairs:
                is_keyset = rrset.rdtype == dns.rdatatype.DNSKEY
                if (dnskey.flags & 1) and not is_keyset and len(pairs) > 1:
                    continue  # a KSK signs the DNSKEY RRset only, when there is a ZSK
                sig = dns.dnssec.sign(
                    rrset,
                    private,
                    zone.origin,
                    dnskey,
                    inception=start,
                    expiration=end,
                    policy=dns.dnssec.allow_all_policy,
                )
                txn.add(rrset.name, rrset.ttl, sig)


# --- ways to break a signed zone -----------------------------------------------------------


def _name(zone: dns.zone.Zone, name: str) -> dns.name.Name:
    return dns.name.from_text(name, zone.origin)


def replace_data(zone: dns.zone.Zone, name: str, rdtype: str, *values: str) -> None:
    """New record data under the old signatures: what a tampering middlebox serves."""
    node = zone.find_node(_name(zone, name))
    node.replace_rdataset(
        dns.rdataset.from_text_list(IN, rdtype, 300, list(values), origin=zone.origin)
    )


def drop_signatures(zone: dns.zone.Zone, name: str, covers: str) -> None:
    node = zone.find_node(_name(zone, name))
    node.delete_rdataset(IN, RRSIG, dns.rdatatype.from_text(covers))


def drop_records(zone: dns.zone.Zone, name: str, rdtype: str) -> None:
    """Removes an RRset and its signatures (a DS the parent lost)."""
    node = zone.find_node(_name(zone, name))
    kind = dns.rdatatype.from_text(rdtype)
    node.delete_rdataset(IN, kind)
    node.delete_rdataset(IN, RRSIG, kind)


def garble_signatures(
    zone: dns.zone.Zone, name: str, covers: str, copies: int = 1, **fields: Any
) -> None:
    """`copies` signatures of the right key tag and times whose bytes are random, or whose
    other `fields` (signer, labels, ...) are as given."""
    node = zone.find_node(_name(zone, name))
    kind = dns.rdatatype.from_text(covers)
    rdataset = node.find_rdataset(IN, RRSIG, kind)
    template = next(iter(rdataset))
    changes = fields or {"signature": None}
    garbled = [
        template.replace(**{k: os.urandom(64) if v is None else v for k, v in changes.items()})
        for _ in range(copies)
    ]
    node.replace_rdataset(dns.rdataset.from_rdata_list(rdataset.ttl, garbled))


# --- the server ----------------------------------------------------------------------------


@dataclass
class DnssecPeer:
    """An authoritative server for `zones` (and the knobs that make it misbehave)."""

    zones: list[dns.zone.Zone]
    silent: frozenset[str] = frozenset()  # query types never answered
    garbage: frozenset[str] = frozenset()  # query types answered with random bytes
    servfail_unless_cd: bool = False  # a validating resolver that found the data bogus
    udp_limit: int | None = None  # truncate UDP answers above this, whatever EDNS allows
    withhold: frozenset[str] = frozenset()  # record types left out of every answer
    queries: list[tuple[str, str, str]] = field(default_factory=list)

    def reply(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        kind = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((question.name.to_text(), kind, transport))
        if kind in self.silent:
            return None
        if kind in self.garbage:
            return os.urandom(200)
        if self.servfail_unless_cd and not query.flags & dns.flags.CD:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        return self._wire(query, self.respond(query), transport)

    def _wire(
        self, query: dns.message.Message, response: dns.message.Message, transport: str
    ) -> bytes:
        wire = response.to_wire(max_size=65535)
        if transport == "tcp":
            return wire
        # dnspython will not render below 512 bytes: the limit is applied to the whole.
        limit = query.payload if query.edns >= 0 else 512
        if self.udp_limit is not None:
            limit = min(limit, self.udp_limit)
        if len(wire) <= limit:
            return wire
        truncated = dns.message.make_response(query)
        truncated.flags |= dns.flags.TC
        return truncated.to_wire()

    def respond(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        zone = self._zone_for(question.name, question.rdtype)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        dnssec = bool(query.ednsflags & dns.flags.DO)
        _Answer(self, zone, response, dnssec).fill(question.name, question.rdtype, 0)
        withheld = {dns.rdatatype.from_text(kind) for kind in self.withhold}
        for section in (response.answer, response.authority):
            section[:] = [
                r for r in section if r.rdtype not in withheld and r.covers not in withheld
            ]
        return response

    def _zone_for(self, name: dns.name.Name, rdtype: int) -> dns.zone.Zone | None:
        hosted = sorted(
            (z for z in self.zones if name.is_subdomain(z.origin)), key=lambda z: -len(z.origin)
        )
        if rdtype == dns.rdatatype.DS and len(hosted) > 1 and hosted[0].origin == name:
            return hosted[1]  # a DS lives in the parent
        return hosted[0] if hosted else None


@dataclass
class _Answer:
    peer: DnssecPeer
    zone: dns.zone.Zone
    response: dns.message.Message
    dnssec: bool

    def add(self, section: list[dns.rrset.RRset], owner: dns.name.Name, rds: Any) -> None:
        target = self.response.find_rrset(section, owner, IN, rds.rdtype, rds.covers, create=True)
        target.update(rds)

    def add_with_signatures(
        self,
        section: list[dns.rrset.RRset],
        name: dns.name.Name,
        rdtype: int,
        owner: dns.name.Name | None = None,
    ) -> None:
        node = self.zone.get_node(name)
        if node is None:
            return
        rds = node.get_rdataset(IN, rdtype)
        if rds is None:
            return
        self.add(section, owner or name, rds)
        sigs = node.get_rdataset(IN, RRSIG, rdtype)
        if self.dnssec and sigs is not None:
            self.add(section, owner or name, sigs)

    def fill(self, name: dns.name.Name, rdtype: int, depth: int) -> None:
        zone = self.zone
        cut = self._cut_above(name, rdtype)
        if cut is not None:
            self.add_with_signatures(self.response.authority, cut, dns.rdatatype.NS)
            self.add_with_signatures(self.response.authority, cut, dns.rdatatype.DS)
            return
        node = zone.get_node(name)
        if node is not None:
            if node.get_rdataset(IN, rdtype) is not None:
                self.add_with_signatures(self.response.answer, name, rdtype)
                return
            cname = node.get_rdataset(IN, dns.rdatatype.CNAME)
            if cname is not None and rdtype != dns.rdatatype.CNAME:
                self.add_with_signatures(self.response.answer, name, dns.rdatatype.CNAME)
                target = cname[0].target
                other = self.peer._zone_for(target, rdtype)
                if other is not None and depth < 8:
                    _Answer(self.peer, other, self.response, self.dnssec).fill(
                        target, rdtype, depth + 1
                    )
                return
            self.negative(name, exists=True)
            return
        if self._empty_non_terminal(name):
            self.negative(name, exists=True)
            return
        encloser = self._closest_encloser(name)
        wildcard = dns.name.Name((b"*", *encloser.labels))
        wild = zone.get_node(wildcard)
        if wild is not None and wild.get_rdataset(IN, rdtype) is not None:
            self.add_with_signatures(self.response.answer, wildcard, rdtype, owner=name)
            if self.dnssec:
                self.proof_absent(name, encloser, wildcard_too=False)
            return
        if wild is None:
            self.response.set_rcode(dns.rcode.NXDOMAIN)
        self.negative(name, exists=False, encloser=encloser)

    def _cut_above(self, name: dns.name.Name, rdtype: int) -> dns.name.Name | None:
        """The delegation this zone has at or above `name`, unless it answers a DS there."""
        for cut in _delegations(self.zone):
            if name.is_subdomain(cut) and not (name == cut and rdtype == dns.rdatatype.DS):
                return cut
        return None

    def _empty_non_terminal(self, name: dns.name.Name) -> bool:
        return any(n != name and n.is_subdomain(name) for n in self.zone.nodes)

    def _closest_encloser(self, name: dns.name.Name) -> dns.name.Name:
        encloser = name.parent()
        while encloser != self.zone.origin and not (
            self.zone.get_node(encloser) or self._empty_non_terminal(encloser)
        ):
            encloser = encloser.parent()
        return encloser

    def negative(
        self, name: dns.name.Name, exists: bool, encloser: dns.name.Name | None = None
    ) -> None:
        self.add_with_signatures(self.response.authority, self.zone.origin, dns.rdatatype.SOA)
        if not self.dnssec:
            return
        if exists:
            self.proof_exists(name)
        else:
            assert encloser is not None
            self.proof_absent(name, encloser, wildcard_too=True)

    # --- proofs: NSEC or NSEC3, whichever the zone has ---------------------------------------

    def _nsec3(self) -> Nsec3 | None:
        node = self.zone.get_node(self.zone.origin)
        param = node.get_rdataset(IN, dns.rdatatype.NSEC3PARAM) if node else None
        if param is None:
            return None
        first = next(iter(param))
        return Nsec3(first.iterations, first.salt, opt_out=False)

    def proof_exists(self, name: dns.name.Name) -> None:
        params = self._nsec3()
        if params is None:
            if self.zone.get_node(name) is not None:
                self._nsec_at(name)
            else:
                self._nsec_covering(name)
            return
        if not self._nsec3_matching(params, name):
            encloser = self._closest_encloser(name)
            self._nsec3_matching(params, encloser)
            self._nsec3_covering(params, name.split(len(encloser) + 1)[1])

    def proof_absent(
        self, name: dns.name.Name, encloser: dns.name.Name, wildcard_too: bool
    ) -> None:
        params = self._nsec3()
        wildcard = dns.name.Name((b"*", *encloser.labels))
        if params is None:
            self._nsec_covering(name)
            if wildcard_too:
                if self.zone.get_node(wildcard) is not None:
                    self._nsec_at(wildcard)
                else:
                    self._nsec_covering(wildcard)
            return
        if wildcard_too:
            self._nsec3_matching(params, encloser)
        self._nsec3_covering(params, name.split(len(encloser) + 1)[1])
        if wildcard_too and not self._nsec3_matching(params, wildcard):
            self._nsec3_covering(params, wildcard)

    def _nsec_at(self, name: dns.name.Name) -> None:
        self.add_with_signatures(self.response.authority, name, dns.rdatatype.NSEC)

    def _nsec_covering(self, name: dns.name.Name) -> None:
        owners = sorted(
            n for n, node in self.zone.nodes.items() if node.get_rdataset(IN, dns.rdatatype.NSEC)
        )
        before = [n for n in owners if n < name]
        self._nsec_at(before[-1] if before else owners[-1])

    def _nsec3_records(self) -> list[tuple[str, dns.name.Name, Any]]:
        found = []
        for owner, node in self.zone.nodes.items():
            rds = node.get_rdataset(IN, dns.rdatatype.NSEC3)
            if rds is not None:
                found.append((owner.labels[0].decode().upper(), owner, next(iter(rds))))
        return sorted(found)

    def _nsec3_matching(self, params: Nsec3, name: dns.name.Name) -> bool:
        wanted = params.digest(name)
        for digest, owner, _ in self._nsec3_records():
            if digest == wanted:
                self.add_with_signatures(self.response.authority, owner, dns.rdatatype.NSEC3)
                return True
        return False

    def _nsec3_covering(self, params: Nsec3, name: dns.name.Name) -> None:
        wanted = params.digest(name)
        records = self._nsec3_records()
        before = [item for item in records if item[0] < wanted]
        _, owner, _ = before[-1] if before else records[-1]
        self.add_with_signatures(self.response.authority, owner, dns.rdatatype.NSEC3)


@contextlib.asynccontextmanager
async def serving(peer: DnssecPeer) -> AsyncIterator[str]:
    """Serves `peer` on one port of 127.0.0.1, UDP and TCP; yields the `server` option value."""
    loop = asyncio.get_running_loop()

    class Udp(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            wire = peer.reply(data, "udp")
            if wire is not None:
                self.transport.sendto(wire, addr)  # type: ignore[attr-defined]

    async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                wire = peer.reply(await reader.readexactly(length), "tcp")
                if wire is None:  # silent: hold the connection until the client gives up
                    await reader.read()
                    return
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    for _ in range(20):
        number = free_port()
        try:
            udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(LOCALHOST, number))
        except OSError:
            continue
        try:
            server = await asyncio.start_server(tcp, LOCALHOST, number)
        except OSError:
            udp.close()
            continue
        try:
            yield f"{LOCALHOST}:{number}"
        finally:
            server.close()
            udp.close()
        return
    raise RuntimeError("no free port for the DNSSEC peer")


# --- the tests' world: a signed parent, children signed, unsigned and NSEC3-signed ----------

PARENT = "cw.test."
CHILD = "sub.cw.test."
PLAIN = "plain.cw.test."
HASHED = "hashed.cw.test."
UNSIGNED = "unsigned.hashed.cw.test."
CHILD_RECORDS = (
    "www A 192.0.2.10",
    "alias CNAME www",
    "*.wild A 192.0.2.12",
    "a.b.c A 192.0.2.13",
    '@ CAA 0 issue "ca.example.net"',
    'txt TXT "v=spf1 -all"',
)


@dataclass
class World:
    """cw.test (signed) delegates sub (signed, NSEC), plain (no DS) and hashed (signed, NSEC3),
    which delegates unsigned (no DS). Each zone can be broken before it is served."""

    parent: dns.zone.Zone
    child: dns.zone.Zone
    plain: dns.zone.Zone
    hashed: dns.zone.Zone
    unsigned: dns.zone.Zone
    parent_key: Key
    child_key: Key

    def zones(self) -> list[dns.zone.Zone]:
        return [self.parent, self.child, self.plain, self.hashed, self.unsigned]

    def anchor(self, folder: Any, form: str = "DS") -> Any:
        """A trust anchor file for cw.test, of its KSK's DS or of the DNSKEY itself."""
        path = folder / f"cw.test.{form.lower()}"
        if form == "DS":
            path.write_text(ds_line(PARENT, self.parent_key) + "\n")
        else:
            path.write_text(f"{PARENT} 3600 IN DNSKEY {self.parent_key.dnskey.to_text()}\n")
        return path


def world(
    *,
    child_algorithm: str = "ECDSAP256SHA256",
    child_inception: float | None = None,
    child_expiration: float | None = None,
    ds_key: Key | None = None,
    ds_digest: str = "SHA256",
    nsec3: Nsec3 | None = None,
    child_ds: bool = True,
) -> World:
    """The world, signed now unless told otherwise; `ds_key` is the key the parent's DS for sub
    names (the child's own by default), none without `child_ds`."""
    parent_key, child_key, hashed_key = new_key(), new_key(child_algorithm), new_key()
    child = sign(
        zone_from(CHILD, CHILD_RECORDS),
        [child_key],
        inception=child_inception,
        expiration=child_expiration,
    )
    plain = zone_from(PLAIN, ["www A 192.0.2.20"])
    hashed = sign(
        zone_from(HASHED, ["www A 192.0.2.30", "x.y A 192.0.2.31", "unsigned NS ns.unsigned"]),
        [hashed_key],
        nsec3=nsec3 or Nsec3(salt=b"\xab\xcd"),
    )
    unsigned = zone_from(UNSIGNED, ["www A 192.0.2.40"])
    parent_records = [
        "www A 192.0.2.1",
        "sub NS ns.sub",
        *([ds_line(CHILD, ds_key or child_key, ds_digest)] if child_ds else []),
        "plain NS ns.plain",
        "hashed NS ns.hashed",
        ds_line(HASHED, hashed_key),
    ]
    parent = sign(zone_from(PARENT, parent_records), [parent_key])
    return World(parent, child, plain, hashed, unsigned, parent_key, child_key)


def set_nsec_types(zone: dns.zone.Zone, name: str, types: str, key: Key) -> None:
    """The NSEC record at `name` claims `types`, signed again with `key` (the zone's own)."""
    node = zone.find_node(_name(zone, name))
    nsec = next(iter(node.find_rdataset(IN, dns.rdatatype.NSEC)))
    text = f"{nsec.next.to_text()} {types}"
    node.replace_rdataset(dns.rdataset.from_text(IN, "NSEC", 300, text))
    resign(zone, name, "NSEC", key)


def resign(zone: dns.zone.Zone, name: str, rdtype: str, key: Key) -> None:
    """Replaces the signatures of one RRset by one made with `key` (a key the zone may not
    publish)."""
    owner = _name(zone, name)
    node = zone.find_node(owner)
    rds = node.find_rdataset(IN, dns.rdatatype.from_text(rdtype))
    now = time.time()
    sig = dns.dnssec.sign(
        dns.rrset.from_rdata_list(owner, rds.ttl, list(rds)),
        key.private,
        zone.origin,
        key.dnskey,
        inception=now - 3600,
        expiration=now + 14 * DAY,
        policy=dns.dnssec.allow_all_policy,
    )
    node.replace_rdataset(dns.rdataset.from_rdata(rds.ttl, sig))
