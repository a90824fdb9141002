"""The sip probe against a real SIP server, Debian's kamailio on loopback (tests/peers/
sip_peers.py): OPTIONS over UDP, TCP and TLS, IPv4 and IPv6, judged by status (200, 404, 500,
503 with and without Retry-After) as configured; the request well formed by kamailio's own
checks; over TLS the certificate judged exactly as a `tls` check judges it, and in the audit.
The probe's hostile peers are in tests/hostile/test_sip_hostile.py."""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import hashes

from monitor.config.checks import adhoc_check
from monitor.config.loader import load_inventory
from monitor.core.model import ErrorClass, ProbeError, ProbeResult, Severity, Verdict
from monitor.core.options import OptionError
from monitor.core.yamlnodes import InventoryErrors
from monitor.engine.runner import run_check
from probes import registry
from probes.base import SharedResources
from probes.support.certificates import certificate_condition_names
from probes.support.sip_message import new_options
from tests.conftest import REPO
from tests.peers.pki import Issued, make_ca, make_leaf, server_context
from tests.peers.sip_peers import LOCALHOST, LOCALHOST6, RETRY_AFTER, Kamailio, running_kamailio
from tests.peers.tls_peers import garbage_server, tls_server
from tui.present import info_text

NAME = "sbc.psap.example.net"
CERTIFICATE_CONDITIONS = certificate_condition_names(
    adhoc_check("tls", {"target": "127.0.0.1:1"}).options
)


@dataclass(frozen=True)
class Server:
    kamailio: Kamailio
    ca_file: str
    leaf: Issued


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("kamailio")
    ca = make_ca("commwatch sip test CA")
    not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=60)
    leaf = make_leaf(ca, [LOCALHOST, LOCALHOST6, NAME], not_after=not_after)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    with running_kamailio(folder, leaf) as kamailio:
        yield Server(kamailio, str(ca_file), leaf)


async def probe(target: str, **values: Any) -> ProbeResult:
    values.setdefault("timeout", "3s")
    return await run_check(adhoc_check("sip", {"target": target, **values}), SharedResources())


def verdict(result: ProbeResult, condition: str) -> Verdict:
    return next(v for v in result.verdicts if v.condition == condition)


def commwatch(*args: str) -> subprocess.CompletedProcess[str]:
    """`commwatch ARGS` in a process of its own, as a user or a monitoring system runs it."""
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )


def uri(server: Server, user: str, tls: bool = False) -> str:
    return f"sip:{user}@{server.kamailio.target(tls=tls)}"


# --- every transport, both families ----------------------------------------------------------


@pytest.mark.parametrize("address", [LOCALHOST, LOCALHOST6])
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_options_is_answered_200_ok_over_every_transport(
    server: Server, transport: str, address: str
) -> None:
    tls = transport == "tls"
    target = server.kamailio.target(address, tls=tls)
    result = await probe(target, transport=transport, ca_file=server.ca_file)
    assert result.severity is Severity.OK, result.summary()
    assert result.error is None
    observations = result.observations
    assert observations["transport"] == transport
    assert (observations["status"], observations["reason"]) == (200, "OK")
    assert str(observations["server"]).startswith("kamailio (")
    assert observations["maintenance"] is False
    assert observations["retransmissions"] == 0
    assert 0 < float(observations["rtt_ms"]) < 3000  # type: ignore[arg-type]
    assert result.check.target == f"{target}/{transport}"
    assert verdict(result, "status").finding == "SIP 200 OK"
    assert result.summary().startswith("SIP 200 OK, latency ")
    judged = {v.condition for v in result.verdicts}
    headline = registry.headline(result, time.time())
    assert headline.facts == ("SIP 200",)
    assert headline.when_ok == (("cert 60d",) if tls else ())
    if tls:
        assert observations["trust"] == "verified"
        assert observations["hostname_match"] is True
        assert [c.position for c in result.certificates] == [0]
        assert "connect_ms" in observations and "handshake_ms" in observations
        assert judged >= CERTIFICATE_CONDITIONS
    else:
        assert result.certificates == ()
        assert not CERTIFICATE_CONDITIONS & judged


