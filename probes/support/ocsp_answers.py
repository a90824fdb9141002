"""OCSP: the request for one certificate, and the judgement of a responder's answer.

An answer is trusted only after `cryptography` has checked its signature (by the issuer, or by
a responder certificate the issuer delegated OCSP signing to), that it answers for exactly the
certificate asked about, that it echoes our nonce when it echoes one, and that it is fresh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from probes.support.certificate_reader import REFUSALS, describe_refusal
from probes.support.revocation_answers import (
    CLOCK_SKEW,
    Answered,
    RevocationStatus,
    Unusable,
    check_freshness,
    timestamp,
    when,
)

_NONCE_BYTES = 16
# What a delegate's certificate may fail with when checked against the issuer.
_NOT_ISSUED: tuple[type[Exception], ...] = (*REFUSALS, InvalidSignature)


@dataclass(frozen=True)
class OcspRequest:
    """A DER request for one certificate, with the nonce it carries and its CertID's issuer
    key hash (which, with the serial, identifies the answer in a cache)."""

    body: bytes
    nonce: bytes
    issuer_key_hash: bytes


def request_for(leaf: x509.Certificate, issuer: x509.Certificate) -> OcspRequest:
    nonce = os.urandom(_NONCE_BYTES)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    return OcspRequest(
        request.public_bytes(serialization.Encoding.DER), nonce, request.issuer_key_hash
    )


def issuer_hashes(
    leaf: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes]:
    """(issuer name hash, issuer key hash) of a CertID made with `algorithm`."""
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm).build()
    return request.issuer_name_hash, request.issuer_key_hash


def serial(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "X")


def _verify_signature(
    key: object,
    signature: bytes,
    data: bytes,
    algorithm: hashes.HashAlgorithm | None,
    oid: x509.ObjectIdentifier,
) -> None:
    """Raise InvalidSignature unless `key` made `signature` over `data`."""
    if isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        scheme: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO)
            if oid == SignatureAlgorithmOID.RSASSA_PSS
            else padding.PKCS1v15()
        )
        key.verify(signature, data, scheme, algorithm)
    elif isinstance(key, dsa.DSAPublicKey) and algorithm is not None:
        key.verify(signature, data, algorithm)
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
    else:
        raise InvalidSignature(f"no way to verify with a {type(key).__name__}")


def _signed_by(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    try:
        _verify_signature(
            certificate.public_key(),
            response.signature,
            response.tbs_response_bytes,
            response.signature_hash_algorithm,
            response.signature_algorithm_oid,
        )
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


def _check_responder(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: float
) -> str | None:
    """Who signed the response: None for the issuer, a delegate's subject; else Unusable."""
    if _signed_by(response, issuer):
        return None
    delegates = [cert for cert in response.certificates if _signed_by(response, cert)]
    if not delegates:
        included = len(response.certificates)
        raise Unusable(
            "response signature verifies with neither the issuer's key nor "
            + (
                f"any of the {included} certificates it includes"
                if included
                else "a responder certificate (none included)"
            )
        )
    delegate = delegates[0]
    subject = delegate.subject.rfc4514_string()
    try:
        delegate.verify_directly_issued_by(issuer)
    except _NOT_ISSUED:
        raise Unusable(
            f"responder certificate {subject} is not issued by {issuer.subject.rfc4514_string()}"
        ) from None
    try:
        usages = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        raise Unusable(f"responder certificate {subject} lacks the OCSPSigning key usage")
    if not (
        delegate.not_valid_before_utc.timestamp() - CLOCK_SKEW
        <= now
        <= delegate.not_valid_after_utc.timestamp() + CLOCK_SKEW
    ):
        raise Unusable(
            f"responder certificate {subject} is outside its validity "
            f"({when(delegate.not_valid_before_utc.timestamp())} to "
            f"{when(delegate.not_valid_after_utc.timestamp())})"
        )
    return subject


def _matching_single(
    response: ocsp.OCSPResponse, leaf: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    answered = []
    hashes_by_algorithm: dict[str, tuple[bytes, bytes]] = {}
    for single in response.responses:
        # Responders may answer with another CertID hash than asked (openssl's -rcid).
        algorithm = single.hash_algorithm
        if algorithm.name not in hashes_by_algorithm:
            hashes_by_algorithm[algorithm.name] = issuer_hashes(leaf, issuer, algorithm)
        matches_issuer = (single.issuer_name_hash, single.issuer_key_hash) == (
            hashes_by_algorithm[algorithm.name]
        )
        if single.serial_number == leaf.serial_number and matches_issuer:
            return single
        answered.append(
            f"serial {single.serial_number:X}" + ("" if matches_issuer else " of another issuer")
        )
    raise Unusable(
        f"response is not about serial {serial(leaf)} of this issuer"
        f" (it answers for {', '.join(answered) or 'nothing'})"
    )


def judge(
    data: bytes,
    request: OcspRequest,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    url: str,
    now: float,
) -> RevocationStatus:
    """The status `data`, the answer of `url` to `request`, gives `leaf`; else Unusable."""
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        raise Unusable(f"not an OCSP response ({len(data)} bytes that do not parse)") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise Unusable(f"responder refused to answer: {response.response_status.name}")
    try:
        single = _matching_single(response, leaf, issuer)
        delegate = _check_responder(response, issuer, now)
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            # Responders that pre-sign their answers (most CAs and CDNs) echo no nonce.
            echoed = request.nonce
        if echoed != request.nonce:
            raise Unusable("response nonce does not match the request's (a replayed answer?)")
        answered = Answered(
            "ocsp", url, single.this_update_utc.timestamp(), timestamp(single.next_update_utc)
        )
        check_freshness("response", answered.this_update, answered.next_update, now)
        status = single.certificate_status
        revoked_at = timestamp(single.revocation_time_utc)
        reason = single.revocation_reason.value if single.revocation_reason else None
    except REFUSALS as exc:
        raise Unusable(f"malformed OCSP response: {describe_refusal(exc)}") from None
    signer = f" (signed by delegated responder {delegate})" if delegate else ""
    if status is ocsp.OCSPCertStatus.REVOKED:
        return answered.revoked(revoked_at, reason, signer)
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        return answered.status("unknown", f"OCSP {url} does not know serial {serial(leaf)}{signer}")
    return answered.status("good", f"good per OCSP {url}{signer}")
