"""Revocation checks against real responders on 127.0.0.1: openssl's OCSP responder, a scripted
responder that signs (or mis-signs) answers with `cryptography`, and a CRL server."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from probes.support.revocation import CRL_MAX_BYTES, OCSP_MAX_BYTES, check_revocation
from probes.support.revocation_answers import RevocationStatus
from probes.support.revocation_cache import RevocationCache
from tests.hostile.forged_certificates import (
    IP_ADDRESS,
    SUBJECT_ALT_NAME,
    X400_ADDRESS,
    der,
    forge,
    subject_alt_name,
)
from tests.peers.http_peers import HUGE_BYTES, closed_port, raw_server
from tests.peers.ocsp_peers import (
    OPENSSL_NEXT_UPDATE_MINUTES,
    REVOKED_AT,
    IndexEntry,
    ScriptedPeer,
    make_crl,
    openssl_responder,
    scripted_server,
)
from tests.peers.pki import Issued, make_ca, make_leaf, revocation_urls

TIMEOUT = 2.0


@dataclass(frozen=True)
class Pki:
    root: Issued
    issuer: Issued
    responder: Issued  # delegated OCSP signer, issued by `issuer`


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = make_ca("commwatch revocation root")
    issuer = make_ca("commwatch issuing CA", issuer=root)
    responder = make_leaf(
        issuer,
        ["ocsp.test"],
        common_name="commwatch OCSP responder",
        usages=(ExtendedKeyUsageOID.OCSP_SIGNING,),
    )
    return Pki(root, issuer, responder)


LeafFactory = Callable[..., x509.Certificate]


@pytest.fixture
def leaf(pki: Pki) -> LeafFactory:
    def make(ocsp_url: str | None = None, crl_url: str | None = None) -> x509.Certificate:
        extensions = revocation_urls(ocsp_url, crl_url)
        return make_leaf(pki.issuer, ["127.0.0.1"], extensions=extensions).certificate

    return make


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def scripted(pki: Pki) -> AsyncIterator[ScriptedPeer]:
    async with scripted_server(pki.issuer) as peer:
        yield peer


@pytest.fixture
def check(
    pki: Pki, session: aiohttp.ClientSession
) -> Callable[..., asyncio.Future[RevocationStatus]]:
    """check_revocation with this module's issuer and a fresh cache unless one is given."""

    def run(
        certificate: x509.Certificate,
        *,
        ocsp: bool = True,
        crl: bool = True,
        timeout: float = TIMEOUT,
        cache: RevocationCache | None = None,
        now: float | None = None,
    ) -> asyncio.Future[RevocationStatus]:
        return asyncio.ensure_future(
            check_revocation(
                certificate,
                pki.issuer.certificate,
                ocsp=ocsp,
                crl=crl,
                timeout=timeout,
                cache=cache if cache is not None else RevocationCache(),
                session=session,
                now=now,
            )
        )

    return run


