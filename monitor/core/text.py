"""Text from peers made safe for people's screens, log files, plugin lines and spreadsheets.

A certificate subject, an HTTP reason phrase, an SNMP sysDescr or a DNS name is chosen by whoever
runs the peer. Written raw to a terminal it could move the cursor, rewrite the screen, set the
window title or reverse the reading order of a line; written to a log or a plugin line, a CR or
LF forges a second line. Every renderer for people passes such text through `printable()`.
JSON output stays exact: its encoder escapes these characters already.
"""

from __future__ import annotations

import re

# C0 controls (TAB, CR and LF included: one field is one line), DEL, C1 controls (8-bit CSI and
# OSC among them), the bidirectional embeddings, overrides and isolates, the zero-width marks
# and joiners, the line and paragraph separators, and the byte order mark.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")

# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (TAB,
# CR and LF, the others OWASP lists, are escaped by `printable` first).
_FORMULA_START = ("=", "+", "-", "@")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every character a terminal or a reader would act on shown as an escape
    (`\\x1b`, `\\u202e`), so the text is visible, inert and still on one line."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escaped, text)


def one_line(text: str) -> str:
    """A message spread over lines as one: each line stripped, blank ones and lines that only
    point at a column with carets dropped (aiohttp's parser errors look like that)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip(" ^"))


MAX_MESSAGE_CHARS = 300


def bounded_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """An error message for people: printable and at most `limit` characters. A long quoted
    value loses its middle, so what the message says about it (its start, and the complaint
    after it) stays readable; a 5,000-digit flag value never becomes a 5,000-character line."""
    text = printable(text)
    if len(text) <= limit:
        return text
    keep = limit // 2 - 2
    return f"{text[:keep]} … {text[-keep:]}"


def spreadsheet_cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text, never evaluates (OWASP's CSV injection
    advice: a leading quote), and that holds no control characters."""
    cell = printable(text)
    return f"'{cell}" if cell.startswith(_FORMULA_START) else cell


# Characters that start emphasis, code, links, images, raw HTML, entity references, strike-
# through or a new table cell in CommonMark / GitHub-flavoured Markdown.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~&])")


def markdown_cell(text: str) -> str:
    """A Markdown table cell that renders as the text itself: printable, every character that
    Markdown would act on backslash-escaped (a certificate subject `[x](https://…)` stays text,
    not a link; `&#x202e;` stays text, not the character it names)."""
    return _MARKDOWN.sub(r"\\\1", printable(text))


def duration_text(seconds: float) -> str:
    """A duration a person reads at a glance, in its two largest units: 45s, 12m05s, 3h02m,
    2d04h (uptimes, outages, report periods alike)."""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
