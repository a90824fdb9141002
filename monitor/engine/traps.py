"""SNMP traps and informs turned into what the engine knows (the inventory's `traps:` section).

pysnmp's receiver (probes/support/snmp_traps.py) hands over each notification it accepted, or
why it refused one. An accepted one is matched to the device that sent it: the checks whose
target is the address it came from (of any kind), and the snmp checks whose polls learnt the
SNMPv3 engine id it carries (a device sending from another address than it is polled on), with
the other checks on their hosts. For those checks (probes/support/snmp_notifications.py):

- Every notification is an event on the device (kind `trap`, its subject the device's first
  snmp check, before and after that check's state): stored, shown in the event log and the
  JSON lines, never alerted, changing no state. Traps without a meaning here end at that.
- linkDown and linkUp of an interface a check watches give that check a result at once, and
  coldStart and warmStart one to each snmp check reading the system group: the check's latest
  result with what the trap says put in (the interface's state, the reboot), judged by the
  check's own conditions, so "CRIT: if.eth1.state down" reads as a poll's would. Its
  observations `trap.kind`, `trap.source`, ... say where it came from; it took 0 ms.
- The same traps re-poll every check of the device at once (run now; a run already under way
  runs again as soon as it ends, since it may have read the device before the news).

A trap result enters the state engine as every result does (`Engine.take`, the scheduler's own
path): it is one result towards confirmation, so `retries` still decide when a problem is hard,
and the re-poll right after it confirms or refutes what the trap said. A check without a result
yet gets none from a trap (there is nothing to carry the rest of its verdicts from), nor does a
paused one (an operator holds its state): their re-poll, if any, decides.

Refused notifications, and accepted ones from no device the inventory watches, are counted by
reason and logged once per source and interval (`SenderThrottle`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from monitor.config.inventory import Check
from monitor.config.traps import TrapsConfig
from monitor.core.conditions import evaluate
from monitor.core.events import PENDING, Event, EventKind, Subject
from monitor.core.failures import SEVERITY_OF_ERROR
from monitor.core.logs import SenderThrottle
from monitor.core.model import ObservationValue, ProbeResult, Severity
from monitor.core.options import format_host_port
from monitor.engine.checks import status_of
from monitor.engine.scheduler import Steering
from monitor.engine.state import EngineState
from probes.base import Observations
from probes.support import snmp_notifications as meaning
from probes.support.snmp_credentials import Credentials
from probes.support.snmp_traps import (
    Accepted,
    Limits,
    ListenError,
    Notification,
    Reason,
    TrapListener,
)

__all__ = ["ListenError", "TrapFigures", "TrapReceiver"]

log = logging.getLogger(__name__)

LOG_INTERVAL = 60.0  # seconds between two lines about one source's refused notifications
MAX_SOURCES_LOGGED = 10  # sources logged per interval; the rest in one line
ENGINE_ID = "snmp.engine_id"  # the observation an SNMPv3 poll records its agent's id in

_REASONS: Mapping[Reason, str] = {
    Reason.COMMUNITY: "a community the traps: section does not list",
    Reason.USER: "an SNMPv3 user the traps: section does not list (for a trap: not for the"
    " sender's engine id, which the user's engine_id must name)",
    Reason.AUTH: "a wrong authentication passphrase, protocol or security level",
    Reason.PRIV: "a wrong privacy passphrase or protocol (it could not be decrypted)",
    Reason.TIME_WINDOW: "outside this receiver's time window (a delayed or replayed inform)",
    Reason.MALFORMED: "not an SNMP message commwatch can read",
    Reason.NOT_NOTIFICATION: "an SNMP request, not a trap or an inform",
    Reason.RATE: "over the per_source_rate of traps: from this address, dropped unread",
    Reason.OVERLOAD: "over the total_rate of traps: from all senders, dropped unread",
    Reason.UNKNOWN_SOURCE: "from an address (and engine id) no check of the inventory watches",
    Reason.DROPPED: "dropped by the SNMP engine",
}


@dataclass(frozen=True, slots=True)
class TrapFigures:
    """What the receiver took and refused since it started, for the metrics and the dashboard."""

    address: str  # where it listens
    received: Mapping[str, int]  # notifications from watched devices, by kind (linkDown, ...)
    rejected: Mapping[str, int]  # by reason (monitor.engine.traps: probes' Reason values)


class Engine(Protocol):
    """What the receiver needs of the engine (a `Monitor`)."""

    checks: Mapping[str, Check]
    scheduler: Steering | None  # this process's scheduler, or run --workers' processes
    state: EngineState

    def take(self, result: ProbeResult) -> None: ...

    def record(self, event: Event) -> None: ...

    def is_paused(self, check_id: str) -> bool: ...

    def watch(
        self, watcher: Callable[[ProbeResult | Event, EngineState], None]
    ) -> Callable[[], None]: ...


def _address(host: str) -> str | None:
    """An IP literal as one spelling (an IPv4-mapped IPv6 address as the IPv4 one); None for a
    name: a name is never resolved to match a sender."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class Devices:
    """The devices traps come from, as the inventory's checks name them."""

    def __init__(self, checks: Iterable[Check]) -> None:
        by_address: dict[str, list[Check]] = {}
        for check in checks:
            address = _address(check.ref.host)
            if address is not None:
                by_address.setdefault(address, []).append(check)
        # The snmp checks first: a device's event names one of them.
        self._by_address = {
            address: tuple(sorted(found, key=lambda c: c.kind != "snmp"))
            for address, found in by_address.items()
        }
        self._engine_ids: dict[str, str] = {}  # snmp check id -> the engine id its polls saw
        self._by_engine_id: dict[str, dict[str, Check]] = {}

    def learn(self, check: Check, result: ProbeResult) -> None:
        """The engine id an SNMPv3 poll of `check` read (a re-imaged device has a new one)."""
        engine_id = result.observations.get(ENGINE_ID)
        check_id = check.ref.check_id
        if not isinstance(engine_id, str) or self._engine_ids.get(check_id) == engine_id:
            return
        old = self._engine_ids.pop(check_id, None)
        if old is not None:
            self._by_engine_id[old].pop(check_id, None)
            if not self._by_engine_id[old]:
                del self._by_engine_id[old]
        self._engine_ids[check_id] = engine_id
        self._by_engine_id.setdefault(engine_id, {})[check_id] = check

    def of(self, notification: Notification) -> tuple[Check, ...]:
        """The checks of the device that sent `notification`; none for a stranger."""
        address = _address(notification.source[0])
        found = dict.fromkeys(self._by_address.get(address, ()) if address else ())
        for engine_id in notification.engine_ids:
            for check in self._by_engine_id.get(engine_id, {}).values():
                host = _address(check.ref.host)
                for same_host in (check, *(self._by_address.get(host, ()) if host else ())):
                    found.setdefault(same_host)
        return tuple(found)


