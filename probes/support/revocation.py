"""Is a certificate revoked? OCSP first, the issuer's CRL as fallback, answers cached.

`check_revocation` never raises for anything a responder or a CRL server does: every failure to
get a valid answer becomes status "unavailable" with a one-line reason, and a certificate that
names neither an OCSP responder nor a CRL is "not_checked" (information, not a failure). A
response is trusted only after `cryptography` has checked its signature (by the issuer, or by a
responder certificate the issuer delegated OCSP signing to), that it answers for exactly the
certificate asked about, and that it is fresh.

Many endpoints serve the same certificate: `RevocationCache` keeps OCSP answers by (issuer key
hash, serial) and verified CRLs by URL until their nextUpdate, and concurrent lookups of the same
key wait on one request instead of each sending their own.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    SignatureAlgorithmOID,
)
from yarl import URL

from monitor.core.failures import classify, describe_error
from probes.support.certificate_reader import REFUSALS, describe_refusal

OCSP_MAX_BYTES = 64 * 1024
CRL_MAX_BYTES = 10 * 1024 * 1024
# Responder and monitor clocks disagree a little; RFC 5019 deployments allow minutes.
CLOCK_SKEW = 300.0
DEFAULT_TTL = 3600.0
# A responder that is down is asked again after this long, not by every endpoint in between.
FAILURE_TTL = 60.0
_NONCE_BYTES = 16
# Responder and CRL URLs tried per certificate, in the order the certificate lists them.
MAX_URLS = 3
_READ_CHUNK = 65536


@dataclass(frozen=True)
class RevocationStatus:
    method: str  # "ocsp", "crl" or "none"
    # "good", "revoked", "unknown" (the responder does not know the certificate), "unavailable"
    # (no valid answer could be had), "not_checked" (nothing to ask: information, not failure)
    status: str
    message: str
    revoked_at: float | None = None
    reason: str | None = None
    this_update: float | None = None
    next_update: float | None = None
    source: str | None = None


class _Unusable(Exception):
    """A fetch or an answer that cannot be used; the message becomes the status message."""


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """Entries that expire at a given time, the least recently used dropped beyond `size`."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, expires: float) -> None:
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class _VerifiedCrl:
    crl: x509.CertificateRevocationList
    # The CRL's own lookup scans every entry (15 ms for 200,000): with many certificates checked
    # against one large CRL, a set answers the usual "not listed" at once.
    serials: frozenset[int]


_OcspKey = tuple[bytes, int]
_CrlKey = tuple[str, bytes]
_CrlEntry = _VerifiedCrl | RevocationStatus


