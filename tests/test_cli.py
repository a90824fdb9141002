"""The `commwatch` command as a user, a cron job or a monitoring system runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import REPO
from tests.peers.tcp_peers import closed_port

SCHEMA = json.loads((REPO / "monitor/schema/result.schema.json").read_text())


def commwatch(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def lab_inventory(tmp_path) -> Path:
    """An inventory of one live listener, one closed port and one slow-to-warn check."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    path = tmp_path / "inventory.yaml"
    path.write_text(f"""\
version: 1
defaults: {{timeout: 1s, interval: 1s}}
sites:
  - id: psap
    tags: [psap]
    links:
      - id: fibre
        checks:
          - {{id: up, kind: tcp, target: "127.0.0.1:{port}"}}
          - {{id: down, kind: tcp, target: "127.0.0.1:{closed_port()}", tags: [edge]}}
  - id: radio
    links:
      - id: microwave
        checks:
          - {{id: slowish, kind: tcp, target: "127.0.0.1:{port}", latency_warn: 0.000001s}}
""")
    yield path
    listener.close()


def test_check_summarises_a_valid_inventory(lab_inventory):
    done = commwatch("check", str(lab_inventory))
    assert done.returncode == 0, done.stderr
    assert "2 sites, 2 links (2 primary), 3 checks" in done.stdout
    assert "3 tcp" in done.stdout


def test_check_rejects_a_broken_inventory_with_locations_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "sites:\n  - id: s\n    links:\n      - id: l\n        checks:\n"
        "          - {id: c, kind: tcp, target: '127.0.0.1:0'}\n"
    )
    done = commwatch("check", str(bad))
    assert done.returncode == 2
    assert f"{bad}:6:40: 'target': 0 is not a TCP/UDP port" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_run_once_emits_a_schema_valid_document_and_exits_with_the_worst(lab_inventory):
    done = commwatch("run", "--once", str(lab_inventory))
    assert done.returncode == 2, done.stderr
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    by_id = {r["check_id"]: r for r in document["results"]}
    assert by_id["psap/fibre/up"]["severity"] == "OK"
    assert by_id["psap/fibre/down"]["error"]["class"] == "refused"
    assert by_id["radio/microwave/slowish"]["severity"] == "WARN"
    assert document["summary"] == {
        "checks": 3,
        "OK": 1,
        "WARN": 1,
        "CRIT": 1,
        "UNKNOWN": 0,
        "worst": "CRIT",
        "exit_code": 2,
    }
    assert [r["check_id"] for r in document["results"]] == [
        "psap/fibre/up",
        "psap/fibre/down",
        "radio/microwave/slowish",
    ]
    assert document["complete"] is True


@pytest.mark.parametrize(
    ("selection", "expected_ids", "exit_code"),
    [
        (["--only", "up"], ["psap/fibre/up"], 0),
        (["--only", "radio/*"], ["radio/microwave/slowish"], 1),
        (["--site", "psap"], ["psap/fibre/up", "psap/fibre/down"], 2),
        (["--tag", "edge"], ["psap/fibre/down"], 2),
        (
            ["--kind", "tcp", "--only", "up", "--only", "slowish"],
            ["psap/fibre/up", "radio/microwave/slowish"],
            1,
        ),
    ],
)
def test_run_once_selection(lab_inventory, selection, expected_ids, exit_code):
    done = commwatch("run", "--once", str(lab_inventory), *selection)
    assert done.returncode == exit_code, done.stderr
    assert [r["check_id"] for r in json.loads(done.stdout)["results"]] == expected_ids


def test_a_selection_that_matches_nothing_is_unknown(lab_inventory):
    done = commwatch("run", "--once", str(lab_inventory), "--site", "nowhere")
    assert done.returncode == 3
    assert "no check matches" in done.stderr


