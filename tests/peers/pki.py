"""A throw-away PKI for tests: a CA and leaf certificates it signs, as PEM bytes.

EC P-256 keys keep generation fast enough to make fresh certificates per test. Validity windows
are parameters so TLS tests can make expired or not-yet-valid certificates as easily as good ones.
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
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key; the objects sign further certificates."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

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


def make_ca(
    common_name: str = "commwatch test CA",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    parent: Issued | None = None,
) -> Issued:
    """A self-signed CA certificate allowed to sign leaf certificates; with `parent`, an
    intermediate CA signed by `parent` instead."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - datetime.timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(parent.certificate.subject if parent else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .sign(parent.key if parent else key, hashes.SHA256())
    )
    return Issued(certificate, key)


def make_leaf(
    ca: Issued,
    sans: Sequence[str],
    common_name: str | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    extensions: Sequence[x509.ExtensionType] = (),
    usages: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.SERVER_AUTH,),
) -> Issued:
    """A server certificate signed by `ca` for `sans` (IP literals and DNS names), with the
    extended key `usages` and any further non-critical `extensions` (see `revocation_urls`)."""
    if not sans:
        raise ValueError("a leaf certificate needs at least one subject alternative name")
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - datetime.timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name or sans[0]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    for extension in extensions:
        certificate = certificate.add_extension(extension, critical=False)
    return Issued(certificate.sign(ca.key, hashes.SHA256()), key)


def revocation_urls(
    ocsp_url: str | None = None, crl_url: str | None = None
) -> list[x509.ExtensionType]:
    """The extensions that tell a client where to ask about revocation: an Authority Information
    Access entry for the OCSP responder and a CRL distribution point, for `make_leaf`."""
    extensions: list[x509.ExtensionType] = []
    if ocsp_url is not None:
        location = x509.UniformResourceIdentifier(ocsp_url)
        extensions.append(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, location)]
            )
        )
    if crl_url is not None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        extensions.append(x509.CRLDistributionPoints([point]))
    return extensions


def server_context(leaf: Issued, folder: Path) -> ssl.SSLContext:
    """A server-side SSLContext presenting `leaf` (files are written to `folder`)."""
    cert_path, key_path = leaf.write(folder, "server")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
