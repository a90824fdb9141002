"""`commwatch run --workers N`: the probes in N processes feeding the one engine, against real
peers (TLS servers with certificates made here, TCP listeners that count what they accept) on
loopback addresses of their own, so that the checks spread over both workers.

The worker processes are found in /proc as the command's children running
`monitor.cluster.worker INDEX`; which worker has which check, `shard()` says, as the command
computes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from monitor.cli.values import WORKERS_FROM_CHECKS, usable_cores, worker_count
from monitor.cluster.assignment import winner
from monitor.cluster.workers import divide, shard
from monitor.config.inventory import Concurrency
from monitor.config.loader import load_inventory
from monitor.core.model import ProbeResult, Severity
from monitor.engine.scheduler import SchedulerFigures
from tests.conftest import REPO
from tests.peers.pki import make_ca, make_leaf, server_context
from tests.peers.tcp_peers import closed_port
from tests.peers.tls_peers import threaded_server, tls_server

SCHEMA = json.loads((REPO / "monitor/output/schema/result.schema.json").read_text())
TLS_HOSTS = [f"127.0.61.{i}" for i in range(1, 5)]
TCP_HOSTS = [f"127.0.61.{i}" for i in range(5, 11)]
NAME = "gw.workers.test"
ZYGOTE = "commwatch-fork"


def commwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor.cli", *args]


# --- peers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def counting_listener(host: str) -> Iterator[tuple[int, list[None]]]:
    """A TCP listener on `host` that accepts and closes; yields its port and a list with an
    entry per connection it accepted."""
    accepted: list[None] = []  # appended from the peer's threads: a list's append is atomic

    def count(_connection: socket.socket) -> None:
        accepted.append(None)

    with threaded_server(count, host) as port:
        yield port, accepted


@contextlib.contextmanager
def peers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """TLS servers on TLS_HOSTS (a good chain on three, one expiring in 20 days on the last: WARN)
    and a counting TCP listener per check on TCP_HOSTS; what the inventory needs to name them."""

    def days(n: float) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=n)

    ca = make_ca("workers test CA", not_after=days(3650))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    good = make_leaf(ca, [NAME], common_name=NAME, not_after=days(300))
    dying = make_leaf(ca, [NAME], common_name=NAME, not_after=days(20))
    with contextlib.ExitStack() as stack:
        tls = []
        for i, host in enumerate(TLS_HOSTS):
            folder = tmp_path / f"tls{i}"
            folder.mkdir()
            leaf = dying if i == len(TLS_HOSTS) - 1 else good
            port = stack.enter_context(tls_server(server_context(leaf, folder), host=host))
            tls.append(f"{host}:{port}")
        tcp = {}
        for i in range(2 * len(TCP_HOSTS)):
            host = TCP_HOSTS[i % len(TCP_HOSTS)]
            port, seen = stack.enter_context(counting_listener(host))
            tcp[f"{host}:{port}"] = seen
        yield {"tls": tls, "tcp": tcp, "closed": f"{TCP_HOSTS[0]}:{closed_port(TCP_HOSTS[0])}"}


OPERATOR = "workers-operator-token-3f9a1c7e"


def write_inventory(tmp_path: Path, found: dict[str, Any], defaults: str) -> Path:
    """Two sites: TLS checks (one with a name the certificate does not have) and TCP checks
    (one to a closed port), one link each, a group over both links; an operator token for the
    API, in a file."""
    (tmp_path / "operator.token").write_text(OPERATOR + "\n")
    tls_checks = [
        f'{{id: tls{i}, kind: tls, target: "{t}", server_name: {NAME}, ca_file: ca.pem}}'
        for i, t in enumerate(found["tls"])
    ]
    tls_checks.append(
        f'{{id: misnamed, kind: tls, target: "{found["tls"][0]}", server_name: other.test, '
        "ca_file: ca.pem}"
    )
    tcp_checks = [f'{{id: tcp{i}, kind: tcp, target: "{t}"}}' for i, t in enumerate(found["tcp"])]
    tcp_checks.append(f'{{id: closed, kind: tcp, target: "{found["closed"]}"}}')

    def link(site: str, checks: list[str]) -> str:
        body = "\n".join(f"          - {c}" for c in checks)
        return f"  - id: {site}\n    links:\n      - id: main\n        checks:\n{body}\n"

    path = tmp_path / "inventory.yaml"
    path.write_text(
        f"version: 1\ndefaults: {{{defaults}}}\n"
        "groups:\n  - {id: both, links: [gw/main, edge/main], min_up: 1}\n"
        f"sites:\n{link('gw', tls_checks)}{link('edge', tcp_checks)}"
        # Any free port: the default one may be another test's (the suite runs in processes).
        "api:\n  listen: 127.0.0.1:0\n"
        "  tokens:\n    - {role: operator, token_file: operator.token}\n"
    )
    return path


# --- the command, run -------------------------------------------------------------------------


def processes() -> dict[int, tuple[int, str]]:
    """Every live process now: pid -> (parent pid, name)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name, rest = stat.split(" (", 1)[1].rsplit(")", 1)
        fields = rest.split()
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), name)
    return found


