"""The private parts of pysnmp the SNMP engine relies on, and nothing else.

pysnmp has no public way to forget an agent's engine id (its SNMPv3 message processing keeps
one for 300 s in a name-mangled cache), to build a transport target for an address that is
already a literal (`create()` resolves it in a thread), nor to learn that a datagram was not
SNMP (it counts those in its internal `__SNMPv2-MIB` and drops them), nor why it dropped a
notification (a community or user it does not know, a wrong digest: counted the same way).
tests/test_pysnmp_compat.py pins exactly the behaviour used here against net-snmp's snmpd and
UDP peers of the test (tests/test_traps_hostile.py the notification counters, against
net-snmp's snmptrap and snmpinform), so a pysnmp upgrade that changes it fails there, naming
what changed, before a probe misjudges an agent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import SnmpEngine, Udp6TransportTarget, UdpTransportTarget

_MANGLED = "_SnmpV3MessageProcessingModel__"  # how Python names SnmpV3MessageProcessingModel's
_ENGINE_IDS = f"{_MANGLED}engineIdCache"  # {(domain, address): {"securityEngineId": ...}}
_EXPIRY = f"{_MANGLED}engineIdCacheExpQueue"  # {tick: [(domain, address), ...]}

# Incoming messages pysnmp could not use: not BER, or not a version it speaks.
_UNDECODABLE_COUNTERS = ("snmpInASNParseErrs", "snmpInBadVersions")

Receive = Callable[[SnmpEngine, Any, Any, bytes], Any]


class PysnmpChanged(RuntimeError):
    """The installed pysnmp lacks something this module relies on."""

    def __init__(self, missing: str, used_for: str) -> None:
        super().__init__(
            f"this pysnmp has no {missing} (used to {used_for}):"
            " probes/support/pysnmp_compat.py must be adapted to it"
        )


def _private(owner: Any, name: str, used_for: str) -> Any:
    try:
        return getattr(owner, name)
    except AttributeError:
        raise PysnmpChanged(f"{type(owner).__name__}.{name}", used_for) from None


class EngineIds:
    """The engine ids pysnmp learnt of the agents, by transport domain and address."""

    def __init__(self, engine: SnmpEngine) -> None:
        self._model = engine.message_processing_subsystems[3]
        why = "forget an agent's engine id"
        self._cache: dict[tuple[Any, Any], Any] = _private(self._model, _ENGINE_IDS, why)
        self._expiry: dict[int, list[tuple[Any, Any]]] = _private(self._model, _EXPIRY, why)

    def get(self, domain: tuple[int, ...], address: tuple[Any, ...]) -> Any:
        engine_id, _, _ = self._model.get_peer_engine_info(domain, address)
        return engine_id or None

    def forget(self, domain: tuple[int, ...], address: tuple[Any, ...]) -> None:
        """Drop the id, and its expiry: pysnmp deletes each expiring key without looking, so a
        key forgotten here and not learnt again by then would raise in its timer, which ends
        the engine's timer task (no more request timeouts, nor retransmissions)."""
        key = (domain, address)
        self._cache.pop(key, None)
        for keys in self._expiry.values():
            while key in keys:
                keys.remove(key)


def transport_target(
    address: tuple[Any, ...], ipv6: bool, timeout: float, retries: int
) -> UdpTransportTarget | Udp6TransportTarget:
    """A target for a literal `address`, made as `create()` makes one, without resolving it."""
    target_class = Udp6TransportTarget if ipv6 else UdpTransportTarget
    target = target_class.__new__(target_class)
    # __init__ refuses to run before the address is set: create() sets it in between too.
    target.transport_address = address
    target.__init__(timeout=timeout, retries=retries)
    return target


def watch_received(engine: SnmpEngine, wrap: Callable[[Receive], Receive]) -> None:
    """Put `wrap(receive)` in the place of the engine's handling of each incoming datagram."""
    dispatcher = engine.message_dispatcher
    receive = _private(dispatcher, "receive_message", "see each incoming datagram")
    # The engine looks the method up on every datagram, so the instance's own attribute wins.
    dispatcher.receive_message = wrap(receive)


def undecodable_counters(engine: SnmpEngine) -> tuple[Any, ...]:
    """pysnmp's counters of incoming messages it could not decode; each has an int `syntax`."""
    return statistics(
        engine, "__SNMPv2-MIB", _UNDECODABLE_COUNTERS, "count the datagrams that are not SNMP"
    )


def statistics(
    engine: SnmpEngine, module: str, names: Sequence[str], used_for: str
) -> tuple[Any, ...]:
    """The counters `names` of one of pysnmp's internal MIB modules (`__SNMPv2-MIB`,
    `__SNMP-USER-BASED-SM-MIB`, `__SNMP-MPD-MIB`: the statistics RFC 3412, 3414 and 3418
    define), each with an int `syntax` that pysnmp raises as it drops a message."""
    builder = engine.get_mib_builder()
    try:
        counters: tuple[Any, ...] = builder.import_symbols(module, *names)
    except Exception as exc:  # pysnmp raises its own SmiError for a symbol it lacks
        raise PysnmpChanged(
            f"{module} {' or '.join(names)} ({type(exc).__name__})", used_for
        ) from None
    return counters


def undecodable(counters: tuple[Any, ...]) -> int:
    return sum(int(counter.syntax) for counter in counters)
