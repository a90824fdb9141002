"""Peer text made safe: every character a terminal acts on is shown, never sent."""

from __future__ import annotations

import pytest

from monitor.core.text import one_line, printable, spreadsheet_cell


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain CN=cad.example.net", "plain CN=cad.example.net"),
        ("\x1b]0;owned\x07title", "\\x1b]0;owned\\x07title"),
        ("\x1b[2J\x1b[Hcleared", "\\x1b[2J\\x1b[Hcleared"),
        ("OK\r\nCRIT forged", "OK\\x0d\\x0aCRIT forged"),
        ("tab\there", "tab\\x09here"),
        ("\x9b31m8-bit CSI", "\\x9b31m8-bit CSI"),
        ("del\x7f", "del\\x7f"),
        ("abc\u202etxt.exe", "abc\\u202etxt.exe"),
        ("iso\u2066late\u2069", "iso\\u2066late\\u2069"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("bom\ufeff", "bom\\ufeff"),
        ("naïve café ✔", "naïve café ✔"),
    ],
)
def test_printable_shows_what_a_terminal_would_act_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_output_holds_no_control_character() -> None:
    every = "".join(chr(c) for c in range(0x30000) if not 0xD800 <= c <= 0xDFFF)
    safe = printable(every)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in safe)
    assert not set(safe) & {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067"}


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tlead", "\\x09lead"),
        ("CN=ok", "CN=ok"),
        ("", ""),
    ],
)
def test_spreadsheet_cell_never_starts_a_formula(raw: str, cell: str) -> None:
    assert spreadsheet_cell(raw) == cell


def test_one_line_joins_a_parser_message_and_drops_its_caret_line() -> None:
    # The shape of aiohttp's (llhttp's) errors for a malformed response.
    said = "Invalid header value char\n\n  b'X-Bad: \\x01'\n           ^  \n"
    assert one_line(said) == "Invalid header value char b'X-Bad: \\x01'"
    assert one_line("already one line") == "already one line"
    assert one_line("") == ""
