"""Interception seen from several places, through a real nats-server and a real central: three
vantage points probe one TLS endpoint with the real tls probe; one of them is answered by an
interceptor of the test (another server, its certificate for the same name from another CA,
as a middlebox re-signing TLS would present), and the central names it and what each saw."""

from __future__ import annotations

import datetime
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from nats.js.client import JetStreamContext

from monitor.cluster.stream import VANTAGE_HEADER
from monitor.config.checks import adhoc_check
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.model import CertificateInfo, ProbeResult, Severity, VantageResult
from monitor.engine.interception import interception_verdict
from monitor.engine.runner import run_check
from monitor.output.records import result_record
from probes.base import SharedResources
from tests.central_support import VIEWER, VIEWER_ENV, central, jetstream, publish, state_document
from tests.peers.nats_peers import NatsServer, running_nats
from tests.peers.pki import Issued, make_ca, make_leaf, server_context
from tests.peers.tls_peers import LOOPBACK, tls_server

CHECK = "north/wan/gw"


@pytest.fixture(autouse=True)
def viewer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VIEWER_ENV, VIEWER)


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    server: NatsServer
    async with running_nats(tmp_path / "nats") as server, jetstream(server.url) as context:
        yield context


def later(days: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)


def fingerprint(issued: Issued) -> str:
    return issued.certificate.fingerprint(hashes.SHA256()).hex()


def inventory(tmp_path: Path, bundle: Path) -> Inventory:
    path = tmp_path / "inventory.yaml"
    # The central probes nothing: the target is what the vantage points name.
    path.write_text(
        f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
        "defaults: {retries: 1}\n"
        "sites:\n  - id: north\n    links:\n      - id: wan\n        checks:\n"
        f"          - {{id: gw, kind: tls, target: '{LOOPBACK}:5223', ca_file: {bundle}, "
        "vantage: [psap-north, noc, dispatch], quorum: 2}\n"
    )
    return load_inventory(path)


async def probed(shared: SharedResources, port: int, bundle: Path) -> ProbeResult:
    check = adhoc_check(
        "tls", {"target": f"{LOOPBACK}:{port}", "ca_file": str(bundle), "timeout": "3s"}
    )
    return await run_check(check, shared)


async def test_a_vantage_point_shown_another_key_is_named_with_what_each_saw(
    tmp_path: Path, js: JetStreamContext, shared: SharedResources
) -> None:
    real_ca = make_ca("XMPP Service CA", not_after=later(3650))
    interceptor_ca = make_ca("Transit Interception CA", not_after=later(3650))
    bundle = tmp_path / "trusted.pem"  # both trusted: the chain alone cannot tell them apart
    bundle.write_bytes(real_ca.cert_pem + interceptor_ca.cert_pem)
    real = make_leaf(real_ca, [LOOPBACK], not_after=later(80))
    forged = make_leaf(interceptor_ca, [LOOPBACK], not_after=later(80))
    (tmp_path / "real").mkdir()
    (tmp_path / "forged").mkdir()
    inv = inventory(tmp_path, bundle)
    ref = inv.checks[0].ref
    with (
        tls_server(server_context(real, tmp_path / "real")) as real_port,
        tls_server(server_context(forged, tmp_path / "forged")) as forged_port,
    ):
        # psap-north and dispatch reach the service; noc's path is intercepted.
        ports = {"psap-north": real_port, "noc": forged_port, "dispatch": real_port}
        seen = {name: await probed(shared, port, bundle) for name, port in ports.items()}
    now = time.time()
    async with central(js, inv, watched=CHECK) as c:
        for offset, (name, result) in enumerate(seen.items()):
            assert result.severity is Severity.OK, result.summary()  # each alone looks fine
            as_agent = replace(result, check=ref, started_at=now + offset * 0.1)
            await publish(js, as_agent, agent=name, headers={VANTAGE_HEADER: name})
        await c.seen.until(lambda: len(c.seen.results) == 3)
        combined = c.seen.results[-1]
        document = await state_document(c)

    [verdict] = [v for v in combined.verdicts if v.condition == "interception"]
    assert verdict.severity is Severity.WARN
    assert combined.severity is Severity.WARN
    assert verdict.reason == f"possible interception between noc and {LOOPBACK}:5223"
    key = {n: seen[n].certificates[0].spki_sha256 for n in seen}
    assert verdict.finding == (
        f"possible interception between noc and {LOOPBACK}:5223: different leaf keys at the same "
        f"time; psap-north saw leaf {fingerprint(real)[:16]} (key sha256/{key['psap-north']}, "
        f"issuer CN=XMPP Service CA); noc saw leaf {fingerprint(forged)[:16]} "
        f"(key sha256/{key['noc']}, issuer CN=Transit Interception CA); dispatch saw leaf "
        f"{fingerprint(real)[:16]} (key sha256/{key['dispatch']}, issuer CN=XMPP Service CA)"
    )
    assert "possible interception between noc" in combined.summary()
    # Before the third vantage point reported, two disagreed and neither had a majority.
    second = [v for v in c.seen.results[1].verdicts if v.condition == "interception"]
    assert (
        second[0].reason == f"possible interception between psap-north or noc and {LOOPBACK}:5223"
    )
    assert not [v for v in c.seen.results[0].verdicts if v.condition == "interception"]
    # The API's state document carries it as any verdict.
    [entry] = [e for e in document["checks"] if e["check_id"] == CHECK]
    conditions = {v["condition"]: v["severity"] for v in entry["last_result"]["verdicts"]}
    assert conditions["interception"] == "WARN"
    assert result_record(combined)["severity"] == "WARN"


def info(spki: str, *chain: str) -> tuple[CertificateInfo, ...]:
    return tuple(
        CertificateInfo(
            fp, n, "CN=x", "CN=ca", "01", 0.0, 1e10, "EC", 256, "ecdsa", (), spki, False
        )
        for n, fp in enumerate(chain)
    )


def part(name: str, certificates: tuple[CertificateInfo, ...], fresh: bool = True) -> Any:
    from monitor.core.model import CheckRef

    ref = CheckRef("s/l/c", "s", "s/l", "tls", "h:443", "h")
    return VantageResult(
        name, ProbeResult(ref, 0.0, 1.0, Severity.OK, certificates=certificates), fresh
    )


def test_a_reissued_certificate_for_the_same_key_is_the_same_server() -> None:
    """A renewal that keeps its key, seen by one vantage point a poll before the other."""
    same_key = [part("a", info("K", "leaf1", "int")), part("b", info("K", "leaf2", "int"))]
    verdict = interception_verdict("h:443", same_key)
    assert verdict is not None and verdict.severity is Severity.OK
    assert verdict.finding == "same certificate from a and b"


def test_the_same_key_under_another_chain_is_named_as_a_chain_difference() -> None:
    parts = [part("a", info("K", "leaf", "int1")), part("b", info("K", "leaf", "int2"))]
    verdict = interception_verdict("h:443", parts)
    assert verdict is not None and verdict.severity is Severity.WARN
    assert "different chains at the same time" in verdict.finding


def test_only_fresh_results_with_certificates_are_compared() -> None:
    stale = [part("a", info("K", "leaf")), part("b", info("X", "other"), fresh=False)]
    assert interception_verdict("h:443", stale) is None
    refused = [part("a", info("K", "leaf")), part("b", ())]
    assert interception_verdict("h:443", refused) is None
