"""The event-stream parser against the WHATWG standard's own examples and rules, fed whole and
byte by byte (a line end, a multi-byte character or a CRLF split across reads must not matter),
and its bounds against a peer that sends too much."""

from __future__ import annotations

import pytest

from monitor.api.sse import SseEvent, SseParser


def parse(stream: bytes, *, chunk: int | None = None, **bounds: int) -> list[SseEvent]:
    parser = SseParser(**bounds)
    if chunk is None:
        return parser.feed(stream)
    events = []
    for i in range(0, len(stream), chunk):
        events += parser.feed(stream[i : i + chunk])
    return events


@pytest.mark.parametrize("chunk", [None, 1, 2, 7])
def test_the_standards_examples(chunk):
    # HTML §9.2.6: "data: YHOO\ndata: +2\ndata: 10" is one event with two LFs in its data.
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert parse(stream, chunk=chunk) == [SseEvent("message", "YHOO\n+2\n10", "")]
    # A comment, an event with an id, one that keeps that id, and "data" with no colon.
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third\n\n"
    )
    assert parse(stream, chunk=chunk) == [
        SseEvent("message", "first event", "1"),
        SseEvent("message", "second event", ""),  # a bare `id` resets it
        SseEvent("message", " third", ""),  # only one space after the colon goes
    ]
    # "data" alone is an empty data line; two of them make one LF; a last event with no
    # blank line after it is never dispatched.
    assert parse(b"data\n\ndata\ndata\n\ndata:", chunk=chunk) == [
        SseEvent("message", "", ""),
        SseEvent("message", "\n", ""),
    ]


@pytest.mark.parametrize("chunk", [None, 1, 3])
@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end_and_its_split_across_reads(chunk, end):
    stream = end.join([b"id: 7", b"event: result", b'data: {"a": 1}', b"", b""])
    assert parse(stream, chunk=chunk) == [SseEvent("result", '{"a": 1}', "7")]


def test_events_without_data_are_not_dispatched_but_their_id_counts():
    parser = SseParser()
    assert parser.feed(b"id: 41\nevent: result\n\n") == []
    assert parser.last_event_id == "41"
    assert parser.feed(b"data: x\n\n") == [SseEvent("message", "x", "41")]  # type reset too


def test_bom_unknown_fields_retry_and_nul_ids():
    parser = SseParser()
    stream = "\ufeffretry: 2000\nfoo: bar\nid: a\0b\ndata: x\n\nretry: 1s\n\n".encode()
    assert parser.feed(stream) == [SseEvent("message", "x", "")]
    assert parser.retry_ms == 2000  # "1s" is not ASCII digits: ignored


def test_text_that_is_not_utf8_is_replaced_and_a_split_character_is_kept_whole():
    word = "Kühlhaus".encode()
    events = parse(b"data: " + word + b" \xff\n\n", chunk=1)
    assert events == [SseEvent("message", "Kühlhaus \ufffd", "")]


def test_an_overlong_line_is_dropped_whole_with_its_event_and_memory_stays_bounded():
    parser = SseParser(max_line=64)
    events = []
    events += parser.feed(b"id: 1\ndata: " + b"x" * 50)
    events += parser.feed(b"y" * 10_000)  # never kept: the parser is skipping it
    assert len(parser._line) <= 64
    events += parser.feed(b"z\ndata: tail of the same event\n\ndata: next\n\n")
    assert events == [SseEvent("message", "next", "1")]
    assert parser.dropped == 1


def test_an_event_too_large_is_dropped_and_the_next_one_arrives():
    lines = b"".join(b"data: " + b"x" * 90 + b"\n" for _ in range(20))
    events = parse(lines + b"\ndata: small\n\n", chunk=13, max_event=1000)
    assert events == [SseEvent("message", "small", "")]
