"""DNS servers that send replies to other queries, cut or looping messages, impossible counts,
or trickle over TCP: strays are ignored while the real answer is awaited, everything else ends
in a classified error within the timeout."""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import dns.name

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.engine.runner import run_check
from probes.base import SharedResources
from tests.hostile.dns_servers import (
    header_only,
    response,
    scripted_server,
    self_pointing_answer,
    with_id,
)
from tests.peers.tcp_peers import accepting_listener

NAME = "cad.example.net"


async def ask(server: str, timeout: str = "1s", **values: Any) -> tuple[ProbeResult, float]:
    check = adhoc_check("dns", {"target": NAME, "server": server, "timeout": timeout, **values})
    started = time.monotonic()
    result = await run_check(check, SharedResources())
    return result, time.monotonic() - started


def real_answer(query: bytes) -> bytes:
    return response(query, "A 192.0.2.10").to_wire()


def query_id(query: bytes) -> int:
    return struct.unpack("!H", query[:2])[0]


async def test_a_reply_with_another_id_is_ignored_until_the_real_answer() -> None:
    def script(query: bytes) -> list[tuple[float, bytes]]:
        stray = with_id(response(query, "A 203.0.113.66").to_wire(), query_id(query) ^ 0x5A5A)
        return [(0.0, stray), (0.0, stray), (0.1, real_answer(query))]

    async with scripted_server(script) as server:
        result, _ = await ask(server, expect=["192.0.2.10"])

    assert result.error is None, result.summary()
    assert result.severity is Severity.OK
    assert result.observations["answer"] == "192.0.2.10"


async def test_a_reply_for_another_question_is_ignored_until_the_real_answer() -> None:
    def script(query: bytes) -> list[tuple[float, bytes]]:
        other = response(query, "A 203.0.113.66")
        other.question[0].name = other.answer[0].name = dns.name.from_text("evil.example.net")
        return [(0.0, other.to_wire()), (0.1, real_answer(query))]

    async with scripted_server(script) as server:
        result, _ = await ask(server, expect=["192.0.2.10"])

    assert result.severity is Severity.OK, result.summary()


async def test_a_truncated_reply_to_an_earlier_query_is_a_stray_too() -> None:
    def script(query: bytes) -> list[tuple[float, bytes]]:
        late = response(query, "A 203.0.113.66")
        late.flags |= 0x0200  # TC: the earlier poll would have asked again over TCP
        stray = with_id(late.to_wire(), query_id(query) ^ 0x0F0F)
        return [(0.0, stray), (0.1, real_answer(query))]

    async with scripted_server(script) as server:
        result, _ = await ask(server, expect=["192.0.2.10"])

    assert result.severity is Severity.OK, result.summary()
    assert result.observations["transport"] == "udp"


async def test_garbage_with_the_tc_bit_is_garbage_not_a_stray() -> None:
    def script(query: bytes) -> list[tuple[float, bytes]]:
        # Another id, QR and TC set, no question: what half of all random datagrams look like.
        header = struct.pack("!HHHHHH", query_id(query) ^ 1, 0x8380, 0, 0, 0, 0)
        return [(0.0, header + b"\xff" * 20)]

    async with scripted_server(script) as server:
        result, elapsed = await ask(server, timeout="3s")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert elapsed < 1


async def test_only_strays_is_a_timeout_that_says_they_were_ignored() -> None:
    def script(query: bytes) -> list[tuple[float, bytes]]:
        stray = with_id(real_answer(query), query_id(query) ^ 1)
        return [(0.05 * i, stray) for i in range(5)]

    async with scripted_server(script) as server:
        result, elapsed = await ask(server, timeout="500ms")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert "ignored 5 replies to other queries" in result.error.message
    assert elapsed < 0.5 + 0.3


async def test_a_reply_cut_short_is_a_protocol_error_at_once() -> None:
    async with scripted_server(lambda query: [(0.0, real_answer(query)[:-3])]) as server:
        result, elapsed = await ask(server, timeout="3s")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert "not a well-formed DNS message" in result.error.message
    assert elapsed < 1


async def test_a_compression_pointer_loop_is_a_protocol_error() -> None:
    async with scripted_server(lambda query: [(0.0, self_pointing_answer(query))]) as server:
        result, elapsed = await ask(server, timeout="3s")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert elapsed < 1


async def test_impossible_record_counts_are_a_protocol_error() -> None:
    async with scripted_server(lambda query: [(0.0, header_only(query, 65535))]) as server:
        result, elapsed = await ask(server, timeout="3s")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert elapsed < 1


async def test_a_tcp_server_that_accepts_and_says_nothing_times_out() -> None:
    async with accepting_listener() as port:
        result, elapsed = await ask(f"127.0.0.1:{port}", timeout="500ms", tcp=True)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert elapsed < 0.5 + 0.3


async def test_a_tcp_answer_trickled_byte_by_byte_times_out() -> None:
    async def trickle(query: bytes, writer: asyncio.StreamWriter) -> None:
        wire = real_answer(query)
        for byte in struct.pack("!H", len(wire)) + wire:
            writer.write(bytes((byte,)))
            await writer.drain()
            await asyncio.sleep(0.1)

    async with scripted_server(lambda query: [], tcp=trickle) as server:
        result, elapsed = await ask(server, timeout="1s", tcp=True)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert elapsed < 1 + 0.3


async def test_truncated_over_udp_then_garbage_over_tcp_is_a_protocol_error() -> None:
    def truncated(query: bytes) -> list[tuple[float, bytes]]:
        reply = response(query)
        reply.flags |= 0x0200  # TC
        return [(0.0, reply.to_wire())]

    async def garbage(query: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(struct.pack("!H", 40) + query[:2] + b"\xff" * 38)
        await writer.drain()

    async with scripted_server(truncated, tcp=garbage) as server:
        result, elapsed = await ask(server, timeout="3s")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert elapsed < 1
