"""`body_regex` against peers that stream bodies built to stall a backtracking engine.

With Python's `re`, `(x+x+)+y` or `.*healthy` against a megabyte of `x` froze the event loop,
every other check in the process with it, and SIGINT (handled on that loop) with them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from monitor.config.checks import adhoc_check
from monitor.core.options import OptionError
from monitor.core.patterns import WORK_LIMIT, regex
from monitor.engine.runner import run_check
from probes.base import SharedResources
from tests.conftest import REPO
from tests.peers.http_peers import LOOPBACK, HttpPeer, http_server

MIB = 1024 * 1024
# A body where an NFA must carry every state of `a[ab]{120}c` along every byte: RE2's DFA gives
# up on it and the match costs its full work budget (about 0.7 s of one core).
WORST_CASE_PATTERN = "a[ab]{120}c"


@pytest.fixture
async def peer() -> AsyncIterator[HttpPeer]:
    async with http_server() as server:
        yield server


@pytest.fixture
async def ab_peer() -> AsyncIterator[str]:
    """Serves a mebibyte of random a/b at /ab; yields the URL."""
    body = random.Random(9).choices(b"ab", k=MIB)

    async def ab(request: web.Request) -> web.Response:
        return web.Response(body=bytes(body), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/ab", ab)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    try:
        yield f"http://{LOOPBACK}:{runner.addresses[0][1]}/ab"
    finally:
        await runner.cleanup()


async def test_the_worst_case_match_runs_off_the_event_loop(
    ab_peer: str, shared: SharedResources
) -> None:
    check = adhoc_check("http", {"target": ab_peer, "body_regex": WORST_CASE_PATTERN})
    assert regex(WORST_CASE_PATTERN).program_size * MIB <= WORK_LIMIT
    beats: list[float] = []

    async def heartbeat() -> None:
        while True:
            beats.append(time.perf_counter())
            await asyncio.sleep(0.01)

    beating = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    result = await run_check(check, shared)
    took = time.perf_counter() - started
    beating.cancel()
    stall = max(b - a for a, b in itertools.pairwise([*beats, time.perf_counter()]))

    assert result.error is None, result.summary()
    assert result.observations["body_regex_match"] is False
    # The match itself takes a good part of a second; the loop goes on beating meanwhile.
    assert took > 0.2
    assert stall < min(0.25, took / 3), f"event loop stalled {stall:.3f}s in a {took:.2f}s check"


def test_a_pattern_too_costly_for_the_body_is_refused() -> None:
    with pytest.raises(OptionError) as caught:
        adhoc_check("http", {"target": "http://127.0.0.1/", "body_regex": "a[ab]{200}c"})
    assert caught.value.key == "body_regex"
    assert "206 steps" in caught.value.message
    assert "max_body_bytes to at most 651542" in caught.value.hint
    # The same pattern against a smaller body is within budget.
    adhoc_check(
        "http",
        {"target": "http://127.0.0.1/", "body_regex": "a[ab]{200}c", "max_body_bytes": 65536},
    )


async def test_other_checks_keep_time_and_sigint_stops_the_engine(
    peer: HttpPeer, tmp_path: Path
) -> None:
    """The real `commwatch run`, streaming: three checks bait the regex engine with 1 MiB of x
    every second while a tcp check ticks; its results keep their pace and SIGINT ends it."""
    port = peer.url.rsplit(":", 1)[1]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"""\
version: 1
defaults: {{interval: 1s, timeout: 900ms, retries: 1}}
sites:
  - id: s
    links:
      - id: l
        checks:
          - {{id: bait-nested, kind: http, target: "{peer.url}/huge", body_regex: "(x+x+)+y"}}
          - {{id: bait-greedy, kind: http, target: "{peer.url}/huge", body_regex: ".*healthy"}}
          - {{id: bait-dotall, kind: http, target: "{peer.url}/huge", body_regex: "(?s).*up"}}
          - {{id: ticker, kind: tcp, target: "{LOOPBACK}:{port}"}}
"""
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        "run",
        "--no-history",
        "--no-alerts",
        str(inventory),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    ticks: list[dict] = []
    baits: list[dict] = []
    try:
        async with asyncio.timeout(30):
            while len(ticks) < 5 or len(baits) < 6:
                line = await process.stdout.readline()
                assert line, (await process.stderr.read()).decode()
                record = json.loads(line)
                if record["type"] != "result":
                    continue
                (ticks if record["check_id"] == "s/l/ticker" else baits).append(record)
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0
    for bait in baits:
        assert bait["severity"] == "CRIT", bait["summary"]
        assert bait["observations"]["body_bytes"] == MIB
        assert bait["observations"]["body_regex_match"] is False
    for tick in ticks:
        assert tick["severity"] == "OK", tick["summary"]
        assert tick["duration_ms"] < 300, tick
