"""Log lines for people: whoever chose the words of a record, it reaches the log as inert text.

Messages quote peers (an HTTP reason phrase, an SNMP agent's address, a certificate subject) and
exceptions carry text a library took from them. A CR or LF in it would forge a second log line,
an escape sequence would act on the terminal showing the log. The formatter passes the message
and each line of a traceback through `monitor.core.text.printable`, so one record stays its own
lines and shows every control character as an escape.

A peer can also make a line repeat (garbage on every datagram, a bug tripped on every poll):
`Throttle` lets a line per key and interval through. And an exception nobody foresaw is logged
with its types and places only (`withheld_traceback`): its message may quote a secret.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from monitor.core.text import printable

FORMAT = "commwatch: %(levelname)s %(name)s: %(message)s"


class Lines(str):
    """A log argument of several lines that commwatch wrote itself (a withheld traceback): each
    line is escaped, the newlines between them are kept."""


class PrintableFormatter(logging.Formatter):
    """A Formatter whose output holds no character a terminal or a log reader would act on,
    apart from the newlines commwatch itself put there (in a format string, a `Lines` argument,
    a traceback). Format strings are commwatch's; the arguments are whoever's they quote."""

    def format(self, record: logging.LogRecord) -> str:
        # A copy: other handlers (pytest's, a file's) see the record as it was made.
        shown = logging.makeLogRecord(record.__dict__)
        # Another handler's formatter may have cached its own, unescaped traceback text.
        shown.exc_text = None
        shown.msg = _each_line(str(record.msg))
        if isinstance(record.args, dict):
            shown.args = {key: _argument(value) for key, value in record.args.items()}
        elif record.args:
            shown.args = tuple(_argument(value) for value in record.args)
        return super().format(shown)

    def formatException(self, ei: Any) -> str:
        # A message with a line break in it must not start a line of its own.
        return "\n".join(_traceback(ei[1], lambda e: f"{_type_name(e)}: {e}"))

    def formatStack(self, stack_info: str) -> str:
        return _each_line(super().formatStack(stack_info))


def _each_line(text: str) -> str:
    return "\n".join(printable(line) for line in text.split("\n"))


def _argument(value: object) -> object:
    if isinstance(value, Lines):
        return _each_line(value)
    if isinstance(value, int | float):
        return value  # for %d and %.1f; a number prints nothing a terminal acts on
    return printable(str(value))


def configure() -> None:
    """Log to stderr through PrintableFormatter at the level COMMWATCH_LOG names (WARNING by
    default). Any other value logs at WARNING, saying so: a typo in the environment must not
    cost a plugin its status line."""
    wanted = os.environ.get("COMMWATCH_LOG", "WARNING").upper()
    level = logging.getLevelName(wanted)  # a number for a level's name, else text
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter(FORMAT))
    logging.basicConfig(
        level=level if isinstance(level, int) else logging.WARNING, handlers=[handler]
    )
    if not isinstance(level, int):
        logging.getLogger("commwatch").warning(
            "COMMWATCH_LOG=%s is not a log level (DEBUG, INFO, WARNING, ERROR): WARNING used",
            wanted,
        )


# --- floods ---------------------------------------------------------------------------------


class Throttle:
    """Lets a log line about one key (a sender, a bug) through at most once per `interval`
    seconds, counting the times it was held back, for at most `max_keys` keys (forgetting the
    quiet ones first): whatever a peer repeats, the log grows by a line per key and interval."""

    def __init__(self, interval: float, max_keys: int = 1024) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._keys: dict[Hashable, tuple[float, int]] = {}  # key -> (last let through, held)

    def let_through(self, key: Hashable) -> int | None:
        """None to hold the line back; else how many were held back since the last one."""
        now = time.monotonic()
        last, held = self._keys.get(key, (now - self.interval, 0))
        if now - last < self.interval:
            self._keys[key] = (last, held + 1)
            return None
        if len(self._keys) >= self.max_keys and key not in self._keys:
            quiet = [k for k, (at, _) in self._keys.items() if now - at >= self.interval]
            for forgotten in quiet or list(self._keys)[: self.max_keys // 2]:
                del self._keys[forgotten]
        self._keys[key] = (now, 0)
        return held


class SenderThrottle:
    """A `Throttle` for lines about senders that may be forged (datagrams that are not SNMP,
    refused traps): a line per sender and `interval`, and at most `max_senders` senders' lines
    per interval, since forged sources are many. What comes from senders beyond them is counted
    and handed to `beyond(count, seconds)` once, when the next interval begins: a flood from
    any number of addresses costs `max_senders` + 1 lines an interval."""

    def __init__(
        self, interval: float, max_senders: int, beyond: Callable[[int, float], None]
    ) -> None:
        self.interval = interval
        self.max_senders = max_senders
        self._beyond = beyond
        self._senders = Throttle(interval)
        self._window = time.monotonic()
        self._let = 0  # senders let through in this interval
        self._held = 0  # lines from senders beyond the interval's allowance

    def let_through(self, sender: Hashable) -> int | None:
        """As `Throttle.let_through`, within the interval's allowance of senders."""
        now = time.monotonic()
        if now - self._window >= self.interval:
            if self._held:
                self._beyond(self._held, now - self._window)
            self._window, self._let, self._held = now, 0, 0
        if self._let >= self.max_senders:
            self._held += 1
            return None
        held = self._senders.let_through(sender)
        if held is not None:
            self._let += 1
        return held


