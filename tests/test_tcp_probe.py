"""The tcp probe against real loopback peers, through the runner."""

from __future__ import annotations

import time

import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass, Severity
from monitor.core.options import OptionError
from monitor.engine.runner import run_check
from tests.peers.tcp_peers import accepting_listener, blackhole_port, closed_port


async def test_open_port_is_ok_with_connect_time(shared):
    async with accepting_listener() as port:
        result = await run_check(adhoc_check("tcp", {"target": f"127.0.0.1:{port}"}), shared)
    assert result.severity is Severity.OK
    assert result.error is None
    assert 0 < result.observations["connect_ms"] < 1000
    (verdict,) = result.verdicts
    assert verdict.condition == "latency"
    assert verdict.severity is Severity.OK


async def test_open_port_on_ipv6_loopback(shared):
    async with accepting_listener("::1") as port:
        check = adhoc_check("tcp", {"target": f"[::1]:{port}"})
        result = await run_check(check, shared)
    assert check.ref.target == f"[::1]:{port}"
    assert check.ref.host == "::1"
    assert result.severity is Severity.OK


async def test_closed_port_is_refused_and_critical(shared):
    result = await run_check(adhoc_check("tcp", {"target": f"127.0.0.1:{closed_port()}"}), shared)
    assert result.severity is Severity.CRIT
    assert result.error.error_class is ErrorClass.REFUSED
    assert result.error.message == "Connection refused"
    assert result.verdicts == ()


async def test_dropped_handshake_times_out_within_the_timeout(shared):
    with blackhole_port() as port:
        check = adhoc_check("tcp", {"target": f"127.0.0.1:{port}", "timeout": "400ms"})
        started = time.perf_counter()
        result = await run_check(check, shared)
        elapsed = time.perf_counter() - started
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert result.error.message == "no answer within 0.4s"
    assert result.severity is Severity.CRIT
    assert 0.35 < elapsed < 1.0


async def test_latency_thresholds_judge_the_connect_time(shared):
    async with accepting_listener() as port:
        # Any real connect takes more than a microsecond, so WARN and CRIT are both certain.
        warn = adhoc_check("tcp", {"target": f"127.0.0.1:{port}", "latency_warn": "0.000001s"})
        crit = adhoc_check(
            "tcp",
            {
                "target": f"127.0.0.1:{port}",
                "latency_warn": "0.000001s",
                "latency_crit": "0.000002s",
            },
        )
        warn_result = await run_check(warn, shared)
        crit_result = await run_check(crit, shared)
    assert warn_result.severity is Severity.WARN
    assert warn_result.verdicts[0].threshold == "warn > 0.001ms"
    assert crit_result.severity is Severity.CRIT
    assert crit_result.verdicts[0].crit == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("127.0.0.1", "'127.0.0.1' has no port"),
        ("127.0.0.1:http", "'http' is not a port number"),
        ("127.0.0.1:0", "0 is not a TCP/UDP port"),
        ("bad host!:80", "'bad host!' is not a host name or IP address"),
    ],
)
def test_bad_targets_are_rejected_with_a_reason(target, message):
    with pytest.raises(OptionError) as caught:
        adhoc_check("tcp", {"target": target})
    assert caught.value.message == message
    assert caught.value.hint


def test_a_network_with_no_route_is_unreachable_not_refused():
    """In a fresh network namespace even loopback is down, so the kernel answers ENETUNREACH
    at once and no packet goes anywhere: a real 'unreachable' without touching any network."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run(
        [
            "unshare",
            "--net",
            sys.executable,
            "-m",
            "monitor.cli",
            "probe",
            "tcp",
            "127.0.0.1:80",
            "--format",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout, f"unshare --net could not run (needs root): {done.stderr}"
    record = json.loads(done.stdout)
    assert record["error"] == {"class": "unreachable", "message": "Network is unreachable"}
    assert done.returncode == 2
