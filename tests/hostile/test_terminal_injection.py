"""Peers whose text is an attack on the terminal: a TLS server whose certificate subject, issuer
and SANs, an HTTP server whose reason phrase, headers and redirect, a DNS server whose TXT and
CNAME answers, and an SNMP agent whose sysDescr, sysName and ifAlias carry escape sequences (set
the window title, clear the screen, 8-bit CSI), CR LF with a forged status line, a bidi override
and Rich markup.

Every output for people (probe text and --nagios, the run table and stream, the audit's table,
Markdown and CSV, the log, the dashboard's screen) must show that text inert: no control
character, no forged line, no markup applied. JSON keeps the exact text.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.TXT
import dns.rrset
import pytest

from monitor.config.loader import load_inventory
from tests.hostile.dns_servers import response, scripted_server
from tests.hostile.snmp_agents import (
    COMMUNITY,
    IF_ALIAS,
    SYS_DESCR,
    SYS_NAME,
    V2C,
    Behaviour,
    healthy_system,
    interface,
    scripted_agent,
)
from tests.peers.http_peers import raw_server
from tests.peers.pki import make_ca, make_leaf, server_context
from tests.peers.tls_peers import tls_server
from tests.tui_support import until
from tui.app import CommwatchApp

FORGED = "CRIT forged-line"
PAYLOAD = f"\x1b]0;owned\x07\x1b[2J\r\n{FORGED}\u202e[bold red]x[/]\x9b31m"
MARKUP = "[bold red]x[/]"
NAME = "cad.example.net"
SAN = "evil\x1b]0;owned\x07\x1b[2J\r\n.example"  # ASCII only: a DNSName is an IA5String

# What a terminal or a reader acts on: C0 controls but the newline between lines, DEL, C1,
# the bidi marks, embeddings, overrides and isolates.
ACTED_ON = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
COMMWATCH = [sys.executable, "-m", "monitor.cli"]


def assert_inert(text: str, where: str) -> None:
    found = sorted(set(ACTED_ON.findall(text)))
    assert not found, f"{where} passes {found!r} to the terminal:\n{text[:3000]}"
    forged = [line for line in text.split("\n") if line.lstrip().startswith(FORGED)]
    assert not forged, f"{where} lets a peer start a line: {forged}"


@dataclass
class Lab:
    inventory: Path
    ca_file: Path
    subject: str  # the leaf's subject as RFC 4514 text: what JSON must carry exactly
    issuer: str
    tls: str
    dns: str
    snmp: str
    http: str


def _certificates(folder: Path) -> tuple[object, Path, str, str]:
    ca = make_ca(f"CA {PAYLOAD}")
    leaf = make_leaf(ca, ["127.0.0.1", SAN], common_name=f"CN {PAYLOAD}")
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    subject = leaf.certificate.subject.rfc4514_string()
    issuer = leaf.certificate.issuer.rfc4514_string()
    return server_context(leaf, folder), ca_file, subject, issuer


def _dns_script(query: bytes) -> list[tuple[float, bytes]]:
    reply = response(query)
    question = reply.question[0]
    if question.rdtype == dns.rdatatype.TXT:
        rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [PAYLOAD.encode()])
    else:
        target = dns.name.Name([b"\x1b[2J\r\nCRIT", b"example", b""])
        rdata = dns.rdtypes.ANY.CNAME.CNAME(dns.rdataclass.IN, dns.rdatatype.CNAME, target)
    reply.answer.append(dns.rrset.from_rdata(question.name, 60, rdata))
    return [(0.0, reply.to_wire())]


SNMP_VALUES = {
    **healthy_system(),
    **interface(1, "eth0"),
    SYS_DESCR: V2C.OctetString(PAYLOAD.encode()),
    SYS_NAME: V2C.OctetString(MARKUP.encode()),
    f"{IF_ALIAS}.1": V2C.OctetString(PAYLOAD.encode()),
}
HTTP_REPLY = (
    b"HTTP/1.1 503 " + PAYLOAD.encode("utf-8").replace(b"\r\n", b" ") + b"\r\n"
    b"X-Evil: \x1b]0;owned\x07\x1b[2J\xe2\x80\xae\r\n"
    b"Location: /next\x1b[2J\r\n"
    b"Content-Length: 0\r\n\r\n"
)


@contextlib.asynccontextmanager
async def hostile_lab(folder: Path) -> AsyncIterator[Lab]:
    context, ca_file, subject, issuer = _certificates(folder)
    with tls_server(context) as tls_port:
        async with (
            scripted_server(_dns_script) as dns_server,
            scripted_agent(Behaviour(values=SNMP_VALUES)) as agent,
            raw_server(HTTP_REPLY) as http_url,
        ):
            inventory = folder / "inventory.yaml"
            snmp = (
                f'{{id: snmp, kind: snmp, target: "{agent.target}", version: 2c,'
                " community_env: CW_HOSTILE_COMMUNITY, interfaces: [eth0],"
                f' oids: [{{oid: "{IF_ALIAS}.1", name: alias, expect: nothing}}]}}'
            )
            inventory.write_text(
                f"""\
