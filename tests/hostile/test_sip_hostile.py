"""SIP peers that answer with garbage, oversized messages, responses to other requests, endless
provisional responses, text that attacks a terminal, or nothing: strays are counted and ignored
while the real answer is awaited, retransmissions follow RFC 3261's timers, and everything else
ends in a classified error within the timeout, never a crash, a hang or unbounded memory."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.engine.runner import run_check
from probes.base import SharedResources
from tests.hostile.sip_peers import LOCALHOST, reply, tcp_peer, udp_peer
from tests.hostile.test_terminal_injection import FORGED, PAYLOAD, assert_inert, commwatch
from tests.peers.tcp_peers import accepting_listener, closed_port

# Short timers, so that the RFC's schedule plays out within a test: T1 100 ms, T2 400 ms.
FAST = {"t1": "100ms", "t2": "400ms"}


async def probe(port: int, timeout: str = "2s", **values: Any) -> tuple[ProbeResult, float]:
    check = adhoc_check("sip", {"target": f"{LOCALHOST}:{port}", "timeout": timeout, **values})
    started = time.monotonic()
    result = await run_check(check, SharedResources())
    return result, time.monotonic() - started


def ok(request: bytes, _before: int) -> list[bytes]:
    return [reply(request, 200, "OK")]


def silent(_request: bytes, _before: int) -> list[bytes]:
    return []


def _error(result: ProbeResult) -> tuple[ErrorClass, str]:
    assert result.error is not None, result.summary()
    return result.error.error_class, result.error.message


# --- UDP: what arrives instead of the answer -----------------------------------------------


@pytest.mark.parametrize(
    ("garbage", "words"),
    [
        (b"\x00\xff garbage \x1b[2J", "not a SIP message: it starts"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "not a SIP message: it starts"),
        (b"SIP/2.0 200 OK\r\nVia SIP/2.0/UDP x\r\n\r\n", "a header line that is not NAME: VALUE"),
        (b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n", "no end of the header section"),
        (b"SIP/2.0 200 OK\r\nContent-Length: 99\r\n\r\nshort", "Content-Length 99, but"),
        (b"SIP/2.0 999 Nine\r\nContent-Length: 0\r\n\r\n", "not a SIP message"),
    ],
)
async def test_garbage_is_crit_at_once_and_named(garbage: bytes, words: str) -> None:
    async with udp_peer(lambda _request, _before: [garbage]) as peer:
        result, took = await probe(peer.port, timeout="3s")
    error_class, message = _error(result)
    assert (result.severity, error_class) == (Severity.CRIT, ErrorClass.PROTOCOL)
    assert message.startswith("malformed answer: ") and words in message, message
    assert took < 1.5, "garbage must fail at once, not at the timeout"
    assert result.observations["transport"] == "udp"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["X-Pad: " + "a" * 4000] * 5, "20"),  # over 16384 bytes in all
        (["X-Pad: " + "a" * 5000], "a line over 4096 bytes"),
        ([f"X-Many: {n}" for n in range(120)], "more than 100 header lines"),
    ],
)
async def test_an_oversized_response_is_crit_oversized(extra: list[str], words: str) -> None:
    async with udp_peer(lambda request, _before: [reply(request, 200, "OK", *extra)]) as peer:
        result, took = await probe(peer.port)
    error_class, message = _error(result)
    assert (result.severity, error_class) == (Severity.CRIT, ErrorClass.PROTOCOL)
    assert message.startswith("oversized response: ") and words in message, message
    assert took < 1.5


async def test_max_response_bytes_lets_a_larger_answer_through() -> None:
    padded = ["X-Pad: " + "a" * 4000] * 5
    async with udp_peer(lambda request, _before: [reply(request, 200, "OK", *padded)]) as peer:
        result, _ = await probe(peer.port, max_response_bytes=32768)
    assert result.severity is Severity.OK, result.summary()


@pytest.mark.parametrize(
    "other",
    [
        {"Call_ID": "not-this-poll"},
        {"Via": "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnotyours;rport"},
        {"CSeq": "2 OPTIONS"},
        {"CSeq": "1 INVITE"},
    ],
)
async def test_a_response_to_another_request_is_ignored_and_the_right_one_answers(
    other: dict[str, str],
) -> None:
    def script(request: bytes, _before: int) -> list[bytes]:
        return [reply(request, 500, "Not yours", **other), reply(request, 200, "OK")]

    async with udp_peer(script) as peer:
        result, _ = await probe(peer.port)
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["status"] == 200
    assert result.observations["ignored_messages"] == 1


async def test_only_responses_to_other_requests_end_at_the_timeout_and_say_so() -> None:
    def script(request: bytes, _before: int) -> list[bytes]:
        return [reply(request, 200, "OK", Via="SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx")]

    async with udp_peer(script) as peer:
        result, took = await probe(peer.port, timeout="1s", **FAST)
    error_class, message = _error(result)
    assert (result.severity, error_class) == (Severity.CRIT, ErrorClass.TIMEOUT)
    assert message.startswith("no response within 0.95s after ")
    assert "answering no request of this poll (another Via branch, Call-ID or CSeq)" in message
    # One stray per transmission: the original and each retransmission.
    assert result.observations["ignored_messages"] == len(peer.requests) >= 3
    assert took < 1.5


async def test_keepalives_and_requests_from_the_peer_are_not_the_answer() -> None:
    def script(request: bytes, _before: int) -> list[bytes]:
        stray = b"NOTIFY sip:commwatch@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"
        return [b"\r\n\r\n", stray, reply(request, 200, "OK")]

    async with udp_peer(script) as peer:
        result, _ = await probe(peer.port)
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["ignored_messages"] == 1  # the NOTIFY; a keepalive is nothing


async def test_a_closed_udp_port_is_refused_at_once() -> None:
    port = closed_port()
    result, took = await probe(port, timeout="3s")
    assert _error(result)[0] is ErrorClass.REFUSED
    assert took < 1.5


# --- UDP: RFC 3261 §17.1.2.2 timers ----------------------------------------------------------


def _like(intervals: list[float], expected: list[float]) -> bool:
    """Each interval at least what the timer says, and not much more (a loaded machine)."""
    return len(intervals) == len(expected) and all(
        want * 0.95 <= got <= want + 0.25 for got, want in zip(intervals, expected, strict=True)
    )


async def test_silence_is_retransmitted_by_timer_e_doubling_up_to_t2() -> None:
    async with udp_peer(silent) as peer:
        result, took = await probe(peer.port, timeout="2s", **FAST)
    error_class, message = _error(result)
    assert (result.severity, error_class) == (Severity.CRIT, ErrorClass.TIMEOUT)
    # Sent at 0, 0.1, 0.3, 0.7, 1.1, 1.5; the transaction ends at 1.9 s (95 % of the timeout).
    assert _like(peer.intervals(), [0.1, 0.2, 0.4, 0.4, 0.4]), peer.intervals()
    assert result.observations["retransmissions"] == 5
    assert message == "no response within 1.9s after 5 retransmissions"
    assert 1.85 < took < 2.5
    # Every transmission is the same request: same branch, same Call-ID.
    assert len(set(peer.requests)) == 1


async def test_an_answer_to_the_third_retransmission_is_ok_with_the_three_counted() -> None:
    def third(request: bytes, before: int) -> list[bytes]:
        return [reply(request, 200, "OK")] if before == 3 else []

    async with udp_peer(third) as peer:
        result, _ = await probe(peer.port, **FAST)
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["retransmissions"] == 3
    assert len(peer.requests) == 4
    # The round trip counts from the first transmission: 0.1 + 0.2 + 0.4 s of waiting.
    assert result.observations["rtt_ms"] >= 700


async def test_timer_f_ends_the_transaction_before_a_longer_timeout() -> None:
    async with udp_peer(silent) as peer:
        result, took = await probe(peer.port, timeout="5s", t1="20ms", t2="400ms")
    # 64 * T1 = 1.28 s, well before the 4.75 s the timeout would allow.
    assert _error(result)[1].startswith("no response within 1.28s (Timer F, 64*t1) after ")
    assert took < 2.0


async def test_endless_100_trying_is_crit_only_provisional_and_retransmits_every_t2() -> None:
    async with udp_peer(lambda request, _before: [reply(request, 100, "Trying")]) as peer:
        result, took = await probe(peer.port, timeout="2s", **FAST)
    error_class, message = _error(result)
    assert (result.severity, error_class) == (Severity.CRIT, ErrorClass.TIMEOUT)
    assert message.startswith("only provisional responses (100 Trying) within 1.9s")
    # Timer E had been set to T1 when the 100 came: it fires then, and every T2 after it.
    assert _like(peer.intervals(), [0.1, 0.4, 0.4, 0.4, 0.4]), peer.intervals()
    observations = result.observations
    assert observations["provisional_responses"] == len(peer.requests)
    assert observations["provisional_status"] == 100
    assert "status" not in observations  # no final response, nothing to judge as one
    assert took < 2.3


async def test_a_provisional_then_a_final_response_is_the_final_one() -> None:
    def script(request: bytes, before: int) -> list[bytes]:
        if before == 0:
            return [reply(request, 100, "Trying")]
        return [reply(request, 200, "OK")]

    async with udp_peer(script) as peer:
        result, _ = await probe(peer.port, **FAST)
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["provisional_responses"] == 1
    assert result.observations["retransmissions"] == 1


# --- TCP ------------------------------------------------------------------------------------


async def test_a_tcp_peer_that_accepts_and_never_answers_is_crit_within_the_timeout() -> None:
    async with accepting_listener() as port:
        result, took = await probe(port, timeout="1s", transport="tcp")
    error_class, message = _error(result)
    assert (result.severity, error_class) == (Severity.CRIT, ErrorClass.TIMEOUT)
    assert message == "no response within 0.95s"
    assert result.observations["retransmissions"] == 0  # never on a reliable transport
    assert "connect_ms" in result.observations
    assert took < 1.5


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"\x16\x03\x01 not SIP\r\n\r\n", "malformed answer: not a SIP message"),
        (b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n", "malformed answer: no Content-Length"),
        (b"SIP/2.0 200 OK\r\nX: " + b"a" * 20000, "oversized response: no end of its header"),
        (
            b"SIP/2.0 200 OK\r\nContent-Length: 1000000\r\n\r\n",
            "oversized response: 1000043 bytes by its Content-Length",
        ),
        (
            b"SIP/2.0 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            "oversized response: Content-Length 99999999999",
        ),
    ],
)
async def test_a_tcp_answer_that_is_not_sip_or_too_large_is_crit_at_once(
    answer: bytes, words: str
) -> None:
    async with tcp_peer(lambda _request, _before: [answer]) as peer:
        result, took = await probe(peer.port, timeout="3s", transport="tcp")
    error_class, message = _error(result)
    assert (result.severity, error_class) == (Severity.CRIT, ErrorClass.PROTOCOL)
    assert message.startswith(words), message
    assert took < 1.5


async def test_a_tcp_peer_that_closes_before_answering_says_so() -> None:
    async with tcp_peer(silent, close_after=True) as peer:
        result, _ = await probe(peer.port, transport="tcp")
    assert _error(result) == (
        ErrorClass.PROTOCOL,
        "the server closed the connection before a final response",
    )


async def test_tcp_responses_framed_by_content_length_however_they_arrive() -> None:
    """A 100 and a stray in one write, then the 200 OK (with a body) a few bytes at a time."""

    def script(request: bytes, _before: int) -> list[bytes]:
        final = reply(request, 200, "OK", "Content-Type: application/sdp").replace(
            b"Content-Length: 0\r\n\r\n", b"Content-Length: 5\r\n\r\nv=0\r\n"
        )
        together = reply(request, 100, "Trying") + reply(request, 200, "OK", Call_ID="other")
        return [b"\r\n\r\n" + together, *(final[i : i + 7] for i in range(0, len(final), 7))]

    async with tcp_peer(script) as peer:
        result, _ = await probe(peer.port, transport="tcp")
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["provisional_responses"] == 1
    assert result.observations["ignored_messages"] == 1


# --- peer text -------------------------------------------------------------------------------


REASON = PAYLOAD.replace("\r\n", "\r")  # a bare CR inside the line: the line does not end there


def _hostile(request: bytes, _before: int) -> list[bytes]:
    return [reply(request, 404, REASON, f"User-Agent: {PAYLOAD[:9]}", server=REASON)]


async def test_peer_text_is_inert_in_every_output_for_people_and_exact_in_json(tmp_path) -> None:
    async with udp_peer(_hostile) as peer:
        target = f"{LOCALHOST}:{peer.port}"
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(
            "version: 1\nsites:\n  - id: site\n    links:\n      - id: link\n        checks:\n"
            f'          - {{id: sbc, kind: sip, target: "{target}", timeout: 2s}}\n'
        )
        outputs = {
            "probe": await commwatch("probe", "sip", target),
            "probe --nagios": await commwatch("probe", "sip", target, "--nagios"),
            "run --once --format table": await commwatch(
                "run", "--once", "--format", "table", str(inventory)
            ),
        }
        as_json, _ = await commwatch("probe", "sip", target, "--format", "json")
    for name, (stdout, stderr) in outputs.items():
        assert stdout, f"{name} printed nothing; stderr:\n{stderr}"
        assert_inert(stdout, name)
        assert_inert(stderr, f"{name} (stderr)")
    assert "\\x1b[2J\\x0d" + FORGED in outputs["probe"][0]  # shown, escaped, not dropped
    assert outputs["probe --nagios"][0].count("\n") == 1
    observations = json.loads(as_json)["observations"]
    assert observations["reason"] == REASON
    assert observations["server"] == REASON
    assert observations["user_agent"] == PAYLOAD[:9]
    assert observations["status"] == 404


async def test_peer_text_is_kept_to_a_bounded_length() -> None:
    long_server = "S" * 3000

    async def run() -> ProbeResult:
        def script(request: bytes, _before: int) -> list[bytes]:
            return [reply(request, 200, "R" * 3000, server=long_server)]

        async with udp_peer(script) as peer:
            return (await probe(peer.port))[0]

    result = await run()
    assert result.severity is Severity.OK
    assert len(result.observations["server"]) == 256
    assert len(result.observations["reason"]) == 256
    assert str(result.observations["reason"]).endswith("…")
