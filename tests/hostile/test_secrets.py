"""Secrets never reach output through an exception: not a community or passphrase that is not
UTF-8 (net-snmp's real snmpd is configured with such bytes), not an HTTP token that cannot be a
header, not a message of an exception nobody foresaw, not a value written where a variable name
belongs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyasn1.codec.ber import encoder

from monitor.config.checks import adhoc_check
from monitor.core.logs import BugLog
from monitor.core.model import ErrorClass, Severity
from monitor.engine.runner import run_check
from monitor.output.records import result_to_dict
from probes.base import SharedResources
from tests.hostile.snmp_agents import SYS_UPTIME, V2C
from tests.peers.snmp_peers import LOCALHOST, free_udp_port, snmpd_binary

# Bytes that are not UTF-8, around a tail that would show in any message quoting them.
COMMUNITY = b"cw-\xff\xfe-community-tail-5d1e"
PASSPHRASE = b"cw-\xff-passphrase-tail-8a2c"
TELLTALES = (b"community-tail-5d1e", b"passphrase-tail-8a2c")
USER = "cwbytes"


def v2c_get_uptime(community: bytes) -> bytes:
    message = V2C.Message()
    V2C.apiMessage.set_defaults(message)
    V2C.apiMessage.set_community(message, community)
    pdu = V2C.GetRequestPDU()
    V2C.apiPDU.set_defaults(pdu)
    V2C.apiPDU.set_varbinds(pdu, [(V2C.ObjectIdentifier(SYS_UPTIME), V2C.Null(""))])
    V2C.apiMessage.set_pdu(message, pdu)
    return encoder.encode(message)


@contextlib.contextmanager
def agent_with_byte_secrets(folder: Path) -> Iterator[str]:
    """net-snmp's snmpd with a v2c community and a v3 user whose secrets are not UTF-8."""
    port = free_udp_port()
    config = folder / "snmpd.conf"
    config.write_bytes(
        b"agentAddress %s:%d\n" % (LOCALHOST.encode(), port)
        + b"rocommunity "
        + COMMUNITY
        + b" 127.0.0.0/8\n"
        + b'createUser %s SHA "%s" AES "%s"\n' % (USER.encode(), PASSPHRASE, PASSPHRASE)
        + b"rouser %s priv\n" % USER.encode()
    )
    (folder / "persistent").mkdir()
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(folder / "persistent"), "MIBS": ""}
    log = (folder / "snmpd.log").open("wb")
    process = subprocess.Popen(
        [snmpd_binary(), "-f", "-Lo", "-C", "-c", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.1)
            deadline = time.monotonic() + 10
            while True:
                assert process.poll() is None and time.monotonic() < deadline, (
                    folder / "snmpd.log"
                ).read_text(errors="replace")
                sock.sendto(v2c_get_uptime(COMMUNITY), (LOCALHOST, port))
                with contextlib.suppress(TimeoutError):
                    if sock.recv(4096):
                        break
        yield f"{LOCALHOST}:{port}"
    finally:
        process.terminate()
        process.wait(5)
        log.close()


def commwatch(*args: str, environ: dict[bytes, bytes]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        env={**os.environb, **environ, b"COMMWATCH_LOG": b"DEBUG"},
        capture_output=True,
        timeout=60,
    )


def assert_secret_absent(output: bytes) -> None:
    for telltale in TELLTALES:
        assert telltale not in output
        assert telltale.decode() not in output.decode(errors="replace")


@pytest.mark.parametrize("source", ["env", "file", "v3 env"])
def test_secrets_that_are_not_utf8_are_sent_as_their_bytes(tmp_path: Path, source: str) -> None:
    secret_file = tmp_path / "community"
    secret_file.write_bytes(COMMUNITY + b"\n")
    with agent_with_byte_secrets(tmp_path) as target:
        common = ("probe", "snmp", target, "--timeout", "3s")
        if source == "env":
            args = (*common, "--snmp-version", "2c", "--community-env", "CW_BYTES")
        elif source == "file":
            args = (*common, "--snmp-version", "2c", "--community-file", str(secret_file))
        else:
            args = (
                *common,
                "--user",
                USER,
                "--auth-protocol",
                "sha",
                "--auth-passphrase-env",
                "CW_BYTES_PASS",
                "--priv-protocol",
                "aes",
                "--priv-passphrase-env",
                "CW_BYTES_PASS",
            )
        environ = {b"CW_BYTES": COMMUNITY, b"CW_BYTES_PASS": PASSPHRASE}
        text = commwatch(*args, environ=environ)
        as_json = commwatch(*args, "--format", "json", environ=environ)

    assert text.returncode == 0, text.stdout.decode(errors="replace") + text.stderr.decode()
    assert json.loads(as_json.stdout)["severity"] == "OK"
    for output in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):
        assert_secret_absent(output)
    assert b"Traceback" not in text.stderr