version: 1
defaults: {{interval: 1m, timeout: 3s}}
sites:
  - id: site
    links:
      - id: link
        checks:
          - {{id: tls, kind: tls, target: "127.0.0.1:{tls_port}", ca_file: "{ca_file}",
              warn_days: 100}}
          - {{id: txt, kind: dns, target: {NAME}, type: TXT, server: "{dns_server}",
              expect: [nothing]}}
          - {{id: cname, kind: dns, target: {NAME}, type: CNAME,
              server: "{dns_server}", expect: [nothing.example.net]}}
          - {snmp}
          - {{id: http, kind: http, target: "{http_url}/status"}}
"""
            )
            yield Lab(
                inventory,
                ca_file,
                subject,
                issuer,
                f"127.0.0.1:{tls_port}",
                dns_server,
                agent.target,
                f"{http_url}/status",
            )


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "CW_HOSTILE_COMMUNITY": COMMUNITY,
        "COMMWATCH_LOG": "DEBUG",
        "NO_COLOR": "1",
    }


async def commwatch(*args: str) -> tuple[str, str]:
    process = await asyncio.create_subprocess_exec(
        *COMMWATCH,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return stdout.decode(), stderr.decode()


async def streamed(inventory: Path, results: int) -> tuple[str, str]:
    """`commwatch run --format table` until it printed `results` result lines, then SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        *COMMWATCH,
        "run",
        "--format",
        "table",
        "--no-history",
        "--no-alerts",
        str(inventory),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )
    assert process.stdout is not None and process.stderr is not None
    lines: list[str] = []

    async def read() -> None:
        assert process.stdout is not None
        while sum(" site/link/" in line for line in lines) < results:
            line = await process.stdout.readline()
            assert line, "the stream ended early"
            lines.append(line.decode())

    try:
        await asyncio.wait_for(read(), 60)
    finally:
        process.send_signal(signal.SIGTERM)
        rest, stderr = await asyncio.wait_for(process.communicate(), 30)
    return "".join(lines) + rest.decode(), stderr.decode()


async def test_every_text_output_of_the_command_line_is_inert(tmp_path: Path) -> None:
    async with hostile_lab(tmp_path) as lab:
        outputs = {
            "run --once --format table": await commwatch(
                "run", "--once", "--format", "table", str(lab.inventory)
            ),
            "run --format table (stream)": await streamed(lab.inventory, 5),
            "audit (table)": await commwatch("audit", "certs", str(lab.inventory)),
            "audit --format markdown": await commwatch(
                "audit", "certs", "--format", "markdown", str(lab.inventory)
            ),
            "audit --format csv": await commwatch(
                "audit", "certs", "--format", "csv", str(lab.inventory)
            ),
            "check": await commwatch("check", str(lab.inventory)),
        }
        tls = ["tls", lab.tls, "--ca-file", str(lab.ca_file), "--warn-days", "100"]
        snmp = ["snmp", lab.snmp, "--snmp-version", "2c", "--community-env", "CW_HOSTILE_COMMUNITY"]
        probes = {
            "tls": tls,
            "dns TXT": ["dns", NAME, "--server", lab.dns, "--type", "TXT", "--expect", "x"],
            "dns CNAME": ["dns", NAME, "--server", lab.dns, "--type", "CNAME", "--expect", "x."],
            "snmp": [*snmp, "--oids", f"{IF_ALIAS}.1 name=alias expect=nothing"],
            "http": ["http", lab.http],
        }
        for probe, args in probes.items():
            outputs[f"probe {probe}"] = await commwatch("probe", *args)
            outputs[f"probe {probe} --nagios"] = await commwatch("probe", *args, "--nagios")

    for name, (stdout, stderr) in outputs.items():
        assert stdout, f"{name} printed nothing; stderr:\n{stderr}"
        assert_inert(stdout, name)
        assert_inert(stderr, f"{name} (stderr, log level DEBUG)")
    # The text is shown, escaped, not dropped: an engineer can read what the peer sent.
    assert f"\\x1b[2J\\x0d\\x0a{FORGED}\\u202e" in outputs["probe tls"][0]
    assert "\\u202e" in outputs["run --once --format table"][0]
    assert "\\x1b" in outputs["audit (table)"][0]
    # TXT answers are shown JSON-quoted (\u001b), their bidi override escaped by printable.
    assert "\\u001b]0;owned\\u0007" in outputs["probe dns TXT"][0]
    assert "\\u202e" in outputs["probe dns TXT"][0]
    assert outputs["probe tls --nagios"][0].count("\n") == 1
    # Markdown shows the subject as text: no link, no HTML, no entity; CSV starts no formula.
    assert "\\[bold red\\]x\\[/\\]" in outputs["audit --format markdown"][0]
    # (The state, days left and date columns are commwatch's own, numbers kept numbers.)
    for row in list(csv.reader(io.StringIO(outputs["audit --format csv"][0])))[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row[3:]), row


