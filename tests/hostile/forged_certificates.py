"""Certificates no well-behaved library would issue, forged at the DER level for hostile peers.

`cryptography` refuses to build most of these (duplicate extensions, negative serials,
x400Address names, dates without seconds), so a good certificate is built first and its
to-be-signed part edited field by field, then signed again by the issuer: OpenSSL still loads
the result (a server can serve it, a client receives it), while stricter parsers refuse it on
loading or on reading a field.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.lab.pki import Issued
from probes.support.der import elements

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BOOLEAN = 0x01
OCTET_STRING = 0x04
BIT_STRING = 0x03
NULL = 0x05
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
VERSION = 0xA0
EXTENSIONS = 0xA3  # [3] EXPLICIT, last in a TBSCertificate
# GeneralName choices in a subjectAltName (context-specific tags).
DNS_NAME = 0x82
X400_ADDRESS = 0xA3
EDI_PARTY_NAME = 0xA5
IP_ADDRESS = 0x87

# OBJECT IDENTIFIERs as DER (tag and length included).
COMMON_NAME = bytes.fromhex("0603550403")
SUBJECT_ALT_NAME = bytes.fromhex("0603551d11")
BASIC_CONSTRAINTS = bytes.fromhex("0603551d13")
# 1.3.6.1.4.1.55555.1.1: a private arc no client knows.
UNKNOWN_OID = bytes.fromhex("060a2b0601040183b2030101")
_ECDSA_WITH_SHA256 = bytes.fromhex("06082a8648ce3d040302")


def der(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def extension(oid: bytes, value: bytes, critical: bool = False) -> bytes:
    flag = der(BOOLEAN, b"\xff") if critical else b""
    return der(SEQUENCE, oid + flag + der(OCTET_STRING, value))


def subject_alt_name(*names: bytes) -> bytes:
    """A subjectAltName extension of already encoded GeneralNames."""
    return extension(SUBJECT_ALT_NAME, der(SEQUENCE, b"".join(names)))


def common_name(tag: int, value: bytes) -> bytes:
    """A Name of one CN attribute, in the given string type (PrintableString, ...)."""
    return der(SEQUENCE, der(SET, der(SEQUENCE, COMMON_NAME + der(tag, value))))


def validity(not_before: bytes, not_after: bytes) -> bytes:
    """Validity from encoded times: der(UTC_TIME, b"...") each."""
    return der(SEQUENCE, not_before + not_after)


@dataclass(frozen=True)
class Tbs:
    """A TBSCertificate as its top-level fields, each as encoded, editable by name."""

    fields: tuple[bytes, ...]

    # Positions with the [0] version present, as in every v3 certificate.
    VERSION, SERIAL, SIGNATURE, ISSUER, VALIDITY, SUBJECT, SPKI = range(7)

    @classmethod
    def of(cls, tbs_der: bytes) -> Tbs:
        (outer,) = elements(tbs_der)
        return cls(tuple(e.encoded for e in elements(outer.body)))

    def with_field(self, position: int, encoded: bytes) -> Tbs:
        return Tbs((*self.fields[:position], encoded, *self.fields[position + 1 :]))

    def extensions(self) -> list[bytes]:
        (block,) = (f for f in self.fields if f[0] == EXTENSIONS)
        (sequence,) = elements(elements(block)[0].body)
        return [e.encoded for e in elements(sequence.body)]

    def without(self, oid: bytes) -> list[bytes]:
        """The extensions but the one(s) with `oid`."""
        return [e for e in self.extensions() if oid not in e[:16]]

    def with_extensions(self, encoded: Sequence[bytes]) -> Tbs:
        kept = tuple(f for f in self.fields if f[0] != EXTENSIONS)
        return Tbs((*kept, der(EXTENSIONS, der(SEQUENCE, b"".join(encoded)))))

    @property
    def encoded(self) -> bytes:
        return der(SEQUENCE, b"".join(self.fields))


@dataclass(frozen=True)
class Forged(Issued):
    """`certificate` is the well-formed original (same names and key); `der` is what is
    served, as PEM through `cert_pem` like any other peer certificate."""

    der: bytes = b""

    @property
    def cert_pem(self) -> bytes:
        return ssl.DER_cert_to_PEM_cert(self.der).encode()


def forge(good: Issued, issuer: Issued, edit: Callable[[Tbs], Tbs]) -> Forged:
    """`good` with its to-be-signed part edited by `edit`, re-signed by `issuer` (an EC key,
    as the lab PKI makes), keeping its own key so a server can still use it."""
    assert isinstance(issuer.key, ec.EllipticCurvePrivateKey)
    tbs = edit(Tbs.of(good.certificate.tbs_certificate_bytes)).encoded
    signature = issuer.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    algorithm = der(SEQUENCE, _ECDSA_WITH_SHA256)
    encoded = der(SEQUENCE, tbs + algorithm + der(BIT_STRING, b"\x00" + signature))
    return Forged(good.certificate, good.key, encoded)
