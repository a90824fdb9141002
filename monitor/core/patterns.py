"""Regular expressions from the inventory and the command line, matched in linear time.

Python's `re` backtracks: `(x+x+)+y`, or `.*healthy` against a megabyte without a newline, runs
for hours on text a peer chose, and a C loop does not even let SIGINT through. RE2 (Google's
engine, `google-re2`) never backtracks: its time is linear in the text. The constant is the
compiled program's size in the worst case (its NFA steps every instruction for every byte), so
a pattern is accepted for a body only if program size x bytes stays within `WORK_LIMIT`: under a
second of one core, even for a pattern built to defeat RE2's DFA.

RE2 has no lookaround and no backreferences (they are what makes backtracking necessary); such
patterns are refused when the inventory is loaded, with a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

from monitor.core.options import OptionError, text

# Steps (program instructions x bytes) one match may take in the worst case: measured at about
# 5.5 ns each on a 2020s core, so ~0.7 s.
WORK_LIMIT = 1 << 27
MAX_PATTERN_CHARS = 1000
_SYNTAX_HINT = (
    "RE2 syntax: no lookahead/lookbehind (?=...) (?!...) (?<=...), no backreferences \\1, "
    "\\z for the end of the text; quote the pattern in YAML"
)
_REPEAT_HINT = "RE2 repeats at most 1000 times, nested repeats multiplied: use + or * instead"


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print its parse errors to stderr itself
    options.never_capture = True  # only whether it matches counts: fewer instructions
    return options


_OPTIONS = _options()


@dataclass(frozen=True)
class Pattern:
    """A compiled RE2 expression; `pattern` is the text as written."""

    pattern: str
    _compiled: Any = field(repr=False, compare=False)

    @property
    def program_size(self) -> int:
        return int(self._compiled.programsize)

    def search(self, subject: str) -> bool:
        """Whether the expression matches anywhere in `subject`. Releases the GIL while it
        matches, so it may run in a worker thread."""
        return self._compiled.search(subject) is not None

    def check_work(self, max_bytes: int, *, key: str, bytes_key: str) -> None:
        """Raise OptionError (for `key`) if matching `max_bytes` could exceed WORK_LIMIT."""
        if self.program_size * max_bytes > WORK_LIMIT:
            most = max(WORK_LIMIT // self.program_size, 1)
            raise OptionError(
                f"{self.pattern!r} compiles to {self.program_size} steps: matching it against "
                f"{max_bytes} bytes could take more than a second",
                f"simplify it, or set {bytes_key} to at most {most}",
                key=key,
            )


def regex(value: Any) -> Pattern:
    """Parser for a regular expression option."""
    pattern = text(value)
    if len(pattern) > MAX_PATTERN_CHARS:
        raise OptionError(
            f"the expression is {len(pattern)} characters long",
            f"at most {MAX_PATTERN_CHARS}: match a distinctive part of the text",
        )
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except UnicodeEncodeError:
        raise OptionError(
            f"{pattern!r} is not valid Unicode text", "remove the lone surrogate escape"
        ) from None
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise OptionError(
            f"{pattern!r} is not a regular expression commwatch can match: {reason}",
            _REPEAT_HINT if "repetition" in str(reason) else _SYNTAX_HINT,
        ) from None
    return Pattern(pattern, compiled)
