"""The renderers of results, byte for byte: the table and verdict list for people, the
monitoring-plugin line, and the JSON records (document, stream lines, events, groups).

Each input is built here so every figure is known; the expected text is the output these
renderers have always given, so a refactoring that changes a byte fails here first."""

from __future__ import annotations

import json

import jsonschema

from monitor.core.events import Event, EventKind, Subject, Suppression
from monitor.core.model import (
    CertificateInfo,
    CheckRef,
    ErrorClass,
    ProbeError,
    ProbeResult,
    Severity,
    Verdict,
)
from monitor.engine.state import GroupStatus
from monitor.engine.views import GroupSummary
from monitor.output.plugin import nagios_line
from monitor.output.records import (
    event_record,
    group_record,
    json_line,
    result_line,
    result_to_dict,
    sweep_document,
)
from monitor.output.tables import groups_table, not_evaluated_note, table, verdict_list
from tests.conftest import REPO

AT = 1_800_000_000.25
DAY = 86400.0


def ref(check_id: str, kind: str, target: str) -> CheckRef:
    site, link, _ = check_id.split("/", 2)
    return CheckRef(
        check_id=check_id, site_id=site, link_id=link, kind=kind, target=target, host="127.0.0.1"
    )


LATENCY = Verdict(
    condition="latency",
    observation="connect_ms",
    value=12.5,
    threshold="warn > 200ms, crit > 1000ms",
    severity=Severity.OK,
    unit="ms",
    warn=200.0,
    crit=1000.0,
    headline=True,
)
EXPIRY = Verdict(
    condition="expiry",
    observation="days_left",
    value=3.25,
    threshold="warn < 30d, crit < 14d",
    severity=Severity.CRIT,
    unit="d",
    warn=30.0,
    crit=14.0,
    higher_is_worse=False,
    about="#0 CN=gw",
)
PROTOCOL = Verdict(
    condition="protocol",
    observation="tls_version",
    value="TLSv1.3",
    threshold="at least TLSv1.2",
    severity=Severity.OK,
)
CERTIFICATE = CertificateInfo(
    fingerprint_sha256="ab" * 32,
    position=0,
    subject="CN=gw",
    issuer="CN=Lab CA",
    serial="1F",
    not_before=AT - 300 * DAY,
    not_after=AT + 3.25 * DAY,
    key_type="EC",
    key_bits=256,
    signature_algorithm="ecdsa-with-SHA256",
    subject_alt_names=("DNS:gw",),
    spki_sha256="cd" * 32,
    self_signed=False,
)

OK_TCP = ProbeResult(
    check=ref("north/fibre/router", "tcp", "127.0.0.1:8443"),
    started_at=AT,
    duration_ms=12.5,
    severity=Severity.OK,
    observations={"connect_ms": 12.5},
    verdicts=(LATENCY,),
)
CRIT_TLS = ProbeResult(
    check=ref("north/fibre/gw-tls", "tls", "127.0.0.2:443"),
    started_at=AT,
    duration_ms=40.0,
    severity=Severity.CRIT,
    observations={"days_left": 3.25, "handshake_ms": 30.125, "tls_version": "TLSv1.3"},
    verdicts=(EXPIRY, PROTOCOL),
    certificates=(CERTIFICATE,),
)
# Peer text that must arrive inert: an escape, a line break, and Nagios's macro characters.
UNKNOWN_HTTP = ProbeResult(
    check=ref("south/lte/webui", "http", "http://127.0.0.3:8080/status"),
    started_at=AT,
    duration_ms=1500.0,
    severity=Severity.UNKNOWN,
    observations={"status_code": 502, "if.index": 3, "ratio_pct": 99.5, "up": True},
    error=ProbeError(ErrorClass.PROTOCOL, 'bad "reply" <\x1b[2J> | $HOME\nforged'),
)
LONG = ProbeResult(
    check=ref("south/lte/" + "d" * 60, "dns", "127.0.0.53:5353/" + "x" * 50),
    started_at=AT,
    duration_ms=3.0,
    severity=Severity.WARN,
    verdicts=(
        Verdict(
            condition="answer",
            observation="answer_count",
            value=0,
            threshold="at least 1",
            severity=Severity.WARN,
        ),
    ),
)
RESULTS = (OK_TCP, CRIT_TLS, UNKNOWN_HTTP, LONG)