async def test_json_keeps_the_exact_text(tmp_path: Path) -> None:
    async with hostile_lab(tmp_path) as lab:
        sweep, _ = await commwatch("run", "--once", str(lab.inventory))
        audit, _ = await commwatch("audit", "certs", "--format", "json", str(lab.inventory))
    results = {r["check_id"].rsplit("/", 1)[1]: r for r in json.loads(sweep)["results"]}

    leaf = results["tls"]["certificates"][0]
    assert leaf["subject"] == lab.subject and PAYLOAD.replace(";", "\\;") in leaf["subject"]
    assert leaf["issuer"] == lab.issuer
    assert f"DNS:{SAN}" in leaf["subject_alt_names"]
    assert PAYLOAD.replace(";", "\\;") in results["tls"]["summary"]
    # The TXT answer as the probe renders TXT: the text, JSON-quoted (see probes/dns.py).
    assert results["txt"]["observations"]["answer"] == json.dumps(PAYLOAD, ensure_ascii=False)
    # SNMP strings with control characters are shown as hex, as snmpget does: every byte kept.
    snmp = results["snmp"]["observations"]
    assert snmp["system.descr"] == PAYLOAD.encode().hex(":")
    assert snmp["oid.alias"] == PAYLOAD.encode().hex(":")
    assert snmp["system.name"] == MARKUP
    assert json.loads(audit)["certificates"][0]["subject"] == lab.subject


def _screen_text(app: CommwatchApp) -> str:
    """Every character the dashboard would write to the terminal as text (Textual's own
    control sequences, carried by control segments, aside), a line per screen row."""
    update = app.screen._compositor.render_full_update()
    rows = []
    for line in update.strips:
        rows.append("".join(seg.text for strip in line for seg in strip if seg.control is None))
    return "\n".join(rows)


async def test_the_dashboard_shows_peer_text_inert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CW_HOSTILE_COMMUNITY", COMMUNITY)
    async with hostile_lab(tmp_path) as lab:
        inventory = load_inventory(lab.inventory)
        app = CommwatchApp(inventory, start_spread=0, history=False, alerts=False)
        screens: dict[str, str] = {}
        async with app.run_test(size=(200, 60)) as pilot:
            await until(
                pilot,
                lambda: all(state.result for state in app.board.states.values()),
                timeout=20,
            )
            for check in inventory.checks:
                app.dashboard.table.select_key(check.ref.check_id)
                await pilot.pause(0.3)
                screens[check.ref.check_id] = _screen_text(app)
            await pilot.press("q")

    for check_id, screen in screens.items():
        assert_inert(screen, f"the dashboard with {check_id} selected")
    tls = screens["site/link/tls"]
    assert "\\x1b[2J\\x0d\\x0a" in tls  # the subject in the certificate chain, escaped
    # The subject holds Rich markup: shown as written, not applied.
    assert MARKUP in tls
