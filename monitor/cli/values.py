"""The types of flag values: each raises argparse.ArgumentTypeError, so that a bad value is a
usage error of the subcommand it was given to, in the user's own terms.

The parser imports this module for every command line, `--help` and `--version` too: what a type
reads with (the duration grammar and the YAML reader under it, the lab's layout) is imported in
the type, when a flag of that type is read, never here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from monitor.config.api import Listen

T = TypeVar("T")


def days(text: str) -> float:
    try:
        count = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if count < 0:
        raise argparse.ArgumentTypeError("days cannot be negative")
    return count


def port_offset(text: str) -> int:
    from monitor.lab.layout import SERVICES  # see the module's docstring

    ports = [s.base_port for s in SERVICES]
    low, high = 1 - min(ports), 65535 - max(ports)
    try:
        offset = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not low <= offset <= high:
        raise argparse.ArgumentTypeError(
            f"{offset} puts lab ports outside 1-65535: use an offset from {low} to {high}"
        )
    return offset


def duration_flag(text: str) -> float:
    from monitor.core.options import OptionError, duration  # see the module's docstring

    try:
        seconds: float = duration(text)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(f"{exc}") from None
    return seconds


def listen(text: str) -> Listen:
    from monitor.config.api import listen_address  # see the module's docstring

    return _option(listen_address, text)


def nats_url(text: str) -> str:
    from monitor.config.cluster import nats_url as parse  # see the module's docstring

    return _option(parse, text)


def vantage_name(text: str) -> str:
    from monitor.config.cluster import vantage_name as parse  # see the module's docstring

    return _option(parse, text)


def _option(parse: Callable[[str], T], text: str) -> T:
    """`parse(text)`, an OptionError of it a usage error."""
    from monitor.core.options import OptionError

    try:
        return parse(text)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(f"{exc}") from None
