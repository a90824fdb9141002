"""The `commwatch` command as a user, a cron job or a monitoring system runs it."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from monitor.output.plugin import perf_label, unique_labels
from probes.registry import REGISTRY
from tests.conftest import REPO
from tests.peers.http_peers import http_server, raw_server
from tests.peers.snmp_peers import COMMUNITY, SnmpAgent, running_agent
from tests.peers.tcp_peers import blackhole_port, closed_port

KINDS = tuple(REGISTRY)

SCHEMA = json.loads((REPO / "monitor/output/schema/result.schema.json").read_text())


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
    """The command, with SIGINT as a terminal gives it: a suite started in the background by a
    non-interactive shell (`... &`) has SIGINT ignored, every child inherits that, and Python
    then leaves it ignored (no KeyboardInterrupt)."""
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
    done = commwatch("run", "--once", str(lab_inventory), "--only", "nowhere")
    assert done.returncode == 3
    assert "no check matches" in done.stderr


@pytest.mark.parametrize("command", [["run", "--once"], ["audit", "certs"]])
def test_an_unknown_site_or_tag_lists_the_valid_ones(lab_inventory, command):
    site = commwatch(*command, str(lab_inventory), "--site", "psap-nort")
    assert site.returncode == 3
    assert site.stderr == (
        f"commwatch: no site 'psap-nort' in {lab_inventory} "
        "(did you mean psap? sites: psap, radio)\n"
    )
    tag = commwatch(*command, str(lab_inventory), "--tag", "egde")
    assert tag.returncode == 3
    assert tag.stderr == (
        f"commwatch: no tag 'egde' in {lab_inventory} (did you mean edge? tags: edge, psap)\n"
    )


def test_an_unknown_selection_is_answered_in_bounded_words(tmp_path):
    sites = "\n".join(
        f"  - id: site-{n:03}\n    links:\n      - id: l\n        checks:\n"
        f"          - {{id: c, kind: tcp, target: 127.0.0.1:9}}"
        for n in range(500)
    )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"version: 1\nsites:\n{sites}\n")
    done = commwatch("run", "--once", str(inventory), "--site", "site-0x1")
    assert done.returncode == 3
    assert "(did you mean site-" in done.stderr
    assert "site-019 and 480 more)" in done.stderr and "site-020" not in done.stderr
    huge = commwatch("run", "--once", str(inventory), "--site", "x" * 5000)
    assert huge.returncode == 3
    assert len(huge.stderr) < 1100 and "xxx … xxx" in huge.stderr


def test_a_huge_flag_value_is_not_echoed_whole():
    done = commwatch("probe", "tcp", "9" * 5000)
    assert done.returncode == 3
    assert all(len(line) < 400 for line in done.stdout.splitlines() + done.stderr.splitlines())
    assert " … " in done.stdout
    latency = commwatch("probe", "tcp", "127.0.0.1:9", "--latency-warn", "9" * 5000)
    assert latency.stdout.startswith(
        "TCP UNKNOWN - --latency-warn: the duration is longer than ten years"
    )


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
    # Every check's first state is an event from PENDING, an OK start too.
    events = {(r["subject_id"], r["before"], r["after"]) for r in records if r["type"] == "event"}
    assert ("psap/fibre/down", "PENDING", "CRIT") in events
    assert ("radio/microwave/slowish", "PENDING", "WARN") in events
    assert ("psap/fibre/up", "PENDING", "OK") in events


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


# --- commwatch probe as a monitoring plugin -------------------------------------------------

# Nagios strips these (illegal_macro_output_chars) from the output it hands to event handlers.
NAGIOS_ILLEGAL = set("`~$&|'\"<>")
# 'label'=value[UOM];[warn];[crit];[min];[max], UOM none, s/ms/us, %, B/KB/MB/TB or c; the
# label quoted when it must be (a quote in it doubled); values in plain decimals.
_LABEL = r"(?:'(?:[^']|'')+'|[^'= ]+)"
_VALUE = r"-?[0-9]+(?:\.[0-9]+)?"
_RANGE = rf"(?:@?(?:{_VALUE}|~)?:?(?:{_VALUE})?)"
PERF_ITEM = re.compile(
    rf"{_LABEL}={_VALUE}(?:s|ms|us|%|B|KB|MB|TB|c)?(?:;{_RANGE}?(?:;{_RANGE}?(?:;{_VALUE}?(?:;{_VALUE}?)?)?)?)?"
)


def plugin_line(stdout: str) -> tuple[str, list[str]]:
    """The status text and the perfdata items of a plugin's single line of output."""
    assert stdout.endswith("\n") and stdout.count("\n") == 1, stdout
    status, _, perf = stdout.rstrip("\n").partition(" | ")
    assert not NAGIOS_ILLEGAL & set(status), status
    assert all(" " <= c != "\x7f" for c in stdout.rstrip("\n")), stdout
    items = perf.split(" ") if perf else []
    for item in items:
        assert PERF_ITEM.fullmatch(item), item
    return status, items


