"""NTP servers that kiss us off, claim no time, answer other queries, send garbage, floods or
nothing, or write to the terminal through their reference id: each ends in a classified
verdict or error within the timeout, the real reply accepted when it comes among strays."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.engine.runner import run_check
from monitor.lab.ntp_peer import ServerClock, answer
from probes.base import SharedResources
from tests.conftest import REPO
from tests.peers.ntp_peers import (
    LOCALHOST6,
    held,
    kiss,
    one_by_one,
    scripted_server,
    serving,
    stray,
    with_first_byte,
    with_transmit,
)

TIMEOUT = 1.0
# What a timeout may overrun by on a loaded machine (the runner's own timeout is the hard one).
SLACK = 1.0


async def ask(target: str, **values: Any) -> tuple[ProbeResult, float]:
    check = adhoc_check("ntp", {"target": target, "timeout": f"{TIMEOUT}s", **values})
    started = time.monotonic()
    result = await run_check(check, SharedResources())
    return result, time.monotonic() - started


def good(query: bytes) -> bytes:
    reply = answer(query, ServerClock(), time.time())
    assert reply is not None
    return reply


# --- kisses of death -------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "words"), [("DENY", "access denied"), ("RSTR", "restricted")])
async def test_deny_and_rstr_are_refused_and_stop_the_queries(code, words):
    async with scripted_server(serving(kiss(code))) as (target, server):
        result, took = await ask(target, samples=3, sample_interval="100ms")
    assert result.severity is Severity.CRIT
    assert result.error is not None and result.error.error_class is ErrorClass.REFUSED
    assert result.error.message.startswith(f"kiss-of-death {code}: the server refused us")
    assert words in result.error.message
    assert result.observations["kiss_code"] == code and result.observations["stratum"] == 0
    assert len(server.queries) == 1  # RFC 5905 §7.4: no more queries after DENY or RSTR
    assert took < TIMEOUT  # at once, not at the timeout


async def test_rate_with_nothing_answered_is_refused_with_the_advice():
    async with scripted_server(serving(kiss("RATE"))) as (target, server):
        result, _ = await ask(target, samples=3, sample_interval="100ms")
    assert result.severity is Severity.CRIT
    assert result.error is not None and result.error.error_class is ErrorClass.REFUSED
    assert "RATE" in result.error.message and "poll it less often" in result.error.message
    assert len(server.queries) == 1


async def test_rate_after_an_answer_is_a_warning_and_the_answer_is_judged():
    script = one_by_one(serving(), serving(kiss("RATE")))
    async with scripted_server(script) as (target, server):
        result, _ = await ask(target, samples=4, sample_interval="100ms")
    assert result.error is None
    assert result.severity is Severity.WARN, result.summary()
    assert result.summary().startswith("rate limited: the server sent a kiss-of-death RATE")
    assert len(server.queries) == 2  # slowed down: nothing after the RATE
    assert result.observations["stratum"] == 1 and result.observations["kiss_code"] == "RATE"


async def test_a_forged_kiss_of_death_with_another_origin_is_ignored():
    """A kiss of death must answer our query too: else anyone could silence a check."""

    def script(query: bytes) -> list[tuple[float, bytes]]:
        forged = answer(query, kiss("DENY"), time.time())
        assert forged is not None
        return [(0.0, stray(forged)), (0.05, good(query))]

    async with scripted_server(script) as (target, _):
        result, _ = await ask(target)
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["ignored_datagrams"] == 1


# --- no time to give -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clock", "reason"),
    [
        (ServerClock(stratum=16, leap=0), "stratum 16"),
        (ServerClock(leap=3), "leap indicator 3 (alarm)"),
        (ServerClock(stratum=0, reference_id=b"INIT", leap=0), "stratum 0, kiss code INIT"),
    ],
)
async def test_an_unsynchronised_server_is_crit_with_the_reason(clock, reason):
    async with scripted_server(serving(clock)) as (target, _):
        result, _ = await ask(target)
    assert result.severity is Severity.CRIT
    assert result.error is None
    assert result.summary().startswith(f"unsynchronised: {reason}")


# --- replies to other queries, garbage, silence ------------------------------------------------


async def test_a_reply_with_another_origin_is_ignored_until_the_real_one():
    def script(query: bytes) -> list[tuple[float, bytes]]:
        return [(0.0, stray(good(query))), (0.0, stray(good(query))), (0.1, good(query))]

    async with scripted_server(script) as (target, _):
        result, _ = await ask(target)
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["ignored_datagrams"] == 2


async def test_the_same_over_ipv6():
    def script(query: bytes) -> list[tuple[float, bytes]]:
        return [(0.0, stray(good(query))), (0.05, good(query))]

    async with scripted_server(script, address=LOCALHOST6) as (target, _):
        result, _ = await ask(target)
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["address"] == "::1"
    assert result.observations["ignored_datagrams"] == 1


async def test_only_replies_with_another_origin_time_out_naming_them():
    async with scripted_server(lambda q: [(0.0, stray(good(q)))]) as (target, _):
        result, took = await ask(target)
    assert result.severity is Severity.CRIT
    assert result.error is not None and result.error.error_class is ErrorClass.TIMEOUT
    assert result.error.message == (
        f"no reply to 1 query within {TIMEOUT:g}s; ignored 1 datagram with another origin "
        "timestamp, answering no query of ours"
    )
    assert TIMEOUT * 0.9 < took < TIMEOUT + SLACK


async def test_a_duplicate_reply_is_counted_not_taken_twice():
    async with scripted_server(lambda q: [(0.0, good(q)), (0.0, good(q))]) as (target, _):
        result, _ = await ask(target, samples=2, sample_interval="200ms")
    assert result.severity is Severity.OK
    assert result.observations["samples_answered"] == 2
    # The first query's copy comes while the second is awaited; the last one's, perhaps after
    # the check is done.
    assert result.observations["ignored_datagrams"] >= 1


@pytest.mark.parametrize("datagram", [b"\x24", bytes(47)])
async def test_short_datagrams_are_a_protocol_error(datagram):
    async with scripted_server(lambda q: [(0.0, datagram)]) as (target, _):
        result, took = await ask(target)
    assert result.severity is Severity.CRIT
    assert result.error is not None and result.error.error_class is ErrorClass.PROTOCOL
    assert result.error.message == "no valid reply to 1 query: 1 datagram too short for NTP"
    assert took < TIMEOUT + SLACK


@pytest.mark.parametrize(
    ("mangle", "fault"),
    [
        (lambda reply: with_first_byte(reply, 0x23), "mode 3, where a server's is 4"),
        (lambda reply: with_first_byte(reply, 0x14), "NTP version 2, not 3 or 4"),
        (lambda reply: with_transmit(reply, 0), "a zero receive or transmit timestamp"),
    ],
)
async def test_a_reply_to_our_query_that_no_server_could_send_is_a_protocol_error(mangle, fault):
    async with scripted_server(lambda q: [(0.0, mangle(good(q)))]) as (target, _):
        result, took = await ask(target, timeout="5s")
    assert result.error is not None and result.error.error_class is ErrorClass.PROTOCOL
    assert result.error.message == (
        f"no valid reply to 1 query: 1 datagram that no server sends ({fault})"
    )
    assert took < 2.5  # the query was answered, badly: no waiting out the timeout


async def test_garbage_of_header_size_is_a_stray_and_times_out():
    async with scripted_server(lambda q: [(0.0, bytes(range(48)) * 3)]) as (target, _):
        result, took = await ask(target)
    assert result.error is not None and result.error.error_class is ErrorClass.TIMEOUT
    assert "another origin timestamp" in result.error.message
    assert took < TIMEOUT + SLACK


async def test_a_reply_from_another_port_is_never_taken():
    """The socket is connected: the kernel drops what comes from elsewhere (a forger, a server
    behind a broken NAT), and the check times out."""
    async with scripted_server(lambda q: [(0.0, good(q))], from_other_port=True) as (
        target,
        server,
    ):
        result, took = await ask(target)
    assert len(server.queries) == 1
    assert result.error is not None and result.error.error_class is ErrorClass.TIMEOUT
    assert result.error.message == f"no reply to 1 query within {TIMEOUT:g}s"
    assert took < TIMEOUT + SLACK


async def test_silence_times_out_within_the_timeout():
    async with scripted_server(lambda q: []) as (target, server):
        result, took = await ask(target, samples=3, sample_interval="200ms")
    assert result.error is not None and result.error.error_class is ErrorClass.TIMEOUT
    assert result.error.message == f"no reply to 3 queries within {TIMEOUT:g}s"
    assert len(server.queries) == 3
    assert TIMEOUT * 0.9 < took < TIMEOUT + SLACK


async def test_queries_the_timeout_leaves_no_room_for_are_not_sent():
    async with scripted_server(lambda q: []) as (target, server):
        result, _ = await ask(target, samples=8, sample_interval="400ms")
    assert result.observations == {} or result.error is not None
    assert len(server.queries) == 2  # at 0 and 0.4 s; 0.8 s leaves too little of the 0.95 s


async def test_a_flood_of_strays_neither_hangs_nor_hides_the_real_reply():
    def script(query: bytes) -> list[tuple[float, bytes]]:
        noise = stray(good(query))
        # Paced, so the socket's buffer holds the real reply when it comes after them all.
        flood = [(batch * 0.01, noise) for batch in range(20) for _ in range(100)]
        return [*flood, (0.25, held(query))]

    async with scripted_server(script) as (target, _):
        result, took = await ask(target)
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["ignored_datagrams"] > 1000  # a few may be lost to the buffer
    assert took < TIMEOUT + SLACK


async def test_a_flood_for_the_whole_timeout_ends_in_a_timeout_naming_it():
    def script(query: bytes) -> list[tuple[float, bytes]]:
        noise = stray(good(query))
        return [(batch * 0.02, noise) for batch in range(75) for _ in range(200)]

    async with scripted_server(script) as (target, _):
        result, took = await ask(target)
    assert result.error is not None and result.error.error_class is ErrorClass.TIMEOUT
    assert "datagrams with another origin timestamp" in result.error.message
    assert took < TIMEOUT + SLACK


# --- peer text -----------------------------------------------------------------------------


async def test_a_reference_id_that_writes_to_the_terminal_is_shown_inert():
    clock = ServerClock(reference_id=b"\x1b[2J")
    async with scripted_server(serving(clock)) as (target, _):
        result, _ = await ask(target)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor.cli",
            "probe",
            "ntp",
            target,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    assert result.observations["reference_id"] == "\x1b[2J"  # exact for machines (JSON)
    shown = stdout.decode()
    assert "reference_id = \\x1b[2J" in shown
    assert "\x1b" not in shown
