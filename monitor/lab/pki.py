"""A throw-away PKI for the demo lab and the tests: a CA and leaf certificates it signs, as PEM
bytes.

EC P-256 keys keep generation fast enough to make fresh certificates per test. Validity windows
are parameters so TLS tests can make expired or not-yet-valid certificates as easily as good ones
(by default a CA runs a year and a leaf 90 days: far from any expiry warning);
RSA keys of a chosen size, intermediates, CN-only leaves and SHA-1 signatures make the weak and
broken chains the tls probe must name.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key; the objects sign further certificates."""

    certificate: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, folder: Path, stem: str) -> tuple[Path, Path]:
        """Write `<stem>.crt` and `<stem>.key` into `folder`, for APIs that only read files."""
        cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        return cert_path, key_path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        return x509.DNSName(entry)


def _key(rsa_bits: int | None) -> PrivateKey:
    if rsa_bits is None:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)


def _der(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


_SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
_SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d010105")


def _sign(builder: x509.CertificateBuilder, key: PrivateKey, sha1: bool) -> x509.Certificate:
    """Sign with SHA-256, or with SHA-1 for weak-signature tests.

    cryptography 50 no longer signs certificates with SHA-1, but still makes raw PKCS#1 v1.5
    SHA-1 signatures: the SHA-256 to-be-signed part gets the SHA-1 algorithm identifier (an OID
    of the same length), is signed with SHA-1, and is wrapped into a certificate by hand.
    """
    certificate = builder.sign(key, hashes.SHA256())
    if not sha1:
        return certificate
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("SHA-1 test signatures need an RSA issuer key")
    tbs = certificate.tbs_certificate_bytes
    if tbs.count(_SHA256_WITH_RSA) != 1:
        raise ValueError("cannot locate the signature algorithm in the certificate")
    tbs = tbs.replace(_SHA256_WITH_RSA, _SHA1_WITH_RSA)
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    algorithm = _der(0x30, _SHA1_WITH_RSA + b"\x05\x00")
    der = _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


def make_ca(
    common_name: str = "commwatch test CA",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    *,
    issuer: Issued | None = None,
    path_length: int | None = 0,
    rsa_bits: int | None = None,
    sha1: bool = False,
    key: PrivateKey | None = None,
    extensions: Sequence[x509.ExtensionType] = (),
) -> Issued:
    """A CA certificate allowed to sign leaf certificates: self-signed, or an intermediate
    signed by `issuer` (whose own path_length must allow it, e.g. None). `key` reuses a given
    key instead of a new one; `extensions` are added critical (e.g. NameConstraints)."""
    key = key or _key(rsa_bits)
    start = not_before or _now() - datetime.timedelta(days=1)
    signer = issuer.key if issuer is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.certificate.subject if issuer is not None else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    return Issued(_sign(builder, signer, sha1), key)


def make_leaf(
    ca: Issued,
    sans: Sequence[str],
    common_name: str | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    *,
    rsa_bits: int | None = None,
    sha1: bool = False,
    client: bool = False,
    extensions: Sequence[x509.ExtensionType] = (),
    usages: Sequence[x509.ObjectIdentifier] | None = None,
) -> Issued:
    """A server certificate (a client one with `client`) signed by `ca` for `sans` (IP literals
    and DNS names). No `sans` but a `common_name` makes a CN-only certificate, as old gear has.
    `usages` overrides the extended key usages; `extensions` are added non-critical (an OCSP
    responder's or CRL's address, say)."""
    if not sans and not common_name:
        raise ValueError("a leaf certificate needs a subject alternative name or a common name")
    key = _key(rsa_bits)
    start = not_before or _now() - datetime.timedelta(days=1)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name or sans[0]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages or [usage])), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False
        )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return Issued(_sign(builder, ca.key, sha1), key)


def server_context(
    leaf: Issued, folder: Path, chain: Sequence[Issued] = (), legacy: bool = False
) -> ssl.SSLContext:
    """A server-side SSLContext presenting `leaf`, then `chain` in that order (files are written
    to `folder`). `legacy` lowers OpenSSL's security level so weak keys and SHA-1 can be served."""
    cert_path, key_path = leaf.write(folder, "server")
    cert_path.write_bytes(leaf.cert_pem + b"".join(c.cert_pem for c in chain))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if legacy:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(cert_path, key_path)
    return context
