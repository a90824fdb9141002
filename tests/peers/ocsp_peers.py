"""Revocation peers on 127.0.0.1: openssl's OCSP responder, and a scripted responder and CRL
server that misbehave in every way a client must survive.

openssl's responder keeps its `index.txt` in the format `openssl ca` writes. OpenSSL 3.0's
`ocsp -port` takes a bare port number and listens on every address of the machine; no test may
open a listener beyond loopback, so the responder runs in its one-shot form (`-reqin -
-respout -`) once per request behind an aiohttp front bound to 127.0.0.1. The OCSP answer is
still made and signed entirely by openssl.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from probes.support.der import elements
from tests.hostile.forged_certificates import der
from tests.peers.http_peers import HUGE_BYTES, LOOPBACK
from tests.peers.pki import Issued, make_ca, make_leaf

OPENSSL = "/usr/bin/openssl"
_CHUNK = b"x" * 65536
# How long openssl's answers stay valid (its -nmin): the client caches them this long.
OPENSSL_NEXT_UPDATE_MINUTES = 60


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _index_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%y%m%d%H%M%SZ")


@dataclass(frozen=True)
class IndexEntry:
    """One line of openssl's CA database: a certificate, revoked or not."""

    certificate: x509.Certificate
    revoked_at: datetime.datetime | None = None
    reason: str | None = None  # openssl's names: keyCompromise, superseded, ...

    def line(self) -> str:
        # openssl looks serials up as BN_bn2hex prints them: upper case, whole bytes.
        serial = format(self.certificate.serial_number, "X")
        serial = serial.zfill(len(serial) + len(serial) % 2)
        revoked = ""
        if self.revoked_at is not None:
            revoked = _index_time(self.revoked_at) + (f",{self.reason}" if self.reason else "")
        subject = "".join(
            f"/{attribute.rfc4514_attribute_name}={attribute.value}"
            for attribute in self.certificate.subject
        )
        expiry = _index_time(self.certificate.not_valid_after_utc)
        status = "R" if self.revoked_at is not None else "V"
        return "\t".join((status, expiry, revoked, serial, "unknown", subject)) + "\n"


@dataclass
class Peer:
    """A running peer: its base URL (no trailing slash) and the requests it got, by path."""

    base: str
    requests: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"


@contextlib.asynccontextmanager
async def _serve(app: web.Application, peer_requests: Counter[str]) -> AsyncIterator[Peer]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    try:
        yield Peer(f"http://{LOOPBACK}:{runner.addresses[0][1]}", peer_requests)
    finally:
        await runner.cleanup()


def _require_openssl() -> None:
    if shutil.which(OPENSSL) is None:
        raise RuntimeError(
            f"{OPENSSL} is missing: the OCSP tests need openssl's responder "
            "(Debian package openssl; .ci/run installs it)"
        )


@dataclass
class OpensslPeer(Peer):
    index_path: Path = Path()

    def index(self, *entries: IndexEntry) -> None:
        """Replace the responder's database; openssl reads it afresh for every request."""
        self.index_path.write_text("".join(entry.line() for entry in entries))


@contextlib.asynccontextmanager
async def openssl_responder(
    issuer: Issued, signer: Issued, folder: Path
) -> AsyncIterator[OpensslPeer]:
    """openssl's OCSP responder for certificates `issuer` issued, answers signed by `signer`
    (the issuer itself or a delegated OCSP-signing certificate), with an empty database until
    `peer.index(...)`. POST requests to `peer.url("")`."""
    _require_openssl()
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.txt"
    index.write_text("")
    ca_path, _ = issuer.write(folder, "ca")
    signer_cert, signer_key = signer.write(folder, "responder")
    command = (
        OPENSSL,
        "ocsp",
        "-index",
        str(index),
        "-CA",
        str(ca_path),
        "-rsigner",
        str(signer_cert),
        "-rkey",
        str(signer_key),
        "-nmin",
        str(OPENSSL_NEXT_UPDATE_MINUTES),
        "-reqin",
        "-",
        "-respout",
        "-",
    )
    requests: Counter[str] = Counter()

    async def answer(request: web.Request) -> web.Response:
        requests[request.path] += 1
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(await request.read())
        if process.returncode != 0:
            return web.Response(status=500, text=f"openssl ocsp failed: {err.decode()}")
        return web.Response(body=out, content_type="application/ocsp-response")

    app = web.Application()
    app.router.add_post("/", answer)
    async with _serve(app, requests) as peer:
        yield OpensslPeer(peer.base, requests, index)


