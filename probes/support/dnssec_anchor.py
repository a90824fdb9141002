"""Trust anchors for DNSSEC validation: a file of DS or DNSKEY records in zone-file syntax, read
the way unbound reads a `trust-anchor-file` (`. IN DS 20326 8 2 E06D...`, one record per entry,
parentheses across lines, `;` comments, `$ORIGIN` and `$TTL`; an unbound autotrust file reads
too, its state is in comments). There is no built-in anchor: the root's keys change (KSK-2017
gives way to KSK-2024), and a monitor that trusted a stale copy would cry bogus for everything.

The file is read at load time, so a fault is reported with its line, and again when it changed.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import dns.rrset
import dns.zonefile
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS

from monitor.core.files import read_bounded
from monitor.core.options import OptionError, readable_file

MAX_ANCHOR_BYTES = 256 * 1024
_ZONE_FLAG = 0x0100
_REVOKE_FLAG = 0x0080
_FORMAT_HINT = (
    "write DS or DNSKEY records in zone-file syntax, one per entry, e.g. "
    "`. IN DS 20326 8 2 E06D44B8...` (unbound's trust-anchor-file format)"
)


@dataclass(frozen=True)
class AnchorZone:
    """The anchored records of one zone: what its DNSKEY RRset must match or be signed by."""

    name: dns.name.Name
    ds: tuple[DS, ...]
    dnskeys: tuple[DNSKEY, ...]


@dataclass(frozen=True)
class TrustAnchors:
    path: str
    zones: tuple[AnchorZone, ...]

    def covering(self, name: dns.name.Name) -> AnchorZone | None:
        """The anchor closest to `name` among those at or above it, as a validator picks one."""
        found = [zone for zone in self.zones if name.is_subdomain(zone.name)]
        return max(found, key=lambda zone: len(zone.name), default=None)

    def names(self) -> str:
        return ", ".join(zone.name.to_text() for zone in self.zones)


def trust_anchor_file(value: Any) -> str:
    """The `trust_anchor` option: a readable file that holds at least one usable anchor."""
    path = readable_file(value)
    load_anchors(path)
    return path


def load_anchors(path: str) -> TrustAnchors:
    """The anchors in `path`, parsed again only when the file changed."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise OptionError(
            f"trust anchor file {path} is not readable: {exc.strerror}", "check the path"
        ) from None
    return _parsed(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _parsed(path: str, _mtime_ns: int, _size: int) -> TrustAnchors:
    try:
        raw = read_bounded(path, MAX_ANCHOR_BYTES)
    except OSError as exc:
        raise OptionError(
            f"trust anchor file {path} cannot be read: {exc.strerror}",
            f"give a regular file of at most {MAX_ANCHOR_BYTES // 1024} KiB",
        ) from None
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(f"trust anchor file {path} is not UTF-8 text", _FORMAT_HINT) from None
    records = _records(path, content)
    zones: dict[dns.name.Name, tuple[list[DS], list[DNSKEY]]] = {}
    for line, rrset in records:
        ds, keys = zones.setdefault(rrset.name, ([], []))
        for rdata in rrset:
            if isinstance(rdata, DS):
                ds.append(rdata)
            elif isinstance(rdata, DNSKEY) and _usable_key(path, line, rdata):
                keys.append(rdata)
    anchored = tuple(
        AnchorZone(name, tuple(ds), tuple(keys)) for name, (ds, keys) in zones.items() if ds or keys
    )
    if not anchored:
        raise OptionError(f"trust anchor file {path} holds no DS or DNSKEY record", _FORMAT_HINT)
    return TrustAnchors(path, anchored)


def _usable_key(path: str, line: int, key: DNSKEY) -> bool:
    if not key.flags & _ZONE_FLAG:
        raise OptionError(
            f"{path}:{line}: DNSKEY {key.key_id()} is not a zone key (flags {key.flags})",
            "anchor a zone key: flags 257 (a KSK) or 256",
        )
    # A revoked key (RFC 5011), as an autotrust file keeps it, anchors nothing.
    return not key.flags & _REVOKE_FLAG


def _records(path: str, content: str) -> list[tuple[int, dns.rrset.RRset]]:
    """Every record of the file with the line it starts on."""
    origin = dns.name.root
    ttl = 0
    owner: str | None = None
    found: list[tuple[int, dns.rrset.RRset]] = []
    for line, entry in _entries(path, content):
        directive = entry.split(None, 1)
        if directive[0].upper() == "$ORIGIN" and len(directive) == 2:
            origin = _directive_name(path, line, directive[1], origin)
            continue
        if directive[0].upper() == "$TTL":
            ttl = _directive_ttl(path, line, directive[1:])
            continue
        if directive[0].startswith("$"):
            raise OptionError(
                f"{path}:{line}: {directive[0]} is not read in a trust anchor file",
                "only $ORIGIN NAME and $TTL SECONDS are; write the records themselves",
            )
        if entry[0].isspace():  # no owner: the previous record's, as in a zone file
            if owner is None:
                raise OptionError(f"{path}:{line}: the first record has no owner", _FORMAT_HINT)
            entry = owner + " " + entry
        rrsets = _parse(path, line, entry, origin, ttl)
        owner = rrsets[0].name.to_text()
        found += [(line, rrset) for rrset in rrsets]
    return found


def _parse(
    path: str, line: int, entry: str, origin: dns.name.Name, ttl: int
) -> list[dns.rrset.RRset]:
    # dnspython drops records outside the origin it is given: owners are made absolute here,
    # so `. IN DS ...` after `$ORIGIN example.net.` is the root's, as in a zone file.
    first, _, rest = entry.strip().partition(" ")
    try:
        owner = origin if first == "@" else dns.name.from_text(first, origin)
        rrsets = dns.zonefile.read_rrsets(
            f"{owner.to_text()} {rest}", default_ttl=ttl, rdclass=None, relativize=False
        )
    except (dns.exception.DNSException, ValueError) as exc:
        # dnspython names its own input and line ("<input>:2: "): the place is ours to say.
        detail = re.sub(r"^<input>:\d+:\s*", "", str(exc))
        raise OptionError(f"{path}:{line}: {detail}", _FORMAT_HINT) from None
    for rrset in rrsets:
        if rrset.rdtype not in (dns.rdatatype.DS, dns.rdatatype.DNSKEY):
            kind = dns.rdatatype.to_text(rrset.rdtype)
            raise OptionError(f"{path}:{line}: a {kind} record is not a trust anchor", _FORMAT_HINT)
    return rrsets


def _directive_ttl(path: str, line: int, value: list[str]) -> int:
    text = value[0].strip() if value else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise OptionError(f"{path}:{line}: $TTL {text!r} is not a number of seconds", _FORMAT_HINT)
    return int(text)


def _directive_name(path: str, line: int, text: str, origin: dns.name.Name) -> dns.name.Name:
    try:
        return dns.name.from_text(text.strip(), origin)
    except dns.exception.DNSException as exc:
        raise OptionError(f"{path}:{line}: $ORIGIN {text.strip()!r}: {exc}", _FORMAT_HINT) from None


def _entries(path: str, content: str) -> list[tuple[int, str]]:
    """The file's entries without comments, each with the line it starts on: an entry is one
    line, or several joined by parentheses."""
    entries: list[tuple[int, str]] = []
    depth = 0
    start = 0
    parts: list[str] = []
    for number, text in enumerate(content.splitlines(), start=1):
        code = text.split(";", 1)[0]  # DS and DNSKEY data hold no quoted text
        if depth == 0:
            if not code.strip():
                continue
            start, parts = number, []
        parts.append(code)
        depth += code.count("(") - code.count(")")
        if depth < 0:
            raise OptionError(f"{path}:{number}: ')' without '('", _FORMAT_HINT)
        if depth == 0:
            entries.append((start, " ".join(parts).replace("(", " ").replace(")", " ")))
    if depth:
        raise OptionError(f"{path}:{start}: '(' is never closed", _FORMAT_HINT)
    return entries