def trap_result(
    check: Check, last: ProbeResult, told: Observations, origin: Observations, at: float
) -> ProbeResult:
    """`last` with what a trap `told` of the device put in, judged by the check's conditions
    on those observations; the rest (other interfaces, thresholds, a failure to poll) is as
    its last poll found it."""
    observations: dict[str, ObservationValue] = {**last.observations, **told, **origin}
    conditions = tuple(c for c in check.probe.conditions(check.options) if c.observation in told)
    judged = {verdict.condition: verdict for verdict in evaluate(conditions, observations)}
    verdicts = [judged.pop(verdict.condition, verdict) for verdict in last.verdicts]
    verdicts += judged.values()
    severities = [verdict.severity for verdict in verdicts]
    if last.error is not None:
        severities.append(SEVERITY_OF_ERROR[last.error.error_class])
    return ProbeResult(
        check=check.ref,
        started_at=at,
        duration_ms=0.0,
        severity=Severity.worst(severities),
        observations=observations,
        verdicts=tuple(verdicts),
        error=last.error,
    )


class TrapReceiver:
    """Listens for the engine's traps and informs from `start()` to `stop()`."""

    def __init__(self, config: TrapsConfig, engine: Engine) -> None:
        self.config = config
        self.address = str(config.listen)
        self._engine = engine
        self._devices = Devices(engine.checks.values())
        self._latest: dict[str, ProbeResult] = {}  # each snmp check's, as the engine showed it
        # Every kind and reason from the start, at 0: a counter that appears only at its first
        # increment hides that increment from Prometheus' rate().
        self._received = Counter(dict.fromkeys((*meaning.TRAP_NAMES.values(), meaning.OTHER), 0))
        self._rejected = Counter(dict.fromkeys(map(str, Reason), 0))
        self._log = SenderThrottle(LOG_INTERVAL, MAX_SOURCES_LOGGED, self._beyond)
        self._listener: TrapListener | None = None
        self._unwatch: Callable[[], None] | None = None

    def figures(self) -> TrapFigures:
        return TrapFigures(self.address, dict(self._received), dict(self._rejected))

    async def start(self) -> None:
        """Listen (ListenError: the address is taken, or needs privileges; a secret cannot be
        read) and take what comes."""
        config = self.config
        users = [
            (
                Credentials(
                    version="3",
                    user=user.user,
                    auth_protocol=user.auth_protocol,
                    auth_passphrase=user.auth_passphrase,
                    priv_protocol=user.priv_protocol,
                    priv_passphrase=user.priv_passphrase,
                ),
                user.engine_ids,
            )
            for user in config.users
        ]
        listener = TrapListener(
            Accepted(config.communities, users),
            Limits(config.per_source_rate, config.total_rate),
            deliver=self._heard,
            reject=self._refused,
            local_engine_id=config.local_engine_id,
        )
        try:
            host, port = listener.bind(config.listen.host, config.listen.port)
        except ListenError:
            await listener.close()
            raise
        self.address = format_host_port(host, port)
        self._unwatch = self._engine.watch(self._shown)
        listener.start()
        self._listener = listener
        log.info("listening for SNMP traps and informs on %s", self.address)

    async def stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    def _shown(self, item: ProbeResult | Event, _state: EngineState) -> None:
        if isinstance(item, ProbeResult) and item.check.kind == "snmp":
            check = self._engine.checks.get(item.check.check_id)
            if check is None:
                return
            self._devices.learn(check, item)
            last = self._latest.get(check.ref.check_id)
            # A poll that began before the last trap read the device before its news.
            if last is None or item.started_at >= last.started_at:
                self._latest[check.ref.check_id] = item

    # --- a notification accepted -----------------------------------------------------------

    def _heard(self, notification: Notification) -> None:
        checks = self._devices.of(notification)
        if not checks:
            self._refused(notification.source, Reason.UNKNOWN_SOURCE)
            return
        trap = meaning.kind(notification)
        self._received[trap] += 1
        self._record(checks[0], notification)
        if trap in meaning.LINK_TRAPS:
            told = self._link(trap, notification, checks)
        elif trap in meaning.REBOOT_TRAPS:
            told = [
                (check, meaning.reboot_observations(notification, trap))
                for check in checks
                if check.kind == "snmp" and check.options.system
            ]
        else:
            return
        origin = meaning.origin(notification)
        for check, observations in told:
            check_id = check.ref.check_id
            last = self._latest.get(check_id)
            if last is not None and not self._engine.is_paused(check_id):
                result = trap_result(check, last, observations, origin, notification.received_at)
                # The newest word on the check at once: the next trap builds on it, even before
                # the store has let the engine show this one.
                self._latest[check_id] = result
                self._engine.take(result)
        scheduler = self._engine.scheduler
        if scheduler is not None:
            for check in checks:
                scheduler.repoll(check.ref.check_id)

    def _link(
        self, trap: str, notification: Notification, checks: tuple[Check, ...]
    ) -> list[tuple[Check, Observations]]:
        """What a link trap tells each snmp check watching its interface."""
        about = meaning.interface(notification)
        told: list[tuple[Check, Observations]] = []
        for check in checks:
            last = self._latest.get(check.ref.check_id)
            if check.kind != "snmp" or last is None:
                continue
            observations: Observations = {}
            for token in meaning.watched_as(check.options, about, last.observations):
                observations.update(
                    meaning.link_observations(trap, about, token, last.observations)
                )
            if observations:
                told.append((check, observations))
        return told

    def _record(self, subject: Check, notification: Notification) -> None:
        check_state = self._engine.state.checks.get(subject.ref.check_id)
        state = PENDING if check_state is None else status_of(check_state.hard)
        self._engine.record(
            Event(
                at=notification.received_at,
                subject=Subject.CHECK,
                subject_id=subject.ref.check_id,
                site_id=subject.ref.site_id,
                kind=EventKind.TRAP,
                before=state,
                after=state,
                cause=meaning.describe(notification),
            )
        )

    # --- refused -----------------------------------------------------------------------------

    def _refused(self, source: tuple[str, int], reason: Reason) -> None:
        self._rejected[str(reason)] += 1
        held = self._log.let_through(source[0])
        if held is None:
            return
        more = f" ({held} more refused since the last report)" if held else ""
        log.warning(
            "SNMP traps: refused a notification from %s: %s%s; next report about it in %.0fs"
            " at the earliest",
            source[0],
            _REASONS[reason],
            more,
            LOG_INTERVAL,
        )

    def _beyond(self, count: int, seconds: float) -> None:
        log.warning(
            "SNMP traps: %d more notifications refused in the last %.0fs, from senders beyond"
            " the %d reported",
            count,
            seconds,
            MAX_SOURCES_LOGGED,
        )