def perf_values(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


async def run_commwatch(
    *args: str, env: dict[str, str] | None = None, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`commwatch` in a subprocess while this test's own peers keep serving on the loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        *args,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"} if env is None else env,
        user=user,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


@pytest.mark.parametrize("flag", ["-t", "--timeout"])
def test_a_bare_timeout_is_seconds_as_every_plugins_t(flag):
    with blackhole_port() as port:
        started = time.monotonic()
        done = commwatch("probe", "tcp", f"127.0.0.1:{port}", flag, "1", "--nagios")
        elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    status, _ = plugin_line(done.stdout)
    assert status == f"TCP CRITICAL - 127.0.0.1:{port}: timeout: no answer within 1s"
    assert 0.9 < elapsed < 10


def test_a_bare_latency_threshold_in_the_hundreds_is_an_error_that_suggests_ms(tmp_path):
    done = commwatch("probe", "tcp", "127.0.0.1:22", "--latency-warn", "500", "--nagios")
    assert done.returncode == 3
    status, _ = plugin_line(done.stdout)
    assert status.startswith("TCP UNKNOWN - --latency-warn: 500 as a bare number is 500 seconds")
    assert "write 500ms for milliseconds, or 500s if seconds are meant" in status
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\nsites:\n  - id: s\n    links:\n      - id: l\n        checks:\n"
        "          - {id: c, kind: tcp, target: '127.0.0.1:22', latency_warn: 500}\n"
    )
    check = commwatch("check", str(inventory))
    assert check.returncode == 2
    assert check.stderr.startswith(
        f"{inventory}:7:70: 'latency_warn': 500 as a bare number is 500 seconds, implausible for "
        "a latency threshold (write 500ms for milliseconds, or 500s if seconds are meant)"
    )


def test_durations_with_units_and_small_bare_seconds_are_accepted():
    for value in ("2", "0.5", "1500ms", "1m30s"):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            port = listener.getsockname()[1]
            done = commwatch(
                "probe", "tcp", f"127.0.0.1:{port}", "--latency-crit", value, "-t", value
            )
        assert done.returncode == 0, (value, done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("args", "plugin", "named"),
    [
        (["probe", "tcp"], "TCP", "the following arguments are required: HOST:PORT"),
        (["probe", "tcp", "127.0.0.1:22", "--bogus"], "TCP", "unrecognized arguments: --bogus"),
        (["probe", "tcp", "127.0.0.1:22", "-t", "soon"], "TCP", "argument -t/--timeout: "),
        (["probe", "tcp", "127.0.0.1:0"], "TCP", "TARGET: 0 is not a TCP/UDP port"),
        (["probe", "tcp", "127.0.0.1:22", "--latency-warn", "soon"], "TCP", "--latency-warn: "),
        (["probe", "snmp", "127.0.0.1", "--snmp-version", "1"], "SNMP", "--snmp-version: "),
        (
            ["probe", "http", "http://127.0.0.1:1/", "--headers", "X-Api-Token: {env: CW_UNSET}"],
            "HTTP",
            "--headers: environment variable CW_UNSET is not set",
        ),
        (["probe", "nosuch", "x"], "COMMWATCH", "argument KIND: invalid choice: "),
    ],
)
def test_every_probe_usage_error_is_a_status_line_on_stdout_and_exit_3(args, plugin, named):
    for output_flags in ([], ["--nagios"]):
        done = commwatch(*args, *output_flags)
        assert done.returncode == 3, done.stdout + done.stderr
        status, perf = plugin_line(done.stdout)
        assert status.startswith(f"{plugin} UNKNOWN - "), status
        assert named.replace("'", "\u2019") in status
        assert perf == []
        assert "Traceback" not in done.stderr


def test_a_bad_flag_gets_the_usage_of_its_subcommand(lab_inventory):
    probe = commwatch("probe", "tcp", "127.0.0.1:22", "--bogus")
    assert probe.stderr.startswith("usage: commwatch probe tcp [-h] [-V] [-t DURATION]")
    run = commwatch("run", str(lab_inventory), "--bogus")
    assert run.returncode == 3
    assert run.stderr.startswith("usage: commwatch run [-h]")
    assert run.stderr.endswith("commwatch run: error: unrecognized arguments: --bogus\n")
    certs = commwatch("audit", "certs", "--within", "soon")
    assert certs.returncode == 3
    assert certs.stderr.startswith("usage: commwatch audit certs [-h]")


def test_version_and_the_plugins_reserved_options():
    version = importlib.metadata.version("commwatch")
    top = commwatch("--version")
    assert (top.returncode, top.stdout) == (0, f"commwatch {version}\n")
    for flag in ("-V", "--version"):
        plugin = commwatch("probe", "tcp", flag)
        assert (plugin.returncode, plugin.stdout) == (3, f"commwatch {version}\n")
    helped = commwatch("probe", "tcp", "-h")
    assert helped.returncode == 3
    assert "-t DURATION, --timeout DURATION" in helped.stdout
    assert "-V, --version" in helped.stdout


def test_help_shows_defaults_as_the_user_writes_them():
    shown = {kind: " ".join(commwatch("probe", kind, "--help").stdout.split()) for kind in KINDS}
    assert "(repeatable) (default 200-399)" in shown["http"]
    assert "a reboot stays WARN this long after it (default 15m)" in shown["snmp"]
    assert "time allowed for each OCSP or CRL exchange (default 5s)" in shown["tls"]
    assert "expires in fewer days (default 30)" in shown["tls"]
    assert "(default --verify-tls)" in shown["http"] and "(default --no-ocsp)" in shown["tls"]
    assert "--snmp-version VERSION SNMP version: 3 or 2c (default 3)" in shown["snmp"]
    for text in shown.values():
        assert not re.search(r"\(default (\(|[0-9]+\.0\)|True|False|None)", text), text


def test_plugin_status_words_and_text_follow_the_guidelines():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        done = commwatch(
            "probe", "tcp", f"127.0.0.1:{port}", "--nagios", "--latency-warn", "0.000001s"
        )
    assert done.returncode == 1
    status, perf = plugin_line(done.stdout)
    # "warn > 0.001ms" would reach an event handler as "warn  0.001ms".
    assert re.fullmatch(
        rf"TCP WARNING - 127\.0\.0\.1:{port}: latency [0-9.]+ms \(warn above 0\.001ms\): WARN",
        status,
    ), status
    assert re.fullmatch(r"connect_ms=[0-9.]+ms;0\.001", perf[0]), perf


async def test_perfdata_is_plain_decimals_with_the_guidelines_units():
    async with http_server() as peer:
        done = await run_commwatch("probe", "http", f"{peer.url}/huge", "--nagios")
    assert done.returncode == 0, done.stdout + done.stderr
    _, items = plugin_line(done.stdout)
    values = perf_values(items)
    assert values["body_bytes"] == "1048576B"  # was 1.04858e+06
    assert re.fullmatch(r"[0-9.]+ms", values["latency_ms"])
    assert all("e+" not in item and "e-" not in item for item in items)


async def test_hostile_peer_text_stays_inert_in_both_renderings():
    reply = b"HTTP/1.1 abc <'$&|>\x1b[31m\r\n\r\n"
    async with raw_server(reply) as url:
        nagios = await run_commwatch("probe", "http", f"{url}/", "--nagios")
        text = await run_commwatch("probe", "http", f"{url}/")
    status, _ = plugin_line(nagios.stdout)
    assert status.startswith("HTTP CRITICAL - ")
    assert "abc \\x3c\u2019\\x24\\x26/\\x3e" in status
    assert "\x1b" not in text.stdout and "\r" not in text.stdout
    assert text.stdout.splitlines()[1].startswith("  error    protocol: ")


async def test_verdict_list_shows_what_failed_first():
    async with http_server() as peer:
        done = await run_commwatch(
            "probe", "http", f"{peer.url}/ok", "--latency-warn", "0.000001s",
            "--body-contains", "not in the body",
        )  # fmt: skip
    assert done.returncode == 2
    words = [
        line.split()[0]
        for line in done.stdout.splitlines()[1:]
        if not line.startswith("  observed")
    ]
    ranks = {"CRIT": 3, "UNKNOWN": 2, "WARN": 1, "OK": 0}
    assert words[:2] == ["CRIT", "WARN"], done.stdout
    assert [ranks[w] for w in words] == sorted((ranks[w] for w in words), reverse=True)
    # Observed values read as words too: a boolean is yes or no, never True or False.
    assert "  observed body_contains_match = no" in done.stdout.splitlines()
    assert "True" not in done.stdout and "False" not in done.stdout


async def test_headers_read_an_env_reference_as_the_inventory_form_does():
    token = "cw-token-not-literal-4c1a"
    async with http_server() as peer:
        done = await run_commwatch(
            "probe", "http", f"{peer.url}/secret", "--headers", "X-Api-Token: {env: CW_TOKEN}",
            env={**os.environ, "NO_COLOR": "1", "CW_TOKEN": token},
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert peer.seen.secret_values == [token]
    assert token not in done.stdout + done.stderr


def test_perf_labels_are_quoted_and_unique_within_rrds_19_characters():
    assert perf_label("connect_ms") == "connect_ms"
    assert perf_label("if.Gi 0/1.in_errors_per_s") == "'if.Gi 0/1.in_errors_per_s'"
    assert perf_label("a=b") == "'a=b'"
    assert perf_label("it's") == "'it''s'"
    names = [f"if.GigabitEthernet0/0/{n}.{m}" for n in (1, 2) for m in ("in_errors_per_s", "x")]
    names.append("connect_ms")
    labels = unique_labels(names)
    assert len({label[:19] for label in labels}) == len(names)
    assert labels[-1] == "connect_ms"
    assert unique_labels(names) == labels  # stable from one run to the next


# --- commwatch probe snmp keeps state between invocations, as check_snmp_int does -----------


@pytest.fixture
def snmp_agent(tmp_path: Path) -> Iterator[SnmpAgent]:
    with running_agent(tmp_path / "snmpd") as agent:
        yield agent


def snmp_plugin(agent: SnmpAgent, *more: str) -> list[str]:
    return [
        "probe", "snmp", agent.target, "--snmp-version", "2c", "--community-env", "CW_COMMUNITY",
        "--interfaces", "lo", "--nagios", *more,
    ]  # fmt: skip


def snmp_env() -> dict[str, str]:
    """Read when a test runs: XDG_STATE_HOME is the test's own then (conftest)."""
    return {**os.environ, "NO_COLOR": "1", "CW_COMMUNITY": COMMUNITY}


async def test_probe_snmp_keeps_rates_between_invocations_in_a_private_state_file(
    snmp_agent, tmp_path
):
    state = tmp_path / "state"
    first = await run_commwatch(*snmp_plugin(snmp_agent, "--state-dir", str(state)), env=snmp_env())
    assert first.returncode == 0, first.stdout + first.stderr
    assert "in_errors_per_s" not in first.stdout  # one poll: no rate yet
    second = await run_commwatch(
        *snmp_plugin(snmp_agent, "--state-dir", str(state)), env=snmp_env()
    )
    # Not its exit code: the loopback's utilisation depends on whatever else runs.
    assert "Traceback" not in second.stderr
    _, items = plugin_line(second.stdout)
    values = perf_values(items)
    assert values["if.lo.in_errors_per_s"] == "0;1;10"
    assert re.fullmatch(r"[0-9.]+%;80;95;0;100", values["if.lo.in_utilisation_pct"])
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)?s", values["system.uptime_s"])
    [file] = state.iterdir()
    assert file.stat().st_mode & 0o777 == 0o600
    assert COMMUNITY not in file.read_text() and "CW_COMMUNITY" not in file.read_text()


async def test_probe_snmp_tells_a_reboot_between_invocations(snmp_agent):
    # No --state-dir: the default folder, under the XDG_STATE_HOME conftest gives every test.
    args = [*snmp_plugin(snmp_agent)[:-3], "--nagios"]  # the system group alone
    deadline = time.monotonic() + 60
    uptime = 0.0
    # Poll until the agent has been up well longer than a restart and a poll will take.
    while uptime < 6 and time.monotonic() < deadline:
        first = await run_commwatch(*args, env=snmp_env())
        assert first.returncode == 0, first.stdout + first.stderr
        uptime = float(perf_values(plugin_line(first.stdout)[1])["system.uptime_s"][:-1])
    assert list((Path(os.environ["XDG_STATE_HOME"]) / "commwatch" / "probe").glob("snmp-*.json"))
    snmp_agent.restart()
    second = await run_commwatch(*args, env=snmp_env())
    assert second.returncode == 1, second.stdout + second.stderr
    status, _ = plugin_line(second.stdout)
    assert status.startswith(f"SNMP WARNING - {snmp_agent.target}: system.reboot 20")


async def test_racing_invocations_leave_one_whole_state_file(snmp_agent, tmp_path):
    state = tmp_path / "state"
    args = snmp_plugin(snmp_agent, "--state-dir", str(state))
    runs = await asyncio.gather(*(run_commwatch(*args, env=snmp_env()) for _ in range(4)))
    assert all(run.stdout.startswith("SNMP ") and run.stderr == "" for run in runs), runs
    [file] = state.iterdir()  # no temporary file left behind
    assert json.loads(file.read_text())["memory"]["counters"]
    after = await run_commwatch(*args, env=snmp_env())
    assert "if.lo.in_errors_per_s=" in after.stdout


async def test_a_damaged_state_file_is_replaced_not_fatal(snmp_agent, tmp_path):
    state = tmp_path / "state"
    args = snmp_plugin(snmp_agent, "--state-dir", str(state))
    await run_commwatch(*args, env=snmp_env())
    [file] = state.iterdir()
    file.write_bytes(b'{"version": 1, "memory": [\x00')
    damaged = await run_commwatch(*args, env=snmp_env())
    assert damaged.stdout.startswith("SNMP "), damaged.stdout + damaged.stderr
    assert "is not one commwatch wrote; starting afresh" in damaged.stderr
    assert "Traceback" not in damaged.stderr
    assert json.loads(file.read_text())["version"] == 1


async def test_with_no_usable_home_the_state_goes_to_a_private_temporary_folder(
    snmp_agent, tmp_path
):
    community = tmp_path / "community"
    community.write_text(COMMUNITY)
    # No XDG_STATE_HOME, a HOME that cannot hold a folder, the temporary folder redirected.
    env = {"HOME": "/dev/null", "TMPDIR": str(tmp_path)}
    args = [
        "probe", "snmp", snmp_agent.target, "--snmp-version", "2c", "--community-file",
        str(community), "--interfaces", "lo", "--nagios",
    ]  # fmt: skip
    for _ in range(2):
        done = await run_commwatch(*args, env=env)
        assert done.stdout.startswith("SNMP ") and done.stderr == "", done
    assert "if.lo.in_errors_per_s=" in done.stdout
    private = tmp_path / f"commwatch-{os.getuid()}"
    assert private.stat().st_mode & 0o777 == 0o700
    assert list((private / "probe").glob("snmp-*.json"))


def test_a_plugin_run_with_an_empty_environment_works():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "probe", "tcp", f"127.0.0.1:{port}", "--nagios"],
            cwd=REPO,
            env={},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    status, _ = plugin_line(done.stdout)
    assert status.startswith(f"TCP OK - 127.0.0.1:{port}: ")
    assert done.stderr == ""