def make_crl(
    issuer: Issued,
    revoked: Sequence[tuple[x509.Certificate, datetime.datetime, x509.ReasonFlags | None]] = (),
    last_update: datetime.datetime | None = None,
    next_update: datetime.datetime | None = None,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """A DER CRL in `issuer`'s name listing `revoked`, signed by `signing_key` (default: the
    issuer's own key). Fresh for a day unless the updates are given."""
    start = last_update or _now() - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(start)
        .next_update(next_update or start + datetime.timedelta(days=1))
    )
    for certificate, when, reason in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.serial_number)
            .revocation_date(when)
        )
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    crl = builder.sign(signing_key or issuer.key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


REVOKED_AT = datetime.datetime(2026, 1, 20, 10, 30, 0, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class _Answer:
    """How the scripted responder answers one case."""

    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD
    this_update: datetime.timedelta = datetime.timedelta(minutes=-1)
    next_update: datetime.timedelta | None = datetime.timedelta(hours=1)
    serial_offset: int = 0
    signer: str = "issuer"  # issuer, delegate, delegate-no-eku, delegate-foreign, foreign
    nonce: str = "echo"  # echo, none, wrong
    # Every response extension sent twice (re-signed: only a strict parser minds).
    doubled_extensions: bool = False


ANSWERS: dict[str, _Answer] = {
    "good": _Answer(),
    "good-no-next-update": _Answer(next_update=None),
    "good-no-nonce": _Answer(nonce="none"),
    "revoked": _Answer(status=ocsp.OCSPCertStatus.REVOKED),
    "unknown": _Answer(status=ocsp.OCSPCertStatus.UNKNOWN),
    "delegated": _Answer(signer="delegate"),
    "delegate-no-eku": _Answer(signer="delegate-no-eku"),
    "delegate-foreign": _Answer(signer="delegate-foreign"),
    "foreign-signer": _Answer(signer="foreign"),
    "stale": _Answer(
        this_update=datetime.timedelta(hours=-3), next_update=datetime.timedelta(hours=-2)
    ),
    "future": _Answer(this_update=datetime.timedelta(hours=1)),
    "wrong-serial": _Answer(serial_offset=1),
    "wrong-nonce": _Answer(nonce="wrong"),
    "duplicate-nonce": _Answer(doubled_extensions=True),
}


def _signers(issuer: Issued) -> dict[str, tuple[Issued, bool]]:
    """Who signs for each `_Answer.signer`, and whether its certificate goes in the answer."""
    stranger = make_ca("commwatch stranger CA")
    signing = (ExtendedKeyUsageOID.OCSP_SIGNING,)
    delegate = make_leaf(issuer, ["ocsp.test"], common_name="delegated responder", usages=signing)
    no_eku = make_leaf(issuer, ["ocsp.test"], common_name="server, not responder")
    foreign = make_leaf(stranger, ["ocsp.test"], common_name="foreign responder", usages=signing)
    return {
        "issuer": (issuer, False),
        "delegate": (delegate, True),
        "delegate-no-eku": (no_eku, True),
        "delegate-foreign": (foreign, True),
        "foreign": (stranger, False),
    }


def _scripted_response(
    answer: _Answer, request: ocsp.OCSPRequest, signers: dict[str, tuple[Issued, bool]]
) -> bytes:
    now = _now()
    revoked = answer.status is ocsp.OCSPCertStatus.REVOKED
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
        serial_number=request.serial_number + answer.serial_offset,
        algorithm=request.hash_algorithm,
        cert_status=answer.status,
        this_update=now + answer.this_update,
        next_update=now + answer.next_update if answer.next_update is not None else None,
        revocation_time=REVOKED_AT if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    )
    try:
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        nonce = None
    if nonce is not None and answer.nonce != "none":
        sent = nonce if answer.nonce == "echo" else bytes(reversed(nonce))
        builder = builder.add_extension(x509.OCSPNonce(sent), critical=False)
    signer, included = signers[answer.signer]
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)
    if included:
        builder = builder.certificates([signer.certificate])
    response = builder.sign(signer.key, hashes.SHA256())
    encoded = response.public_bytes(serialization.Encoding.DER)
    return _doubled_extensions(encoded, signer.key) if answer.doubled_extensions else encoded