class RevocationCache:
    """OCSP answers by (issuer key hash, serial) and verified CRLs by (URL, issuer key hash),
    each until its nextUpdate (`default_ttl` when it has none, `failure_ttl` for a failure).

    CRLs are bounded separately because one may be megabytes while an answer is a few hundred
    bytes. Lookups of a key that is being fetched wait for that fetch."""

    def __init__(
        self,
        max_answers: int = 10_000,
        max_crls: int = 16,
        default_ttl: float = DEFAULT_TTL,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        self.default_ttl = default_ttl
        self.failure_ttl = failure_ttl
        self._answers: _Lru[_OcspKey, RevocationStatus] = _Lru(max_answers)
        self._crls: _Lru[_CrlKey, _CrlEntry] = _Lru(max_crls)
        self._inflight: dict[Hashable, asyncio.Task[object]] = {}

    @property
    def size(self) -> int:
        """Entries held (answers and CRLs). Not __len__: an empty cache must not be falsy."""
        return len(self._answers) + len(self._crls)

    def expiry(self, next_update: float | None, now: float) -> float:
        return next_update if next_update is not None else now + self.default_ttl

    async def _get(
        self,
        lru: _Lru[K, V],
        key: K,
        fetch: Callable[[], Awaitable[tuple[V, float]]],
        now: float,
        wait: float,
    ) -> V:
        cached = lru.get(key, now)
        if cached is not None:
            return cached
        task = self._inflight.get((id(lru), key))
        if task is not None:
            # Shielded: a caller that gives up (its own timeout) must not cancel the fetch the
            # others are waiting on.
            async with asyncio.timeout(wait):
                return await asyncio.shield(task)  # type: ignore[return-value]

        async def run() -> V:
            try:
                value, expires = await fetch()
                lru.put(key, value, expires)
                return value
            finally:
                del self._inflight[(id(lru), key)]

        task = asyncio.ensure_future(run())
        self._inflight[(id(lru), key)] = task
        # The fetch bounds itself (a timeout per exchange), so its starter needs no deadline.
        return await asyncio.shield(task)  # type: ignore[return-value]

    async def answer(
        self,
        key: _OcspKey,
        fetch: Callable[[], Awaitable[tuple[RevocationStatus, float]]],
        now: float,
        wait: float,
    ) -> RevocationStatus:
        return await self._get(self._answers, key, fetch, now, wait)

    async def crl(
        self,
        key: _CrlKey,
        fetch: Callable[[], Awaitable[tuple[_CrlEntry, float]]],
        now: float,
        wait: float,
    ) -> _CrlEntry:
        return await self._get(self._crls, key, fetch, now, wait)


def _when(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _timestamp(moment: datetime.datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _serial(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "X")


def _one_line(text: str) -> str:
    # aiohttp's parser errors span lines and point at the fault with a caret line.
    return " ".join(line.strip() for line in text.splitlines() if line.strip(" ^"))


def _network_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"malformed HTTP response: {_one_line(exc.message)}"
    return describe_error(exc, classify(exc), timeout)


def _http_urls(urls: list[str], what: str) -> tuple[list[str], list[str]]:
    """The fetchable http:// URLs (at most MAX_URLS), and why each other one was refused."""
    usable, refused = [], []
    if len(urls) > MAX_URLS:
        # The certificate comes from the server checked: it must not make us try a hundred.
        refused.append(f"{what}: {len(urls) - MAX_URLS} URLs beyond the first {MAX_URLS} skipped")
    for url in urls[:MAX_URLS]:
        try:
            parsed = URL(url)
            # yarl checks the port range only when the port is read.
            scheme, has_host, _port = parsed.scheme, bool(parsed.host), parsed.port
        except ValueError as exc:
            refused.append(f"{what} {url}: not a valid URL ({exc})")
            continue
        if scheme != "http":
            # https would need the very PKI being checked; ldap and file are not fetched at all.
            refused.append(f"{what} {url}: only http:// URLs are fetched")
        elif not has_host:
            refused.append(f"{what} {url}: no host in the URL")
        else:
            usable.append(url)
    return usable, refused


async def _fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: bytes | None,
    limit: int,
    timeout: float,
) -> bytes:
    """GET (or POST `body` as an OCSP request) and read at most `limit` bytes of the answer."""
    headers = (
        {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
        if body is not None
        else {}
    )
    try:
        async with (
            asyncio.timeout(timeout),
            session.request(
                "POST" if body is not None else "GET",
                URL(url, encoded=True),
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as response,
        ):
            if response.status != 200:
                raise _Unusable(f"HTTP {response.status} {response.reason or ''}".rstrip())
            if response.content_length is not None and response.content_length > limit:
                response.close()
                raise _Unusable(
                    f"answer of {response.content_length} bytes is over the {limit}-byte limit"
                )
            received = bytearray()
            while chunk := await response.content.read(_READ_CHUNK):
                received += chunk
                if len(received) > limit:
                    # Closed, not drained: the rest of a huge answer is never read.
                    response.close()
                    raise _Unusable(f"answer is over the {limit}-byte limit")
            return bytes(received)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise _Unusable(_network_failure(exc, timeout)) from exc
    except ValueError as exc:
        # yarl and aiohttp refuse some URLs a certificate may carry (bad port, bad host).
        raise _Unusable(f"unusable URL: {exc}") from exc


def _issuer_hashes(
    leaf: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes]:
    """(issuer name hash, issuer key hash) of a CertID made with `algorithm`."""
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm).build()
    return request.issuer_name_hash, request.issuer_key_hash


def _verify_signature(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None, oid: object
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
    """Who signed the response: None for the issuer, a delegate's subject; else _Unusable."""
    if _signed_by(response, issuer):
        return None
    delegates = [cert for cert in response.certificates if _signed_by(response, cert)]
    if not delegates:
        included = len(response.certificates)
        raise _Unusable(
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
    except (*REFUSALS, InvalidSignature):
        raise _Unusable(
            f"responder certificate {subject} is not issued by {issuer.subject.rfc4514_string()}"
        ) from None
    try:
        usages = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        raise _Unusable(f"responder certificate {subject} lacks the OCSPSigning key usage")
    if not (
        delegate.not_valid_before_utc.timestamp() - CLOCK_SKEW
        <= now
        <= delegate.not_valid_after_utc.timestamp() + CLOCK_SKEW
    ):
        raise _Unusable(
            f"responder certificate {subject} is outside its validity "
            f"({_when(delegate.not_valid_before_utc.timestamp())} to "
            f"{_when(delegate.not_valid_after_utc.timestamp())})"
        )
    return subject


def _check_freshness(what: str, this_update: float, next_update: float | None, now: float) -> None:
    if this_update > now + CLOCK_SKEW:
        raise _Unusable(f"{what} thisUpdate {_when(this_update)} is in the future")
    if next_update is not None and next_update < now - CLOCK_SKEW:
        raise _Unusable(f"{what} is stale: nextUpdate {_when(next_update)} has passed")


def _matching_single(
    response: ocsp.OCSPResponse, leaf: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    answered = []
    hashes_by_algorithm: dict[str, tuple[bytes, bytes]] = {}
    for single in response.responses:
        # Responders may answer with another CertID hash than asked (openssl's -rcid).
        algorithm = single.hash_algorithm
        if algorithm.name not in hashes_by_algorithm:
            hashes_by_algorithm[algorithm.name] = _issuer_hashes(leaf, issuer, algorithm)
        issuer_hashes = hashes_by_algorithm[algorithm.name]
        matches_issuer = (single.issuer_name_hash, single.issuer_key_hash) == issuer_hashes
        if single.serial_number == leaf.serial_number and matches_issuer:
            return single
        answered.append(
            f"serial {single.serial_number:X}" + ("" if matches_issuer else " of another issuer")
        )
    raise _Unusable(
        f"response is not about serial {_serial(leaf)} of this issuer"
        f" (it answers for {', '.join(answered) or 'nothing'})"
    )


def _judge_ocsp(
    data: bytes,
    nonce: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    url: str,
    now: float,
) -> RevocationStatus:
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        raise _Unusable(f"not an OCSP response ({len(data)} bytes that do not parse)") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise _Unusable(f"responder refused to answer: {response.response_status.name}")
    try:
        single = _matching_single(response, leaf, issuer)
        delegate = _check_responder(response, issuer, now)
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            # Responders that pre-sign their answers (most CAs and CDNs) echo no nonce.
            echoed = nonce
        if echoed != nonce:
            raise _Unusable("response nonce does not match the request's (a replayed answer?)")
        this_update = single.this_update_utc.timestamp()
        next_update = _timestamp(single.next_update_utc)
        _check_freshness("response", this_update, next_update, now)
        status = single.certificate_status
        revoked_at = _timestamp(single.revocation_time_utc)
        reason = single.revocation_reason.value if single.revocation_reason else None
    except REFUSALS as exc:
        raise _Unusable(f"malformed OCSP response: {describe_refusal(exc)}") from None
    signer = f" (signed by delegated responder {delegate})" if delegate else ""
    common = {
        "method": "ocsp",
        "this_update": this_update,
        "next_update": next_update,
        "source": url,
    }
    if status is ocsp.OCSPCertStatus.REVOKED:
        # The time is mandatory in a revoked answer; its absence must not turn it into "good".
        since = f" {_when(revoked_at)}" if revoked_at is not None else ""
        because = f" ({reason})" if reason else ""
        return RevocationStatus(
            status="revoked",
            message=f"revoked{since}{because} per OCSP {url}{signer}",
            revoked_at=revoked_at,
            reason=reason,
            **common,
        )
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        return RevocationStatus(
            status="unknown",
            message=f"OCSP {url} does not know serial {_serial(leaf)}{signer}",
            **common,
        )
    return RevocationStatus(status="good", message=f"good per OCSP {url}{signer}", **common)


def _unavailable(method: str, problems: list[str], source: str | None) -> RevocationStatus:
    return RevocationStatus(method, "unavailable", "; ".join(problems), source=source)


async def _check_ocsp(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    urls: list[str],
    timeout: float,
    cache: RevocationCache,
    session: aiohttp.ClientSession,
    now: float,
) -> RevocationStatus:
    usable, problems = _http_urls(urls, "OCSP")
    nonce = os.urandom(_NONCE_BYTES)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    body = request.public_bytes(serialization.Encoding.DER)

    async def fetch() -> tuple[RevocationStatus, float]:
        for url in usable:
            try:
                data = await _fetch(session, url, body=body, limit=OCSP_MAX_BYTES, timeout=timeout)
                answer = _judge_ocsp(data, nonce, leaf, issuer, url, now)
            except _Unusable as exc:
                problems.append(f"OCSP {url}: {exc}")
                continue
            return answer, cache.expiry(answer.next_update, now)
        return _unavailable("ocsp", problems, usable[-1] if usable else None), (
            now + cache.failure_ttl
        )

    if not usable:
        return _unavailable("ocsp", problems, None)
    try:
        return await cache.answer(
            (request.issuer_key_hash, leaf.serial_number), fetch, now, timeout * len(usable)
        )
    except TimeoutError:
        # Another check's fetch of the same answer is still running; it may yet fill the cache.
        return _unavailable("ocsp", [f"OCSP {usable[0]}: no answer within {timeout:g}s"], None)


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise _Unusable(f"not a CRL ({len(data)} bytes that do not parse)") from None


def _judge_crl(data: bytes, issuer: x509.Certificate, now: float) -> _VerifiedCrl:
    crl = _load_crl(data)
    try:
        if crl.issuer != issuer.subject:
            raise _Unusable(
                f"CRL is issued by {crl.issuer.rfc4514_string()},"
                f" not by the certificate's issuer {issuer.subject.rfc4514_string()}"
            )
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise _Unusable("CRL signature does not verify with the issuer's key")
        _check_freshness(
            "CRL", crl.last_update_utc.timestamp(), _timestamp(crl.next_update_utc), now
        )
        return _VerifiedCrl(crl, frozenset(entry.serial_number for entry in crl))
    except REFUSALS as exc:
        raise _Unusable(f"malformed CRL: {describe_refusal(exc)}") from None


def _crl_status(verified: _VerifiedCrl, leaf: x509.Certificate, url: str) -> RevocationStatus:
    crl = verified.crl
    common = {
        "method": "crl",
        "this_update": crl.last_update_utc.timestamp(),
        "next_update": _timestamp(crl.next_update_utc),
        "source": url,
    }
    entry = None
    if leaf.serial_number in verified.serials:
        entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    if entry is None:
        return RevocationStatus(status="good", message=f"not listed in CRL {url}", **common)
    try:
        revoked_at = entry.revocation_date_utc.timestamp()
        try:
            reason: str | None = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason.value
        except x509.ExtensionNotFound:
            reason = None
    except REFUSALS as exc:
        return _unavailable("crl", [f"CRL {url}: malformed entry: {describe_refusal(exc)}"], url)
    because = f" ({reason})" if reason else ""
    return RevocationStatus(
        status="revoked",
        message=f"revoked {_when(revoked_at)}{because} per CRL {url}",
        revoked_at=revoked_at,
        reason=reason,
        **common,
    )


async def _check_crl(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    urls: list[str],
    timeout: float,
    cache: RevocationCache,
    session: aiohttp.ClientSession,
    now: float,
) -> RevocationStatus:
    usable, problems = _http_urls(urls, "CRL")
    issuer_key = _issuer_hashes(leaf, issuer, hashes.SHA1())[1]
    for url in usable:

        async def fetch(url: str = url) -> tuple[_CrlEntry, float]:
            try:
                data = await _fetch(session, url, body=None, limit=CRL_MAX_BYTES, timeout=timeout)
                # Off the event loop: a 10 MiB CRL takes a good part of a second to verify.
                verified = await asyncio.to_thread(_judge_crl, data, issuer, now)
            except _Unusable as exc:
                failure = _unavailable("crl", [f"CRL {url}: {exc}"], url)
                return failure, now + cache.failure_ttl
            return verified, cache.expiry(_timestamp(verified.crl.next_update_utc), now)

        try:
            entry = await cache.crl((url, issuer_key), fetch, now, timeout)
        except TimeoutError:
            problems.append(f"CRL {url}: no answer within {timeout:g}s")
            continue
        if isinstance(entry, RevocationStatus):
            problems.append(entry.message)
            continue
        return _crl_status(entry, leaf, url)
    return _unavailable("crl", problems, usable[-1] if usable else None)


def _locations(leaf: x509.Certificate) -> tuple[list[str], list[str]]:
    """The leaf's OCSP responder URLs and CRL distribution point URLs."""
    ocsp_urls: list[str] = []
    crl_urls: list[str] = []
    try:
        access = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        ocsp_urls = [
            description.access_location.value
            for description in access
            if description.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(description.access_location, x509.UniformResourceIdentifier)
        ]
    except x509.ExtensionNotFound:
        pass
    try:
        points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        crl_urls = [
            name.value
            for point in points
            for name in point.full_name or ()
            if isinstance(name, x509.UniformResourceIdentifier)
        ]
    except x509.ExtensionNotFound:
        pass
    return ocsp_urls, crl_urls


async def check_revocation(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    *,
    ocsp: bool,
    crl: bool,
    timeout: float,
    cache: RevocationCache,
    session: aiohttp.ClientSession,
    now: float | None = None,
) -> RevocationStatus:
    """The revocation status of `leaf`, issued by `issuer`: by OCSP when `ocsp` and the leaf
    names a responder, else (or when no valid OCSP answer came) by CRL when `crl`.

    `timeout` bounds each exchange (each OCSP URL, each CRL download), so the fallback may take
    up to twice as long as OCSP alone. `now` (epoch seconds) replaces the clock for freshness."""
    now = time.time() if now is None else now
    if not (ocsp or crl):
        return RevocationStatus("none", "not_checked", "revocation checking is off")
    try:
        if leaf.issuer != issuer.subject:
            return RevocationStatus(
                "none",
                "unavailable",
                f"{issuer.subject.rfc4514_string()} is not the issuer of this certificate"
                f" ({leaf.issuer.rfc4514_string()} is)",
            )
        ocsp_urls, crl_urls = _locations(leaf)
    except REFUSALS as exc:
        return RevocationStatus(
            "none", "unavailable", f"unreadable certificate: {describe_refusal(exc)}"
        )
    ocsp_urls = ocsp_urls if ocsp else []
    crl_urls = crl_urls if crl else []
    if not ocsp_urls and not crl_urls:
        asked = " and ".join(
            name
            for name, wanted in (
                ("no OCSP responder URL", ocsp),
                ("no CRL distribution point", crl),
            )
            if wanted
        )
        return RevocationStatus("none", "not_checked", f"certificate names {asked}")
    answer: RevocationStatus | None = None
    if ocsp_urls:
        answer = await _check_ocsp(leaf, issuer, ocsp_urls, timeout, cache, session, now)
        if answer.status != "unavailable" or not crl_urls:
            return answer
    fallback = await _check_crl(leaf, issuer, crl_urls, timeout, cache, session, now)
    if answer is not None and fallback.status == "unavailable":
        return _unavailable("crl", [answer.message, fallback.message], fallback.source)
    return fallback