# --- failures nobody foresaw ------------------------------------------------------------------
# An exception that reaches a catch-all is a bug, ours or a library's; its message is whatever
# the raiser put in it, and libraries put their inputs there (pysnmp quotes the community it
# could not encode). So a catch-all shows what a developer needs to find the bug, the types and
# the places, and never the messages.


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def raised_at(exc: BaseException) -> str:
    """`module:line` where `exc` was raised: the innermost frame of its traceback."""
    tb = exc.__traceback__
    if tb is None:
        return "an unknown place"
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", "?"))
    if module.startswith("<"):  # code run from a file, not imported (pysnmp's MIB modules)
        module = Path(tb.tb_frame.f_code.co_filename).name
    return f"{module}:{tb.tb_lineno}"


def unexpected(exc: BaseException) -> str:
    """One line about an unforeseen exception, without its message."""
    return f"unexpected {_type_name(exc)} at {raised_at(exc)} (details in the log)"


def withheld_traceback(exc: BaseException) -> Lines:
    """The traceback of `exc` and of the exceptions it was raised from, every message withheld:
    frames (file, line, function, source line) and exception types only."""
    return Lines("\n".join(_traceback(exc, lambda e: f"{_type_name(e)} (message withheld)")))


def _traceback(exc: BaseException, describe: Callable[[BaseException], str]) -> list[str]:
    """The lines of `exc`'s traceback, the outermost exception first, then each it was raised
    from or while handling, each exception described by `describe`."""
    chain: list[tuple[BaseException, str]] = []
    current: BaseException | None = exc
    link = ""
    while current is not None and all(current is not seen for seen, _ in chain):
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "It was raised from:"
        elif not current.__suppress_context__ and current.__context__ is not None:
            current, link = current.__context__, "It was raised while handling:"
        else:
            current = None
    lines: list[str] = []
    for position, (error, how) in enumerate(chain):
        if position:
            lines.append(how)
        lines.append("Traceback (most recent call last):")
        for frame in traceback.format_tb(error.__traceback__):
            lines.extend(printable(line) for line in frame.rstrip("\n").split("\n"))
        lines.append(printable(describe(error)))
    return lines


class BugLog:
    """Unforeseen exceptions, logged with their withheld traceback at most once per bug (its
    type and the place it was raised) and `INTERVAL`: a peer that trips a bug on every poll of
    a thousand checks costs a traceback every ten minutes, with how often it recurred."""

    INTERVAL = 600.0

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._throttle = Throttle(self.INTERVAL)

    def report(self, what: str, exc: BaseException) -> None:
        held = self._throttle.let_through((type(exc), raised_at(exc)))
        if held is None:
            return
        again = f" ({held} more times since it was last logged)" if held else ""
        self._logger.error("%s: %s%s\n%s", what, unexpected(exc), again, withheld_traceback(exc))
