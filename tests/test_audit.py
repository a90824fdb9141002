"""The certificate audit's aggregation and rendering (the probes that feed it have their own
tests against real TLS servers; an end-to-end audit test runs the real command)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import jsonschema
import pytest
import referencing

from monitor.config.checks import adhoc_check
from monitor.core.model import (
    CertificateInfo,
    ErrorClass,
    ProbeError,
    ProbeResult,
    Severity,
    Verdict,
)
from monitor.output.audit import build_report
from monitor.output.audit_formats import render, report_to_dict
from tests.conftest import REPO

NOW = 1_800_000_000.0
DAY = 86400.0


def schema_validator() -> jsonschema.Draft202012Validator:
    schemas = {
        name: json.loads((REPO / f"monitor/output/schema/{name}.schema.json").read_text())
        for name in ("result", "audit")
    }
    registry = referencing.Registry().with_resources(
        (schema["$id"], referencing.Resource.from_contents(schema)) for schema in schemas.values()
    )
    return jsonschema.Draft202012Validator(schemas["audit"], registry=registry)


def cert(name: str, days: float, position: int = 0) -> CertificateInfo:
    return CertificateInfo(
        fingerprint_sha256=(name.encode().hex() * 64)[:64],
        position=position,
        subject=f"CN={name}",
        issuer="CN=Example CA",
        serial="0a",
        not_before=NOW - 300 * DAY,
        not_after=NOW + days * DAY,
        key_type="EC",
        key_bits=256,
        signature_algorithm="ecdsa-with-SHA256",
        subject_alt_names=(f"DNS:{name}",),
        spki_sha256="AAAA",
        self_signed=False,
    )


def check(name: str, url: str):
    made = adhoc_check("http", {"target": url})
    return dataclasses.replace(made, ref=dataclasses.replace(made.ref, check_id=name))


def result(check_, *certificates, error: ProbeError | None = None) -> ProbeResult:
    return ProbeResult(
        check=check_.ref,
        started_at=NOW,
        duration_ms=5.0,
        severity=Severity.OK,
        certificates=certificates,
        error=error,
    )


@pytest.fixture
def scene():
    a = check("s/l/a", "https://127.0.0.1:8443/")
    b = check("s/l/b", "https://127.0.0.2:8443/")
    c = check("s/l/c", "https://127.0.0.3:8443/")
    wildcard, intermediate = cert("wild", 9.5), cert("intermediate", 400, position=1)
    results = [
        result(a, wildcard, intermediate),
        result(b, wildcard, intermediate),
        result(c, error=ProbeError(ErrorClass.REFUSED, "Connection refused")),
    ]
    return [a, b, c], results


def test_certificates_are_deduplicated_by_fingerprint_with_every_endpoint(scene):
    checks, results = scene
    report = build_report(checks, results, now=NOW)
    assert [e.certificate.subject for e in report.certificates] == ["CN=wild", "CN=intermediate"]
    wildcard = report.certificates[0]
    assert [e.target for e in wildcard.endpoints] == [
        "https://127.0.0.1:8443/",
        "https://127.0.0.2:8443/",
    ]
    assert wildcard.days_left == pytest.approx(9.5)
    assert wildcard.severity is Severity.CRIT
    assert report.certificates[1].severity is Severity.OK
    assert [f.check_id for f in report.failed] == ["s/l/c"]
    assert report.failed[0].reason == "refused: Connection refused"
    assert report.exit_code == 2


@pytest.mark.parametrize(
    ("days", "warn", "crit", "state", "exit_code"),
    [
        (100, None, None, "OK", 0),
        (20, None, None, "WARN", 1),
        (10, None, None, "CRIT", 2),
        (-1, None, None, "EXPIRED", 2),
        (20, 10, 5, "OK", 0),
        (100, 120, 5, "WARN", 1),
    ],
)
def test_states_and_exit_codes(days, warn, crit, state, exit_code):
    only = check("s/l/a", "https://127.0.0.1:8443/")
    report = build_report(
        [only], [result(only, cert("x", days))], now=NOW, warn_days=warn, crit_days=crit
    )
    assert report.certificates[0].state == state
    assert report.exit_code == exit_code


def test_an_unreadable_endpoint_turns_all_good_into_a_warning(scene):
    checks, results = scene
    healthy = [result(checks[0], cert("fine", 200)), results[2]]
    assert build_report(checks, healthy, now=NOW).exit_code == 1


def test_nothing_checked_is_unknown(scene):
    checks, results = scene
    assert build_report(checks, results[2:], now=NOW).exit_code == 3


def test_within_lists_fewer_but_judges_all(scene):
    checks, results = scene
    report = build_report(checks, results, now=NOW, within_days=30)
    assert [e.certificate.subject for e in report.shown] == ["CN=wild"]
    document = report_to_dict(report)
    assert document["summary"]["certificates"] == 2 and document["summary"]["listed"] == 1


def test_json_report_follows_its_schema(scene):
    checks, results = scene
    document = json.loads(render(build_report(checks, results, now=NOW), "json", colour=False))
    schema_validator().validate(document)
    assert document["certificates"][0]["state"] == "CRIT"
    assert document["summary"]["exit_code"] == 2


def test_table_markdown_and_csv(scene):
    checks, results = scene
    report = build_report(checks, results, now=NOW)
    table = render(report, "table", colour=False).splitlines()
    # It says plainly what it judges where.
    assert table[0] == "Certificates (expiry per certificate; trust, names and chain per endpoint):"
    assert table[1].split() == ["STATE", "DAYS", "NOT", "AFTER", "SUBJECT", "ROLE", "ENDPOINTS"]
    assert table[2].split()[:2] == ["CRIT", "9.5"]
    assert "https://127.0.0.1:8443/, https://127.0.0.2:8443/" in table[2]
    assert table[-1] == (
        "2 certificates on 3 endpoints: 0 EXPIRED, 1 CRIT, 0 WARN, 1 OK; "
        "no endpoint with findings; 1 endpoint could not be read"
    )
    coloured = render(report, "table", colour=True)
    assert "\x1b[1;31mCRIT" in coloured

    markdown = render(report, "markdown", colour=False).splitlines()
    assert markdown[2] == "Judged: expiry per certificate; trust, names and chain per endpoint."
    assert markdown[4] == "| STATE | DAYS | NOT AFTER | SUBJECT | ROLE | ENDPOINTS |"
    assert markdown[6].startswith("| CRIT | 9.5 |")

    rows = list(csv.DictReader(io.StringIO(render(report, "csv", colour=False))))
    assert [r["state"] for r in rows] == ["CRIT", "OK"]
    assert rows[1]["role"] == "chain"


def test_audit_certs_end_to_end_against_real_tls_servers(tmp_path):
    """The real command against real TLS servers: a leaf served twice, one nearly expired, an
    intermediate behind all of them, and an endpoint that refuses."""
    import datetime as dt
    import os
    import subprocess
    import sys

    from tests.peers.pki import make_ca, make_leaf, server_context
    from tests.peers.tcp_peers import closed_port
    from tests.peers.tls_peers import tls_server

    def days(n: float) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=n)

    root = make_ca("audit root", not_after=days(3650), path_length=None)
    intermediate = make_ca("audit intermediate", issuer=root, not_after=days(1000))
    shared_leaf = make_leaf(intermediate, ["127.0.0.1"], not_after=days(60))
    dying_leaf = make_leaf(intermediate, ["127.0.0.1"], common_name="dying", not_after=days(10))
    (tmp_path / "root.pem").write_bytes(root.cert_pem)
    for name in "abc":
        (tmp_path / name).mkdir()
    contexts = [
        server_context(leaf, tmp_path / name, (intermediate,))
        for name, leaf in (("a", shared_leaf), ("b", shared_leaf), ("c", dying_leaf))
    ]
    with tls_server(contexts[0]) as a, tls_server(contexts[1]) as b, tls_server(contexts[2]) as c:
        checks = "\n".join(
            f'          - {{id: {name}, kind: tls, target: "127.0.0.1:{port}", '
            f"ca_file: root.pem, timeout: 3s}}"
            for name, port in (("a", a), ("b", b), ("c", c), ("d", closed_port()))
        )
        (tmp_path / "inventory.yaml").write_text(
            f"sites:\n  - id: psap\n    links:\n      - id: fibre\n        checks:\n{checks}\n"
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "audit",
                "certs",
                str(tmp_path / "inventory.yaml"),
                "--format",
                "json",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NO_COLOR": "1"},
        )
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    schema_validator().validate(report)
    listed = [
        (c["subject"], c["state"], sorted(e["check_id"] for e in c["endpoints"]))
        for c in report["certificates"]
    ]
    assert listed == [
        ("CN=dying", "CRIT", ["psap/fibre/c"]),
        ("CN=127.0.0.1", "OK", ["psap/fibre/a", "psap/fibre/b"]),
        ("CN=audit intermediate", "OK", ["psap/fibre/a", "psap/fibre/b", "psap/fibre/c"]),
    ]
    assert [f["check_id"] for f in report["failed"]] == ["psap/fibre/d"]
    assert report["summary"]["endpoints_checked"] == 4


def test_trust_names_and_malformed_chains_are_listed_and_counted(tmp_path):
    """The real command against real TLS servers: a fine endpoint, an untrusted root, a name
    mismatch and a malformed intermediate. Every certificate is far from expiry, so before
    endpoint findings the audit said all was well (exit 0) where the monitor said CRIT."""
    import datetime as dt
    import os
    import subprocess
    import sys

    from tests.hostile.forged_certificates import forge
    from tests.peers.pki import make_ca, make_leaf, server_context
    from tests.peers.tls_peers import tls_server

    def days(n: float) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=n)

    root = make_ca("audit root", not_after=days(3650), path_length=None)
    intermediate = make_ca("audit intermediate", issuer=root, not_after=days(1000))
    stranger = make_ca("stranger root", not_after=days(3650), path_length=None)
    strange_leaf = make_leaf(stranger, ["127.0.0.1"], common_name="stranger", not_after=days(200))
    # The stranger's root is served: a client sees a complete chain to a root it lacks.
    leaf = make_leaf(intermediate, ["127.0.0.1", "gw.audit.example.net"], not_after=days(200))
    broken = forge(intermediate, root, lambda t: t.with_extensions([*t.extensions()] * 2))
    (tmp_path / "root.pem").write_bytes(root.cert_pem)
    served = {
        "fine": (leaf, (intermediate,)),
        "stranger": (strange_leaf, (stranger,)),
        "misnamed": (leaf, (intermediate,)),
        "broken": (leaf, (broken,)),
    }
    contexts = {}
    for name, (certificate, chain) in served.items():
        (tmp_path / name).mkdir()
        contexts[name] = server_context(certificate, tmp_path / name, chain)
    with (
        tls_server(contexts["fine"]) as fine,
        tls_server(contexts["stranger"]) as stranger_port,
        tls_server(contexts["misnamed"]) as misnamed,
        tls_server(contexts["broken"]) as broken_port,
    ):
        ports = {"fine": fine, "stranger": stranger_port, "misnamed": misnamed}
        ports["broken"] = broken_port
        extra = {"misnamed": ", server_name: other.audit.example.net"}
        checks = "\n".join(
            f'          - {{id: {name}, kind: tls, target: "127.0.0.1:{port}", '
            f"ca_file: root.pem, timeout: 3s{extra.get(name, '')}}}"
            for name, port in ports.items()
        )
        (tmp_path / "inventory.yaml").write_text(
            f"sites:\n  - id: psap\n    links:\n      - id: fibre\n        checks:\n{checks}\n"
        )

        def audit(fmt: str) -> subprocess.CompletedProcess[str]:
            inventory = str(tmp_path / "inventory.yaml")
            return subprocess.run(
                [sys.executable, "-m", "monitor.cli", "audit", "certs", inventory, "--format", fmt],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "NO_COLOR": "1"},
            )

        done = {fmt: audit(fmt) for fmt in ("json", "table", "csv", "markdown")}

    for fmt, process in done.items():
        assert process.returncode == 2, (fmt, process.stderr)
        assert "Traceback" not in process.stderr
    report = json.loads(done["json"].stdout)
    schema_validator().validate(report)
    assert all(c["state"] == "OK" for c in report["certificates"])  # expiry alone: all fine
    reasons = {f["check_id"]: [x["reason"] for x in f["findings"]] for f in report["findings"]}
    assert reasons == {
        "psap/fibre/broken": ["malformed certificate", "not verified"],
        "psap/fibre/misnamed": ["name mismatch"],
        "psap/fibre/stranger": ["untrusted root"],
    }
    assert report["summary"]["endpoints_with_findings"] == 3
    table = done["table"].stdout
    assert "Endpoint findings (trust, names, chain, renewal):" in table
    assert "name mismatch: other.audit.example.net not in the leaf's subjectAltName" in table
    assert table.splitlines()[-1].endswith("; 3 endpoints with findings (3 CRIT)")
    rows = list(csv.DictReader(io.StringIO(done["csv"].stdout)))
    leaf_row = next(r for r in rows if r["subject"] == "CN=127.0.0.1")
    assert "psap/fibre/misnamed: name mismatch: " in leaf_row["endpoint_findings"]
    broken_row = next(r for r in rows if r["malformed"])
    assert broken_row["malformed"] == "extensions: duplicate extension 2.5.29.19 (basicConstraints)"
    assert "## Endpoint findings" in done["markdown"].stdout


UNTRUSTED = Verdict(
    condition="trusted",
    observation="trusted",
    value=False,
    threshold="trusted",
    severity=Severity.CRIT,
    finding="untrusted root: #1 CN=X is not in ca.pem",
    reason="untrusted root",
)


@pytest.fixture
def findings_scene():
    """The scene with an untrusted endpoint, and an expired leaf whose subject is hostile text:
    a formula for spreadsheets, a table cell break for Markdown, an escape for terminals."""
    a, b, c = (
        check(f"s/l/{name}", f"https://127.0.0.{n}:8443/") for n, name in enumerate("abc", 1)
    )
    wildcard, intermediate = cert("wild", 9.5), cert("intermediate", 400, position=1)
    hostile = dataclasses.replace(
        cert("=cmd|' /C calc'!A0\x1b[2J", -2.5), malformed=("extensions: duplicate",)
    )
    results = [
        dataclasses.replace(result(a, wildcard, intermediate), verdicts=(UNTRUSTED,)),
        result(b, wildcard, intermediate, hostile),
        result(c, error=ProbeError(ErrorClass.REFUSED, "Connection refused")),
    ]
    return build_report([a, b, c], results, now=NOW)


HOSTILE_SUBJECT = "CN==cmd|' /C calc'!A0\\x1b[2J"
FINDINGS_SUMMARY = (
    "3 certificates on 3 endpoints: 1 EXPIRED, 1 CRIT, 0 WARN, 1 OK; 1 endpoint with findings"
    " (1 CRIT); 1 endpoint could not be read"
)
BOTH = "https://127.0.0.1:8443/, https://127.0.0.2:8443/"


def test_the_table_byte_for_byte(findings_scene):
    red, green, reset = "\x1b[1;31m", "\x1b[32m", "\x1b[0m"
    expected = [
        "Certificates (expiry per certificate; trust, names and chain per endpoint):",
        "STATE    DAYS   NOT AFTER   SUBJECT                       ROLE   ENDPOINTS",
        f"{red}EXPIRED{reset}  -2.5   2027-01-12  {HOSTILE_SUBJECT}  leaf   https://127.0.0.2:8443/",
        f"{red}CRIT   {reset}  9.5    2027-01-24  CN=wild                       leaf   {BOTH}",
        f"{green}OK     {reset}  400.0  2028-02-19  CN=intermediate               chain  {BOTH}",
        "",
        "Endpoint findings (trust, names, chain, renewal):",
        f"  {red}CRIT   {reset}  s/l/a  https://127.0.0.1:8443/"
        "  untrusted root: #1 CN=X is not in ca.pem",
        "",
        "Endpoints that could not be read:",
        "  s/l/c  https://127.0.0.3:8443/  refused: Connection refused",
        "",
        FINDINGS_SUMMARY,
    ]
    assert render(findings_scene, "table", colour=True).splitlines() == expected
    plain = [line.replace(red, "").replace(green, "").replace(reset, "") for line in expected]
    assert render(findings_scene, "table", colour=False).splitlines() == plain


def test_the_markdown_byte_for_byte(findings_scene):
    assert render(findings_scene, "markdown", colour=False).splitlines() == [
        "# Certificate audit, 2027-01-15T08:00:00.000+00:00",
        "",
        "Judged: expiry per certificate; trust, names and chain per endpoint.",
        "",
        "| STATE | DAYS | NOT AFTER | SUBJECT | ROLE | ENDPOINTS |",
        "|---|---|---|---|---|---|",
        "| EXPIRED | -2.5 | 2027-01-12 | CN==cmd\\|' /C calc'!A0\\\\x1b\\[2J | leaf"
        " | https://127.0.0.2:8443/ |",
        f"| CRIT | 9.5 | 2027-01-24 | CN=wild | leaf | {BOTH} |",
        f"| OK | 400.0 | 2028-02-19 | CN=intermediate | chain | {BOTH} |",
        "",
        "## Endpoint findings",
        "",
        "| STATE | CHECK | TARGET | FINDING |",
        "|---|---|---|---|",
        "| CRIT | `s/l/a` | https://127.0.0.1:8443/ | untrusted root: #1 CN=X is not in ca.pem |",
        "",
        "## Endpoints that could not be read",
        "",
        "- `s/l/c` https://127.0.0.3:8443/: refused: Connection refused",
        "",
        FINDINGS_SUMMARY,
    ]


def test_the_csv_byte_for_byte(findings_scene):
    """Days left and dates stay numbers, negative ones too; every text cell is inert."""
    fingerprints = [cert(name, 0).fingerprint_sha256 for name in ("wild", "intermediate")]
    hostile_fingerprint = findings_scene.certificates[0].certificate.fingerprint_sha256
    ca, algorithm = "CN=Example CA,0a", "EC-256,ecdsa-with-SHA256"
    assert render(findings_scene, "csv", colour=False).splitlines() == [
        "state,days_left,not_after,subject,issuer,serial,fingerprint_sha256,key,"
        "signature_algorithm,role,endpoints,malformed,endpoint_findings",
        f"EXPIRED,-2.500,2027-01-12T20:00:00.000+00:00,{HOSTILE_SUBJECT},{ca},"
        f"{hostile_fingerprint},{algorithm},leaf,https://127.0.0.2:8443/,extensions: duplicate,",
        f"CRIT,9.500,2027-01-24T20:00:00.000+00:00,CN=wild,{ca},{fingerprints[0]},{algorithm},"
        "leaf,https://127.0.0.1:8443/ https://127.0.0.2:8443/,,"
        "s/l/a: untrusted root: #1 CN=X is not in ca.pem",
        f"OK,400.000,2028-02-19T08:00:00.000+00:00,CN=intermediate,{ca},{fingerprints[1]},"
        f"{algorithm},chain,https://127.0.0.1:8443/ https://127.0.0.2:8443/,,",
    ]


def test_the_json_document_in_full(findings_scene):
    document = json.loads(render(findings_scene, "json", colour=False))
    schema_validator().validate(document)
    assert document["summary"] == {
        "certificates": 3,
        "listed": 3,
        "EXPIRED": 1,
        "CRIT": 1,
        "WARN": 0,
        "UNKNOWN": 0,
        "OK": 1,
        "endpoints_checked": 3,
        "endpoints_failed": 1,
        "endpoints_with_findings": 1,
        "exit_code": 2,
    }
    hostile = document["certificates"][0]
    assert hostile == {
        "fingerprint_sha256": hostile["fingerprint_sha256"],
        "position": 0,
        "subject": "CN==cmd|' /C calc'!A0\x1b[2J",  # JSON stays exact
        "issuer": "CN=Example CA",
        "serial": "0a",
        "not_before": "2026-03-21T08:00:00.000+00:00",
        "not_after": "2027-01-12T20:00:00.000+00:00",
        "days_left": -2.5,
        "key_type": "EC",
        "key_bits": 256,
        "signature_algorithm": "ecdsa-with-SHA256",
        "subject_alt_names": ["DNS:=cmd|' /C calc'!A0\x1b[2J"],
        "spki_sha256": "AAAA",
        "self_signed": False,
        "malformed": ["extensions: duplicate"],
        "state": "EXPIRED",
        "severity": "CRIT",
        "warn_days": 30.0,
        "crit_days": 14.0,
        "endpoints": [{"check_id": "s/l/b", "target": "https://127.0.0.2:8443/", "position": 0}],
    }
    assert [c["subject"] for c in document["certificates"][1:]] == ["CN=wild", "CN=intermediate"]
    assert document["findings"] == [
        {
            "check_id": "s/l/a",
            "target": "https://127.0.0.1:8443/",
            "severity": "CRIT",
            "findings": [
                {
                    "condition": "trusted",
                    "severity": "CRIT",
                    "reason": "untrusted root",
                    "finding": "untrusted root: #1 CN=X is not in ca.pem",
                }
            ],
        }
    ]
    assert document["failed"] == [
        {
            "check_id": "s/l/c",
            "target": "https://127.0.0.3:8443/",
            "reason": "refused: Connection refused",
        }
    ]
    assert {k: document[k] for k in ("schema_version", "type", "generated_at", "within_days")} == {
        "schema_version": 1,
        "type": "cert-audit",
        "generated_at": "2027-01-15T08:00:00.000+00:00",
        "within_days": None,
    }


def test_an_inventory_target_holding_control_characters_reaches_no_terminal():
    """An http target may carry any path, escapes included (YAML's "\\e"): the lists of
    endpoint findings and unreadable endpoints show it inert, as the certificate rows do."""
    flagged = check("s/l/a", "https://127.0.0.1:8443/\x1b]0;owned\x07")
    unreadable = check("s/l/b", "https://127.0.0.2:8443/\x1b[2J")
    results = [
        dataclasses.replace(result(flagged, cert("x", 100)), verdicts=(UNTRUSTED,)),
        result(unreadable, error=ProbeError(ErrorClass.REFUSED, "Connection refused")),
    ]
    table = render(build_report([flagged, unreadable], results, now=NOW), "table", colour=False)
    assert "\x1b" not in table and "\x07" not in table
    lines = table.splitlines()
    assert (
        "  CRIT     s/l/a  https://127.0.0.1:8443/\\x1b]0;owned\\x07  untrusted root: #1 CN=X is"
        " not in ca.pem"
    ) in lines
    assert "  s/l/b  https://127.0.0.2:8443/\\x1b[2J  refused: Connection refused" in lines