def _ago(**delta: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(**delta)


# --- openssl's responder -------------------------------------------------------------------


async def test_openssl_good(pki: Pki, leaf: LeafFactory, check, tmp_path: Path) -> None:
    async with openssl_responder(pki.issuer, pki.issuer, tmp_path) as peer:
        certificate = leaf(ocsp_url=peer.url(""))
        # Another certificate first: the responder must pick the serial asked about.
        peer.index(IndexEntry(leaf(), revoked_at=_ago(days=1)), IndexEntry(certificate))
        started = time.time()
        status = await check(certificate)
    assert (status.method, status.status, status.source) == ("ocsp", "good", peer.url(""))
    assert status.message == f"good per OCSP {peer.url('')}"
    assert status.this_update is not None and status.this_update <= started + 1
    assert status.next_update is not None
    assert abs(status.next_update - (status.this_update + OPENSSL_NEXT_UPDATE_MINUTES * 60)) < 5
    assert status.revoked_at is None and status.reason is None
    assert peer.requests["/"] == 1


async def test_openssl_revoked_with_time_and_reason(
    pki: Pki, leaf: LeafFactory, check, tmp_path: Path
) -> None:
    revoked_at = _ago(days=2, hours=3)
    async with openssl_responder(pki.issuer, pki.issuer, tmp_path) as peer:
        certificate = leaf(ocsp_url=peer.url(""))
        peer.index(IndexEntry(certificate, revoked_at=revoked_at, reason="keyCompromise"))
        status = await check(certificate)
    assert (status.method, status.status) == ("ocsp", "revoked")
    assert status.revoked_at == revoked_at.timestamp()
    assert status.reason == "keyCompromise"
    when = revoked_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert status.message == f"revoked {when} (keyCompromise) per OCSP {peer.url('')}"


async def test_openssl_unknown_serial(pki: Pki, leaf: LeafFactory, check, tmp_path: Path) -> None:
    async with openssl_responder(pki.issuer, pki.issuer, tmp_path) as peer:
        certificate = leaf(ocsp_url=peer.url(""))
        peer.index(IndexEntry(leaf()))
        status = await check(certificate)
    assert (status.method, status.status) == ("ocsp", "unknown")
    assert f"does not know serial {certificate.serial_number:X}" in status.message


async def test_openssl_delegated_responder(
    pki: Pki, leaf: LeafFactory, check, tmp_path: Path
) -> None:
    async with openssl_responder(pki.issuer, pki.responder, tmp_path) as peer:
        certificate = leaf(ocsp_url=peer.url(""))
        peer.index(IndexEntry(certificate))
        status = await check(certificate)
    assert status.status == "good"
    assert "signed by delegated responder CN=commwatch OCSP responder" in status.message


async def test_openssl_responder_of_another_ca_is_not_trusted(
    pki: Pki, leaf: LeafFactory, check, tmp_path: Path
) -> None:
    # It answers (status unknown, signed by its own CA, which it includes): not an authority.
    other = make_ca("commwatch other CA")
    async with openssl_responder(other, other, tmp_path) as peer:
        certificate = leaf(ocsp_url=peer.url(""))
        peer.index(IndexEntry(certificate))
        status = await check(certificate)
    assert status.status == "unavailable"
    assert status.message == (
        f"OCSP {peer.url('')}: responder certificate CN=commwatch other CA"
        " is not issued by CN=commwatch issuing CA"
    )


# --- the scripted responder: answers that must not be trusted ------------------------------


async def test_closed_port_is_unavailable(leaf: LeafFactory, check) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    status = await check(leaf(ocsp_url=url))
    assert (status.method, status.status) == ("ocsp", "unavailable")
    assert status.message == f"OCSP {url}: Connection refused"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("good", "good"),
        ("good-no-next-update", "good"),
        ("good-no-nonce", "good"),
        ("revoked", "revoked"),
        ("unknown", "unknown"),
        ("delegated", "good"),
    ],
)
async def test_scripted_answers(
    scripted: ScriptedPeer, leaf: LeafFactory, check, case: str, expected: str
) -> None:
    status = await check(leaf(ocsp_url=scripted.url(f"ocsp/{case}")))
    assert (status.method, status.status) == ("ocsp", expected), status.message
    assert scripted.requests[f"ocsp/{case}"] == 1


async def test_scripted_revoked_details(scripted: ScriptedPeer, leaf: LeafFactory, check) -> None:
    status = await check(leaf(ocsp_url=scripted.url("ocsp/revoked")))
    assert status.revoked_at == REVOKED_AT.timestamp()
    assert status.reason == "keyCompromise"
    assert status.message.startswith("revoked 2026-01-20 10:30:00 UTC (keyCompromise) per OCSP")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("foreign-signer", "verifies with neither the issuer's key nor a responder certificate"),
        ("delegate-no-eku", "CN=server\\, not responder lacks the OCSPSigning key usage"),
        ("delegate-foreign", "CN=foreign responder is not issued by CN=commwatch issuing CA"),
        ("stale", "response is stale: nextUpdate"),
        ("future", "response thisUpdate"),
        ("wrong-serial", "response is not about serial"),
        ("wrong-nonce", "response nonce does not match"),
        ("duplicate-nonce", "malformed OCSP response: duplicate extension 1.3.6.1.5.5.7.48.1.2"),
        ("garbage", "not an OCSP response"),
        ("try-later", "responder refused to answer: TRY_LATER"),
        ("server-error", "HTTP 500 Internal Server Error"),
        ("huge", f"answer of {HUGE_BYTES} bytes is over the {OCSP_MAX_BYTES}-byte limit"),
        ("huge-chunked", f"answer is over the {OCSP_MAX_BYTES}-byte limit"),
    ],
)
async def test_untrustworthy_answers_are_unavailable(
    scripted: ScriptedPeer, leaf: LeafFactory, check, case: str, expected: str
) -> None:
    url = scripted.url(f"ocsp/{case}")
    status = await check(leaf(ocsp_url=url))
    assert (status.method, status.status) == ("ocsp", "unavailable")
    assert status.message.startswith(f"OCSP {url}: ")
    assert expected in status.message
    assert "\n" not in status.message