GROUPS = (
    GroupSummary(
        group_id="north-uplinks",
        name="North uplinks",
        site_id="north",
        status=GroupStatus.AT_RISK,
        up=1,
        unknown=0,
        total=2,
        min_up=1,
    ),
    GroupSummary(
        group_id="south-uplinks",
        name="South uplinks",
        site_id="south",
        status=None,
        up=0,
        unknown=0,
        total=2,
        min_up=1,
        not_evaluated=("south/lte",),
    ),
)
EVENT = Event(
    at=AT,
    subject=Subject.CHECK,
    subject_id="north/fibre/gw-tls",
    site_id="north",
    kind=EventKind.HARD,
    before="OK",
    after="CRIT",
    cause="expiry 3.25d",
    suppressed=(Suppression.MAINTENANCE,),
)


RED, GREEN, RESET = "\x1b[1;31m", "\x1b[32m", "\x1b[0m"


# --- the monitoring-plugin line ----------------------------------------------------------


def test_plugin_lines_carry_state_text_and_perfdata_with_the_guidelines_ranges_and_units():
    assert [nagios_line(r) for r in RESULTS] == [
        "TCP OK - 127.0.0.1:8443: latency 12.5ms | connect_ms=12.5ms;200;1000",
        # A lower-is-worse bound is a range open above ("30:"); words replace < and >.
        "TLS CRITICAL - 127.0.0.2:443: expiry 3.25d [#0 CN=gw] (warn below 30d, crit below"
        " 14d): CRIT | days_left=3.25;30:;14: handshake_ms=30.125ms",
        # Nagios's illegal macro characters never reach it; nor an escape or a second line.
        # Booleans and identifiers (if.index) are no perfdata; a percentage gets its 0;100.
        "HTTP UNKNOWN - http://127.0.0.3:8080/status: protocol: bad \u201dreply\u201d"
        " \\x3c\\x1b[2J\\x3e / \\x24HOME\\x0aforged | status_code=502 ratio_pct=99.5%;;;0;100",
        "DNS WARNING - 127.0.0.53:5353/" + "x" * 50 + ": answer 0 (at least 1): WARN"
        " | answer_count=0",
    ]


# --- for people ------------------------------------------------------------------------------


def test_the_table_is_worst_first_clipped_to_its_columns_and_inert():
    assert table(RESULTS, colour=False).splitlines() == [
        "STATE    CHECK" + " " * 45 + "KIND   TARGET" + " " * 40 + "TIME  DETAIL",
        "CRIT     north/fibre/gw-tls" + " " * 32 + "tls    127.0.0.2:443" + " " * 33 + "40ms"
        "  expiry 3.25d [#0 CN=gw] (warn < 30d, crit < 14d): CRIT",
        "UNKNOWN  south/lte/webui"
        + " " * 35
        + "http   http://127.0.0.3:8080/status"
        + " " * 16
        + '1500ms  protocol: bad "reply" <\\x1b[2J> | $HOME\\x0aforged',
        "WARN     south/lte/"
        + "d" * 37
        + "\u2026  dns    127.0.0.53:5353/"
        + "x" * 23
        + "\u2026       3ms  answer 0 (at least 1): WARN",
        "OK       north/fibre/router" + " " * 32 + "tcp    127.0.0.1:8443" + " " * 32 + "12ms"
        "  latency 12.5ms",
        "",
        "4 checks: 1 OK, 1 WARN, 1 CRIT, 1 UNKNOWN; worst CRIT",
    ]


