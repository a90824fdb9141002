"""Reading one served certificate into what the analysis needs, whatever its encoding.

`cryptography` is strict: on loading, or on reading a field, it refuses certificates that
OpenSSL accepted and a server sent (duplicate extensions, name types it does not support,
dates without seconds, a PrintableString with an `@`, an unknown key algorithm). Each refusal
becomes a finding about that certificate ("malformed certificate: ..."), never the loss of the
chain: what cryptography cannot read comes from OpenSSL's own reading of the same bytes (the
decoded form Python's ssl gives of a peer's certificate), and the raw DER layout
(`probes.support.der`) still places the certificate in its chain and matches pins.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import re
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtensionOID

from monitor.core.model import CertificateInfo
from probes.support import der as raw
from probes.support.cryptography_compat import oid_name

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
WEAK_HASHES = frozenset({"sha1", "md5", "md2", "md4"})
# A result names at most this many subjectAltName entries (a CDN certificate carries hundreds,
# a hostile one thousands); name matching still uses them all.
MAX_SHOWN_NAMES = 100
_MAX_PROBLEMS = 5
_MAX_PROBLEM_CHARS = 160

# What cryptography raises for bytes it refuses to read (a peer's certificate, OCSP answer or
# CRL): not all are ValueErrors.
REFUSALS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
)

# OpenSSL's reading of a certificate: `ssl` decoded form (subject, issuer, serialNumber,
# notBefore, notAfter, subjectAltName), made on demand.
OpenSslReading = Callable[[], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Served:
    """A certificate as a server sent it: its DER, and OpenSSL's reading of it when it came
    from a live connection (None otherwise)."""

    der: bytes
    openssl: OpenSslReading | None = None


@dataclass(frozen=True, slots=True)
class ParsedCertificate:
    """What the analysis needs of one certificate, computed once per fingerprint."""

    info: CertificateInfo
    subject_der: bytes
    issuer_der: bytes
    subject_key_id: bytes | None
    authority_key_id: bytes | None
    is_ca: bool
    has_san: bool
    dns_names: tuple[str, ...]
    ip_addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    weak_key: bool
    weak_signature: bool

    def label(self, position: int) -> str:
        """How a finding names this certificate: its place in the served chain and subject."""
        return f"#{position} {self.info.subject or '(empty subject)'}"


T = TypeVar("T")


class _Reader:
    """Reads fields of one certificate, noting each one that cannot be read and why."""

    def __init__(self, openssl: OpenSslReading | None) -> None:
        self.problems: list[str] = []
        self._openssl = openssl
        self._reading: dict[str, Any] | None = None

    def field(self, what: str, read: Callable[[], T], fallback: T) -> T:
        try:
            return read()
        except UnsupportedAlgorithm:
            # An algorithm this build does not know is not a malformed certificate.
            return fallback
        except REFUSALS as exc:
            self.note(f"{what}: {describe_refusal(exc)}")
            return fallback

    def note(self, problem: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS and problem not in self.problems:
            self.problems.append(_clipped(problem))

    @property
    def openssl(self) -> dict[str, Any]:
        if self._reading is None:
            self._reading = {}
            if self._openssl is not None:
                with contextlib.suppress(ValueError, ssl.SSLError):
                    self._reading = self._openssl()
        return self._reading


def _clipped(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_PROBLEM_CHARS else text[: _MAX_PROBLEM_CHARS - 1] + "…"


_PARSE_ERROR = re.compile(r"ParseError \{ kind: (\w+)(?:.*?location: \[(.*)\])?")


def describe_refusal(exc: BaseException) -> str:
    """Why cryptography refused part of a certificate, in words."""
    if isinstance(exc, x509.DuplicateExtension):
        return f"duplicate extension {_oid_name(exc.oid)}"
    if isinstance(exc, x509.UnsupportedGeneralNameType):
        return f"unsupported general-name type ({exc})"
    if isinstance(exc, x509.InvalidVersion):
        return f"invalid version {exc.parsed_version}"
    text = str(exc)
    match = _PARSE_ERROR.search(text)
    if match is not None:
        kind = re.sub(r"(?<!^)(?=[A-Z])", " ", match.group(1)).lower()
        places = re.findall(r'"([^"]+)"', match.group(2) or "")
        # The innermost field ("Validity::not_before") says more than the variant of the
        # value inside it ("Time::UtcTime").
        fields = [p for p in places if p.rpartition("::")[2][:1].islower()] or places
        return f"{kind} in {fields[-1]}" if fields else kind
    return text or type(exc).__name__


def _algorithm_name(oid: x509.ObjectIdentifier) -> str:
    """An algorithm's name ("ecdsa-with-SHA256"), or its dotted OID when cryptography has none."""
    return oid_name(oid) or oid.dotted_string


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = oid_name(oid)
    return oid.dotted_string if name is None else f"{oid.dotted_string} ({name})"


def _key_facts(key: Any) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if key is None:
        return "unknown", 0
    name = type(key).__name__.removesuffix("PublicKey").lstrip("_")
    return name, 0