def _doubled_extensions(encoded: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The response with its responseExtensions each twice, tbsResponseData signed again.

    OCSPResponse ::= SEQUENCE { status, [0] { SEQUENCE { type, OCTET STRING (Basic) } } };
    BasicOCSPResponse ::= SEQUENCE { tbsResponseData, algorithm, signature, [0] certs };
    tbsResponseData ends with [1] responseExtensions.
    """
    (outer,) = elements(encoded)
    status, wrapper = elements(outer.body)
    (response_bytes,) = elements(wrapper.body)
    kind, basic_octets = elements(response_bytes.body)
    (basic,) = elements(basic_octets.body)
    tbs, algorithm, _signature, *certificates = elements(basic.body)
    fields = elements(tbs.body)
    (extensions,) = elements(fields[-1].body)
    doubled = der(0xA1, der(0x30, extensions.body * 2))
    new_tbs = der(0x30, b"".join(f.encoded for f in fields[:-1]) + doubled)
    signature = der(0x03, b"\x00" + key.sign(new_tbs, ec.ECDSA(hashes.SHA256())))
    new_basic = der(
        0x30, new_tbs + algorithm.encoded + signature + b"".join(c.encoded for c in certificates)
    )
    inner = der(0x30, kind.encoded + der(0x04, new_basic))
    return der(0x30, status.encoded + der(0xA0, inner))


@dataclass
class ScriptedPeer(Peer):
    """The scripted responder and CRL server: OCSP at `url("ocsp/CASE")` for each case in
    ANSWERS and the misbehaviours below, CRLs at `url("crl/NAME")` once `crls[NAME]` is set."""

    crls: dict[str, bytes] = field(default_factory=dict)
    # Bytes the huge answers got out before the client hung up.
    sent: Counter[str] = field(default_factory=Counter)


@contextlib.asynccontextmanager
async def scripted_server(issuer: Issued) -> AsyncIterator[ScriptedPeer]:
    signers = _signers(issuer)
    release = asyncio.Event()
    requests: Counter[str] = Counter()
    crls: dict[str, bytes] = {}
    sent: Counter[str] = Counter()

    async def answer(request: web.Request) -> web.StreamResponse:
        case = request.match_info["case"]
        requests[f"ocsp/{case}"] += 1
        body = await request.read()
        if case in ANSWERS:
            parsed = ocsp.load_der_ocsp_request(body)
            der = _scripted_response(ANSWERS[case], parsed, signers)
            return web.Response(body=der, content_type="application/ocsp-response")
        return await MISBEHAVIOURS[case](request, release, sent)

    async def crl(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        requests[f"crl/{name}"] += 1
        if name not in crls:
            return web.Response(status=404)
        return web.Response(body=crls[name], content_type="application/pkix-crl")

    app = web.Application()
    app.router.add_post("/ocsp/{case}", answer)
    app.router.add_get("/crl/{name}", crl)
    async with _serve(app, requests) as peer:
        try:
            yield ScriptedPeer(peer.base, requests, crls, sent)
        finally:
            release.set()


async def _garbage(
    request: web.Request, release: asyncio.Event, sent: Counter[str]
) -> web.Response:
    return web.Response(body=b"\x30\x03garbage, not DER", content_type="application/ocsp-response")


async def _try_later(
    request: web.Request, release: asyncio.Event, sent: Counter[str]
) -> web.Response:
    refusal = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
    return web.Response(
        body=refusal.public_bytes(serialization.Encoding.DER),
        content_type="application/ocsp-response",
    )


async def _server_error(
    request: web.Request, release: asyncio.Event, sent: Counter[str]
) -> web.Response:
    return web.Response(status=500, text="responder broke\n")


async def _hang(request: web.Request, release: asyncio.Event, sent: Counter[str]) -> web.Response:
    await release.wait()
    return web.Response(text="too late\n")


async def _huge(
    request: web.Request, release: asyncio.Event, sent: Counter[str], declared: bool
) -> web.StreamResponse:
    case = request.match_info["case"]
    headers = {"Content-Length": str(HUGE_BYTES)} if declared else {}
    response = web.StreamResponse(headers=headers)
    response.content_type = "application/ocsp-response"
    await response.prepare(request)
    # The client hangs up once it has read its cap; that is the expected end here.
    with contextlib.suppress(ConnectionError):
        for _ in range(HUGE_BYTES // len(_CHUNK)):
            await response.write(_CHUNK)
            sent[case] += len(_CHUNK)
    return response


MISBEHAVIOURS = {
    "garbage": _garbage,
    "try-later": _try_later,
    "server-error": _server_error,
    "hang": _hang,
    # 50 MiB announced in Content-Length, and 50 MiB sent chunked with no length announced.
    "huge": functools.partial(_huge, declared=True),
    "huge-chunked": functools.partial(_huge, declared=False),
}
