"""Datagrams that are not SNMP, logged so that a flood of them costs a few lines, not one each."""

from __future__ import annotations

import logging
import time

from monitor.core.logs import Throttle
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
        self._senders = Throttle(self.INTERVAL)
        self._window = time.monotonic()
        self._logged = 0  # senders logged in this interval
        self._unlogged = 0  # datagrams from senders beyond the interval's allowance

    def note(self, sender: tuple[str, int], size: int, failure: Exception | None) -> None:
        now = time.monotonic()
        if now - self._window >= self.INTERVAL:
            if self._unlogged:
                log.warning(
                    "SNMP: %d more datagrams that are not SNMP in the last %.0fs, beyond the"
                    " %d senders reported",
                    self._unlogged,
                    now - self._window,
                    self.MAX_SENDERS_LOGGED,
                )
            self._window, self._logged, self._unlogged = now, 0, 0
        if self._logged >= self.MAX_SENDERS_LOGGED:
            self._unlogged += 1
            return
        held = self._senders.let_through(sender)
        if held is None:
            return
        self._logged += 1
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
