"""Pins the private OID names of `cryptography` that probes/support/cryptography_compat.py reads:
when an upgrade renames or drops them, this fails before a finding loses its words."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from probes.support.certificate_reader import parse_certificate
from probes.support.cryptography_compat import oid_name
from tests.hostile.forged_certificates import BIT_STRING, SEQUENCE, UNKNOWN_OID, Tbs, der
from tests.peers.pki import make_ca, make_leaf


def test_known_oids_have_their_usual_names() -> None:
    assert oid_name(SignatureAlgorithmOID.ECDSA_WITH_SHA256) == "ecdsa-with-SHA256"
    assert oid_name(SignatureAlgorithmOID.RSA_WITH_SHA1) == "sha1WithRSAEncryption"
    assert oid_name(ExtensionOID.SUBJECT_ALTERNATIVE_NAME) == "subjectAltName"


def test_an_oid_cryptography_does_not_know_has_no_name() -> None:
    assert oid_name(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")) is None


def test_a_certificate_signed_with_an_unknown_algorithm_names_its_oid() -> None:
    good = make_leaf(make_ca("compat CA"), ["127.0.0.1"])
    unknown = der(SEQUENCE, UNKNOWN_OID)
    tbs = Tbs.of(good.certificate.tbs_certificate_bytes).with_field(Tbs.SIGNATURE, unknown)
    signature = der(BIT_STRING, b"\x00" + bytes(64))
    parsed = parse_certificate(der(SEQUENCE, tbs.encoded + unknown + signature))
    assert parsed.info.signature_algorithm == "1.3.6.1.4.1.55555.1.1"
    assert parsed.info.subject == good.certificate.subject.rfc4514_string()