async def test_a_header_secret_that_is_not_text_is_a_config_error_without_it(
    monkeypatch: pytest.MonkeyPatch, shared: SharedResources
) -> None:
    # Environment strings hold undecodable bytes as surrogates, as os.environ decodes them.
    monkeypatch.setenv("CW_BAD_TOKEN", "tok-\udcff-community-tail-5d1e")
    check = adhoc_check(
        "http",
        {"target": "http://127.0.0.1:9/", "headers": {"X-Token": {"env": "CW_BAD_TOKEN"}}},
    )
    result = await run_check(check, shared)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.CONFIG
    assert result.severity is Severity.UNKNOWN
    assert "CW_BAD_TOKEN is not UTF-8 text" in result.error.message
    assert_secret_absent(json.dumps(result_to_dict(result)).encode())


async def test_an_unforeseen_exception_shows_its_type_and_place_never_its_message(
    shared: SharedResources, caplog: pytest.LogCaptureFixture
) -> None:
    async def measure(options: object, ctx: object) -> dict[str, object]:
        # A library quoting its input in its message, as pysnmp does with a community.
        raise ValueError(f"cannot encode community {COMMUNITY!r}")

    check = adhoc_check("tcp", {"target": "127.0.0.1:9"})
    check = dataclasses.replace(check, probe=dataclasses.replace(check.probe, measure=measure))
    with caplog.at_level(logging.DEBUG):
        result = await run_check(check, shared)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.INTERNAL
    assert re.match(r"unexpected ValueError at \S*test_secrets:\d+ ", result.error.message)
    assert "community-tail-5d1e" not in json.dumps(result_to_dict(result))
    assert "community-tail-5d1e" not in caplog.text
    # The log still says where: a developer can find the bug.
    assert "in measure" in caplog.text and "ValueError (message withheld)" in caplog.text


async def test_a_bug_hit_on_every_poll_is_logged_once_an_interval(
    shared: SharedResources, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BugLog, "INTERVAL", 0.5)

    async def measure(options: object, ctx: object) -> dict[str, object]:
        raise KeyError("a peer's value")

    check = adhoc_check("tcp", {"target": "127.0.0.1:9"})
    check = dataclasses.replace(check, probe=dataclasses.replace(check.probe, measure=measure))
    with caplog.at_level(logging.ERROR):
        for _ in range(5):
            assert (await run_check(check, shared)).error is not None
        first = [r.getMessage() for r in caplog.records]
        await asyncio.sleep(0.6)
        await run_check(check, shared)

    assert len(first) == 1 and "Traceback" in first[0]
    again = [r.getMessage() for r in caplog.records][1:]
    assert len(again) == 1 and "(4 more times since it was last logged)" in again[0]


def test_a_secret_written_where_a_variable_name_belongs_is_not_repeated(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        """\
version: 1
sites:
  - id: s
    links:
      - id: l
        checks:
          - {id: a, kind: snmp, target: 127.0.0.1, version: 2c, community_env: "pa$$ tail-5d1e"}
"""
    )
    done = commwatch("check", str(inventory), environ={})

    assert done.returncode != 0
    assert b"inventory.yaml:7:" in done.stderr
    assert b"not an environment variable name" in done.stderr
    assert b"tail-5d1e" not in done.stderr + done.stdout
