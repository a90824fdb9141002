"""The rest of monitor.core.text at its edges: messages bounded at exactly their limit, Markdown
cells that render as the text itself, and durations in their two largest units."""

from __future__ import annotations

import pytest

from monitor.core.text import (
    MAX_MESSAGE_CHARS,
    bounded_message,
    duration_text,
    markdown_cell,
    one_line,
)


def test_a_message_at_its_limit_is_kept_whole_and_one_longer_loses_its_middle():
    exact = "x" * MAX_MESSAGE_CHARS
    assert bounded_message(exact) == exact
    longer = "a" * 151 + "z" * 150  # one character over
    assert bounded_message(longer) == "a" * 148 + " … " + "z" * 148


def test_a_bounded_message_is_printable_and_takes_its_limit():
    assert bounded_message("bad\x1b[2Jvalue") == "bad\\x1b[2Jvalue"
    assert bounded_message("0123456789abcdef", limit=12) == "0123 … cdef"
    assert bounded_message("0123456789ab", limit=12) == "0123456789ab"


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ("CN=[x](https://evil.test)", "CN=\\[x\\](https://evil.test)"),
        ("a|b", "a\\|b"),
        ("*bold* _em_ `code` ~strike~", "\\*bold\\* \\_em\\_ \\`code\\` \\~strike\\~"),
        ("<b>&#x202e;</b>", "\\<b\\>\\&#x202e;\\</b\\>"),
        ("back\\slash", "back\\\\slash"),
        ("line\nbreak", "line\\\\x0abreak"),  # the escape's backslash too: it shows as \x0a
        ("plain text", "plain text"),
    ],
)
def test_a_markdown_cell_renders_as_the_text_itself(raw, cell):
    assert markdown_cell(raw) == cell


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "0s"),
        (0, "0s"),
        (45, "45s"),
        (59.6, "1m00s"),  # rounded to the second first
        (60, "1m00s"),
        (61, "1m01s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (3661, "1h01m"),
        (86399, "23h59m"),
        (86400, "1d00h"),
        (90061, "1d01h"),
        (45 * 86400 + 7 * 3600, "45d07h"),
    ],
)
def test_a_duration_reads_in_its_two_largest_units(seconds, shown):
    assert duration_text(seconds) == shown


def test_one_line_drops_only_lines_of_carets_and_spaces():
    assert one_line("bad header\n  X \n   ^^^\n\nend") == "bad header X end"
