"""CRLs: a downloaded list verified against the issuer, and one certificate looked up in it.

A CRL is trusted only when it is issued by the certificate's issuer, its signature verifies with
the issuer's key, and it is fresh; verified once, it serves every certificate of that issuer.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from probes.support.certificate_reader import REFUSALS, describe_refusal
from probes.support.revocation_answers import (
    Answered,
    RevocationStatus,
    Unusable,
    check_freshness,
    timestamp,
    unavailable,
)


@dataclass(frozen=True)
class VerifiedCrl:
    crl: x509.CertificateRevocationList
    # The CRL's own lookup scans every entry (15 ms for 200,000): with many certificates checked
    # against one large CRL, a set answers the usual "not listed" at once.
    serials: frozenset[int]

    @property
    def next_update(self) -> float | None:
        return timestamp(self.crl.next_update_utc)


def _load(data: bytes) -> x509.CertificateRevocationList:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise Unusable(f"not a CRL ({len(data)} bytes that do not parse)") from None


def verify(data: bytes, issuer: x509.Certificate, now: float) -> VerifiedCrl:
    """`data` as a CRL `issuer` signed and that is fresh at `now`; else Unusable."""
    crl = _load(data)
    try:
        if crl.issuer != issuer.subject:
            raise Unusable(
                f"CRL is issued by {crl.issuer.rfc4514_string()},"
                f" not by the certificate's issuer {issuer.subject.rfc4514_string()}"
            )
        # A key that cannot sign (X25519, DH) makes cryptography raise TypeError: a REFUSAL.
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise Unusable("CRL signature does not verify with the issuer's key")
        check_freshness("CRL", crl.last_update_utc.timestamp(), timestamp(crl.next_update_utc), now)
        return VerifiedCrl(crl, frozenset(entry.serial_number for entry in crl))
    except REFUSALS as exc:
        raise Unusable(f"malformed CRL: {describe_refusal(exc)}") from None


def status_of(verified: VerifiedCrl, leaf: x509.Certificate, url: str) -> RevocationStatus:
    crl = verified.crl
    answered = Answered("crl", url, crl.last_update_utc.timestamp(), verified.next_update)
    entry = None
    if leaf.serial_number in verified.serials:
        entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    if entry is None:
        return answered.status("good", f"not listed in CRL {url}")
    try:
        revoked_at = entry.revocation_date_utc.timestamp()
        try:
            reason: str | None = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason.value
        except x509.ExtensionNotFound:
            reason = None
    except REFUSALS as exc:
        return unavailable("crl", [f"CRL {url}: malformed entry: {describe_refusal(exc)}"], url)
    return answered.revoked(revoked_at, reason)