def test_the_servers_own_checks_refuse_a_malformed_request(server: Server) -> None:
    """What makes a 200 above mean "well formed": kamailio's sanity module and the checks of
    its configuration answer 400 to a request without the probe's care (here: without rport,
    and with another Max-Forwards)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((LOCALHOST, server.kamailio.sip_port))
        sock.settimeout(3)
        request = new_options(f"sip:{server.kamailio.target()}", None, "UDP", sock.getsockname())
        for broken in (
            request.encode().replace(b";rport", b""),
            request.encode().replace(b"Max-Forwards: 70", b"Max-Forwards: 69"),
            request.encode().replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"),
        ):
            sock.send(broken)
            assert sock.recv(65535).startswith(b"SIP/2.0 400 "), broken
        sock.send(request.encode())
        assert sock.recv(65535).startswith(b"SIP/2.0 200 OK")


# --- what the answer means ---------------------------------------------------------------------


async def test_503_with_retry_after_is_warn_in_maintenance(server: Server) -> None:
    result = await probe(server.kamailio.target(), request_uri=uri(server, "maintenance"))
    assert result.severity is Severity.WARN
    assert result.summary() == f"in maintenance: SIP 503, Retry-After {RETRY_AFTER}s: WARN"
    assert result.observations["retry_after"] == RETRY_AFTER
    assert result.observations["maintenance"] is True
    assert verdict(result, "status").severity is Severity.OK  # the maintenance verdict's
    # The dashboard's narrow column: why it is not OK, then the status.
    assert info_text(result, time.time()) == "in maintenance · SIP 503"


async def test_503_without_retry_after_is_in_maintenance_too(server: Server) -> None:
    result = await probe(server.kamailio.target(), request_uri=uri(server, "maintenance-silent"))
    assert result.severity is Severity.WARN
    assert verdict(result, "maintenance").finding == "in maintenance: SIP 503, no Retry-After"
    assert "retry_after" not in result.observations


@pytest.mark.parametrize(
    ("maintenance_status", "severity", "finding"),
    [
        ("crit", Severity.CRIT, "in maintenance: SIP 503, Retry-After 120s"),
        (
            "ok",
            Severity.OK,
            "in maintenance (accepted: maintenance_status ok): SIP 503, Retry-After 120s",
        ),
    ],
)
async def test_maintenance_status_says_what_a_503_is(
    server: Server, maintenance_status: str, severity: Severity, finding: str
) -> None:
    result = await probe(
        server.kamailio.target(),
        request_uri=uri(server, "maintenance"),
        maintenance_status=maintenance_status,
    )
    assert result.severity is severity, result.summary()
    assert verdict(result, "maintenance").finding == finding


@pytest.mark.parametrize(
    ("user", "values", "severity", "finding"),
    [
        # Alive, but not answering as expected: by default a WARN, one verdict.
        ("nobody", {}, Severity.WARN, "SIP 404 Not Found (expected 200-299)"),
        ("nobody", {"ok_codes": [200, 404]}, Severity.OK, "SIP 404 Not Found"),
        ("nobody", {"ok_codes": "200, 404"}, Severity.OK, "SIP 404 Not Found"),
        # Refusing service: CRIT, unless the operator says it is only worth a warning.
        ("broken", {}, Severity.CRIT, "SIP 500 Server Internal Error (expected 200-299)"),
        ("broken", {"warn_codes": "500-502"}, Severity.WARN, "SIP 500 Server Internal Error"),
        # ok_codes come first: a code in both lists is OK.
        ("nobody", {"ok_codes": "200-299, 404", "warn_codes": "300-499"}, Severity.OK, "SIP 404"),
    ],
)
async def test_the_status_is_judged_by_ok_codes_then_warn_codes(
    server: Server, user: str, values: dict[str, Any], severity: Severity, finding: str
) -> None:
    result = await probe(server.kamailio.target(), request_uri=uri(server, user), **values)
    assert result.severity is severity, result.summary()
    status = verdict(result, "status")
    assert status.severity is severity
    assert status.finding.startswith(finding)
    failing = [v.condition for v in result.failing()]
    assert failing == ([] if severity is Severity.OK else ["status"])


async def test_latency_thresholds_judge_the_round_trip(server: Server) -> None:
    result = await probe(server.kamailio.target(), latency_warn="1ms", latency_crit="2s")
    latency = verdict(result, "latency")
    assert latency.observation == "rtt_ms"
    assert (latency.warn, latency.crit) == (1.0, 2000.0)
    # Loopback answers in well under 2 s; whether it took more than 1 ms decides WARN.
    expected = Severity.WARN if float(result.observations["rtt_ms"]) > 1 else Severity.OK  # type: ignore[arg-type]
    assert latency.severity is expected


# --- the TLS certificate, as tls checks judge it -------------------------------------------------


def certificate_verdicts(result: ProbeResult) -> dict[str, tuple[Severity, str]]:
    return {
        v.condition: (v.severity, v.finding)
        for v in result.verdicts
        if v.condition in CERTIFICATE_CONDITIONS
    }


@pytest.mark.parametrize(
    ("trust_the_ca", "values", "severity"),
    [
        (False, {}, Severity.CRIT),  # the system store does not know the test CA: untrusted
        (True, {}, Severity.OK),
        (True, {"server_name": "other.example.net"}, Severity.CRIT),  # name mismatch
        (True, {"warn_days": 100}, Severity.WARN),  # a 60-day leaf: expiry warning
        (True, {"server_name": NAME}, Severity.OK),
    ],
)
async def test_the_tls_certificate_is_judged_exactly_as_a_tls_check_judges_it(
    server: Server, trust_the_ca: bool, values: dict[str, Any], severity: Severity
) -> None:
    if trust_the_ca:
        values = {**values, "ca_file": server.ca_file}
    target = server.kamailio.target(tls=True)
    sip = await probe(target, transport="tls", **values)
    tls = await run_check(
        adhoc_check("tls", {"target": target, "timeout": "3s", **values}), SharedResources()
    )
    assert certificate_verdicts(sip) == certificate_verdicts(tls)
    assert set(certificate_verdicts(sip)) == CERTIFICATE_CONDITIONS
    assert sip.certificates == tls.certificates
    # What is wrong with the certificate does not hide what the SIP element answered.
    assert sip.observations["status"] == 200
    assert sip.severity is tls.severity is severity, sip.summary()


async def test_tls_to_the_plain_sip_port_names_the_stage_it_waited_in(server: Server) -> None:
    """Kamailio's TCP port reads a ClientHello as the start of a SIP message and waits for the
    rest: no TLS session comes, and the timeout says that is where it hung."""
    result = await probe(
        server.kamailio.target(), transport="tls", ca_file=server.ca_file, timeout="1s"
    )
    assert result.severity is Severity.CRIT
    assert result.error == ProbeError(ErrorClass.TIMEOUT, "no TLS session within 0.95s")


async def test_a_server_that_is_no_tls_server_is_a_tls_failure() -> None:
    with garbage_server() as port:
        result = await probe(f"{LOCALHOST}:{port}", transport="tls")
    assert result.severity is Severity.CRIT
    assert result.error is not None and result.error.error_class is ErrorClass.TLS
    assert result.error.message.startswith("TLS handshake failed: ")


async def test_a_failed_sip_exchange_still_reports_the_certificate(tmp_path: Path) -> None:
    """A TLS peer that closes once the handshake is done: the SIP part fails, and what is
    wrong with the certificate it showed is still judged and recorded, as for an https check."""
    ca = make_ca("commwatch sip test CA")
    now = datetime.datetime.now(datetime.UTC)
    leaf = make_leaf(
        ca,
        [LOCALHOST],
        not_before=now - datetime.timedelta(days=90),
        not_after=now - datetime.timedelta(days=3),
    )
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    with tls_server(server_context(leaf, tmp_path)) as port:
        result = await probe(
            f"{LOCALHOST}:{port}", transport="tls", ca_file=str(tmp_path / "ca.pem")
        )
    assert result.error == ProbeError(
        ErrorClass.PROTOCOL, "the server closed the connection before a final response"
    )
    assert verdict(result, "expiry").severity is Severity.CRIT
    assert verdict(result, "expiry").finding.startswith("cert expired 3")
    assert [c.position for c in result.certificates] == [0]


def _audit_inventory(folder: Path, server: Server) -> Path:
    inventory = folder / "inventory.yaml"
    inventory.write_text(
        f"""\
