"""The log for people: text a peer chose (in an argument or an exception message) cannot forge a
line or reach the terminal; commwatch's own line breaks (a traceback) stay."""

from __future__ import annotations

import io
import logging

from monitor.core.logs import Lines, PrintableFormatter
from tests.hostile.test_terminal_injection import FORGED, PAYLOAD, assert_inert


def formatted(record_args: tuple[object, ...], exc: BaseException | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PrintableFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("commwatch.test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc is None:
            logger.warning("peer %s answered %d times: %s", *record_args)
        else:
            try:
                raise exc
            except type(exc):
                logger.exception("peer %s failed", *record_args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_arguments_from_peers_are_one_inert_line() -> None:
    text = formatted(("127.0.0.1:161", 3, PAYLOAD))

    assert_inert(text, "a log line")
    assert text.count("\n") == 1
    assert text.startswith("WARNING peer 127.0.0.1:161 answered 3 times: \\x1b]0;owned\\x07")


def test_an_exception_message_from_a_peer_cannot_start_a_line() -> None:
    text = formatted(("127.0.0.1:443",), ValueError(f"bad reason phrase {PAYLOAD}"))

    assert_inert(text, "a logged traceback")
    lines = text.split("\n")
    assert lines[1] == "Traceback (most recent call last):"
    assert any(line.startswith("ValueError: bad reason phrase \\x1b]0;owned") for line in lines)
    assert not any(line.startswith(FORGED) for line in lines)


def test_lines_commwatch_writes_itself_keep_their_breaks() -> None:
    text = formatted(("a", 1, Lines("first\nsecond \x1b[2J\rthird")))

    assert_inert(text, "a Lines argument")
    assert text.split("\n")[1] == "second \\x1b[2J\\x0dthird"