def test_the_table_in_colour_colours_the_state_column_only():
    assert table(RESULTS[:2], colour=True).splitlines() == [
        "STATE    CHECK               KIND   TARGET              TIME  DETAIL",
        f"{RED}CRIT   {RESET}  north/fibre/gw-tls  tls    127.0.0.2:443       40ms"
        "  expiry 3.25d [#0 CN=gw] (warn < 30d, crit < 14d): CRIT",
        f"{GREEN}OK     {RESET}  north/fibre/router  tcp    127.0.0.1:8443      12ms"
        "  latency 12.5ms",
        "",
        "2 checks: 1 OK, 0 WARN, 1 CRIT, 0 UNKNOWN; worst CRIT",
    ]
    assert table((), colour=False) == (
        "STATE    CHECK  KIND   TARGET      TIME  DETAIL\n\n"
        "0 checks: 0 OK, 0 WARN, 0 CRIT, 0 UNKNOWN; worst OK"
    )


def test_the_verdict_list_shows_the_error_then_what_failed_first_then_what_was_observed():
    assert verdict_list(UNKNOWN_HTTP, colour=False).splitlines() == [
        "UNKNOWN  http http://127.0.0.3:8080/status  (1500 ms)",
        '  error    protocol: bad "reply" <\\x1b[2J> | $HOME\\x0aforged',
        "  observed status_code = 502",
        "  observed if.index = 3",
        "  observed ratio_pct = 99.5",
        "  observed up = yes",
    ]
    assert verdict_list(CRIT_TLS, colour=True).splitlines() == [
        f"{RED}CRIT   {RESET}  tls 127.0.0.2:443  (40 ms)",
        f"  {RED}CRIT   {RESET}  expiry 3.25d [#0 CN=gw] (warn < 30d, crit < 14d): CRIT",
        f"  {GREEN}OK     {RESET}  protocol TLSv1.3: OK",
        "  observed days_left = 3.25",
        "  observed handshake_ms = 30.125",
        "  observed tls_version = TLSv1.3",
    ]
    assert verdict_list(OK_TCP, colour=False).splitlines()[0] == "OK  tcp 127.0.0.1:8443  (12 ms)"


def test_redundancy_groups_for_people():
    assert groups_table(GROUPS).splitlines() == [
        "",
        "REDUNDANCY",
        "  AT RISK       north-uplinks            1 of 2 links up (needs 1)",
        "  NOT EVALUATED south-uplinks            checks deciding south/lte are not selected",
    ]
    assert not_evaluated_note(GROUPS) == (
        "commwatch: redundancy not evaluated for south-uplinks: the selection leaves out"
        " checks that decide some of their links"
    )
    assert not_evaluated_note(GROUPS[:1]) is None


# --- for machines ----------------------------------------------------------------------------


def test_a_result_record_holds_every_field_exactly():
    assert result_to_dict(CRIT_TLS) == {
        "check_id": "north/fibre/gw-tls",
        "site_id": "north",
        "link_id": "fibre",
        "kind": "tls",
        "target": "127.0.0.2:443",
        "tags": [],
        "started_at": "2027-01-15T08:00:00.250+00:00",
        "duration_ms": 40.0,
        "severity": "CRIT",
        "exit_code": 2,
        "summary": "expiry 3.25d [#0 CN=gw] (warn < 30d, crit < 14d): CRIT",
        "observations": {"days_left": 3.25, "handshake_ms": 30.125, "tls_version": "TLSv1.3"},
        "verdicts": [
            {
                "condition": "expiry",
                "observation": "days_left",
                "value": 3.25,
                "unit": "d",
                "threshold": "warn < 30d, crit < 14d",
                "warn": 30.0,
                "crit": 14.0,
                "severity": "CRIT",
                "about": "#0 CN=gw",
                "finding": "expiry 3.25d [#0 CN=gw]",
                "reason": "expiry 3.25d",
                "headline": False,
            },
            {
                "condition": "protocol",
                "observation": "tls_version",
                "value": "TLSv1.3",
                "unit": "",
                "threshold": "at least TLSv1.2",
                "warn": None,
                "crit": None,
                "severity": "OK",
                "about": "",
                "finding": "protocol TLSv1.3",
                "reason": "protocol TLSv1.3",
                "headline": False,
            },
        ],
        "error": None,
        "certificates": [
            {
                "fingerprint_sha256": "ab" * 32,
                "position": 0,
                "subject": "CN=gw",
                "issuer": "CN=Lab CA",
                "serial": "1F",
                "not_before": "2026-03-21T08:00:00.250+00:00",
                "not_after": "2027-01-18T14:00:00.250+00:00",
                "days_left": 3.25,
                "key_type": "EC",
                "key_bits": 256,
                "signature_algorithm": "ecdsa-with-SHA256",
                "subject_alt_names": ["DNS:gw"],
                "spki_sha256": "cd" * 32,
                "self_signed": False,
                "malformed": [],
            }
        ],
    }