def test_run_once_table_for_people(lab_inventory):
    done = commwatch("run", "--once", "--format", "table", str(lab_inventory))
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["STATE", "CHECK", "KIND", "TARGET", "TIME", "DETAIL"]
    assert lines[1].startswith("CRIT     psap/fibre/down")
    assert "\x1b[" not in done.stdout
    assert "3 checks: 1 OK, 1 WARN, 1 CRIT, 0 UNKNOWN; worst CRIT" in lines
    assert lines[-3:] == [
        "REDUNDANCY",
        "  DOWN       psap                     0 of 1 links up (needs 1)",
        "  AT RISK    radio                    1 of 1 links up (needs 1)",
    ]


def test_continuous_run_streams_json_lines_and_stops_cleanly_on_sigterm(lab_inventory):
    process = start("run", str(lab_inventory))
    records = []
    deadline = time.monotonic() + 10
    while sum(r["type"] == "result" for r in records) < 6 and time.monotonic() < deadline:
        records.append(json.loads(process.stdout.readline()))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=5)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    for record in records:
        jsonschema.validate(record, SCHEMA)
    results = [r for r in records if r["type"] == "result"]
    # Interval 1s: within the first six results every check has reported, and repeats follow.
    assert {r["check_id"] for r in results} == {
        "psap/fibre/up",
        "psap/fibre/down",
        "radio/microwave/slowish",
    }
    # The first problem each check shows is news; an OK start is not.
    events = {(r["subject_id"], r["before"], r["after"]) for r in records if r["type"] == "event"}
    assert ("psap/fibre/down", "PENDING", "CRIT") in events
    assert ("radio/microwave/slowish", "PENDING", "WARN") in events
    assert not any(subject == "psap/fibre/up" for subject, _, _ in events)


def test_continuous_run_survives_a_reader_that_goes_away(lab_inventory):
    shell = f"{sys.executable} -m monitor.cli run {lab_inventory} | head -n 1"
    done = subprocess.run(shell, shell=True, cwd=REPO, capture_output=True, text=True, timeout=20)
    assert json.loads(done.stdout)["type"] == "result"
    assert "Traceback" not in done.stderr


def test_probe_tcp_text_json_and_nagios():
    port = closed_port()
    text = commwatch("probe", "tcp", f"127.0.0.1:{port}")
    assert text.returncode == 2
    assert text.stdout.splitlines()[1] == "  error    refused: Connection refused"

    as_json = commwatch("probe", "tcp", f"127.0.0.1:{port}", "--format", "json")
    record = json.loads(as_json.stdout)
    jsonschema.validate(record, SCHEMA)
    assert record["error"] == {"class": "refused", "message": "Connection refused"}

    nagios = commwatch("probe", "tcp", f"127.0.0.1:{port}", "--nagios")
    assert nagios.stdout == f"TCP CRITICAL - 127.0.0.1:{port}: refused: Connection refused\n"
    assert nagios.returncode == 2


def test_probe_perfdata_carries_thresholds(lab_inventory):
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        done = commwatch(
            "probe",
            "tcp",
            f"127.0.0.1:{port}",
            "--nagios",
            "--latency-warn",
            "200ms",
            "--latency-crit",
            "1s",
        )
    assert done.returncode == 0
    status, perfdata = done.stdout.strip().split(" | ")
    assert status.startswith(f"TCP OK - 127.0.0.1:{port}: latency ")
    assert status.endswith("ms")
    assert perfdata.startswith("connect_ms=") and perfdata.endswith("ms;200;1000")
    assert perfdata.count("=") == 1


def test_probe_flag_errors_are_unknown_and_name_the_flag():
    done = commwatch("probe", "tcp", "127.0.0.1:22", "--latency-warn", "soon")
    assert done.returncode == 3
    assert done.stderr.startswith("commwatch probe tcp: --latency-warn: 'soon' is not a duration")
    usage = commwatch("probe", "tcp")
    assert usage.returncode == 3
    assert "the following arguments are required" in usage.stderr


def test_help_lists_the_commands_and_the_exit_codes():
    done = commwatch("--help")
    assert done.returncode == 0
    for word in ("check", "run", "probe", "0 OK, 1 WARN, 2 CRIT"):
        assert word in done.stdout