version: 1
defaults: {{timeout: 3s, ca_file: "{server.ca_file}"}}
sites:
  - id: site
    links:
      - id: link
        checks:
          - {{id: sbc-tls, kind: sip, transport: tls, target: "{server.kamailio.target(tls=True)}"}}
          - {{id: sbc-udp, kind: sip, target: "{server.kamailio.target()}"}}
"""
    )
    return inventory


def test_a_sip_tls_check_is_in_the_certificate_audit(server: Server, tmp_path: Path) -> None:
    inventory = _audit_inventory(tmp_path, server)
    done = commwatch("audit", "certs", "--format", "json", str(inventory))
    assert done.returncode == 0, done.stdout + done.stderr
    audit = json.loads(done.stdout)
    assert audit["summary"]["endpoints_checked"] == 1  # the UDP check presents no certificate
    (certificate,) = audit["certificates"]
    fingerprint = server.leaf.certificate.fingerprint(hashes.SHA256()).hex()
    assert certificate["fingerprint_sha256"] == fingerprint
    assert [e["check_id"] for e in certificate["endpoints"]] == ["site/link/sbc-tls"]


# --- the command line ------------------------------------------------------------------------


def test_commwatch_probe_sip_is_a_monitoring_plugin(server: Server) -> None:
    target = server.kamailio.target(tls=True)
    done = commwatch(
        *("probe", "sip", target),
        *("--transport", "tls", "--ca-file", server.ca_file, "--server-name", NAME),
        *("--request-uri", f"sip:maintenance@{NAME}", "--from-uri", "sip:noc@psap.example"),
        *("--latency-warn", "1s", "--nagios"),
    )
    assert done.returncode == 1, done.stdout + done.stderr  # WARNING: in maintenance
    line = done.stdout
    assert line.startswith(f"SIP WARNING - {target}/tls: in maintenance: SIP 503, Retry-After")
    assert line.count("\n") == 1
    assert " rtt_ms=" in line and "ms;1000 " in line  # the latency threshold in the perfdata


def test_probe_sip_json_is_a_result_record_of_the_schema(server: Server) -> None:
    target = server.kamailio.target(tls=True)
    done = commwatch(
        *("probe", "sip", target, "--format", "json"),
        *("--transport", "tls", "--ca-file", server.ca_file),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(done.stdout)
    schema = json.loads((REPO / "monitor/output/schema/result.schema.json").read_text())
    jsonschema.validate(record, schema)
    assert record["kind"] == "sip" and record["observations"]["status"] == 200
    assert record["certificates"][0]["position"] == 0


# --- options -------------------------------------------------------------------------------


def test_the_port_defaults_to_5060_or_5061_for_tls() -> None:
    assert adhoc_check("sip", {"target": "192.0.2.10"}).ref.target == "192.0.2.10:5060/udp"
    tcp = adhoc_check("sip", {"target": "192.0.2.10", "transport": "tcp"})
    assert tcp.ref.target == "192.0.2.10:5060/tcp"
    tls = adhoc_check("sip", {"target": "[2001:db8::5]", "transport": "TLS"})
    assert tls.ref.target == "[2001:db8::5]:5061/tls"
    assert adhoc_check("sip", {"target": "sbc.example.net:5080"}).ref.host == "sbc.example.net"
    assert tls.probe.presents_certificates(tls.options)
    assert not tcp.probe.presents_certificates(tcp.options)


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"ok_codes": 700}, "ok_codes", "700 is not a SIP status code"),
        ({"warn_codes": "300-599"}, "warn_codes", "warn_codes covers 503"),
        ({"ok_codes": [200, 503]}, "ok_codes", "ok_codes covers 503"),
        ({"t1": "5s"}, "t1", "t1 is above t2"),
        ({"transport": "sctp"}, "transport", "'sctp' is not one of the choices"),
        ({"request_uri": "http://sbc"}, "request_uri", "'http://sbc' is not a SIP URI"),
        ({"request_uri": "sip:a b@sbc"}, "request_uri", "is not a SIP URI"),
        ({"from_uri": "sip:x\r\nVia: forged"}, "from_uri", "is not a SIP URI"),
        ({"request_uri": "sips:sbc.example.net"}, "request_uri", "a sips: URI, which asks"),
        ({"max_response_bytes": 100}, "max_response_bytes", "100 is out of range"),
        ({"maintenance_status": "ignore"}, "maintenance_status", "'ignore' is not one of"),
    ],
)
def test_bad_options_are_refused_with_what_to_do(
    values: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(OptionError) as caught:
        adhoc_check("sip", {"target": "192.0.2.10", **values})
    assert message in caught.value.message
    assert caught.value.key in (key, None)
    assert caught.value.hint


def test_a_bad_sip_key_in_an_inventory_is_named_by_file_line_and_column(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\nsites:\n  - id: s\n    links:\n      - id: l\n        checks:\n"
        "          - {id: sbc, kind: sip, target: 192.0.2.10, warn_codes: 300-599}\n"
    )
    with pytest.raises(InventoryErrors) as caught:
        load_inventory(inventory)
    text = str(caught.value)
    assert f"{inventory}:7:" in text and "warn_codes covers 503" in text, text
