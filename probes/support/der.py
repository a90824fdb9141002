"""The outer layout of an X.509 certificate, read straight from its DER.

`cryptography` refuses certificates that OpenSSL accepts and servers send (a date without
seconds, a PrintableString with an `@`, a duplicate extension); such a certificate still has
to be placed in its chain and matched against pins. Its raw subject, issuer and public key are
enough for that, and the layout around them is plain DER, walked here without interpreting
anything inside.
"""

from __future__ import annotations

from dataclasses import dataclass

_SEQUENCE = 0x30
_VERSION = 0xA0  # [0] EXPLICIT, first in a TBSCertificate when present


class DerError(ValueError):
    """The bytes are not the DER layout of a certificate."""


@dataclass(frozen=True, slots=True)
class Element:
    tag: int
    body: bytes
    encoded: bytes  # tag, length and body, as they stood


def elements(data: bytes) -> list[Element]:
    """The TLVs one after another in `data`, one nesting level (low tag numbers only, as every
    field of a certificate's outer layout has)."""
    found = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise DerError("truncated element header")
        tag, first = data[at], data[at + 1]
        if tag & 0x1F == 0x1F:
            raise DerError("high tag numbers are not part of a certificate's layout")
        start = at
        at += 2
        if first & 0x80:
            count = first & 0x7F
            if count == 0 or count > 4 or at + count > len(data):
                raise DerError("bad length")
            length = int.from_bytes(data[at : at + count], "big")
            at += count
        else:
            length = first
        if at + length > len(data):
            raise DerError("element runs past the end")
        found.append(Element(tag, data[at : at + length], data[start : at + length]))
        at += length
    return found


def _only(data: bytes, tag: int) -> Element:
    items = elements(data)
    if len(items) != 1 or items[0].tag != tag:
        raise DerError("not a single SEQUENCE")
    return items[0]


@dataclass(frozen=True, slots=True)
class CertificateLayout:
    """The fields of a TBSCertificate a chain and a pin need, as DER encodings."""

    issuer: bytes
    subject: bytes
    public_key: bytes  # the whole SubjectPublicKeyInfo: what a pin hashes


def certificate_layout(der: bytes) -> CertificateLayout:
    """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }, and in the
    TBSCertificate: [0] version (optional), serial, signature, issuer, validity, subject,
    subjectPublicKeyInfo, ..."""
    certificate = elements(_only(der, _SEQUENCE).body)
    if not certificate or certificate[0].tag != _SEQUENCE:
        raise DerError("no TBSCertificate")
    fields = elements(certificate[0].body)
    if fields and fields[0].tag == _VERSION:
        fields = fields[1:]
    if len(fields) < 6:
        raise DerError("TBSCertificate is too short")
    issuer, subject, public_key = fields[2], fields[4], fields[5]
    if not all(f.tag == _SEQUENCE for f in (issuer, subject, public_key)):
        raise DerError("issuer, subject or public key is not a SEQUENCE")
    return CertificateLayout(issuer.encoded, subject.encoded, public_key.encoded)
