"""Is a certificate revoked? OCSP first, the issuer's CRL as fallback, answers cached.

`check_revocation` never raises for anything a responder or a CRL server does: every failure to
get a valid answer becomes status "unavailable" with a one-line reason, and a certificate that
names neither an OCSP responder nor a CRL is "not_checked" (information, not a failure). What
makes an answer valid is judged in probes/support/ocsp_answers.py and crl_answers.py; answers
are kept in a `RevocationCache` (probes/support/revocation_cache.py). Both methods try the
certificate's URLs the same way (`_Sources`): http:// only, a few at most, in the order listed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID
from yarl import URL

from monitor.core.failures import classify, describe_error
from monitor.core.text import one_line
from probes.support import crl_answers, ocsp_answers
from probes.support.certificate_reader import REFUSALS, describe_refusal
from probes.support.revocation_answers import RevocationStatus, Unusable, unavailable
from probes.support.revocation_cache import CrlEntry, FailedFetch, RevocationCache

OCSP_MAX_BYTES = 64 * 1024
CRL_MAX_BYTES = 10 * 1024 * 1024
# Responder and CRL URLs tried per certificate, in the order the certificate lists them.
MAX_URLS = 3
_READ_CHUNK = 65536


def _network_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"malformed HTTP response: {one_line(exc.message)}"
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
                raise Unusable(f"HTTP {response.status} {response.reason or ''}".rstrip())
            if response.content_length is not None and response.content_length > limit:
                response.close()
                raise Unusable(
                    f"answer of {response.content_length} bytes is over the {limit}-byte limit"
                )
            received = bytearray()
            while chunk := await response.content.read(_READ_CHUNK):
                received += chunk
                if len(received) > limit:
                    # Closed, not drained: the rest of a huge answer is never read.
                    response.close()
                    raise Unusable(f"answer is over the {limit}-byte limit")
            return bytes(received)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise Unusable(_network_failure(exc, timeout)) from exc
    except ValueError as exc:
        # yarl and aiohttp refuse some URLs a certificate may carry (bad port, bad host).
        raise Unusable(f"unusable URL: {exc}") from exc


@dataclass
class _Sources:
    """A certificate's URLs for one method (ocsp, crl), tried in order, and why each failed."""

    method: str
    usable: list[str]
    problems: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, method: str, urls: list[str]) -> _Sources:
        usable, refused = _http_urls(urls, method.upper())
        return cls(method, usable, refused)

    async def first_answer(
        self, ask: Callable[[str], Awaitable[RevocationStatus]]
    ) -> RevocationStatus:
        """The answer of the first URL that gives one; else "unavailable", with every reason."""
        for url in self.usable:
            try:
                return await ask(url)
            except Unusable as exc:
                self.problems.append(f"{self.method.upper()} {url}: {exc}")
        return self.unavailable()

    def unavailable(self) -> RevocationStatus:
        return unavailable(self.method, self.problems, self.usable[-1] if self.usable else None)


@dataclass(frozen=True)
class _Asking:
    """One certificate's revocation, asked of the URLs it names."""

    leaf: x509.Certificate
    issuer: x509.Certificate
    timeout: float  # for each exchange
    cache: RevocationCache
    session: aiohttp.ClientSession
    now: float

    async def download(self, url: str, body: bytes | None, limit: int) -> bytes:
        return await _fetch(self.session, url, body=body, limit=limit, timeout=self.timeout)

    async def ocsp(self, urls: list[str]) -> RevocationStatus:
        """The responders' answer, one fetch for every check of this certificate."""
        sources = _Sources.of("ocsp", urls)
        if not sources.usable:
            return sources.unavailable()
        request = ocsp_answers.request_for(self.leaf, self.issuer)

        async def ask(url: str) -> RevocationStatus:
            data = await self.download(url, request.body, OCSP_MAX_BYTES)
            return ocsp_answers.judge(data, request, self.leaf, self.issuer, url, self.now)

        async def fetch() -> tuple[RevocationStatus, float]:
            answer = await sources.first_answer(ask)
            if answer.status == "unavailable":
                return answer, self.now + self.cache.failure_ttl
            return answer, self.cache.expiry(answer.next_update, self.now)

        key = (request.issuer_key_hash, self.leaf.serial_number)
        try:
            return await self.cache.answer(key, fetch, self.now, self.timeout * len(sources.usable))
        except TimeoutError:
            # Another check's fetch of the same answer is still running; it may yet fill the cache.
            failure = f"OCSP {sources.usable[0]}: no answer within {self.timeout:g}s"
            return unavailable("ocsp", [failure], None)

    async def crl(self, urls: list[str]) -> RevocationStatus:
        """The leaf looked up in the first CRL that can be had, each verified CRL kept for every
        certificate of its issuer."""
        sources = _Sources.of("crl", urls)
        issuer_key = ocsp_answers.issuer_hashes(self.leaf, self.issuer, hashes.SHA1())[1]

        async def ask(url: str) -> RevocationStatus:
            async def fetch() -> tuple[CrlEntry, float]:
                try:
                    data = await self.download(url, None, CRL_MAX_BYTES)
                    # Off the event loop: a 10 MiB CRL takes a good part of a second to verify.
                    verified = await asyncio.to_thread(
                        crl_answers.verify, data, self.issuer, self.now
                    )
                except Unusable as exc:
                    return FailedFetch(str(exc)), self.now + self.cache.failure_ttl
                return verified, self.cache.expiry(verified.next_update, self.now)

            try:
                entry = await self.cache.crl((url, issuer_key), fetch, self.now, self.timeout)
            except TimeoutError:
                raise Unusable(f"no answer within {self.timeout:g}s") from None
            if isinstance(entry, FailedFetch):
                raise Unusable(entry.reason)
            return crl_answers.status_of(entry, self.leaf, url)

        return await sources.first_answer(ask)


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
    asking = _Asking(leaf, issuer, timeout, cache, session, now)
    answer: RevocationStatus | None = None
    if ocsp_urls:
        answer = await asking.ocsp(ocsp_urls)
        if answer.status != "unavailable" or not crl_urls:
            return answer
    fallback = await asking.crl(crl_urls)
    if answer is not None and fallback.status == "unavailable":
        return unavailable("crl", [answer.message, fallback.message], fallback.source)
    return fallback
