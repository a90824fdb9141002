"""Revocation through the tls probe: a real TLS server serves a leaf whose OCSP responder (a
local scripted one, signing with the issuer's key) says good, revoked, or nothing usable."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import Severity
from monitor.engine.runner import run_check
from tests.peers.ocsp_peers import scripted_server
from tests.peers.pki import make_ca, make_leaf, revocation_urls, server_context
from tests.peers.tcp_peers import closed_port
from tests.peers.tls_peers import tls_server


def _days(n: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=n)


@pytest.fixture(scope="module")
def chain():
    root = make_ca("revocation e2e root", not_after=_days(3650), path_length=None)
    issuer = make_ca("revocation e2e issuer", issuer=root, not_after=_days(1000))
    return root, issuer


async def probe_with(chain, tmp_path: Path, shared, ocsp_url: str, **values):
    root, issuer = chain
    leaf = make_leaf(
        issuer, ["127.0.0.1"], not_after=_days(90), extensions=revocation_urls(ocsp_url=ocsp_url)
    )
    (tmp_path / "root.pem").write_bytes(root.cert_pem)
    with tls_server(server_context(leaf, tmp_path, (issuer,))) as port:
        check = adhoc_check(
            "tls",
            {
                "target": f"127.0.0.1:{port}",
                "ca_file": str(tmp_path / "root.pem"),
                "ocsp": True,
                "timeout": "3s",
                **values,
            },
        )
        return await run_check(check, shared)


@pytest.mark.parametrize(
    ("case", "status", "severity"),
    [
        ("good", "good", Severity.OK),
        ("revoked", "revoked", Severity.CRIT),
        ("foreign-signer", "unavailable", Severity.WARN),
    ],
)
async def test_ocsp_answer_decides_the_verdict(chain, tmp_path, shared, case, status, severity):
    async with scripted_server(chain[1]) as responder:
        result = await probe_with(chain, tmp_path, shared, responder.url(f"ocsp/{case}"))
        assert responder.requests[f"ocsp/{case}"] == 1
    assert result.observations["revocation"] == status
    assert result.observations["revocation_method"] == "ocsp"
    assert result.severity is severity, result.summary()
    if severity is not Severity.OK:
        assert result.observations["revocation_detail"] in result.summary()


async def test_unreachable_responder_is_a_warning_not_an_outage(chain, tmp_path, shared):
    result = await probe_with(
        chain, tmp_path, shared, f"http://127.0.0.1:{closed_port()}/", revocation_timeout="1s"
    )
    assert result.error is None
    assert result.observations["revocation"] == "unavailable"
    assert result.severity is Severity.WARN


async def test_revocation_off_asks_nobody(chain, tmp_path, shared):
    async with scripted_server(chain[1]) as responder:
        result = await probe_with(
            chain, tmp_path, shared, responder.url("ocsp/revoked"), ocsp=False
        )
        assert responder.requests["ocsp/revoked"] == 0
    assert "revocation" not in result.observations
    assert result.severity is Severity.OK
