"""What a command imports before it does anything: a monitoring plugin is started thousands of
times an hour, so `commwatch --version`, `--help` and `probe tcp` load only what they need.

Each command runs in a process of its own, as the console script runs it (`main()` on the
command line's arguments), and lists the modules it had loaded at exit, however it exited.
bench/startup.py measures the time; these tests pin what it is made of.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli.main import COMMANDS, main
from monitor.lab.pki import make_ca, make_leaf, server_context
from probes.registry import REGISTRY
from tests.conftest import REPO
from tests.peers.tls_peers import tls_server

# The libraries of the other kinds, the dashboard, the alerts, the history and the cluster.
HEAVY = ("aiohttp", "pysnmp", "pyasn1", "textual", "rich", "cryptography", "dns", "re2", "nats")
# What a tcp check does not use, over HEAVY: the other kinds, the sinks and stores above the
# engine, and the libraries they stand on.
NOT_FOR_TCP = (
    *HEAVY,
    "probes.http",
    "probes.tls",
    "probes.dns",
    "probes.snmp",
    "probes.ntp",
    "probes.sip",
    "probes.icmp",
    "probes.support",
    "monitor.alerts",
    "monitor.store",
    "monitor.engine.pipeline",
    "monitor.output.audit",
    "monitor.output.report",
    "monitor.lab",
    "monitor.api",
    "monitor.cluster",
    "tui",
    "sqlite3",
    "yarl",
    "multidict",
)
# What the parser alone needs is argparse: no event loop, no probe, no inventory code.
NOT_FOR_THE_PARSER = (
    *NOT_FOR_TCP,
    "asyncio",
    "importlib.metadata",
    "probes.base",
    "probes.tcp",
    "monitor.cli.commands",
    "monitor.config",
    "monitor.core.options",
    "monitor.engine",
    "monitor.output",
    "yaml",
)

_DRIVER = """\
import atexit, os, sys

def record():
    with open(os.environ["CW_MODULES_OUT"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))

atexit.register(record)
from monitor.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def loaded_by(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `commwatch ARGS` as the console script does; its exit, and the modules it loaded."""
    record = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, *args],
        cwd=REPO,
        env={**os.environ, "CW_MODULES_OUT": str(record), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, set(record.read_text().split("\n"))


def offenders(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The loaded modules that are, or are inside, a forbidden package or module."""
    return sorted(
        name for name in loaded if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


@pytest.fixture
def listener() -> Iterator[str]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["-V"],
        ["check", "--help"],
        ["run", "--help"],
        ["tui", "--help"],
        ["web", "--help"],
        ["audit", "--help"],
        ["demo", "--help"],
        ["agent", "--help"],
        ["central", "--help"],
        ["bogus"],  # a usage error ends in the parser too
    ],
)
def test_the_parser_alone_imports_no_command_code(tmp_path, args):
    done, loaded = loaded_by(tmp_path, *args)
    assert done.returncode in (0, 3), done.stderr
    assert done.stdout or done.stderr
    assert offenders(loaded, NOT_FOR_THE_PARSER) == []


def test_probe_help_lists_every_kind_without_importing_one(tmp_path):
    done, loaded = loaded_by(tmp_path, "probe", "--help")
    assert done.returncode == 0, done.stderr
    listed = " ".join(done.stdout.split())
    for kind in REGISTRY:
        assert f"{kind} {' '.join(REGISTRY.summary(kind).split())}" in listed
    assert offenders(loaded, (*NOT_FOR_TCP, "probes.base", "probes.tcp", "asyncio")) == []


def test_a_kinds_help_imports_that_kind_alone(tmp_path):
    done, loaded = loaded_by(tmp_path, "probe", "tcp", "--help")
    assert done.returncode == 3, done.stderr  # a plugin's -h exits 3
    assert "--latency-warn DURATION" in done.stdout
    assert "probes.tcp" in loaded
    assert offenders(loaded, NOT_FOR_TCP) == []


def test_probe_tcp_imports_only_what_tcp_needs(tmp_path, listener):
    done, loaded = loaded_by(tmp_path, "probe", "tcp", listener, "--nagios")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"TCP OK - {listener}: ")
    assert offenders(loaded, NOT_FOR_TCP) == []