def _is_weak_key(key_type: str, bits: int) -> bool:
    if key_type in ("RSA", "DSA"):
        return bits < MIN_RSA_BITS
    if key_type == "EC":
        return bits < MIN_EC_BITS
    return False


# --- OpenSSL's reading, for what cryptography refuses ----------------------------------------

_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_RFC4514_SPECIAL = re.compile(r'([\\,+"<>;=])')


def _name_of(reading: dict[str, Any], key: str) -> str | None:
    """OpenSSL's decoded name as RFC 4514 (last RDN first), or None when it gave none."""
    rdns = reading.get(key)
    if not isinstance(rdns, tuple):
        return None
    parts = []
    for rdn in reversed(rdns):
        pairs = [(_SHORT_NAMES.get(a, a), _RFC4514_SPECIAL.sub(r"\\\1", str(v))) for a, v in rdn]
        parts.append("+".join(f"{attr}={value}" for attr, value in pairs))
    return ",".join(parts)


def _time_of(reading: dict[str, Any], key: str) -> float | None:
    try:
        return float(ssl.cert_time_to_seconds(reading[key]))
    except (KeyError, TypeError, ValueError):
        return None  # OpenSSL itself says "Bad time value"


def _names_of(reading: dict[str, Any]) -> tuple[list[str], list[Any], list[str]] | None:
    """(DNS names, IP addresses, every entry as shown) of OpenSSL's subjectAltName."""
    entries = reading.get("subjectAltName")
    if not isinstance(entries, tuple):
        return None
    dns, ips, shown = [], [], []
    for kind, value in entries:
        if kind == "DNS":
            dns.append(str(value))
        elif kind == "IP Address":
            with contextlib.suppress(ValueError):
                ips.append(ipaddress.ip_address(str(value).strip()))
        shown.append(f"{kind}:{value}")
    return dns, ips, shown


# --- the reading -----------------------------------------------------------------------------


def parse_certificate(der: bytes, openssl: OpenSslReading | None = None) -> ParsedCertificate:
    """Everything the analysis needs of a certificate; never raises for what is in the bytes.
    Fields that cannot be read are noted in `info.malformed` and taken from OpenSSL's reading
    when there is one."""
    reader = _Reader(openssl)
    try:
        layout: raw.CertificateLayout | None = raw.certificate_layout(der)
    except raw.DerError as exc:
        layout = None
        reader.note(f"layout: {exc}")
    with warnings.catch_warnings():
        # A negative serial, say, is a warning today and an exception in a later release:
        # either way it is noted as a finding below, not printed on stderr.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        certificate = reader.field(
            "cannot be read", lambda: x509.load_der_x509_certificate(der), None
        )
        return _read(der, certificate, layout, reader)


@dataclass(frozen=True, slots=True)
class _Fields:
    """The fields of one certificate as read, by cryptography or else from OpenSSL's reading."""

    subject: str
    issuer: str
    serial: str
    not_before: float | None
    not_after: float | None
    key: PublicKeyTypes | None
    extensions: x509.Extensions | None
    signature: str
    hash_name: str  # "" for algorithms without a separate hash (Ed25519): not weak by hash


def _fallback_name(reader: _Reader, key: str) -> str:
    return _name_of(reader.openssl, key) or f"(unreadable {key})"


def _openssl_serial(value: object) -> str:
    """OpenSSL writes a serial in whole bytes ("0A1B"); cryptography's reading has no padding
    ("a1b"). One certificate read either way must show one serial."""
    text = str(value or "")
    try:
        return format(int(text, 16), "x")
    except ValueError:
        return text.lower()


def _fields_from_openssl(reader: _Reader) -> _Fields:
    openssl = reader.openssl
    return _Fields(
        subject=_fallback_name(reader, "subject"),
        issuer=_fallback_name(reader, "issuer"),
        serial=_openssl_serial(openssl.get("serialNumber")),
        not_before=_time_of(openssl, "notBefore"),
        not_after=_time_of(openssl, "notAfter"),
        key=None,
        extensions=None,
        signature="unknown",
        hash_name="",
    )


def _fields_from(certificate: x509.Certificate, reader: _Reader) -> _Fields:
    read = reader.field
    # Read in this order: a malformed certificate's problems are listed as found.
    # An empty subject ("") is read, not unreadable: only None falls back.
    subject = read("subject", lambda: certificate.subject.rfc4514_string(), None)
    issuer = read("issuer", lambda: certificate.issuer.rfc4514_string(), None)
    number = read("serial number", lambda: certificate.serial_number, None)
    if number is not None and number <= 0:
        reader.note("serial number is not positive (RFC 5280 requires it to be)")
    not_before = read("notBefore", lambda: certificate.not_valid_before_utc.timestamp(), None)
    not_after = read("notAfter", lambda: certificate.not_valid_after_utc.timestamp(), None)
    key = read("public key", certificate.public_key, None)
    extensions = read("extensions", lambda: certificate.extensions, None)
    signature = read(
        "signature algorithm",
        lambda: _algorithm_name(certificate.signature_algorithm_oid),
        "unknown",
    )
    algorithm = read("signature hash", lambda: certificate.signature_hash_algorithm, None)
    return _Fields(
        subject=subject if subject is not None else _fallback_name(reader, "subject"),
        issuer=issuer if issuer is not None else _fallback_name(reader, "issuer"),
        serial=format(number, "x") if number is not None else "",
        not_before=not_before,
        not_after=not_after,
        key=key,
        extensions=extensions,
        signature=signature,
        hash_name=algorithm.name if algorithm is not None else "",
    )