async def test_huge_answer_is_not_read_to_the_end(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    started = time.perf_counter()
    status = await check(leaf(ocsp_url=scripted.url("ocsp/huge-chunked")))
    assert status.status == "unavailable"
    assert time.perf_counter() - started < 1.0
    # Let the peer notice the hang-up; what it got out is bounded by socket buffers, not 50 MiB.
    await asyncio.sleep(0.1)
    assert scripted.sent["huge-chunked"] < HUGE_BYTES // 4


async def test_hang_is_unavailable_within_timeout(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    started = time.perf_counter()
    status = await check(leaf(ocsp_url=scripted.url("ocsp/hang")), timeout=0.3)
    elapsed = time.perf_counter() - started
    assert status.status == "unavailable"
    assert status.message.endswith("no answer within 0.3s")
    assert 0.25 < elapsed < 1.0


async def test_garbage_http_is_unavailable(leaf: LeafFactory, check) -> None:
    async with raw_server(b"SSH-2.0-OpenSSH_9.2\r\n") as base:
        status = await check(leaf(ocsp_url=f"{base}/"))
    assert status.status == "unavailable"
    assert "malformed HTTP response" in status.message


@pytest.mark.parametrize("url", ["https://127.0.0.1:9/", "ldap://127.0.0.1/cn=ocsp"])
async def test_only_http_urls_are_fetched(leaf: LeafFactory, check, url: str) -> None:
    status = await check(leaf(ocsp_url=url))
    assert status.status == "unavailable"
    assert status.message == f"OCSP {url}: only http:// URLs are fetched"


async def test_invalid_url_is_named(leaf: LeafFactory, check) -> None:
    status = await check(leaf(ocsp_url="http://127.0.0.1:99999/"))
    assert status.status == "unavailable"
    assert status.message == (
        "OCSP http://127.0.0.1:99999/: not a valid URL (Port out of range 0-65535)"
    )


async def test_at_most_three_urls_are_tried(pki: Pki, check) -> None:
    urls = [f"http://127.0.0.1:{closed_port()}/" for _ in range(5)]
    access = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url)
            )
            for url in urls
        ]
    )
    certificate = make_leaf(pki.issuer, ["127.0.0.1"], extensions=[access]).certificate
    status = await check(certificate)
    assert status.status == "unavailable"
    assert status.message.startswith("OCSP: 2 URLs beyond the first 3 skipped; ")
    assert [url in status.message for url in urls] == [True, True, True, False, False]


