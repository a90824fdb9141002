"""SIP messages as the sip probe builds and reads them, byte for byte: the OPTIONS request's
headers, what of a response decides that it answers the request (compact forms, folded lines,
several Via values in one header), Retry-After, and framing on a stream. No network: the
probe's exchanges with real servers are in tests/test_sip_probe.py."""

from __future__ import annotations

import pytest

from probes.support.sip_message import (
    MalformedMessage,
    OversizedMessage,
    Request,
    Response,
    StreamFramer,
    new_options,
    parse_datagram,
)

LIMIT = 16384


def request(transport: str = "UDP", local: tuple[str, int] = ("192.0.2.7", 40000)):
    return new_options("sip:sbc.example.net:5060", None, transport, local)


def answer_to(options, *lines: str, status: str = "200 OK", via: str | None = None) -> bytes:
    via = via or f"SIP/2.0/UDP {options.sent_by};branch={options.branch};rport=40000"
    head = [
        f"SIP/2.0 {status}",
        f"Via: {via}",
        f"Call-ID: {options.call_id}",
        "CSeq: 1 OPTIONS",
        *lines,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def test_the_request_carries_every_header_rfc_3261_asks_of_an_options_request() -> None:
    options = request()
    lines = options.encode().decode().split("\r\n")
    assert lines[0] == "OPTIONS sip:sbc.example.net:5060 SIP/2.0"
    assert lines[1] == f"Via: SIP/2.0/UDP 192.0.2.7:40000;branch={options.branch};rport"
    assert options.branch.startswith("z9hG4bK") and len(options.branch) == 7 + 24
    assert lines[2:5] == [
        "Max-Forwards: 70",
        f"From: <sip:commwatch@192.0.2.7>;tag={options.tag}",
        "To: <sip:sbc.example.net:5060>",
    ]
    assert f"Call-ID: {options.call_id}" in lines
    assert "CSeq: 1 OPTIONS" in lines
    assert "Contact: <sip:commwatch@192.0.2.7:40000>" in lines
    assert any(line.startswith("User-Agent: commwatch/") for line in lines)
    assert lines[-3:] == ["Content-Length: 0", "", ""]


def test_every_poll_gets_a_branch_tag_and_call_id_of_its_own() -> None:
    first, second = request(), request()
    assert first.branch != second.branch
    assert first.tag != second.tag
    assert first.call_id != second.call_id


def test_over_tcp_and_ipv6_the_via_and_contact_say_so() -> None:
    options = request("TCP", ("fe80::1%eth0", 5070))
    text = options.encode().decode()
    assert f"Via: SIP/2.0/TCP [fe80::1]:5070;branch={options.branch};rport" in text
    assert "From: <sip:commwatch@[fe80::1]>" in text
    assert "Contact: <sip:commwatch@[fe80::1]:5070;transport=tcp>" in text


def test_a_response_answers_the_request_by_branch_call_id_and_cseq() -> None:
    options = request()
    response = parse_datagram(answer_to(options, "Server: sbc"), LIMIT)
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (200, "OK")
    assert response.answers(options)
    assert response.text_of("server") == "sbc"
    other = request()
    assert not response.answers(other)


def test_compact_forms_folded_lines_and_several_vias_are_read_as_rfc_3261_writes_them() -> None:
    options = request()
    data = (
        "sip/2.0 404 Not Found\r\n"
        f"v: SIP/2.0/UDP {options.sent_by};BRANCH={options.branch},\r\n"
        " SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKproxy\r\n"
        f"i: {options.call_id}\r\n"
        "CSeq:   1   OPTIONS\r\n"
        "Allow: INVITE,\r\n\tOPTIONS\r\n"
        "l: 0\r\n\r\n"
    ).encode()
    response = parse_datagram(data, LIMIT)
    assert isinstance(response, Response)
    assert response.status == 404
    assert response.answers(options)  # the top Via, the first of the folded header's values
    assert response.text_of("allow") == "INVITE, OPTIONS"


def test_a_response_whose_second_via_is_ours_does_not_answer() -> None:
    options = request()
    via = f"SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKx, SIP/2.0/UDP x;branch={options.branch}"
    response = parse_datagram(answer_to(options, via=via), LIMIT)
    assert isinstance(response, Response) and not response.answers(options)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("Retry-After: 300", 300), ("Retry-After: 18000;duration=3600", 18000),
     ("Retry-After: 120 (I'm in a meeting)", 120), ("Retry-After: soon", None)],
)  # fmt: skip
def test_retry_after_is_its_delta_seconds(header: str, seconds: int | None) -> None:
    options = request()
    response = parse_datagram(answer_to(options, header, status="503 Service Unavailable"), LIMIT)
    assert isinstance(response, Response) and response.retry_after == seconds


def test_a_datagram_of_blank_lines_is_a_keepalive_and_a_request_is_a_request() -> None:
    assert parse_datagram(b"\r\n\r\n", LIMIT) is None
    message = parse_datagram(b"\r\nBYE sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n", LIMIT)
    assert message == Request("BYE")


def test_lf_only_line_ends_are_read_too() -> None:
    options = request()
    response = parse_datagram(answer_to(options).replace(b"\r\n", b"\n"), LIMIT)
    assert isinstance(response, Response) and response.answers(options)


def test_a_stream_is_framed_by_content_length_however_it_is_cut() -> None:
    options = request("TCP")
    body = b"v=0\r\n"
    first = answer_to(options, "Content-Length: 5", status="100 Trying").replace(
        b"\r\n\r\n", b"\r\n\r\n" + body
    )
    second = answer_to(options, "Content-Length: 0")
    framer = StreamFramer(LIMIT)
    stream = b"\r\n\r\n" + first + second
    seen = []
    for position in range(0, len(stream), 3):
        framer.feed(stream[position : position + 3])
        while (message := framer.next()) is not None:
            seen.append(message)
    assert [m.status for m in seen if isinstance(m, Response)] == [100, 200]


def test_a_stream_message_without_content_length_or_over_the_limit_is_refused() -> None:
    options = request("TCP")
    framer = StreamFramer(LIMIT)
    framer.feed(answer_to(options))
    with pytest.raises(MalformedMessage, match="no Content-Length"):
        framer.next()
    framer = StreamFramer(1024)
    framer.feed(answer_to(options, "Content-Length: 2000"))
    with pytest.raises(OversizedMessage, match="by its Content-Length, over the 1024 allowed"):
        framer.next()


def test_two_different_content_lengths_are_malformed() -> None:
    options = request("TCP")
    framer = StreamFramer(LIMIT)
    framer.feed(answer_to(options, "Content-Length: 0", "l: 10"))
    with pytest.raises(MalformedMessage, match="not one number"):
        framer.next()