def _read(
    der: bytes,
    certificate: x509.Certificate | None,
    layout: raw.CertificateLayout | None,
    reader: _Reader,
) -> ParsedCertificate:
    fields = (
        _fields_from_openssl(reader) if certificate is None else _fields_from(certificate, reader)
    )
    subject, issuer, key, extensions = fields.subject, fields.issuer, fields.key, fields.extensions
    read = reader.field
    if key is None and layout is not None:
        key = read("public key", lambda: serialization.load_der_public_key(layout.public_key), None)
    key_type, bits = _key_facts(key)

    if extensions is not None:
        facts = _extension_facts(extensions, reader)
    else:
        facts = _openssl_extension_facts(reader.openssl)

    if layout is not None:
        subject_der, issuer_der, spki = layout.subject, layout.issuer, layout.public_key
    else:
        subject_der, issuer_der = subject.encode(), issuer.encode()
        spki = (
            key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if key is not None
            else b""
        )
    shown = facts.shown[:MAX_SHOWN_NAMES]
    if len(facts.shown) > MAX_SHOWN_NAMES:
        shown.append(f"(+{len(facts.shown) - MAX_SHOWN_NAMES} more)")
    info = CertificateInfo(
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        position=0,
        subject=subject,
        issuer=issuer,
        serial=fields.serial,
        not_before=fields.not_before,
        not_after=fields.not_after,
        key_type=key_type,
        key_bits=bits,
        signature_algorithm=fields.signature,
        subject_alt_names=tuple(shown),
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode() if spki else "",
        self_signed=subject_der == issuer_der
        and (facts.aki is None or facts.ski is None or facts.aki == facts.ski),
        malformed=tuple(reader.problems),
    )
    return ParsedCertificate(
        info=info,
        subject_der=subject_der,
        issuer_der=issuer_der,
        subject_key_id=facts.ski,
        authority_key_id=facts.aki,
        is_ca=facts.is_ca,
        has_san=facts.has_san,
        dns_names=tuple(n.lower().rstrip(".") for n in facts.dns_names),
        ip_addresses=tuple(facts.ips),
        weak_key=_is_weak_key(key_type, bits),
        weak_signature=fields.hash_name in WEAK_HASHES,
    )


@dataclass(frozen=True, slots=True)
class _ExtensionFacts:
    has_san: bool
    dns_names: list[str]
    ips: list[Any]
    shown: list[str]
    ski: bytes | None
    aki: bytes | None
    is_ca: bool


def _extension_facts(extensions: x509.Extensions, reader: _Reader) -> _ExtensionFacts:
    """What the analysis needs of the extensions, and the findings about them."""

    def value(oid: x509.ObjectIdentifier) -> Any:
        try:
            return extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            return None

    for extension in extensions:
        if extension.critical and isinstance(extension.value, x509.UnrecognizedExtension):
            reader.note(f"unknown critical extension {_oid_name(extension.oid)}")
    san = value(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    dns_names: list[str] = []
    ips: list[Any] = []
    if san is not None:
        if len(san) == 0:
            reader.note("subjectAltName is empty (RFC 5280 requires an entry)")
        dns_names = list(san.get_values_for_type(x509.DNSName))
        ips = list(san.get_values_for_type(x509.IPAddress))
        for name in dns_names:
            if not name.isascii():
                reader.note(f"DNS name {name!r} in the subjectAltName is not ASCII")
                break
    ski = value(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    aki = value(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    constraints = value(ExtensionOID.BASIC_CONSTRAINTS)
    return _ExtensionFacts(
        has_san=san is not None,
        dns_names=dns_names,
        ips=ips,
        shown=[f"DNS:{n}" for n in dns_names] + [f"IP:{a}" for a in ips],
        ski=ski.digest if ski is not None else None,
        aki=aki.key_identifier if aki is not None else None,
        is_ca=bool(constraints is not None and constraints.ca),
    )


def _openssl_extension_facts(reading: dict[str, Any]) -> _ExtensionFacts:
    """The subjectAltName as OpenSSL read it, when cryptography could not read the
    extensions (key identifiers and CA flag unknown: names alone then link the chain)."""
    names = _names_of(reading)
    dns, ips, shown = names if names is not None else ([], [], [])
    return _ExtensionFacts(names is not None, dns, ips, shown, None, None, False)
