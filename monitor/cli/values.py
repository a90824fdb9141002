"""The types of flag values: each raises argparse.ArgumentTypeError, so that a bad value is a
usage error of the subcommand it was given to, in the user's own terms.

The parser imports this module for every command line, `--help` and `--version` too: what a type
reads with (the duration grammar and the YAML reader under it, the lab's layout) is imported in
the type, when a flag of that type is read, never here.
"""

from __future__ import annotations

import argparse
import os
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


# `run --workers`' default: a probe process per usable core, but one process for fewer checks
# than this. A worker is forked from a zygote that has the package and the checks loaded (a few
# milliseconds, monitor.cluster.zygote) and each result crosses a pipe (about 0.2 ms of pickling
# and reading back, monitor.cluster.frames), while one process probes a TLS check in about 2-3 ms
# of CPU, and the parent still starts and loads the inventory once (about 0.5 s): below
# this, a sweep ends about as soon in one process as in several, a continuous run at the usual
# intervals uses a small part of one core, and one process is the simpler thing to watch.
WORKERS_FROM_CHECKS = 1000


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset or a cgroup's
    cpuset), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def worker_count(asked: int | None, checks: int) -> int:
    """--workers, or by default a process per usable core, one below WORKERS_FROM_CHECKS."""
    if asked is not None:
        return asked
    return usable_cores() if checks >= WORKERS_FROM_CHECKS else 1


def workers(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 1:
        raise argparse.ArgumentTypeError("at least 1 worker (1: probe in this process)")
    return count


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


def jetstream_domain(text: str) -> str:
    from monitor.config.cluster import jetstream_domain as parse  # see the module's docstring

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
