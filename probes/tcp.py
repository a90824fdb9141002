"""`tcp`: can a TCP connection be opened, and how long does the handshake take."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from monitor.conditions import Condition, Threshold
from monitor.options import OptionError, duration, format_host_port, host_port, option
from probes.base import Observations, ProbeContext, ProbeKind


def _target(value: Any) -> tuple[str, int]:
    return host_port(value)


@dataclass(frozen=True, kw_only=True)
class TcpOptions:
    target: tuple[str, int] = option(
        parse=_target, help="HOST:PORT to connect to", metavar="HOST:PORT"
    )
    latency_warn: float | None = option(
        None,
        parse=duration,
        metavar="DURATION",
        help="WARN when the connect takes longer (e.g. 200ms)",
    )
    latency_crit: float | None = option(
        None,
        parse=duration,
        metavar="DURATION",
        help="CRIT when the connect takes longer (e.g. 1s)",
    )

    def validate(self) -> None:
        validate_latency(self.latency_warn, self.latency_crit)


def validate_latency(warn: float | None, crit: float | None) -> None:
    if warn is not None and crit is not None and warn > crit:
        raise OptionError(
            "latency_warn is above latency_crit",
            "the warning must trigger first: make latency_warn <= latency_crit",
            key="latency_warn",
        )


def latency_threshold(observation: str, warn: float | None, crit: float | None) -> Threshold:
    """Latency thresholds are configured as durations and judged in milliseconds."""
    return Threshold(
        condition="latency",
        observation=observation,
        warn=None if warn is None else warn * 1000,
        crit=None if crit is None else crit * 1000,
        unit="ms",
    )


async def measure(options: TcpOptions, ctx: ProbeContext) -> Observations:
    address, port_number = options.target
    started = time.perf_counter()
    _, writer = await asyncio.open_connection(address, port_number)
    connect_ms = (time.perf_counter() - started) * 1000
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # An RST instead of a FIN keeps thousands of probes from leaving TIME_WAIT sockets behind.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    return {"connect_ms": round(connect_ms, 3)}


def conditions(options: TcpOptions) -> tuple[Condition, ...]:
    return (latency_threshold("connect_ms", options.latency_warn, options.latency_crit),)


PROBE = ProbeKind(
    kind="tcp",
    summary="TCP connect: refused, timeout and unreachable told apart; connect time",
    target_help="HOST:PORT",
    options=TcpOptions,
    measure=measure,
    conditions=conditions,
    target=lambda o: format_host_port(*o.target),
    host=lambda o: o.target[0],
)