def worker_pids(parent: int) -> dict[int, int]:
    """The worker processes of `parent` now (its children or its zygote's, named
    commwatch-wINDEX): worker index -> pid."""
    now = processes()
    zygotes = {pid for pid, (ppid, name) in now.items() if ppid == parent and name == ZYGOTE}
    return {
        int(name.removeprefix("commwatch-w")): pid
        for pid, (ppid, name) in now.items()
        if name.startswith("commwatch-w") and (ppid == parent or ppid in zygotes)
    }


def zygote_pid(parent: int) -> int | None:
    found = [pid for pid, (ppid, name) in processes().items() if ppid == parent and name == ZYGOTE]
    return found[0] if found else None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Running:
    """`commwatch ARGS` in a process of its own: its stdout's JSON records as they come, its
    stderr's lines kept."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.records: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._arrived = asyncio.Event()
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.records.append(json.loads(line))
            self._arrived.set()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.stderr.append(line.decode())
            self._arrived.set()

    def results(self, check_id: str | None = None) -> list[dict[str, Any]]:
        return [
            r for r in self.records if r["type"] == "result" and check_id in (None, r["check_id"])
        ]

    async def until(self, done: Callable[[], bool], timeout: float = 60) -> None:
        """Wait for `done()` to be true, within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.process.returncode is not None and not self._arrived.is_set():
                raise AssertionError(f"ended early: {''.join(self.stderr)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s; stderr: {''.join(self.stderr)}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._arrived.wait()

    async def stop(self, sig: signal.Signals | None = signal.SIGTERM) -> int:
        """Send `sig` (None: none, the command ends by itself) and wait for the end."""
        if sig is not None and self.process.returncode is None:
            self.process.send_signal(sig)
        async with asyncio.timeout(60):
            code = await self.process.wait()
            await asyncio.gather(*self._readers)
        return code


@contextlib.asynccontextmanager
async def running(*args: str) -> AsyncIterator[Running]:
    process = await asyncio.create_subprocess_exec(
        *commwatch(*args),
        cwd=REPO,
        # Made now: the private XDG_STATE_HOME of this test (tests/conftest.py) included.
        env={**os.environ, "NO_COLOR": "1", "COMMWATCH_LOG": "INFO"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    run = Running(process)
    try:
        yield run
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for task in run._readers:
            task.cancel()


def workers_now(run: Running) -> dict[int, int]:
    """The command's worker processes now: worker index -> pid."""
    return worker_pids(run.process.pid)


def every_check_reported(run: Running, check_ids: set[str], times: int = 1) -> Callable[[], bool]:
    def done() -> bool:
        counts = Counter(r["check_id"] for r in run.results())
        return all(counts[c] >= times for c in check_ids)

    return done


def reported_since(run: Running, start: int, check_ids: set[str]) -> Callable[[], bool]:
    """Whether each of `check_ids` has a result among the run's records from `start` on."""

    def done() -> bool:
        since = {r["check_id"] for r in run.records[start:] if r["type"] == "result"}
        return check_ids <= since

    return done


def check_ids(inventory: Path) -> set[str]:
    return {check.ref.check_id for check in load_inventory(inventory).checks}


def shards_of(inventory: Path, workers: int = 2) -> dict[int, set[str]]:
    loaded = load_inventory(inventory)
    return {
        s.worker: {c.ref.check_id for c in s.checks}
        for s in shard(loaded.checks, loaded.concurrency, workers)
    }


# --- sharding, pure ---------------------------------------------------------------------------


def test_rendezvous_picks_one_candidate_whatever_their_order_and_moves_little():
    keys = [f"127.0.{i // 250}.{i % 250}" for i in range(2000)]
    three = {key: winner(key, ["0", "1", "2"]) for key in keys}
    assert three == {key: winner(key, ["2", "0", "1"]) for key in keys}
    assert all(100 < n < 1100 for n in Counter(three.values()).values())  # all three used
    four = {key: winner(key, ["0", "1", "2", "3"]) for key in keys}
    # A fourth candidate takes keys from the others and moves none between them.
    assert all(four[key] in (three[key], "3") for key in keys)
    assert winner("a", []) is None


def test_a_host_stays_on_one_worker_and_the_global_cap_is_shared_out(tmp_path):
    lines = ["version: 1", "concurrency: {global: 50, per_host: 3}", "sites:", "  - id: s"]
    lines += ["    links:", "      - id: l", "        checks:"]
    lines += [
        f'          - {{id: c{i}, kind: tcp, target: "127.0.62.{i % 40 + 1}:{1000 + i}"}}'
        for i in range(400)
    ]
    (tmp_path / "inventory.yaml").write_text("\n".join(lines) + "\n")
    inventory = load_inventory(tmp_path / "inventory.yaml")
    for workers in (2, 3, 7):
        shards = shard(inventory.checks, inventory.concurrency, workers)
        assert sorted(c.ref.check_id for s in shards for c in s.checks) == sorted(
            c.ref.check_id for c in inventory.checks
        )
        hosts = [{c.ref.host for c in s.checks} for s in shards]
        assert sum(len(h) for h in hosts) == 40  # no host on two workers
        assert sum(s.concurrency.global_limit for s in shards) == 50
        assert all(s.concurrency.per_host == 3 for s in shards)
        # In proportion to the checks, within one probe.
        for s in shards:
            assert abs(s.concurrency.global_limit - 50 * len(s.checks) / 400) <= 1
    # Never more workers than the global cap has room for, and none without checks.
    narrow = Concurrency(global_limit=2, per_host=1)
    assert len(shard(inventory.checks, narrow, 8)) == 2
    one_host = [c for c in inventory.checks if c.ref.host == "127.0.62.1"]
    assert [len(s.checks) for s in shard(one_host, inventory.concurrency, 4)] == [10]


def test_divide_gives_each_at_least_one_and_adds_up():
    assert divide(10, [1, 1000]) == [1, 9]
    assert divide(3, [100, 1, 1]) == [1, 1, 1]
    assert divide(7, [5, 5]) in ([4, 3], [3, 4])
    assert sum(divide(256, [333, 333, 334])) == 256


def test_the_default_is_a_process_per_usable_core_from_a_number_of_checks():
    assert worker_count(None, WORKERS_FROM_CHECKS - 1) == 1
    assert worker_count(None, WORKERS_FROM_CHECKS) == usable_cores()
    assert usable_cores() == len(os.sched_getaffinity(0))
    assert worker_count(3, 1) == 3  # asked for: as asked


def test_help_and_usage_errors_of_the_flag():
    import subprocess

    helped = subprocess.run(
        commwatch("run", "--help"), cwd=REPO, capture_output=True, text=True, timeout=30
    )
    text = " ".join(helped.stdout.split())
    assert "--workers N" in text and f"fewer than {WORKERS_FROM_CHECKS} checks" in text
    assert f"({usable_cores()} here)" in text
    for bad in ("0", "two"):
        refused = subprocess.run(
            commwatch("run", "--workers", bad), cwd=REPO, capture_output=True, text=True, timeout=30
        )
        assert refused.returncode == 3 and "--workers" in refused.stderr, refused.stderr


# --- the same findings ------------------------------------------------------------------------


def comparable(result: dict[str, Any]) -> tuple[Any, ...]:
    """What a result found, without its timings."""
    error = result["error"]
    return (
        result["severity"],
        None if error is None else error["class"],
        tuple((v["condition"], v["severity"], v["value"] is None) for v in result["verdicts"]),
        len(result["certificates"]),
        re.sub(r"[\d.]+ms", "Nms", result["summary"]),
    )


async def test_a_sweep_in_two_workers_finds_what_one_process_finds(tmp_path):
    with peers(tmp_path) as found:
        inventory = write_inventory(tmp_path, found, "timeout: 3s, retries: 1")
        assert set(shards_of(inventory)) == {0, 1}  # both workers have checks
        documents, codes, logs = {}, {}, {}
        for workers in (1, 2):
            async with running("run", "--once", "--workers", str(workers), str(inventory)) as run:
                codes[workers] = await run.stop(None)
                (documents[workers],) = run.records
                logs[workers] = "".join(run.stderr)
        accepted = {target: len(seen) for target, seen in found["tcp"].items()}
    assert "probing in 2 processes" in logs[2] and "probing in" not in logs[1]
    assert "Traceback" not in logs[1] + logs[2]
    one, two = documents[1], documents[2]
    for document in (one, two):
        for result in document["results"]:
            jsonschema.validate({"schema_version": 2, "type": "result", **result}, SCHEMA)
    # The same checks, in inventory order, each once, with the same findings.
    assert [r["check_id"] for r in two["results"]] == [r["check_id"] for r in one["results"]]
    assert [comparable(r) for r in two["results"]] == [comparable(r) for r in one["results"]]
    assert {r["severity"] for r in one["results"]} == {"OK", "WARN", "CRIT"}
    assert two["summary"] == one["summary"] and two["groups"] == one["groups"]
    assert codes == {1: 2, 2: 2}  # the worst, CRIT, either way
    # Each TCP listener was asked once per sweep: twice over the two sweeps.
    assert set(accepted.values()) == {2}


async def test_a_continuous_run_in_two_workers_reaches_the_same_states(tmp_path):
    with peers(tmp_path) as found:
        inventory = write_inventory(tmp_path, found, "timeout: 2s, retries: 1, interval: 2s")
        ids = check_ids(inventory)
        runs = {}
        for workers in (1, 2):
            async with running(
                "run", "--workers", str(workers), "--no-history", str(inventory)
            ) as run:
                await run.until(every_check_reported(run, ids, 2))
                assert await run.stop() == 0, "".join(run.stderr)
                runs[workers] = run
    for run in runs.values():
        for record in run.records:
            if record["type"] == "result":
                jsonschema.validate(record, SCHEMA)

    def states(run: Running) -> dict[str, str]:
        last = {}
        for record in run.records:
            if record["type"] == "event":
                last[record["subject_id"]] = record["after"]
        return last

    def first_of_each_check(run: Running) -> dict[str, tuple[Any, ...]]:
        first: dict[str, tuple[Any, ...]] = {}
        for result in run.results():
            first.setdefault(result["check_id"], comparable(result))
        return first

    assert states(runs[2]) == states(runs[1])
    assert set(states(runs[1])) == ids | {"gw/main", "edge/main", "both", "gw", "edge"}
    assert first_of_each_check(runs[2]) == first_of_each_check(runs[1])


# --- no check twice, commands, restarts --------------------------------------------------------


async def test_no_check_runs_twice_and_each_runs_on_its_interval(tmp_path):
    with peers(tmp_path) as found:
        inventory = write_inventory(tmp_path, found, "timeout: 2s, retries: 1, interval: 2s")
        async with running("run", "--workers", "2", "--no-history", str(inventory)) as run:
            tcp = {f"edge/main/tcp{i}" for i in range(len(found["tcp"]))}
            await run.until(every_check_reported(run, tcp, 4))
            assert await run.stop() == 0
        accepted = {target: len(seen) for target, seen in found["tcp"].items()}
    by_target = Counter(r["target"] for r in run.results() if r["check_id"] in tcp)
    for target, count in accepted.items():
        # One connection per result; one more at most, cut off by the stop.
        assert count - by_target[target] in (0, 1), (target, count, by_target[target])
    for check_id in tcp:
        starts = sorted(
            dt.datetime.fromisoformat(r["started_at"]).timestamp() for r in run.results(check_id)
        )
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert min(gaps) > 1.6, (check_id, gaps)  # a second run of it would start in between


async def test_run_now_pause_and_resume_reach_the_worker_that_has_the_check(tmp_path):
    with peers(tmp_path) as found:
        inventory = write_inventory(tmp_path, found, "timeout: 3s, retries: 1, interval: 1h")
        ids = check_ids(inventory)
        owners = shards_of(inventory)
        # One check of each worker.
        asked = {
            worker: sorted(c for c in checks if "/tcp" in c)[0] for worker, checks in owners.items()
        }
        args = ("run", "--workers", "2", "--no-history", str(inventory))
        headers = {"Authorization": f"Bearer {OPERATOR}"}
        async with running(*args) as run, aiohttp.ClientSession(headers=headers) as session:
            await run.until(lambda: any("serving the engine on" in line for line in run.stderr))
            (url,) = re.findall(r"serving the engine on (\S+)", "".join(run.stderr))
            await run.until(every_check_reported(run, ids))

            async def post(check_id: str, command: str) -> int:
                async with session.post(f"{url}/api/v1/checks/{check_id}/{command}") as answer:
                    return answer.status

            for check_id in asked.values():
                assert await post(check_id, "run") == 202
            await run.until(lambda: all(len(run.results(c)) == 2 for c in asked.values()))
            # Interval 1h: nothing else ran again.
            assert all(len(run.results(c)) == 1 for c in ids - set(asked.values()))
            paused = asked[1]
            assert await post(paused, "pause") == 200
            assert await post(paused, "run") == 409  # paused: resume it first
            async with session.get(f"{url}/metrics") as answer:
                metrics = await answer.text()
            assert "commwatch_checks_paused 1.0" in metrics
            assert await post(paused, "resume") == 200
            # Resumed: the worker runs it again at once.
            await run.until(lambda: len(run.results(paused)) == 3)
            assert await run.stop() == 0


async def test_a_soft_state_is_looked_at_again_by_its_worker_at_the_retry_interval(tmp_path):
    with peers(tmp_path) as found:
        defaults = "timeout: 3s, retries: 3, interval: 1h, retry_interval: 1s"
        inventory = write_inventory(tmp_path, found, defaults)
        async with running("run", "--workers", "2", "--no-history", str(inventory)) as run:
            # The closed port: CRIT, soft twice, then hard on the third look, a second apart.
            closed = "edge/main/closed"
            hard = lambda: any(  # noqa: E731
                r["type"] == "event" and r["subject_id"] == closed and r["kind"] == "hard"
                for r in run.records
            )
            await run.until(hard, timeout=30)
            assert len(run.results(closed)) == 3
            assert await run.stop() == 0


async def test_a_killed_worker_is_started_again_and_its_checks_resume(tmp_path):
    with peers(tmp_path) as found:
        inventory = write_inventory(tmp_path, found, "timeout: 2s, retries: 1, interval: 2s")
        ids = check_ids(inventory)
        owners = shards_of(inventory)
        async with running("run", "--workers", "2", "--no-history", str(inventory)) as run:
            await run.until(every_check_reported(run, ids))
            before = workers_now(run)
            assert set(before) == {0, 1}
            os.kill(before[0], signal.SIGKILL)
            killed_at = time.time()
            await run.until(lambda: any("was killed by SIGKILL" in line for line in run.stderr))
            (line,) = [line for line in run.stderr if "was killed by SIGKILL" in line]
            assert f"probe worker 0 ({len(owners[0])} checks) was killed by SIGKILL" in line
            assert "starting it again" in line and "(restart 1 of this run)" in line

            def resumed() -> bool:
                return all(
                    any(
                        dt.datetime.fromisoformat(r["started_at"]).timestamp() > killed_at
                        for r in run.results(check_id)
                    )
                    for check_id in ids
                )

            await run.until(resumed, timeout=60)
            after = workers_now(run)
            assert after[1] == before[1] and after[0] != before[0]
            # Forked again from the zygote, as the first one was: no fresh interpreter's start.
            zygote = zygote_pid(run.process.pid)
            assert zygote is not None
            assert {processes()[pid][0] for pid in after.values()} == {zygote}
            assert await run.stop() == 0
        assert not alive(after[0]) and not alive(after[1])


async def test_killing_the_parent_leaves_no_worker_alive(tmp_path):
    with peers(tmp_path) as found:
        inventory = write_inventory(tmp_path, found, "timeout: 2s, retries: 1, interval: 2s")
        async with running("run", "--workers", "2", "--no-history", str(inventory)) as run:
            await run.until(every_check_reported(run, check_ids(inventory)))
            workers = workers_now(run)
            assert len(workers) == 2
            zygote = zygote_pid(run.process.pid)
            assert zygote is not None
            await run.stop(signal.SIGKILL)
            async with asyncio.timeout(20):
                while any(alive(pid) for pid in [zygote, *workers.values()]):
                    await asyncio.sleep(0.1)


async def test_a_restarted_worker_keeps_its_checks_paused_and_runs_what_the_engine_loaded(
    tmp_path,
):
    with peers(tmp_path) as found:
        inventory = write_inventory(tmp_path, found, "timeout: 2s, retries: 1, interval: 2s")
        ids = check_ids(inventory)
        owners = shards_of(inventory)
        paused = sorted(owners[0])[0]
        args = ("run", "--workers", "2", "--no-history", str(inventory))
        headers = {"Authorization": f"Bearer {OPERATOR}"}
        async with running(*args) as run, aiohttp.ClientSession(headers=headers) as session:
            await run.until(every_check_reported(run, ids))
            (url,) = re.findall(r"serving the engine on (\S+)", "".join(run.stderr))
            async with session.post(f"{url}/api/v1/checks/{paused}/pause") as answer:
                assert answer.status == 200
            os.kill(workers_now(run)[0], signal.SIGKILL)
            await run.until(lambda: "restart 1 of" in "".join(run.stderr))
            killed = len(run.records)
            # The new worker 0 runs its checks, but not the paused one.
            await run.until(reported_since(run, killed, owners[0] - {paused}))
            assert not [r for r in run.records[killed:] if r.get("check_id") == paused]
            # An inventory edited meanwhile: a worker forked again from the zygote runs the checks
            # as this engine loaded them, whatever the file says now.
            inventory.write_text(inventory.read_text() + "# edited\n")
            os.kill(workers_now(run)[0], signal.SIGKILL)
            await run.until(lambda: "restart 2 of" in "".join(run.stderr))
            edited = len(run.records)
            await run.until(reported_since(run, edited, owners[0] - {paused}))
            assert "changed since commwatch started" not in "".join(run.stderr)
            # With the zygote gone, a worker is a fresh interpreter that loads the file itself:
            # it would not run what this engine judges, so it refuses, says why, and is tried
            # again later. The other worker goes on.
            zygote, worker = zygote_pid(run.process.pid), workers_now(run)[0]
            assert zygote is not None
            os.kill(zygote, signal.SIGKILL)
            os.kill(worker, signal.SIGKILL)
            await run.until(lambda: f"zygote (pid {zygote}) is gone" in "".join(run.stderr))
            await run.until(lambda: "changed since commwatch started" in "".join(run.stderr))
            await run.until(lambda: "ended with exit status 3" in "".join(run.stderr))
            refused = len(run.records)
            await run.until(reported_since(run, refused, owners[1]))
            assert await run.stop() == 0
        assert "Traceback" not in "".join(run.stderr)


async def test_an_interrupted_sweep_stops_its_workers_and_says_so(tmp_path):
    from tests.peers.tcp_peers import blackhole_port

    with contextlib.ExitStack() as stack:
        hosts = [f"127.0.63.{i}" for i in range(1, 9)]
        targets = [f"{host}:{stack.enter_context(blackhole_port(host))}" for host in hosts]
        lines = ["version: 1", "defaults: {timeout: 30s}", "sites:", "  - id: s", "    links:"]
        lines += ["      - id: l", "        checks:"]
        lines += [
            f'          - {{id: c{i}, kind: tcp, target: "{t}"}}' for i, t in enumerate(targets)
        ]
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text("\n".join(lines) + "\n")
        async with running("run", "--once", "--workers", "2", str(inventory)) as run:
            await run.until(lambda: len(workers_now(run)) == 2)
            workers = workers_now(run)
            started = time.monotonic()
            code = await run.stop(signal.SIGINT)
            assert time.monotonic() - started < 15
    assert code == 3
    assert "interrupted after 0 of 8 checks" in "".join(run.stderr)
    assert not any(alive(pid) for pid in workers.values())


async def test_a_worker_killed_in_a_sweep_is_started_again_for_what_it_had_left(tmp_path):
    from tests.peers.tcp_peers import blackhole_port

    hosts = [f"127.0.64.{i}" for i in range(1, 9)]
    with contextlib.ExitStack() as stack:
        quick = {host: stack.enter_context(counting_listener(host)) for host in hosts}
        hanging = {host: stack.enter_context(blackhole_port(host)) for host in hosts}
        lines = ["version: 1", "defaults: {timeout: 4s}", "sites:", "  - id: s", "    links:"]
        lines += ["      - id: l", "        checks:"]
        for i, host in enumerate(hosts):
            lines.append(
                f'          - {{id: quick{i}, kind: tcp, target: "{host}:{quick[host][0]}"}}'
            )
            lines.append(
                f'          - {{id: hang{i}, kind: tcp, target: "{host}:{hanging[host]}"}}'
            )
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text("\n".join(lines) + "\n")
        assert set(shards_of(inventory)) == {0, 1}
        async with running("run", "--once", "--workers", "2", str(inventory)) as run:
            await run.until(lambda: all(len(seen) for _, seen in quick.values()))
            os.kill(workers_now(run)[0], signal.SIGKILL)  # its hanging checks unfinished
            code = await run.stop(None)
        accepted = [len(seen) for _, seen in quick.values()]
    assert "was killed by SIGKILL; starting it again" in "".join(run.stderr)
    (document,) = run.records
    results = {r["check_id"]: r for r in document["results"]}
    assert len(document["results"]) == len(results) == 16  # every check, once
    assert accepted == [1] * 8  # what had reported was not run again
    assert {r["severity"] for i, r in results.items() if "quick" in i} == {"OK"}
    assert {r["error"]["class"] for i, r in results.items() if "hang" in i} == {"timeout"}
    assert code == 2


async def test_a_worker_ends_only_once_its_parent_has_every_line(tmp_path):
    """A sweep's last results may still wait in the worker's buffer when the pipe is full (a
    parent busy for a moment): the worker writes them all before it ends."""
    from monitor.cluster import frames
    from monitor.cluster.worker import READY, Orders, digest
    from monitor.cluster.workers import worker_command
    from tests.peers.tls_peers import Seen

    ca = make_ca("flush test CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    seen = Seen()
    context = server_context(make_leaf(ca, [NAME], common_name=NAME), tmp_path)
    # About 6 kB a result: several times what the pipe (64 KiB) and asyncio's reader of it
    # (which reads ahead up to twice its 64 KiB limit before it pauses) hold together.
    count = 150
    with tls_server(context, seen=seen, host=TLS_HOSTS[0]) as port:
        lines = ["version: 1", "defaults: {timeout: 10s}", "sites:", "  - id: s", "    links:"]
        lines += ["      - id: l", "        checks:"]
        lines += [
            f'          - {{id: c{i}, kind: tls, target: "{TLS_HOSTS[0]}:{port}", '
            f"server_name: {NAME}, ca_file: ca.pem}}"
            for i in range(count)
        ]
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text("\n".join(lines) + "\n")
        orders = Orders(
            inventory=str(inventory),
            digest=digest(inventory),
            worker=0,
            checks=tuple(f"s/l/c{i}" for i in range(count)),
            global_limit=8,
            per_host=8,
            sweep=True,
        )
        command, env = worker_command(0)
        worker = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
        )
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(orders.line())
        async with asyncio.timeout(60):
            while len(seen.server_names) < count:
                await asyncio.sleep(0.05)
        # Nothing read yet: the worker cannot have written everything, so it must not end.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(worker.wait()), 2)
        written = []
        while (message := await frames.read(worker.stdout)) is not None:
            written.append(message)
        assert await worker.wait() == 0
    results = [r for r in written if isinstance(r, ProbeResult)]
    assert sorted(r.check.check_id for r in results) == sorted(orders.checks)
    assert {r.severity for r in results} == {Severity.OK}
    assert written[0] == READY and isinstance(written[-1], SchedulerFigures)
    assert written[-1].started == count and written[-1].in_flight == 0


async def test_the_certificate_audit_in_two_workers_reports_what_one_process_does(tmp_path):
    with peers(tmp_path) as found:
        inventory = write_inventory(tmp_path, found, "timeout: 3s")
        reports, codes = {}, {}
        for workers in (1, 2):
            output = tmp_path / f"audit-{workers}.json"
            args = ("audit", "certs", "--workers", str(workers), "--format", "json")
            async with running(*args, "--output", str(output), str(inventory)) as run:
                codes[workers] = await run.stop(None)
            reports[workers] = json.loads(output.read_text())
    assert "probing in 2 processes" in "".join(run.stderr)

    def without_times(report: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps({k: v for k, v in report.items() if k != "generated_at"})
        return json.loads(re.sub(r'"days_left": [\d.]+', '"days_left": 0', text))

    assert without_times(reports[2]) == without_times(reports[1])
    assert len(reports[1]["certificates"]) == 2  # the good leaf and the one expiring soon
    assert codes == {1: 2, 2: 2}


async def test_a_pool_made_beside_threads_starts_fresh_interpreters_and_sweeps_all(tmp_path):
    """A process that has threads (here: the peers') is not forked, since a lock one of them
    holds would stay held in every fork: its workers are fresh interpreters, and a sweep in them
    is complete."""
    from monitor.cluster.workers import WorkerPool

    with peers(tmp_path) as found:
        assert threading.active_count() > 1  # the peers serve from threads
        inventory = load_inventory(write_inventory(tmp_path, found, "timeout: 3s"))
        pool = WorkerPool(inventory, inventory.checks, 2, sweep=True)
        seen: dict[int, set[bool]] = {}  # worker index -> whether it was a fresh interpreter

        async def watch_workers() -> None:
            while True:
                for index, pid in worker_pids(os.getpid()).items():
                    command = b""
                    with contextlib.suppress(OSError):  # ended meanwhile
                        command = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if command:  # empty: it is ending, its memory gone
                        seen.setdefault(index, set()).add(b"monitor.cluster.worker" in command)
                await asyncio.sleep(0.02)

        results: list[ProbeResult] = []
        watcher = asyncio.create_task(watch_workers())
        try:
            async with asyncio.timeout(60):
                await pool.run(results.append)
        finally:
            watcher.cancel()
    assert zygote_pid(os.getpid()) is None
    assert sorted(r.check.check_id for r in results) == sorted(check_ids(inventory.path))
    assert seen == {0: {True}, 1: {True}}