def test_a_stream_line_is_compact_exact_json_of_its_schema():
    line = result_line(UNKNOWN_HTTP)
    assert line == (
        '{"schema_version":2,"type":"result","check_id":"south/lte/webui","site_id":"south",'
        '"link_id":"lte","kind":"http","target":"http://127.0.0.3:8080/status","tags":[],'
        '"started_at":"2027-01-15T08:00:00.250+00:00","duration_ms":1500.0,"severity":"UNKNOWN",'
        '"exit_code":3,"summary":"protocol: bad \\"reply\\" <\\u001b[2J> | $HOME\\nforged",'
        '"observations":{"status_code":502,"if.index":3,"ratio_pct":99.5,"up":true},'
        '"verdicts":[],"error":{"class":"protocol",'
        '"message":"bad \\"reply\\" <\\u001b[2J> | $HOME\\nforged"},"certificates":[]}'
    )
    schema = json.loads((REPO / "monitor/output/schema/result.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(line))


def test_the_sweep_document_counts_every_severity_and_carries_every_result():
    document = sweep_document(RESULTS[:3], AT, AT + 2, "inv.yaml", complete=True)
    assert {k: v for k, v in document.items() if k != "results"} == {
        "schema_version": 2,
        "type": "sweep",
        "inventory": "inv.yaml",
        "started_at": "2027-01-15T08:00:00.250+00:00",
        "finished_at": "2027-01-15T08:00:02.250+00:00",
        "complete": True,
        "summary": {
            "checks": 3,
            "OK": 1,
            "WARN": 0,
            "CRIT": 1,
            "UNKNOWN": 1,
            "worst": "CRIT",
            "exit_code": 2,
        },
    }
    assert document["results"] == [result_to_dict(r) for r in RESULTS[:3]]


def test_events_and_groups_as_records():
    assert json_line(event_record(EVENT)) == (
        '{"schema_version":2,"type":"event","event_id":"' + EVENT.event_id + '",'
        '"at":"2027-01-15T08:00:00.250+00:00","subject":"check",'
        '"subject_id":"north/fibre/gw-tls","site_id":"north","kind":"hard","before":"OK",'
        '"after":"CRIT","cause":"expiry 3.25d","suppressed":["maintenance"],"notifiable":false}'
    )
    assert [group_record(g) for g in GROUPS] == [
        {
            "group_id": "north-uplinks",
            "name": "North uplinks",
            "site_id": "north",
            "status": "AT RISK",
            "evaluated": True,
            "not_evaluated": [],
            "up": 1,
            "unknown": 0,
            "links": 2,
            "min_up": 1,
            "converging": [],
        },
        # A group the selection cannot judge has no status and no counts.
        {
            "group_id": "south-uplinks",
            "name": "South uplinks",
            "site_id": "south",
            "status": None,
            "evaluated": False,
            "not_evaluated": ["south/lte"],
            "up": None,
            "unknown": None,
            "links": 2,
            "min_up": 1,
            "converging": [],
        },
    ]
