"""The lab's SNMP agent: pysnmp's command responder serving a small, changing IF-MIB and system
group, over v2c and v3 authPriv (SHA-256 / AES-128), on one loopback address per device.

Values are computed at each request from the time since the simulated boot, so they change the
way a real device's do: octet and error counters rise, one interface goes down and comes back
on a cycle, one is administratively down (maintenance), and the device "reboots" on a longer
cycle: sysUpTime starts again from zero and every counter with it. The radio site's UPS (its
UPS-MIB, RFC 1628) loses the mains on a cycle of its own and drains its battery until it is back.

The MIB is a read-only instrumentation of our own rather than pysnmp's MibScalarInstance tree:
a few dozen values computed in one pass, answered from one sorted table for GET, GETNEXT and
GETBULK alike. Every authenticated principal (the community, the v3 user) may read all of it.
"""

from __future__ import annotations

import bisect
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi.instrum import AbstractMibInstrumController

Oid = tuple[int, ...]

SYS_DESCR: Oid = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_UPTIME: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME: Oid = (1, 3, 6, 1, 2, 1, 1, 5, 0)
IF_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_X_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
# Column numbers within ifEntry and ifXEntry.
IF_INDEX, IF_DESCR, IF_TYPE, IF_ADMIN_STATUS, IF_OPER_STATUS = 1, 2, 3, 7, 8
IF_IN_DISCARDS, IF_IN_ERRORS, IF_OUT_ERRORS = 13, 14, 20
IF_NAME, IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS, IF_HIGH_SPEED, IF_ALIAS = 1, 6, 10, 15, 18
UP, DOWN = 1, 2
ETHERNET, TUNNEL = 6, 131  # IANAifType ethernetCsmacd, tunnel
# A radio vendor's private MIB, under IANA's example enterprise number (RFC 5612): what the
# shipped inventory reads as numeric OIDs, the way the field reads a radio's own MIB.
RADIO_RSL_DBM: Oid = (1, 3, 6, 1, 4, 1, 32473, 1, 2, 0)
RADIO_MODULATION: Oid = (1, 3, 6, 1, 4, 1, 32473, 1, 3, 0)
# UPS-MIB scalars (RFC 1628): upsBattery group, upsOutputSource, upsAlarmsPresent.
_UPS: Oid = (1, 3, 6, 1, 2, 1, 33, 1)
UPS_BATTERY_STATUS, UPS_SECONDS_ON_BATTERY = (*_UPS, 2, 1, 0), (*_UPS, 2, 2, 0)
UPS_MINUTES_REMAINING, UPS_CHARGE_REMAINING = (*_UPS, 2, 3, 0), (*_UPS, 2, 4, 0)
UPS_OUTPUT_SOURCE, UPS_ALARMS_PRESENT = (*_UPS, 4, 1, 0), (*_UPS, 6, 1, 0)
SOURCE_NORMAL, SOURCE_BATTERY, BATTERY_NORMAL, BATTERY_LOW = 3, 5, 2, 3


@dataclass(frozen=True)
class Interface:
    index: int
    name: str
    descr: str
    alias: str
    speed_mbps: int
    octets_per_s: float  # traffic in each direction
    errors_per_s: float = 0.0  # ifInErrors (ifOutErrors and ifInDiscards follow at a fraction)
    flaps: bool = False  # oper down for part of every flap cycle
    admin_down: bool = False  # shut by an operator: maintenance, not an outage
    if_type: int = ETHERNET


@dataclass(frozen=True)
class Cycles:
    """How the device changes: the flapping interface is down for the last `flap_down` seconds
    of every `flap_period`; the device reboots every `reboot_period`."""

    flap_period: float = 120.0
    flap_down: float = 40.0
    reboot_period: float = 600.0
    mains_period: float = 300.0  # the UPS's mains fail for the last `mains_out` of each
    mains_out: float = 90.0


@dataclass(frozen=True)
class RadioLink:
    """A microwave radio's received signal level and modulation (an index in the vendor's
    table), both falling while its flapping RF interface is down: a fade."""

    rsl_dbm: int = -58
    faded_rsl_dbm: int = -81
    modulation: int = 7
    faded_modulation: int = 2


