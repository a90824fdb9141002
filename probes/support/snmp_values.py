"""SNMP values as commwatch reads them: the MIB objects it knows by number, what an answered
variable becomes as an observation, and the arithmetic of counters and sysUpTime.

No MIB compilation: the few objects commwatch reads by itself are named here with the type the
MIB gives them, and an agent answering another type is refused rather than misjudged.
"""

from __future__ import annotations

from typing import Any

from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905

from monitor.core.errors import ProtocolFailure
from monitor.core.model import ObservationValue

# What the agent sends for a variable it cannot give: kept as these words in observations.
NO_SUCH_OBJECT = "noSuchObject"
NO_SUCH_INSTANCE = "noSuchInstance"
END_OF_MIB_VIEW = "endOfMibView"
ABSENT = frozenset({NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW})
MAX_TEXT = 256

# --- MIB-2 and IF-MIB, by number (no MIB compilation) ------------------------------

SYS_DESCR, SYS_UPTIME, SYS_NAME = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"
_IF, _IFX = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
IF_DESCR, IF_NAME, IF_ALIAS = f"{_IF}.2", f"{_IFX}.1", f"{_IFX}.18"
# Per interface: (field, column, counter bits or None for a plain value).
IF_COLUMNS = (
    ("admin", f"{_IF}.7", None),
    ("oper", f"{_IF}.8", None),
    ("in_errors", f"{_IF}.14", 32),
    ("out_errors", f"{_IF}.20", 32),
    ("in_discards", f"{_IF}.13", 32),
    ("in_octets", f"{_IFX}.6", 64),
    ("out_octets", f"{_IFX}.10", 64),
    ("speed_mbps", f"{_IFX}.15", None),
)
ADMIN_STATUS = {1: "up", 2: "down", 3: "testing"}
OPER_STATUS = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}
TICKS = 100  # TimeTicks per second

# --- UPS-MIB (RFC 1628), by number: the scalars probes/support/snmp_ups.py judges -----------

_UPS = "1.3.6.1.2.1.33.1"
UPS_BATTERY_STATUS, UPS_SECONDS_ON_BATTERY = f"{_UPS}.2.1.0", f"{_UPS}.2.2.0"
UPS_MINUTES_REMAINING, UPS_CHARGE_REMAINING = f"{_UPS}.2.3.0", f"{_UPS}.2.4.0"
UPS_OUTPUT_SOURCE, UPS_ALARMS_PRESENT = f"{_UPS}.4.1.0", f"{_UPS}.6.1.0"

# The type the MIB gives each object commwatch reads by itself (RFC 3418, RFC 2863, RFC 1628), by
# OID for scalars and by column for tables. An agent answering another type is broken, or not what
# it claims: its value would be judged as something it is not (text as an uptime, a counter as a
# status), so the answer is a protocol error instead. Values for `oids` entries are any type.
MIB_TYPES: dict[str, tuple[str, Any]] = {  # pysnmp's classes (untyped)
    SYS_UPTIME: ("sysUpTime", rfc1902.TimeTicks),
    SYS_NAME: ("sysName", rfc1902.OctetString),
    SYS_DESCR: ("sysDescr", rfc1902.OctetString),
    IF_DESCR: ("ifDescr", rfc1902.OctetString),
    IF_NAME: ("ifName", rfc1902.OctetString),
    IF_ALIAS: ("ifAlias", rfc1902.OctetString),
    f"{_IF}.7": ("ifAdminStatus", rfc1902.Integer32),
    f"{_IF}.8": ("ifOperStatus", rfc1902.Integer32),
    f"{_IF}.13": ("ifInDiscards", rfc1902.Counter32),
    f"{_IF}.14": ("ifInErrors", rfc1902.Counter32),
    f"{_IF}.20": ("ifOutErrors", rfc1902.Counter32),
    f"{_IFX}.6": ("ifHCInOctets", rfc1902.Counter64),
    f"{_IFX}.10": ("ifHCOutOctets", rfc1902.Counter64),
    f"{_IFX}.15": ("ifHighSpeed", rfc1902.Gauge32),
    UPS_BATTERY_STATUS: ("upsBatteryStatus", rfc1902.Integer32),
    UPS_SECONDS_ON_BATTERY: ("upsSecondsOnBattery", rfc1902.Integer32),
    UPS_MINUTES_REMAINING: ("upsEstimatedMinutesRemaining", rfc1902.Integer32),
    UPS_CHARGE_REMAINING: ("upsEstimatedChargeRemaining", rfc1902.Integer32),
    UPS_OUTPUT_SOURCE: ("upsOutputSource", rfc1902.Integer32),
    UPS_ALARMS_PRESENT: ("upsAlarmsPresent", rfc1902.Gauge32),
}

