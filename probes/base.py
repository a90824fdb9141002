"""The one signature every probe kind implements.

A probe module defines a frozen options dataclass (fields made with `monitor.core.options.option`,
the first being `target`) and a module-level `PROBE = ProbeKind(...)`; one line of `_KINDS` in
`probes/registry.py` registers it. The probe measures and returns observations, or raises; the
runner times it, classifies failures and judges the conditions the probe declares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from monitor.core.conditions import Condition, Threshold
from monitor.core.model import CertificateInfo, ObservationValue, ProbeResult, as_number
from monitor.core.options import OptionError, latency_duration, option

Observations = dict[str, ObservationValue]
T = TypeVar("T")


class SharedResources:
    """Long-lived objects that many checks share within one engine run (an HTTP session, an SNMP
    engine, a certificate cache). Made on first use inside the running loop, closed at shutdown."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._lock = asyncio.Lock()

    async def get(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        """The item made by `factory` under `key` (each key names one kind of item)."""
        if key in self._items:
            return cast(T, self._items[key])
        async with self._lock:
            if key not in self._items:
                item = await factory()
                self._items[key] = item
                if close is not None:
                    self._closers.append(lambda: close(item))
        return cast(T, self._items[key])

    async def aclose(self) -> None:
        closers, self._closers = self._closers, []
        self._items.clear()
        for closer in reversed(closers):
            await closer()


def bounds_in_order(name: str, warn: float | None, crit: float | None) -> None:
    """Refuses a `NAME_warn` above its `NAME_crit`, for bounds where higher is worse."""
    if warn is not None and crit is not None and warn > crit:
        raise OptionError(
            f"{name}_warn is above {name}_crit",
            f"the warning must trigger first: make {name}_warn <= {name}_crit",
            key=f"{name}_warn",
        )


@dataclass(frozen=True, kw_only=True)
class LatencyOptions:
    """The latency keys of every probe that times a round trip; its options inherit them."""

    latency_warn: float | None = option(
        None,
        parse=latency_duration,
        metavar="DURATION",
        help="WARN when the timed exchange takes longer (tcp: connect, http: response headers, "
        "dns: the answer, tls: the handshake, ntp: the delay, sip: OPTIONS to its final "
        "response, icmp: the average round trip), e.g. 500ms; a bare number is seconds, at "
        "most 30",
    )
    latency_crit: float | None = option(
        None,
        parse=latency_duration,
        metavar="DURATION",
        help="CRIT when the timed exchange takes longer, e.g. 2s",
    )

    def validate_latency(self) -> None:
        bounds_in_order("latency", self.latency_warn, self.latency_crit)

    def latency(self, observation: str, headline: bool = False) -> Threshold:
        """Configured as durations, judged in milliseconds on the probe's own timing;
        `headline` when the time belongs in the short line of an OK result."""
        return Threshold(
            condition="latency",
            observation=observation,
            warn=None if self.latency_warn is None else self.latency_warn * 1000,
            crit=None if self.latency_crit is None else self.latency_crit * 1000,
            unit="ms",
            headline=headline,
        )


@dataclass
class ProbeContext:
    """What a probe gets besides its options: its time budget, its memory of earlier polls of the
    same check (for rates and change detection), and the engine's shared resources.

    A probe that sees certificates appends them to `certificates`; the runner puts them in the
    result even when the attempt fails later (a chain read before a failed verification)."""

    timeout: float
    shared: SharedResources
    memory: dict[str, Any] = field(default_factory=dict)
    certificates: list[CertificateInfo] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Headline:
    """What a narrow column (the dashboard's Info) shows of a result besides its failing
    verdicts: `facts` always, `when_ok` in front of them only when nothing is wrong, and
    `tells`, the observations the facts already say, whose failing verdicts need no words of
    their own ("HTTP 503" says the status verdict)."""

    facts: tuple[str, ...] = ()
    when_ok: tuple[str, ...] = ()
    tells: frozenset[str] = frozenset()


def no_headline(_result: ProbeResult, _now: float) -> Headline:
    return Headline()


@dataclass(frozen=True)
class ProbeKind:
    # Its one-line summary is in probes/registry.py, readable without importing the kind.
    kind: str
    target_help: str
    options: type
    measure: Callable[[Any, ProbeContext], Awaitable[Observations]]
    conditions: Callable[[Any], tuple[Condition, ...]]
    target: Callable[[Any], str]
    host: Callable[[Any], str]
    # Whether a check of this kind, so configured, sees TLS certificates (the audit's scope).
    presents_certificates: Callable[[Any], bool] = lambda _options: False
    # The entries of ProbeContext.memory that hold time.monotonic() readings: a state file
    # (`commwatch probe`) carries them over to another process's clock.
    memory_clocks: tuple[str, ...] = ()
    # What the dashboard's Info column shows of a result: (result, now) -> its headline.
    headline: Callable[[ProbeResult, float], Headline] = no_headline
    # The observation timing the exchange this kind waits for (its latency threshold's): the
    # history keeps it in a column for hourly aggregates, the dashboard draws it as a trend.
    latency: str | None = None

    def main_latency(self, result: ProbeResult) -> float | None:
        """The result's main latency in milliseconds; None when it measured none."""
        if self.latency is None:
            return None
        return as_number(result.observations.get(self.latency))
