"""Regular expressions at their edges (monitor/core/patterns.py): the longest pattern, the work
bound met exactly, RE2's refusals in words (its reason decoded, the right hint), nothing printed
by RE2 itself, and groups that cost no instructions."""

from __future__ import annotations

import pytest

from monitor.core.options import OptionError
from monitor.core.patterns import MAX_PATTERN_CHARS, WORK_LIMIT, regex

SYNTAX_HINT = (
    "RE2 syntax: no lookahead/lookbehind (?=...) (?!...) (?<=...), no backreferences \\1, "
    "\\z for the end of the text; quote the pattern in YAML"
)
REPEAT_HINT = "RE2 repeats at most 1000 times, nested repeats multiplied: use + or * instead"


def refused(value) -> OptionError:
    with pytest.raises(OptionError) as raised:
        regex(value)
    return raised.value


def test_a_pattern_keeps_its_text_as_written():
    pattern = regex("health(y|ier)")
    assert pattern.pattern == "health(y|ier)"
    assert pattern.search("all healthy") and not pattern.search("unwell")


def test_the_longest_pattern_is_accepted_and_one_more_character_is_not():
    assert regex("a" * MAX_PATTERN_CHARS).pattern == "a" * MAX_PATTERN_CHARS
    error = refused("a" * (MAX_PATTERN_CHARS + 1))
    assert (error.message, error.hint) == (
        "the expression is 1001 characters long",
        "at most 1000: match a distinctive part of the text",
    )


@pytest.mark.parametrize(
    ("pattern", "reason", "hint"),
    [
        ("(?=x)", "invalid perl operator: (?=", SYNTAX_HINT),
        ("\\1(a)", "invalid escape sequence: \\1", SYNTAX_HINT),
        ("a{1001}", "invalid repetition size: {1001}", REPEAT_HINT),
    ],
)
def test_a_refused_pattern_says_re2s_reason_in_words_and_the_hint_that_fits(
    pattern, reason, hint, capfd
):
    error = refused(pattern)
    assert error.message == f"{pattern!r} is not a regular expression commwatch can match: {reason}"
    assert error.hint == hint
    assert capfd.readouterr().err == ""  # RE2 logs nothing of its own


def test_a_lone_surrogate_is_refused_as_text_not_as_a_pattern():
    error = refused("ab\ud800")
    assert (error.message, error.hint) == (
        "'ab\\ud800' is not valid Unicode text",
        "remove the lone surrogate escape",
    )


def test_groups_cost_no_instructions_only_matching_counts():
    assert regex("(a)(b)(c)").program_size == regex("abc").program_size


def test_the_work_bound_met_exactly_is_accepted():
    pattern = regex("abcd")
    assert pattern.program_size == 8  # a power of two: the bound can be met exactly
    exact = WORK_LIMIT // 8
    pattern.check_work(exact, key="body_regex", bytes_key="max_body_bytes")
    with pytest.raises(OptionError) as raised:
        pattern.check_work(exact + 1, key="body_regex", bytes_key="max_body_bytes")
    assert raised.value.key == "body_regex"
    assert raised.value.message == (
        f"'abcd' compiles to 8 steps: matching it against {exact + 1} bytes could take more "
        "than a second"
    )
    assert raised.value.hint == f"simplify it, or set max_body_bytes to at most {exact}"
