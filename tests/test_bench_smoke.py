"""Every benchmark still runs: its `--smoke` size, as a subprocess of this interpreter from the
repository, exits 0 and prints its JSON lines with their keys. A refactor that breaks a
benchmark (an import that moved, an API that changed) fails here, not months later when someone
wants a figure. No figure is judged: timings on a shared machine mean nothing to a test.

The peers are real and on loopback: snmpd for snmp_sweep, nginx for tls_sweep, listeners of the
benchmarks' own for tcp_sweep and startup; tui_latency probes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

SWEEP_KEYS = {
    "checks",
    "floor_s",
    "sweep_s",
    "ratio",
    "sweep_checks_per_s",
    "floor_checks_per_s",
    "cli_wall_s",
    "cli_peak_rss_mib",
}
SNMP_KEYS = {
    "version",
    "checks",
    "agents",
    "concurrency",
    "varbinds_per_poll",
    "floor_s",
    "sweep_s",
    "ratio",
    "floor_polls_per_s",
    "floor_varbinds_per_s",
    "floor_peak_rss_mib",
    "floor_lost",
    "sweep_polls_per_s",
    "sweep_varbinds_per_s",
    "sweep_peak_rss_mib",
    "sweep_lost",
}
TUI_KEYS = {
    "checks",
    "state_engine",
    "rate_per_s",
    "seconds",
    "results_measured",
    "median_ms",
    "p99_ms",
    "max_ms",
    "cpu_share",
    "rebuild_ms",
}
STARTUP_KEYS = {
    "rounds",
    "checks",
    "baseline_s",
    "version",
    "help",
    "probe_tcp",
    "check",
    "check_load_s",
}

# (benchmark, extra arguments, the keys of each JSON line it prints, one set per line)
CASES = [
    ("tcp_sweep", [], [SWEEP_KEYS]),
    ("tls_sweep", [], [SWEEP_KEYS]),
    ("snmp_sweep", [], [SNMP_KEYS, SNMP_KEYS]),
    ("tui_latency", [], [TUI_KEYS]),
    ("tui_latency", ["--state-engine"], [TUI_KEYS]),
    ("startup", [], [STARTUP_KEYS]),
]


def test_every_benchmark_has_a_smoke_case():
    benchmarks = {p.stem for p in (REPO / "bench").glob("*.py")} - {"common"}
    assert benchmarks == {name for name, _, _ in CASES}


@pytest.mark.parametrize(
    ("name", "arguments", "lines"),
    CASES,
    ids=[" ".join((name, *arguments)) for name, arguments, _ in CASES],
)
def test_smoke_run(name: str, arguments: list[str], lines: list[set[str]]):
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / f"{name}.py"), "--smoke", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"exit {done.returncode}; stderr ends:\n{done.stderr[-3000:]}"
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [set(record) for record in printed] == lines, done.stdout
    if name == "startup":
        # Each command's row: its median and its ratio to bare Python.
        rows = ("version", "help", "probe_tcp", "check")
        assert all(set(printed[0][row]) == {"s", "ratio"} for row in rows), done.stdout
    if name == "tui_latency":
        assert printed[0]["state_engine"] is ("--state-engine" in arguments)
