"""Every benchmark still runs: its `--smoke` size, as a subprocess of this interpreter from the
repository, exits 0 and prints its JSON lines with their keys. A refactor that breaks a
benchmark (an import that moved, an API that changed) fails here, not months later when someone
wants a figure. No figure is judged: timings on a shared machine mean nothing to a test.

The peers are real and on loopback: snmpd for snmp_sweep, nginx for tls_sweep and workers_tls
(with blackbox_exporter beside it), listeners of the benchmarks' own for tcp_sweep, api_stream,
metrics_scrape, startup and traps (whose traps are net-snmp's snmptrap's), the kernel's echo
replies for icmp_sweep (beside Debian's fping), nats-server with listeners of its own for
cluster_agents; tui_latency probes nothing.
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
    "baseline_cpu_s",
    "version",
    "help",
    "probe_tcp",
    "check",
    "check_load_s",
    "probe_tcp_peak_rss_mib",
}

# (benchmark, extra arguments, the keys of each JSON line it prints, one set per line, copies
# run at once). Two sweeps at once must not collide on their listeners' ports: two helpers' suites
# or a benchmark beside the suite do that on one machine.
STATE_KEYS = {"checks", "steps", "events", "best_s", "steps_per_s", "rounds"}
METRICS_KEYS = {
    "checks",
    "series",
    "bytes",
    "gzip_bytes",
    "target_ms",
    "first_scrape_ms",
    "scrape_ms",
    "scrape_text_ms",
    "scrape_identity_ms",
    "changed_share",
    "spread_s",
    "renewed_scrape_ms",
    "renewed_text_scrape_ms",
    "renewed_loop_held_max_ms",
    "burst_renewed_scrape_ms",
    "renewals",
    "scrape_changed_ms",
    "scrape_changed_text_ms",
    "encode_ms",
    "changed_encode_ms",
    "library_full_ms",
    "ratio",
    "changed_ratio",
    "renewed_ratio",
    "loop_held_median_ms",
    "loop_held_max_ms",
    "rounds",
}

API_STREAM_KEYS = {
    "checks",
    "rate_per_s",
    "viewers",
    "seconds",
    "results_per_s_without",
    "results_per_s_with",
    "results_measured",
    "messages_per_viewer",
    "viewers_dropped",
    "streams_ended",
    "max_queue_depth",
    "median_ms",
    "p99_ms",
    "max_ms",
    "published_to_viewer_median_ms",
    "published_to_viewer_p99_ms",
    "cpu_share_without",
    "cpu_share_with",
    "cpu_ratio",
}

WORKERS_KEYS = {
    "checks",
    "workers",
    "cores",
    "concurrency",
    "workers_1_s",
    "workers_1_cpu_s",
    "workers_n_s",
    "workers_n_cpu_s",
    "blackbox_s",
    "blackbox_cpu_s",
    "blackbox_driver_cpu_s",
    "speedup",
    "vs_blackbox",
    "rounds",
}
TRAPS_KEYS = {
    "rate_per_s",
    "seconds",
    "sent",
    "received",
    "lost",
    "wall_s",
    "receiver_cpu_s",
    "receiver_cpu_share",
    "cpu_ms_per_trap",
}

ICMP_KEYS = {
    "checks",
    "echoes_per_check",
    "socket",
    "fping_wall_s",
    "fping_cpu_s",
    "commwatch_wall_s",
    "commwatch_cpu_s",
    "commwatch_peak_rss_mib",
    "wall_ratio",
    "cpu_ratio",
    "rounds",
}

CLUSTER_KEYS = {
    "checks",
    "agents",
    "hosts",
    "interval_s",
    "offered_per_s",
    "warmup_s",
    "window_s",
    "cluster_results",
    "cluster_results_per_s",
    "cluster_p50_ms",
    "cluster_p99_ms",
    "run_results",
    "run_results_per_s",
    "run_p50_ms",
    "run_p99_ms",
    "throughput_ratio",
    "p99_ratio",
    "nats_peak_rss_mib",
    "central_peak_rss_mib",
    "agent_peak_rss_mib",
    "cluster_peak_rss_total_mib",
    "run_peak_rss_mib",
    "central_cpu_ms_per_result",
    "nats_cpu_ms_per_result",
    "agents_cpu_ms_per_result",
    "cluster_cpu_ms_per_result",
    "run_cpu_ms_per_result",
}

CASES = [
    ("tcp_sweep", [], [SWEEP_KEYS], 2),
    ("tls_sweep", [], [SWEEP_KEYS], 2),
    ("snmp_sweep", [], [SNMP_KEYS, SNMP_KEYS], 1),
    ("tui_latency", [], [TUI_KEYS], 1),
    ("tui_latency", ["--state-engine"], [TUI_KEYS], 1),
    ("startup", [], [STARTUP_KEYS], 1),
    ("state_step", [], [STATE_KEYS], 1),
    ("api_stream", [], [API_STREAM_KEYS], 2),
    ("metrics_scrape", [], [METRICS_KEYS], 2),
    ("workers_tls", [], [WORKERS_KEYS], 2),
    ("icmp_sweep", [], [ICMP_KEYS], 1),
    ("traps", [], [TRAPS_KEYS], 2),
    ("cluster_agents", [], [CLUSTER_KEYS], 2),
]


def test_every_benchmark_has_a_smoke_case():
    benchmarks = {p.stem for p in (REPO / "bench").glob("*.py")} - {"common"}
    assert benchmarks == {name for name, *_ in CASES}


@pytest.mark.parametrize(
    ("name", "arguments", "lines", "copies"),
    CASES,
    ids=[" ".join((name, *arguments)) for name, arguments, *_ in CASES],
)
def test_smoke_run(name: str, arguments: list[str], lines: list[set[str]], copies: int):
    command = [sys.executable, str(REPO / "bench" / f"{name}.py"), "--smoke", *arguments]
    runs = [
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(copies)
    ]
    try:
        outputs = [run.communicate(timeout=180) for run in runs]
    finally:
        for run in runs:
            run.kill()
            run.wait()
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, f"exit {run.returncode}; stderr ends:\n{stderr[-3000:]}"
        printed = [json.loads(line) for line in stdout.splitlines()]
        assert [set(record) for record in printed] == lines, stdout
        if name == "startup":
            # Each command's row: its median, its ratio to bare Python, its median CPU time.
            rows = ("version", "help", "probe_tcp", "check")
            assert all(set(printed[0][row]) == {"s", "ratio", "cpu_s"} for row in rows), stdout
        if name == "tui_latency":
            assert printed[0]["state_engine"] is ("--state-engine" in arguments)


# A process that has grown to 300 MiB measures a bare Python start: the figure must be that
# Python's, not the grown parent's (which Linux hands a child at exec as its high-water mark).
PEAK_OF_A_SMALL_CHILD = """
import sys
sys.path.insert(0, "bench")
import common
ballast = bytearray(300 * 1024 * 1024)
ballast[::4096] = b"x" * len(ballast[::4096])
print(common.measure_process([sys.executable, "-c", "pass"]).peak_rss_mib)
"""


def test_peak_rss_is_the_measured_commands_own():
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF_A_SMALL_CHILD],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert 0 < float(done.stdout) < 100, done.stdout
