"""Datagrams that are not SNMP, logged so that a flood of them costs a few lines, not one each."""

from __future__ import annotations

import logging

from monitor.core.logs import SenderThrottle
from monitor.core.options import format_host_port

# Logged as the SNMP engine, whose datagrams they are: the lines read as they always have.
log = logging.getLogger("probes.support.snmp_engine")


class NoiseLog:
    """Datagrams that are not SNMP, logged at most once per sender per `INTERVAL` seconds with
    how many came since, and for at most `MAX_SENDERS_LOGGED` senders per interval (forged
    sources are many): a flood costs a few log lines, never one per datagram."""

    INTERVAL = 60.0
    MAX_SENDERS_LOGGED = 10

    def __init__(self) -> None:
        self._senders = SenderThrottle(self.INTERVAL, self.MAX_SENDERS_LOGGED, self._beyond)

    def _beyond(self, count: int, seconds: float) -> None:
        log.warning(
            "SNMP: %d more datagrams that are not SNMP in the last %.0fs, beyond the"
            " %d senders reported",
            count,
            seconds,
            self.MAX_SENDERS_LOGGED,
        )

    def note(self, sender: tuple[str, int], size: int, failure: Exception | None) -> None:
        held = self._senders.let_through(sender)
        if held is None:
            return
        # The type of a decoder failure, never its text: it quotes the datagram.
        why = f" ({type(failure).__name__} in the decoder)" if failure is not None else ""
        more = f"; {held} more since the last report" if held else ""
        log.warning(
            "SNMP: %s sent a %d-byte datagram that is not SNMP%s%s; next report from it in"
            " %.0fs at the earliest",
            format_host_port(*sender),
            size,
            why,
            more,
            self.INTERVAL,
        )