Value = ObservationValue
VarBinds = list[tuple[str, Value]]


def oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(arc) for arc in oid.split("."))


def typed_varbind(label: str, varbind: Any) -> tuple[str, Value]:
    """One answered variable as (OID, observation value); an object the MIB types otherwise
    than the agent answered is a protocol error (see `MIB_TYPES`)."""
    name, value = str(varbind[0]), varbind[1]
    column, _, _ = name.rpartition(".")
    known = MIB_TYPES.get(name) or MIB_TYPES.get(column)
    absent = isinstance(value, rfc1905.NoSuchObject | rfc1905.NoSuchInstance | rfc1905.EndOfMibView)
    if known is not None and not absent and value.tagSet != known[1].tagSet:
        what, expected = known
        raise ProtocolFailure(
            f"{label} answered {name} ({what}) with {type(value).__name__}, where the"
            f" MIB defines {expected.__name__}: the agent is broken or not what it claims"
        )
    return name, scalar(value)


def scalar(value: Any) -> Value:
    """A varbind's value as an observation: numbers stay numbers, text is bounded."""
    if isinstance(value, rfc1905.NoSuchObject):
        return NO_SUCH_OBJECT
    if isinstance(value, rfc1905.NoSuchInstance):
        return NO_SUCH_INSTANCE
    if isinstance(value, rfc1905.EndOfMibView):
        return END_OF_MIB_VIEW
    if isinstance(value, rfc1902.IpAddress):
        return ".".join(str(octet) for octet in bytes(value))
    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, univ.OctetString):
        raw = bytes(value)[: MAX_TEXT * 4]
        try:
            text = " ".join(raw.decode("utf-8").split())
        except UnicodeDecodeError:
            text = "\x00"
        # Binary strings (MAC addresses, engine ids) are shown as hex, as snmpget does.
        return text[:MAX_TEXT] if text.isprintable() else raw[:MAX_TEXT].hex(":")
    if isinstance(value, univ.Null):
        return None
    return str(value)[:MAX_TEXT]


# --- counters and uptime --------------------------------------------------------------------


def counter_rate(previous: Any, current: Any, bits: int, seconds: float) -> float | None:
    """Per second, from two samples of a Counter32/64 (`bits`). A counter that went down
    wrapped when that explains it with less than half the range, else it was reset (cleared,
    or the interface re-created): no rate then, rather than a spike."""
    if not isinstance(previous, int) or not isinstance(current, int) or seconds <= 0:
        return None
    delta = current - previous
    if delta < 0:
        delta += 2**bits
        if delta >= 2 ** (bits - 1):
            return None  # far too large for a wrap: the counter was reset
    return delta / seconds


def uptime_went_back(last_ticks: int, last_at: float, ticks: int, now: float) -> bool:
    """Whether sysUpTime restarted between two polls (`*_at` in seconds). It is 32-bit and
    wraps after 497 days, which is not a reboot: a wrap lands where the clock says it should."""
    expected = last_ticks + (now - last_at) * TICKS
    wrapped = expected >= 2**32 and ticks <= expected - 2**32 + TICKS * 60
    return ticks < last_ticks and not wrapped