async def test_snmp_plugin_line_keeps_numbers_plain_and_labels_unique_in_19_characters(
    snmp_agent,
):
    in_octets = "1.3.6.1.2.1.2.2.1.10.1"  # lo's ifInOctets: always above 1 on a live host
    done = await run_commwatch(
        "probe", "snmp", snmp_agent.target, "--snmp-version", "2c", "--community-env",
        "CW_COMMUNITY", "--no-system", "--nagios",
        "--oids", f"{in_octets} name=loopback_in_octets_first warn=1 crit=9000000000000",
        "--oids", f"{in_octets} name=loopback_in_octets_second",
        env=snmp_env(),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    status, items = plugin_line(done.stdout)
    assert "(warn above 1, crit above 9000000000000): WARN" in status  # not 9e+12
    labels = [item.split("=", 1)[0] for item in items]
    assert len(labels) == 2 and all(len(label) <= 19 for label in labels), labels
    assert len({label[:19] for label in labels}) == 2
    assert all(label.startswith("oid.loopback_") for label in labels)
    assert items[0].endswith(";1;9000000000000")


def test_an_interrupted_plugin_still_prints_its_status_line():
    with blackhole_port() as port:
        process = start("probe", "tcp", f"127.0.0.1:{port}", "-t", "20", "--nagios")
        deadline = time.monotonic() + 20
        # Interrupt only once the connect is under way (its SYN unanswered), not at start-up.
        while time.monotonic() < deadline:
            connecting = subprocess.run(
                ["ss", "-Htnp", "state", "syn-sent", "dport", f"= :{port}"],
                capture_output=True,
                text=True,
                check=True,
            )
            if f"pid={process.pid}," in connecting.stdout:  # not the blackhole's own fillers
                break
        else:
            process.kill()
            pytest.fail("the probe's connect was never seen under way", pytrace=False)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 3, (stdout, stderr)
    assert stdout == "TCP UNKNOWN - interrupted\n"
    assert "Traceback" not in stderr


def test_a_bad_log_level_is_a_warning_not_a_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "probe", "tcp", f"127.0.0.1:{closed_port()}"],
        cwd=REPO,
        env={**os.environ, "COMMWATCH_LOG": "loud"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "commwatch: WARNING commwatch: COMMWATCH_LOG=LOUD is not a log level "
        "(DEBUG, INFO, WARNING, ERROR): WARNING used\n"
    )
