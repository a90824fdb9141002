"""What an SNMP notification says, in the snmp probe's terms: the standard traps by name
(RFC 3418 coldStart, warmStart, authenticationFailure; RFC 2863 linkDown, linkUp), the
interface a link trap names, and the observations it gives a check: the same keys and words a
poll gives (`if.<name>.state`, `system.rebooted_at`), so the check's own conditions judge them.

A link trap names its interface by ifIndex (the `ifIndex.N` varbind, or the instance of any
ifTable column it carries) and often by ifDescr or ifName too; a check watching the interface
by name knows its index from its last poll (`if.<name>.index`). What a trap leaves out (the
admin status of a linkDown, say) is taken from that poll; linkDown means oper down and linkUp
oper up when the trap does not say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.core.model import ObservationValue
from monitor.core.options import format_host_port
from probes.base import Observations
from probes.support.snmp_options import SnmpOptions
from probes.support.snmp_poll import UPTIME, interface_state
from probes.support.snmp_traps import Notification
from probes.support.snmp_values import (
    ADMIN_STATUS,
    IF_ALIAS,
    IF_COLUMNS,
    IF_DESCR,
    IF_NAME,
    TICKS,
)

_STANDARD = "1.3.6.1.6.3.1.1.5"  # snmpTraps (RFC 3418)
TRAP_NAMES: Mapping[str, str] = {
    f"{_STANDARD}.1": "coldStart",
    f"{_STANDARD}.2": "warmStart",
    f"{_STANDARD}.3": "linkDown",
    f"{_STANDARD}.4": "linkUp",
    f"{_STANDARD}.5": "authenticationFailure",
}
LINK_TRAPS = frozenset({"linkDown", "linkUp"})
REBOOT_TRAPS = frozenset({"coldStart", "warmStart"})
OTHER = "other"  # the kind of every trap without a name here
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
_COLUMN = dict((column, field) for field, column, _ in IF_COLUMNS if field in ("admin", "oper"))
_NAMES = (IF_NAME, IF_DESCR, IF_ALIAS)
_SHOWN_VARBINDS = 4  # of an unknown trap, in its one-line description
_SHOWN_VALUE = 60

# The observations every result a notification gave carries: where it came from.
TRAP_KIND = "trap.kind"
TRAP_OID = "trap.oid"
TRAP_SOURCE = "trap.source"
TRAP_VERSION = "trap.version"
TRAP_INFORM = "trap.inform"


@dataclass(frozen=True, slots=True)
class Interface:
    """The interface a link trap is about, as far as the trap says."""

    index: int | None
    names: tuple[str, ...]  # its ifName, ifDescr, ifAlias, as the trap carried them
    admin: int | None  # ifAdminStatus, as numbered in IF-MIB
    oper: int | None


def kind(notification: Notification) -> str:
    """The trap's name (linkDown, coldStart, ...), or "other"."""
    return TRAP_NAMES.get(notification.trap_oid, OTHER)


def interface(notification: Notification) -> Interface:
    """What a link trap's varbinds say of its interface."""
    index: int | None = None
    names: list[str] = []
    status: dict[str, int] = {}
    for oid, value in notification.varbinds:
        column, _, instance = oid.rpartition(".")
        if not instance.isdigit():
            continue
        if column == IF_INDEX and isinstance(value, int):
            index = value
        elif column in _COLUMN and isinstance(value, int):
            status[_COLUMN[column]] = value
        elif column in _NAMES and isinstance(value, str) and value:
            names.append(value)
        else:
            continue
        if index is None:
            index = int(instance)
    return Interface(index, tuple(names), status.get("admin"), status.get("oper"))


def describe(notification: Notification) -> str:
    """The notification in one line for the event log: what, about what, from whom."""
    name = kind(notification)
    if name in LINK_TRAPS:
        about = interface(notification)
        what = f"{name} {_interface_text(about)}"
    elif name != OTHER:
        what = name
    else:
        shown = [
            f"{oid}={str(value)[:_SHOWN_VALUE]}"
            for oid, value in notification.varbinds[:_SHOWN_VARBINDS]
        ]
        more = len(notification.varbinds) - len(shown)
        what = f"trap {notification.trap_oid or '(no snmpTrapOID)'}"
        if shown:
            what += ": " + ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    return f"{what} from {_sender(notification)}"


def _interface_text(about: Interface) -> str:
    index = "ifIndex ?" if about.index is None else f"ifIndex {about.index}"
    return f"{about.names[0]} ({index})" if about.names else index


def _sender(notification: Notification) -> str:
    pdu = "inform" if notification.inform else "trap"
    who = f"v3 user {notification.user}" if notification.user else f"v{notification.version}"
    return f"{notification.source[0]} ({who} {pdu})"


def origin(notification: Notification) -> Observations:
    """The observations saying a result came from this notification, not from a poll."""
    return {
        TRAP_KIND: kind(notification),
        TRAP_OID: notification.trap_oid,
        TRAP_SOURCE: format_host_port(*notification.source),
        TRAP_VERSION: notification.version,
        TRAP_INFORM: notification.inform,
    }


def watched_as(
    options: SnmpOptions, about: Interface, last: Mapping[str, ObservationValue]
) -> tuple[int | str, ...]:
    """The check's interfaces (as it names them) that the trap's interface is: by index, by
    the index its last poll found for a name, or by a name the trap carried."""
    tokens: list[int | str] = []
    for token in options.interfaces:
        if isinstance(token, int):
            same = token == about.index
        else:
            polled = last.get(f"if.{token}.index")
            same = (about.index is not None and polled == about.index) or token in about.names
        if same:
            tokens.append(token)
    return tuple(tokens)


def link_observations(
    trap: str, about: Interface, token: int | str, last: Mapping[str, ObservationValue]
) -> Observations:
    """What a linkDown or linkUp says of one watched interface: its state as a poll words it."""
    key = f"if.{token}"
    polled_admin = {word: number for number, word in ADMIN_STATUS.items()}.get(
        str(last.get(f"{key}.admin_status"))
    )
    admin = about.admin if about.admin is not None else polled_admin or 1
    oper = about.oper if about.oper is not None else (2 if trap == "linkDown" else 1)
    observations: Observations = {}
    if about.index is not None:
        observations[f"{key}.index"] = about.index
    speed = last.get(f"{key}.speed_mbps")
    interface_state(key, {"admin": admin, "oper": oper, "speed_mbps": speed}, observations)
    return observations


def reboot_observations(notification: Notification, trap: str) -> Observations:
    """What a coldStart or warmStart says: the device (or its agent) restarted, at the time
    its sysUpTime puts it, else when the trap came."""
    at = notification.received_at
    observations: Observations = {}
    if notification.uptime is not None:
        at -= notification.uptime / TICKS
        observations[UPTIME] = notification.uptime / TICKS
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    # A timestamp with the trap's name: the poll's own word is the bare timestamp.
    observations["system.rebooted_at"] = f"{stamp} ({trap})"
    return observations
