"""What output for people does at a terminal: colour when it is one, lines flushed as they
come, a progress counter on stderr."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from monitor.core.model import Severity

_COLOURS = {
    Severity.OK: "\x1b[32m",
    Severity.WARN: "\x1b[33m",
    Severity.CRIT: "\x1b[1;31m",
    Severity.UNKNOWN: "\x1b[35m",
}
_RESET = "\x1b[0m"


def use_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    return "NO_COLOR" not in os.environ and stream.isatty()


def colourise(text: str, severity: Severity, colour: bool) -> str:
    return f"{_COLOURS[severity]}{text}{_RESET}" if colour else text


def severity_label(severity: Severity, colour: bool) -> str:
    return colourise(f"{severity.name:<7}", severity, colour)


def write_line(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def progress(done: int, total: int, stream: TextIO = sys.stderr) -> None:
    stream.write(f"\r  {done}/{total} checks done")
    if done == total:
        stream.write("\r\x1b[K")
    stream.flush()
