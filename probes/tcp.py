"""`tcp`: can a TCP connection be opened, and how long does the handshake take."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from monitor.core.conditions import Condition
from monitor.core.options import format_host_port, host_port, option
from probes.base import LatencyOptions, Observations, ProbeContext, ProbeKind

LATENCY = "connect_ms"  # the handshake's time: what a tcp check waits for


def _target(value: Any) -> tuple[str, int]:
    return host_port(value)


@dataclass(frozen=True, kw_only=True)
class TcpOptions(LatencyOptions):
    target: tuple[str, int] = option(
        parse=_target, help="HOST:PORT to connect to", metavar="HOST:PORT"
    )

    def validate(self) -> None:
        self.validate_latency()


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
    return {LATENCY: round(connect_ms, 3)}


def conditions(options: TcpOptions) -> tuple[Condition, ...]:
    return (options.latency(LATENCY),)


PROBE = ProbeKind(
    kind="tcp",
    target_help="HOST:PORT",
    options=TcpOptions,
    measure=measure,
    conditions=conditions,
    target=lambda o: format_host_port(*o.target),
    host=lambda o: o.target[0],
    latency=LATENCY,
)