async def test_answer_judged_at_the_given_time(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    # The responder's answers last an hour: two hours on, the same answer is stale.
    later = time.time() + 2 * 3600
    status = await check(leaf(ocsp_url=scripted.url("ocsp/good")), now=later)
    assert status.status == "unavailable"
    assert "stale" in status.message


async def test_wrong_issuer_is_refused(pki: Pki, session: aiohttp.ClientSession) -> None:
    stranger = make_ca("commwatch stranger CA")
    certificate = make_leaf(pki.issuer, ["127.0.0.1"]).certificate
    status = await check_revocation(
        certificate,
        stranger.certificate,
        ocsp=True,
        crl=True,
        timeout=TIMEOUT,
        cache=RevocationCache(),
        session=session,
    )
    assert status.status == "unavailable"
    assert "is not the issuer of this certificate" in status.message


# --- nothing to ask ------------------------------------------------------------------------


async def test_no_urls_is_not_checked(leaf: LeafFactory, check) -> None:
    status = await check(leaf())
    assert (status.method, status.status) == ("none", "not_checked")
    assert status.message == "certificate names no OCSP responder URL and no CRL distribution point"


async def test_checking_off_is_not_checked(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    certificate = leaf(ocsp_url=scripted.url("ocsp/good"), crl_url=scripted.url("crl/main"))
    status = await check(certificate, ocsp=False, crl=False)
    assert (status.status, status.message) == ("not_checked", "revocation checking is off")
    assert not scripted.requests


# --- CRLs ----------------------------------------------------------------------------------


async def test_crl_listed_is_revoked(
    pki: Pki, scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    certificate = leaf(crl_url=scripted.url("crl/main"))
    revoked_at = _ago(days=1)
    scripted.crls["main"] = make_crl(
        pki.issuer, [(certificate, revoked_at, x509.ReasonFlags.superseded)]
    )
    status = await check(certificate)
    assert (status.method, status.status) == ("crl", "revoked")
    assert (status.revoked_at, status.reason) == (revoked_at.timestamp(), "superseded")
    assert status.message.endswith(f"(superseded) per CRL {scripted.url('crl/main')}")


async def test_crl_not_listed_is_good(
    pki: Pki, scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    other = leaf()
    scripted.crls["main"] = make_crl(pki.issuer, [(other, _ago(days=1), None)])
    status = await check(leaf(crl_url=scripted.url("crl/main")))
    assert (status.method, status.status) == ("crl", "good")
    assert status.message == f"not listed in CRL {scripted.url('crl/main')}"
    assert status.next_update is not None and status.next_update > time.time()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda pki: make_crl(pki.issuer, signing_key=ec.generate_private_key(ec.SECP256R1())),
            "CRL signature does not verify with the issuer's key",
        ),
        (
            lambda pki: make_crl(
                pki.issuer,
                last_update=_ago(days=3),
                next_update=_ago(days=2),
            ),
            "CRL is stale: nextUpdate",
        ),
        (
            lambda pki: make_crl(pki.root),
            "CRL is issued by CN=commwatch revocation root, not by the certificate's issuer",
        ),
        (lambda pki: b"\x30\x82garbage", "not a CRL"),
        (lambda pki: b"x" * (CRL_MAX_BYTES + 1), f"over the {CRL_MAX_BYTES}-byte limit"),
    ],
    ids=["foreign-key", "stale", "other-issuer", "garbage", "oversized"],
)
async def test_bad_crl_is_unavailable(
    pki: Pki, scripted: ScriptedPeer, leaf: LeafFactory, check, make, expected: str
) -> None:
    scripted.crls["main"] = make(pki)
    status = await check(leaf(crl_url=scripted.url("crl/main")))
    assert (status.method, status.status) == ("crl", "unavailable")
    assert status.message.startswith(f"CRL {scripted.url('crl/main')}: ")
    assert expected in status.message


async def test_pem_crl_is_accepted(
    pki: Pki, scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    crl = x509.load_der_x509_crl(make_crl(pki.issuer))
    scripted.crls["main"] = crl.public_bytes(serialization.Encoding.PEM)
    status = await check(leaf(crl_url=scripted.url("crl/main")))
    assert (status.method, status.status) == ("crl", "good")


async def test_unreachable_ocsp_falls_back_to_crl(
    pki: Pki, scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    ocsp_url = f"http://127.0.0.1:{closed_port()}/"
    certificate = leaf(ocsp_url=ocsp_url, crl_url=scripted.url("crl/main"))
    scripted.crls["main"] = make_crl(pki.issuer, [(certificate, _ago(hours=5), None)])
    status = await check(certificate)
    assert (status.method, status.status, status.reason) == ("crl", "revoked", None)
    assert status.source == scripted.url("crl/main")


async def test_both_failing_reports_both(scripted: ScriptedPeer, leaf: LeafFactory, check) -> None:
    certificate = leaf(ocsp_url=scripted.url("ocsp/stale"), crl_url=scripted.url("crl/missing"))
    status = await check(certificate)
    assert (status.method, status.status) == ("crl", "unavailable")
    assert status.message.startswith(f"OCSP {scripted.url('ocsp/stale')}: response is stale")
    assert status.message.endswith(f"; CRL {scripted.url('crl/missing')}: HTTP 404 Not Found")


async def test_ocsp_off_asks_only_the_crl(
    pki: Pki, scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    scripted.crls["main"] = make_crl(pki.issuer)
    certificate = leaf(ocsp_url=scripted.url("ocsp/good"), crl_url=scripted.url("crl/main"))
    status = await check(certificate, ocsp=False)
    assert (status.method, status.status) == ("crl", "good")
    assert scripted.requests["ocsp/good"] == 0


async def test_ocsp_unknown_does_not_fall_back(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    certificate = leaf(ocsp_url=scripted.url("ocsp/unknown"), crl_url=scripted.url("crl/main"))
    status = await check(certificate)
    assert (status.method, status.status) == ("ocsp", "unknown")
    assert scripted.requests["crl/main"] == 0


# --- the cache -----------------------------------------------------------------------------


async def test_same_certificate_is_asked_once(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    cache = RevocationCache()
    certificate = leaf(ocsp_url=scripted.url("ocsp/good"))
    first = await check(certificate, cache=cache)
    second = await check(certificate, cache=cache)
    assert first == second and first.status == "good"
    assert scripted.requests["ocsp/good"] == 1


async def test_concurrent_checks_share_one_request(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    cache = RevocationCache()
    certificate = leaf(ocsp_url=scripted.url("ocsp/good"))
    statuses = await asyncio.gather(*(check(certificate, cache=cache) for _ in range(20)))
    assert {status.status for status in statuses} == {"good"}
    assert scripted.requests["ocsp/good"] == 1


async def test_answer_is_asked_again_after_next_update(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    cache = RevocationCache()
    certificate = leaf(ocsp_url=scripted.url("ocsp/good"))
    first = await check(certificate, cache=cache)
    assert first.next_update is not None
    await check(certificate, cache=cache, now=first.next_update - 60)
    assert scripted.requests["ocsp/good"] == 1
    # Past nextUpdate the cached answer is gone; the new one is judged (stale) at that time.
    again = await check(certificate, cache=cache, now=first.next_update + 3600)
    assert scripted.requests["ocsp/good"] == 2
    assert again.status == "unavailable"


async def test_answer_without_next_update_lasts_the_default_ttl(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    cache = RevocationCache(default_ttl=600)
    certificate = leaf(ocsp_url=scripted.url("ocsp/good-no-next-update"))
    now = time.time()
    for offset in (0, 599, 601):
        await check(certificate, cache=cache, now=now + offset)
    assert scripted.requests["ocsp/good-no-next-update"] == 2


async def test_failure_is_cached_briefly(leaf: LeafFactory, check) -> None:
    async with raw_server(b"garbage\r\n\r\n") as base:
        certificate = leaf(ocsp_url=f"{base}/")
        cache = RevocationCache(failure_ttl=30)
        now = time.time()
        first = await check(certificate, cache=cache, now=now)
    # The peer is gone: an answer within the failure TTL can only come from the cache.
    second = await check(certificate, cache=cache, now=now + 29)
    third = await check(certificate, cache=cache, now=now + 31)
    assert first == second and first.status == "unavailable"
    assert "Connection refused" in third.message


async def test_cache_is_bounded(scripted: ScriptedPeer, leaf: LeafFactory, check) -> None:
    cache = RevocationCache(max_answers=2)
    certificates = [leaf(ocsp_url=scripted.url("ocsp/good")) for _ in range(3)]
    for certificate in [*certificates, certificates[0]]:
        await check(certificate, cache=cache)
    assert cache.size == 2
    # The first was dropped to make room for the third, so it was asked about twice.
    assert scripted.requests["ocsp/good"] == 4


async def test_one_crl_download_serves_many_certificates(
    pki: Pki, scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    cache = RevocationCache()
    certificates = [leaf(crl_url=scripted.url("crl/main")) for _ in range(5)]
    scripted.crls["main"] = make_crl(pki.issuer, [(certificates[0], _ago(days=1), None)])
    statuses = await asyncio.gather(*(check(c, cache=cache) for c in certificates))
    assert [s.status for s in statuses] == ["revoked", "good", "good", "good", "good"]
    assert scripted.requests["crl/main"] == 1


async def test_waiter_on_a_hung_fetch_keeps_its_own_timeout(
    scripted: ScriptedPeer, leaf: LeafFactory, check
) -> None:
    cache = RevocationCache()
    certificate = leaf(ocsp_url=scripted.url("ocsp/hang"))
    slow = check(certificate, cache=cache, timeout=0.5)
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    quick = await check(certificate, cache=cache, timeout=0.2)
    assert time.perf_counter() - started < 0.6
    assert quick.status == "unavailable" and "no answer within 0.2s" in quick.message
    assert (await slow).status == "unavailable"
    assert scripted.requests["ocsp/hang"] == 1


async def test_a_leaf_cryptography_cannot_read_is_unavailable_not_an_exception(
    pki: Pki, check
) -> None:
    """check_revocation never raises for what is in a certificate: a subjectAltName of an
    unsupported name type (cryptography raises a non-ValueError on reading extensions)."""
    good = make_leaf(pki.issuer, ["127.0.0.1"])
    names = subject_alt_name(der(X400_ADDRESS, der(0x30, b"")), der(IP_ADDRESS, b"\x7f\0\0\1"))
    forged = forge(
        good, pki.issuer, lambda t: t.with_extensions([*t.without(SUBJECT_ALT_NAME), names])
    )
    status = await check(x509.load_der_x509_certificate(forged.der))

    assert (status.method, status.status) == ("none", "unavailable")
    assert status.message.startswith("unreadable certificate: unsupported general-name type")