def test_probe_sip_over_udp_loads_no_tls_machinery(tmp_path):
    """An OPTIONS ping over UDP, the plugin's most frequent call, pays for no certificate
    code: that is loaded by TLS checks alone."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    done, loaded = loaded_by(tmp_path, "probe", "sip", closed, "--nagios", "-t", "2s")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith(f"SIP CRITICAL - {closed}/udp: refused")
    assert "probes.sip" in loaded
    tls_machinery = (
        "probes.support.sip_tls",
        "probes.support.certificates",
        "probes.support.certificate_chain",
        "probes.support.tls_handshake",
    )
    assert offenders(loaded, (*HEAVY, "probes.tls", "probes.http", *tls_machinery)) == []


def test_the_record_sees_what_a_command_does_import(tmp_path):
    """The control: a kind that needs aiohttp is seen loading it, so an empty list of offenders
    above is what the commands loaded, not a record that missed them."""
    done, loaded = loaded_by(tmp_path, "probe", "http", "http://127.0.0.1:9/", "-t", "2s")
    assert done.returncode == 2, done.stdout + done.stderr
    assert {"aiohttp", "probes.http"} <= loaded
    assert "aiohttp" in offenders(loaded, NOT_FOR_TCP)


def test_check_of_a_tcp_inventory_imports_tcp_alone_and_no_engine(tmp_path):
    """An inventory's loader needs every kind's keys only to judge a `defaults:` key that is
    no schedule key, a `credentials:` block or a check of an unknown kind."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\ndefaults: {interval: 5m, timeout: 10s}\nsites:\n  - id: s\n    links:\n"
        "      - id: l\n        checks:\n          - {id: c, kind: tcp, target: 127.0.0.1:9}\n"
    )
    done, loaded = loaded_by(tmp_path, "check", str(inventory))
    assert done.returncode == 0, done.stderr
    assert "1 checks" in done.stdout
    assert "probes.tcp" in loaded
    assert offenders(loaded, (*NOT_FOR_TCP, "monitor.engine", "monitor.output")) == []


def test_a_one_shot_run_of_a_tcp_inventory_loads_no_engine(tmp_path, listener):
    """`run --once` from cron: one sweep and its JSON, none of what a continuous run keeps up
    (alerting and its HTTP clients, the history, the API)."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\nsites:\n  - id: s\n    links:\n      - id: l\n        checks:\n"
        f"          - {{id: c, kind: tcp, target: '{listener}'}}\n"
    )
    done, loaded = loaded_by(tmp_path, "run", "--once", str(inventory))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["summary"]["OK"] == 1
    assert "probes.tcp" in loaded
    # The topology takes its maintenance windows' ids from the history's plain records
    # (monitor.store.runs: no database); nothing else of the store.
    assert offenders(loaded, NOT_FOR_TCP) == ["monitor.store", "monitor.store.runs"]


def test_every_listed_command_has_a_module_with_a_run_and_every_module_a_listing(capsys):
    """The parser lists the commands and the dispatch table names their modules: the two agree,
    so no command parses only to find nothing to run it."""
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = re.findall(r"^    ([a-z]+)  ", capsys.readouterr().out, re.MULTILINE)
    assert listed == list(COMMANDS)
    for module in COMMANDS.values():
        assert callable(importlib.import_module(module).run)


def test_probe_tls_judges_a_chain_without_the_revocation_machinery(tmp_path):
    """A tls check without ocsp or crl (the default) handshakes and judges the chain, and
    loads neither aiohttp nor the revocation code: only a check that asks for revocation pays
    for them."""
    root = make_ca("startup test root", path_length=None)
    ca_file = tmp_path / "root.pem"
    ca_file.write_bytes(root.cert_pem)
    context = server_context(make_leaf(root, ["127.0.0.1"]), tmp_path, ())
    with tls_server(context) as port:
        done, loaded = loaded_by(
            tmp_path, "probe", "tls", f"127.0.0.1:{port}", "--ca-file", str(ca_file), "--nagios"
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("TLS OK - "), done.stdout
    assert "probes.support.certificates" in loaded
    assert offenders(loaded, ("aiohttp", "probes.support.revocation")) == []