@dataclass(frozen=True)
class UpsSupply:
    """A site UPS: on mains, its runtime and charge full; on battery, both drain at these rates
    (fast, so that a demo shows the bounds crossed), and the battery is low under `low_minutes`."""

    full_minutes: int = 95
    minutes_per_s: float = 0.8
    charge_per_s: float = 0.6
    low_minutes: int = 10


@dataclass(frozen=True)
class Device:
    address: str
    sys_name: str
    sys_descr: str
    interfaces: tuple[Interface, ...]
    radio: RadioLink | None = None
    ups: UpsSupply | None = None


@dataclass(frozen=True, repr=False)
class SnmpSecrets:
    """Generated per lab run; only the names of the env vars that hold them are ever shown."""

    community: str
    user: str
    auth_passphrase: str
    priv_passphrase: str

    def __repr__(self) -> str:
        return f"<SnmpSecrets user={self.user}>"


@dataclass
class DeviceClock:
    """Seconds since the lab started, and since the device last (simulated) booted."""

    cycles: Cycles
    started: float = field(default_factory=time.monotonic)
    now: Callable[[], float] = time.monotonic

    def elapsed(self) -> float:
        return self.now() - self.started

    def since_boot(self) -> float:
        return self.elapsed() % self.cycles.reboot_period

    def flapping_down(self) -> bool:
        return self.elapsed() % self.cycles.flap_period >= (
            self.cycles.flap_period - self.cycles.flap_down
        )

    def flapping_up_since_boot(self) -> float:
        """How long the flapping interface has been up since the boot: its counters count only
        then, so they stand still while it is down instead of jumping."""
        period, up_part = self.cycles.flap_period, self.cycles.flap_period - self.cycles.flap_down

        def up_until(t: float) -> float:
            return (t // period) * up_part + min(t % period, up_part)

        now = self.elapsed()
        return up_until(now) - up_until(now - self.since_boot())

    def on_battery_for(self) -> float:
        """Seconds since the UPS lost the mains; 0 while it has them."""
        into = self.elapsed() % self.cycles.mains_period
        return max(0.0, into - (self.cycles.mains_period - self.cycles.mains_out))


def ups_values(ups: UpsSupply, clock: DeviceClock) -> list[tuple[Oid, Any]]:
    """The UPS-MIB scalars, as they are now."""
    seconds = clock.on_battery_for()
    minutes = max(0, round(ups.full_minutes - seconds * ups.minutes_per_s))
    charge = max(0, round(100 - seconds * ups.charge_per_s))
    on_battery = seconds > 0
    return [
        (
            UPS_BATTERY_STATUS,
            rfc1902.Integer32(BATTERY_LOW if minutes < ups.low_minutes else BATTERY_NORMAL),
        ),
        (UPS_SECONDS_ON_BATTERY, rfc1902.Integer32(int(seconds))),
        (UPS_MINUTES_REMAINING, rfc1902.Integer32(minutes)),
        (UPS_CHARGE_REMAINING, rfc1902.Integer32(charge)),
        (UPS_OUTPUT_SOURCE, rfc1902.Integer32(SOURCE_BATTERY if on_battery else SOURCE_NORMAL)),
        # upsAlarmOnBattery is the one alarm this UPS raises.
        (UPS_ALARMS_PRESENT, rfc1902.Gauge32(1 if on_battery else 0)),
    ]


def snapshot(device: Device, clock: DeviceClock) -> list[tuple[Oid, Any]]:
    """Every object the device serves, as it is now, sorted by OID."""
    up = clock.since_boot()
    flapping_down = clock.flapping_down()
    flapping_up = clock.flapping_up_since_boot()
    values: list[tuple[Oid, Any]] = [
        (SYS_DESCR, rfc1902.OctetString(device.sys_descr)),
        (SYS_UPTIME, rfc1902.TimeTicks(int(up * 100) % 2**32)),
        (SYS_NAME, rfc1902.OctetString(device.sys_name)),
    ]
    for i in device.interfaces:
        admin = DOWN if i.admin_down else UP
        oper = DOWN if i.admin_down or (i.flaps and flapping_down) else UP
        counting = flapping_up if i.flaps else up
        octets = int(counting * i.octets_per_s)
        errors = int(up * i.errors_per_s)
        columns = [
            (IF_ENTRY, IF_INDEX, rfc1902.Integer32(i.index)),
            (IF_ENTRY, IF_DESCR, rfc1902.OctetString(i.descr)),
            (IF_ENTRY, IF_TYPE, rfc1902.Integer32(i.if_type)),
            (IF_ENTRY, IF_ADMIN_STATUS, rfc1902.Integer32(admin)),
            (IF_ENTRY, IF_OPER_STATUS, rfc1902.Integer32(oper)),
            (IF_ENTRY, IF_IN_DISCARDS, rfc1902.Counter32(errors // 2 % 2**32)),
            (IF_ENTRY, IF_IN_ERRORS, rfc1902.Counter32(errors % 2**32)),
            (IF_ENTRY, IF_OUT_ERRORS, rfc1902.Counter32(errors // 4 % 2**32)),
            (IF_X_ENTRY, IF_NAME, rfc1902.OctetString(i.name)),
            (IF_X_ENTRY, IF_HC_IN_OCTETS, rfc1902.Counter64(octets)),
            (IF_X_ENTRY, IF_HC_OUT_OCTETS, rfc1902.Counter64(octets * 3 // 5)),
            (IF_X_ENTRY, IF_HIGH_SPEED, rfc1902.Gauge32(i.speed_mbps)),
            (IF_X_ENTRY, IF_ALIAS, rfc1902.OctetString(i.alias)),
        ]
        values += [((*table, column, i.index), value) for table, column, value in columns]
    if device.radio is not None:
        radio = device.radio
        values += [
            (
                RADIO_RSL_DBM,
                rfc1902.Integer32(radio.faded_rsl_dbm if flapping_down else radio.rsl_dbm),
            ),
            (
                RADIO_MODULATION,
                rfc1902.Integer32(radio.faded_modulation if flapping_down else radio.modulation),
            ),
        ]
    if device.ups is not None:
        values += ups_values(device.ups, clock)
    values.sort()
    return values


# pysnmp has no type information: to mypy its classes are Any, which subclassing hides.
class _ReadOnlyMib(AbstractMibInstrumController):  # type: ignore[misc]
    """GET and GETNEXT (GETBULK is GETNEXT repeated by pysnmp) over `snapshot`."""

    def __init__(self, device: Device, clock: DeviceClock) -> None:
        self._device = device
        self._clock = clock

    def read_variables(self, *var_binds: Any, **_context: Any) -> list[tuple[Any, Any]]:
        table = snapshot(self._device, self._clock)
        values = dict(table)
        answers = []
        for name, _ in var_binds:
            oid = tuple(name)
            if oid in values:
                answers.append((name, values[oid]))
            elif any(known[:-1] == oid[:-1] for known, _ in table):
                answers.append((name, rfc1905.noSuchInstance))
            else:
                answers.append((name, rfc1905.noSuchObject))
        return answers

    def read_next_variables(self, *var_binds: Any, **_context: Any) -> list[tuple[Any, Any]]:
        table = snapshot(self._device, self._clock)
        oids = [oid for oid, _ in table]
        answers = []
        for name, _ in var_binds:
            position = bisect.bisect_right(oids, tuple(name))
            if position < len(table):
                oid, value = table[position]
                answers.append((rfc1902.ObjectName(oid), value))
            else:
                answers.append((name, rfc1905.endOfMibView))
        return answers


class _BulkResponder(cmdrsp.BulkCommandResponder):  # type: ignore[misc]  # pysnmp: untyped
    """Ends a GETBULK answer at the end of the MIB, as snmpd does, instead of repeating
    endOfMibView for every repetition asked (a walk would print each one)."""

    def send_varbinds(
        self,
        snmpEngine: engine.SnmpEngine,
        stateReference: Any,
        errorStatus: Any,
        errorIndex: Any,
        varBinds: Any,
    ) -> None:
        ended = [value.tagSet == rfc1905.endOfMibView.tagSet for _, value in varBinds]
        keep = len(ended)
        while keep > 1 and ended[keep - 1] and ended[keep - 2]:
            keep -= 1
        super().send_varbinds(
            snmpEngine, stateReference, errorStatus, errorIndex, list(varBinds)[:keep]
        )


def engine_id(device: Device) -> rfc1902.OctetString:
    """A fixed engine id per device (enterprise 8072 format 4, the address as text): a manager
    that caches it keeps working across lab restarts, as it would with a real device."""
    return rfc1902.OctetString(b"\x80\x00\x1f\x88\x04" + device.address.encode())


class SnmpAgent:
    """One pysnmp engine per device, listening on the device's address; made and closed in the
    running event loop (pysnmp ties an engine to the loop it was made in)."""

    def __init__(self, device: Device, port: int, secrets: SnmpSecrets, clock: DeviceClock) -> None:
        self.device = device
        self.port = port
        self.clock = clock
        self._secrets = secrets
        self._engine: engine.SnmpEngine | None = None

    def start(self) -> None:
        """Binds at once, so a taken port raises OSError here rather than later in pysnmp."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.device.address, self.port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        snmp = engine.SnmpEngine(snmpEngineID=engine_id(self.device))
        config.add_transport(snmp, udp.DOMAIN_NAME, udp.UdpTransport().open_server_mode(sock=sock))
        config.add_v1_system(snmp, "lab-v2c", self._secrets.community)
        config.add_v3_user(
            snmp,
            self._secrets.user,
            config.USM_AUTH_HMAC192_SHA256,
            self._secrets.auth_passphrase,
            config.USM_PRIV_CFB128_AES,
            self._secrets.priv_passphrase,
        )
        snmp_context = context.SnmpContext(snmp)
        snmp_context.unregister_context_name(b"")
        snmp_context.register_context_name(b"", _ReadOnlyMib(self.device, self.clock))
        for responder in (
            cmdrsp.GetCommandResponder,
            cmdrsp.NextCommandResponder,
            _BulkResponder,
        ):
            responder(snmp, snmp_context)
        self._engine = snmp

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None


_RIDGE_RADIO = (
    "ridge-mw-radio-1",
    "commwatch lab: licensed microwave radio, Ridge Mountain (simulated)",
    (
        Interface(1, "eth0", "Ethernet uplink to site router", "to site-router", 1000, 4e6),
        Interface(
            2,
            "rf0",
            "Microwave RF link to North PSAP",
            "MW ridge -> psap-north",
            400,
            3e6,
            errors_per_s=0.5,
            flaps=True,
        ),
        Interface(
            3, "eth1", "Spare port", "spare (shut for maintenance)", 1000, 0, admin_down=True
        ),
    ),
)
_PSAP_EDGE_ROUTER = (
    "psap-north-edge-1",
    "commwatch lab: PSAP edge router (simulated)",
    (
        Interface(1, "ge-0/0/0", "Metro fibre to county DC", "fibre-primary", 1000, 2e7),
        Interface(2, "ge-0/0/1", "LTE failover router", "lte-backup", 1000, 1e4),
        Interface(3, "tun0", "Management tunnel", "mgmt VPN", 10, 2e3, if_type=TUNNEL),
    ),
)
_RIDGE_UPS = (
    "ridge-ups-1",
    "commwatch lab: radio site UPS, Ridge Mountain (simulated)",
    (Interface(1, "eth0", "UPS network management card", "ups-nmc", 100, 1e3),),
)
_DEVICES = {
    "ridge-radio-snmp": _RIDGE_RADIO,
    "psap-edge-router-snmp": _PSAP_EDGE_ROUTER,
    "ridge-ups-snmp": _RIDGE_UPS,
}
_RADIOS = {"ridge-radio-snmp": RadioLink()}
_UPSES = {"ridge-ups-snmp": UpsSupply()}


def lab_device(service_name: str, address: str) -> Device:
    """The simulated device behind the lab's SNMP service of that name."""
    sys_name, sys_descr, interfaces = _DEVICES[service_name]
    return Device(
        address,
        sys_name,
        sys_descr,
        interfaces,
        _RADIOS.get(service_name),
        _UPSES.get(service_name),
    )
