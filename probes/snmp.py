"""`snmp`: what the network gear says about itself: uptime and reboots, interface states, error
and discard rates, utilisation, and any numeric OID, over SNMPv2c or SNMPv3.

Everything a poll needs is asked in one GET; interface names are resolved to ifIndex once by a
GETBULK walk of ifName/ifDescr/ifAlias and re-resolved only when the index stops matching (a
reboot may renumber interfaces). Rates are per second between two polls, from the check's memory:
a counter that went down is a 32/64-bit wrap when that explains it with a small delta, else a
reset, which yields no rate for that poll rather than a spike; an agent restart (sysUpTime went
backwards) drops all previous counters.

Verdicts: an interface that is admin up but not oper up is CRIT. An interface an operator shut
down (ifAdminStatus down) is maintenance, not an outage: its state is OK and its admin status is
WARN ("admin down (maintenance)"), or OK as well with `admin_down: ok`. A reboot (uptime went
backwards since the last poll) is WARN, with the time of the reboot, until `reboot_hold` after it.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.core import yamlnodes
from monitor.core.conditions import Condition, Expectation, Threshold, said
from monitor.core.model import ObservationValue, ProbeResult, Severity, as_number
from monitor.core.options import (
    OptionError,
    boolean,
    choice,
    duration,
    each,
    format_host_port,
    integer,
    ip_port,
    is_number,
    number,
    option,
    text,
    type_name,
)
from monitor.core.secrets import SecretRef, secret_env, secret_file
from probes.base import Headline, Observations, ProbeContext, ProbeKind
from probes.support import snmp_engine
from probes.support.snmp_engine import (
    ABSENT,
    ADMIN_STATUS,
    IF_ALIAS,
    IF_COLUMNS,
    IF_DESCR,
    IF_NAME,
    OPER_STATUS,
    SYS_DESCR,
    SYS_NAME,
    SYS_UPTIME,
    TICKS,
    Credentials,
    Endpoint,
    SnmpRuntime,
    counter_rate,
    uptime_went_back,
)

ADMIN_DOWN = "admin down (maintenance)"
NOT_FOUND = "not found"
RESOLVE_AGAIN = 300.0  # seconds before a name not found is looked for again
UPTIME = "system.uptime_s"
_OPER_SUFFIX = ".oper_status"  # of an interface's observations: if.<name>.oper_status


# --- options -----------------------------------------------------------------------------------


def _target(value: Any) -> tuple[str, int]:
    return ip_port(
        value, 161, "poll the device's management address, e.g. 192.0.2.1 or [2001:db8::1]:1161"
    )


def _version(value: Any) -> str:
    version = str(value).strip().lower().removeprefix("v")
    if version not in ("2c", "3"):
        raise OptionError(f"{value!r} is not an SNMP version commwatch speaks", "use 2c or 3")
    return version


@dataclass(frozen=True)
class OidCheck:
    """One arbitrary OID: recorded, and judged against thresholds or expected values."""

    oid: str
    name: str
    warn: float | None = None
    crit: float | None = None
    below: bool = False  # the thresholds are lower bounds (e.g. free space, signal level)
    expect: tuple[Any, ...] = ()

    @property
    def observation(self) -> str:
        return f"oid.{self.name}"


_OID_KEYS = ("oid", "name", "warn", "crit", "below", "expect")
_OID_HINT = (
    "write {oid: 1.3.6.1.4.1.2021.10.1.5.1, name: load1, warn: 200, crit: 400} or, on the"
    " command line, '1.3.6.1.4.1.2021.10.1.5.1 name=load1 warn=200 crit=400'"
)


def _oid_check(value: Any) -> OidCheck:
    if isinstance(value, str):
        oid, *words = text(value).split()
        pairs = [word.partition("=") for word in words]
        if any(not sep for _, sep, _ in pairs):
            raise OptionError(f"{value!r} is not OID followed by key=value words", _OID_HINT)
        value = {"oid": oid, **{key: _word(raw) for key, _, raw in pairs}}
    if not isinstance(value, dict) or "oid" not in value:
        raise OptionError(f"expected an OID entry, got {type_name(value)}", _OID_HINT)
    unknown = sorted(set(value) - set(_OID_KEYS))
    if unknown:
        raise OptionError(
            f"unknown key {unknown[0]!r} in an OID entry", "use: " + ", ".join(_OID_KEYS)
        )
    oid = str(value["oid"]).strip().removeprefix(".")
    if not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", oid):
        raise OptionError(
            f"{value['oid']!r} is not a numeric OID",
            "write it in dotted digits, e.g. 1.3.6.1.2.1.1.7.0",
        )
    name = text(value.get("name", oid)).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise OptionError(f"OID name {name!r} is not a plain word", "use letters, digits, _ . -")
    expect = value.get("expect")
    expect = [] if expect is None else expect if isinstance(expect, list) else [expect]
    if not all(isinstance(item, str | int | float) for item in expect):
        raise OptionError(f"OID {name}: expect takes values, not mappings", _OID_HINT)
    entry = OidCheck(
        oid=oid,
        name=name,
        warn=None if value.get("warn") is None else number()(value["warn"]),
        crit=None if value.get("crit") is None else number()(value["crit"]),
        below=boolean(value.get("below", False)),
        expect=tuple(expect),
    )
    if entry.expect and (entry.warn is not None or entry.crit is not None):
        raise OptionError(f"OID {name} has both expect and thresholds", "keep one of them")
    _check_order("oids", f"OID {name}", entry.warn, entry.crit, entry.below)
    return entry


def _word(raw: str) -> Any:
    """A command-line value as YAML reads a scalar (numbers, true/false), else the text."""
    value = yamlnodes.read_value(raw)
    return value if isinstance(value, str | int | float | bool) else raw


def _interface(value: Any) -> int | str:
    """An ifIndex (a number, or digits: the command line gives text) or a name."""
    digits = value.strip() if isinstance(value, str) else ""
    # ASCII digits, few: str.isdigit() takes '²', and int() refuses 4,300 digits.
    if digits.isascii() and digits.isdigit() and len(digits) <= 10:
        value = int(digits)
    if is_number(value, whole=True):
        return integer(1, 2**31 - 1)(value)
    return text(value).strip()


def _check_order(
    key: str, what: str, warn: float | None, crit: float | None, below: bool = False
) -> None:
    if warn is not None and crit is not None and (warn < crit if below else warn > crit):
        raise OptionError(
            f"{what}: the warning bound is beyond the critical one",
            "the warning must trigger first",
            key=key,
        )


def _per_second(help_text: str, default: float | None) -> Any:
    return option(default, parse=number(0), metavar="PER_SECOND", help=help_text)


def _percent(help_text: str, default: float | None) -> Any:
    return option(default, parse=number(0, 100), metavar="PERCENT", help=help_text)


@dataclass(frozen=True, kw_only=True)
class SnmpOptions:
    target: tuple[str, int] = option(
        parse=_target,
        help="the agent's IP address, port 161 unless given",
        metavar="ADDRESS[:PORT]",
    )
    version: str = option("3", parse=_version, help="SNMP version: 3 or 2c", metavar="VERSION")
    community_env: SecretRef | None = option(
        None, parse=secret_env, metavar="NAME", help="SNMPv2c community, from this env var"
    )
    community_file: SecretRef | None = option(
        None, parse=secret_file, metavar="PATH", help="SNMPv2c community, from this file"
    )
    user: str | None = option(None, parse=text, help="SNMPv3 user name", metavar="NAME")
    auth_protocol: str | None = option(
        None,
        parse=choice(*snmp_engine.AUTH_PROTOCOLS),
        metavar="PROTOCOL",
        help="SNMPv3 authentication: " + ", ".join(snmp_engine.AUTH_PROTOCOLS),
    )
    auth_passphrase_env: SecretRef | None = option(
        None, parse=secret_env, metavar="NAME", help="SNMPv3 auth passphrase env var"
    )
    auth_passphrase_file: SecretRef | None = option(
        None, parse=secret_file, metavar="PATH", help="SNMPv3 auth passphrase file"
    )
    priv_protocol: str | None = option(
        None,
        parse=choice(*snmp_engine.PRIV_PROTOCOLS),
        metavar="PROTOCOL",
        help="SNMPv3 privacy (encryption): " + ", ".join(snmp_engine.PRIV_PROTOCOLS),
    )
    priv_passphrase_env: SecretRef | None = option(
        None, parse=secret_env, metavar="NAME", help="SNMPv3 priv passphrase env var"
    )
    priv_passphrase_file: SecretRef | None = option(
        None, parse=secret_file, metavar="PATH", help="SNMPv3 priv passphrase file"
    )
    system: bool = option(
        True,
        parse=boolean,
        metavar="BOOL",
        help="read sysUpTime, sysName, sysDescr; WARN on reboot",
    )
    reboot_hold: float = option(
        "15m", parse=duration, metavar="DURATION", help="a reboot stays WARN this long after it"
    )
    interfaces: tuple[int | str, ...] = option(
        (),
        parse=each(_interface),
        repeatable=True,
        metavar="NAME_OR_INDEX",
        help="an interface, by ifName, ifDescr, ifAlias or ifIndex",
    )
    admin_down: str = option(
        "warn",
        parse=choice("warn", "ok"),
        metavar="WARN_OR_OK",
        help="how an interface shut down by an operator (maintenance) is judged",
    )
    errors_warn: float | None = _per_second("WARN above this many in/out errors per second", 1.0)
    errors_crit: float | None = _per_second("CRIT above this many in/out errors per second", 10.0)
    discards_warn: float | None = _per_second("WARN above this many in-discards per second", 10.0)
    discards_crit: float | None = _per_second("CRIT above this many in-discards per second", None)
    utilisation_warn: float | None = _percent("WARN above this in/out utilisation", 80.0)
    utilisation_crit: float | None = _percent("CRIT above this in/out utilisation", 95.0)
    oids: tuple[OidCheck, ...] = option(
        (),
        parse=each(_oid_check),
        repeatable=True,
        metavar="OID_ENTRY",
        help="a numeric OID to read: {oid, name, warn, crit, below, expect}",
    )
    retransmits: int = option(
        1, parse=integer(0, 5), metavar="N", help="SNMP retransmissions within the timeout"
    )

    def validate(self) -> None:
        for name in ("community", "auth_passphrase", "priv_passphrase"):
            if getattr(self, f"{name}_env") and getattr(self, f"{name}_file"):
                raise OptionError(
                    f"both {name}_env and {name}_file are set", "keep one", key=f"{name}_env"
                )
        if self.version == "2c":
            if self.community is None:
                raise OptionError(
                    "SNMPv2c needs a community",
                    "add community_env (or community_file), or use version 3",
                    key="version",
                )
            if self.user or self.auth_protocol or self.priv_protocol:
                raise OptionError(
                    "SNMPv3 keys are set but version is 2c", "set version: 3", key="version"
                )
        else:
            self._validate_v3()
        if not (self.system or self.interfaces or self.oids):
            raise OptionError(
                "nothing to read", "enable system, or list interfaces or oids", key="system"
            )
        for name in ("errors", "discards", "utilisation"):
            warn, crit = getattr(self, f"{name}_warn"), getattr(self, f"{name}_crit")
            _check_order(f"{name}_warn", f"{name}_warn above {name}_crit", warn, crit)
        names = [entry.name for entry in self.oids]
        if len(set(names)) != len(names):
            raise OptionError("two OID entries have the same name", "name each one", key="oids")

    def _validate_v3(self) -> None:
        if self.community is not None:
            raise OptionError(
                "a community is set but version is 3", "set version: 2c", key="version"
            )
        if not self.user:
            raise OptionError("SNMPv3 needs a user", "add user: NAME", key="version")
        for level in ("auth", "priv"):
            protocol, secret = getattr(self, f"{level}_protocol"), self.secret(level)
            if (protocol is None) != (secret is None):
                raise OptionError(
                    f"{level}_protocol and {level}_passphrase go together",
                    f"set both {level}_protocol and {level}_passphrase_env (or _file)",
                    key=f"{level}_protocol",
                )
        if self.priv_protocol and not self.auth_protocol:
            raise OptionError(
                "SNMPv3 privacy needs authentication", "add auth_protocol", key="priv_protocol"
            )

    def secret(self, name: str) -> SecretRef | None:
        suffix = "" if name == "community" else "_passphrase"
        return getattr(self, f"{name}{suffix}_env") or getattr(self, f"{name}{suffix}_file")

    @property
    def community(self) -> SecretRef | None:
        return self.secret("community")

    def credentials(self) -> Credentials:
        return Credentials(
            version=self.version,
            community=self.community,
            user=self.user,
            auth_protocol=self.auth_protocol,
            auth_passphrase=self.secret("auth"),
            priv_protocol=self.priv_protocol,
            priv_passphrase=self.secret("priv"),
        )


# --- measuring ---------------------------------------------------------------------------------


def _endpoint(options: SnmpOptions, timeout: float) -> Endpoint:
    # SNMPv3 keeps half the budget for a fresh engine-id discovery when the agent goes quiet.
    # The deadline leaves the runner's own timeout a margin, so that silence is explained.
    exchanges = (options.retransmits + 1) * (2 if options.version == "3" else 1)
    deadline = asyncio.get_running_loop().time() + timeout * 0.9
    return Endpoint(*options.target, timeout * 0.9 / exchanges, options.retransmits, deadline)


async def _resolve(
    rt: SnmpRuntime,
    endpoint: Endpoint,
    options: SnmpOptions,
    tokens: list[int | str],
    memory: dict[str, Any],
) -> None:
    """Find the ifIndex (and the column that names it) of each interface given by name: ifName
    first, then ifDescr, then ifAlias; the lowest index where a column repeats a name."""
    reply = await rt.walk(endpoint, options.credentials(), (IF_NAME, IF_DESCR, IF_ALIAS))
    found: dict[tuple[str, str], tuple[int, str]] = {}
    for oid, value in reply.varbinds:
        column, _, index = oid.rpartition(".")
        if isinstance(value, str) and index.isdigit():
            found.setdefault((column, value), (int(index), column))
    names = memory.setdefault("if_index", {})
    for token in tokens:
        hits = [found[c, token] for c in (IF_NAME, IF_DESCR, IF_ALIAS) if (c, token) in found]
        names[token] = hits[0] if hits else None
    memory["if_resolved_at"] = time.monotonic()


def _plan(options: SnmpOptions, memory: dict[str, Any]) -> list[str]:
    oids = [SYS_UPTIME]
    if options.system:
        oids += [SYS_NAME, SYS_DESCR]
    names = memory.get("if_index", {})
    for token in options.interfaces:
        where = (token, None) if isinstance(token, int) else names.get(token)
        if where is None:
            continue
        index, column = where
        oids += [f"{col}.{index}" for _, col, _ in IF_COLUMNS]
        if column is not None:
            oids.append(f"{column}.{index}")
    return oids + [entry.oid for entry in options.oids]


def _stale(options: SnmpOptions, memory: dict[str, Any], values: dict[str, Any]) -> list[int | str]:
    """Names whose index is unknown, no longer names the interface (renumbered), or was not
    found a while ago (a module may have been inserted since)."""
    names = memory.get("if_index", {})
    retry = time.monotonic() - memory.get("if_resolved_at", 0.0) > RESOLVE_AGAIN
    stale: list[int | str] = []
    for token in options.interfaces:
        if isinstance(token, int):
            continue
        if token not in names or (names[token] is None and retry):
            stale.append(token)
        elif names[token] is not None:
            index, column = names[token]
            if values.get(f"{column}.{index}", token) != token:
                stale.append(token)
    return stale


async def measure(options: SnmpOptions, ctx: ProbeContext) -> Observations:
    endpoint = _endpoint(options, ctx.timeout)  # first: the deadline counts from the start
    rt = await snmp_engine.runtime(ctx.shared)
    credentials = options.credentials()
    memory = ctx.memory
    values: dict[str, Any] = {}
    stale = _stale(options, memory, values)
    if stale:
        await _resolve(rt, endpoint, options, stale, memory)
    reply = await rt.get(endpoint, credentials, _plan(options, memory))
    values = dict(reply.varbinds)
    stale = _stale(options, memory, values)
    if stale:
        await _resolve(rt, endpoint, options, stale, memory)
        reply = await rt.get(endpoint, credentials, _plan(options, memory))
        values = dict(reply.varbinds)

    now, clock = time.time(), time.monotonic()
    observations: Observations = {}
    if reply.engine_id is not None:
        observations["snmp.engine_id"] = reply.engine_id
        observations["snmp.engine_id_changed"] = reply.engine_id_changed
    restarted = _system(options, values, now, memory, observations)
    _interfaces(options, values, clock, restarted, memory, observations)
    for entry in options.oids:
        observations[entry.observation] = _oid_value(entry, values.get(entry.oid))
    return observations


def _system(
    options: SnmpOptions,
    values: dict[str, Any],
    now: float,
    memory: dict[str, Any],
    obs: Observations,
) -> bool:
    """Record the system group; True when the agent restarted since the last poll."""
    ticks = values.get(SYS_UPTIME)
    restarted = False
    if isinstance(ticks, int):
        previous = memory.get("uptime")
        if previous is not None:
            restarted = uptime_went_back(*previous, ticks, now)
        if restarted:
            memory["rebooted_at"] = now - ticks / TICKS
        memory["uptime"] = (ticks, now)
    if options.system:
        obs[UPTIME] = ticks / TICKS if isinstance(ticks, int) else ticks
        obs["system.name"] = values.get(SYS_NAME)
        obs["system.descr"] = values.get(SYS_DESCR)
        rebooted_at = memory.get("rebooted_at")
        recent = rebooted_at is not None and (restarted or now - rebooted_at < options.reboot_hold)
        # Text either way, so the verdict line reads "system.reboot none (...)".
        obs["system.rebooted_at"] = _timestamp(rebooted_at) if recent else "none"
    return restarted


def duration_text(seconds: float) -> str:
    """A two-unit duration for uptimes: 3d4h, 5h12m, 7m30s."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def headline(result: ProbeResult, _now: float) -> Headline:
    """The uptime ("up 3d4h") and the interfaces: "if eth1 down" (which says their state
    verdicts too) or "if 4/4 up"."""
    facts: list[str] = []
    uptime = as_number(result.observations.get(UPTIME))
    if uptime is not None:
        facts.append(f"up {duration_text(uptime)}")
    interfaces = {
        key[len("if.") : -len(_OPER_SUFFIX)]: str(value)
        for key, value in result.observations.items()
        if key.startswith("if.") and key.endswith(_OPER_SUFFIX)
    }
    down = [name for name, status in interfaces.items() if status != "up"]
    if down:
        facts.append("if " + ",".join(down) + " down")
    elif interfaces:
        facts.append(f"if {len(interfaces)}/{len(interfaces)} up")
    told = frozenset(f"if.{name}.{what}" for name in down for what in ("state", "admin_status"))
    return Headline(facts=tuple(facts), tells=told)


def _timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def _interfaces(
    options: SnmpOptions,
    values: dict[str, Any],
    clock: float,
    restarted: bool,
    memory: dict[str, Any],
    obs: Observations,
) -> None:
    names = memory.get("if_index", {})
    previous = {} if restarted else memory.get("counters", {})
    seconds = clock - memory.get("counters_at", clock)
    counters: dict[str, Any] = {}
    for token in options.interfaces:
        key = f"if.{token}"
        where = (token, None) if isinstance(token, int) else names.get(token)
        row = {} if where is None else {f: values.get(f"{c}.{where[0]}") for f, c, _ in IF_COLUMNS}
        if where is None or row["oper"] in ABSENT or row["admin"] in ABSENT:
            obs.update({f"{key}.state": NOT_FOUND, f"{key}.admin_status": None})
            continue
        admin = ADMIN_STATUS.get(row["admin"], f"invalid({row['admin']})")
        oper = OPER_STATUS.get(row["oper"], f"invalid({row['oper']})")
        obs[f"{key}.index"] = where[0]
        obs[f"{key}.admin_status"] = admin
        obs[f"{key}{_OPER_SUFFIX}"] = oper
        if admin == "down":
            obs[f"{key}.state"] = ADMIN_DOWN
        elif admin == "up" and oper == "up":
            obs[f"{key}.state"] = "up"
        else:
            obs[f"{key}.state"] = f"{oper} while admin {admin}"
        speed = row["speed_mbps"] if isinstance(row["speed_mbps"], int) else None
        obs[f"{key}.speed_mbps"] = speed
        rates = {}
        for field, _, bits in IF_COLUMNS:
            if bits is None:
                continue
            counter_key = f"{token}@{where[0]}.{field}"
            counters[counter_key] = row[field]
            rate = counter_rate(previous.get(counter_key), row[field], bits, seconds)
            if rate is not None:
                rates[field] = rate
        for field in ("in_errors", "out_errors", "in_discards"):
            if field in rates:
                obs[f"{key}.{field}_per_s"] = round(rates[field], 3)
        for direction in ("in", "out"):
            if f"{direction}_octets" in rates and speed:
                percent = rates[f"{direction}_octets"] * 8 / (speed * 1e6) * 100
                obs[f"{key}.{direction}_utilisation_pct"] = round(percent, 2)
    memory["counters"], memory["counters_at"] = counters, clock


def _oid_value(entry: OidCheck, value: Any) -> ObservationValue:
    thresholds = entry.warn is not None or entry.crit is not None
    if thresholds and isinstance(value, str) and value not in ABSENT:
        # Agents often give gauges as text (UCD-SNMP's laLoad "0.42"): judge them as numbers.
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    return value


# --- judging -----------------------------------------------------------------------------------


def _same(expected: Any, value: ObservationValue) -> bool:
    if is_number(expected):
        return is_number(value) and value == expected
    return value == expected or str(value) == str(expected)


def conditions(options: SnmpOptions) -> tuple[Condition, ...]:
    judged: list[Condition] = []
    if options.system:
        judged.append(
            Expectation(
                condition="system.reboot",
                observation="system.rebooted_at",
                accepts=lambda value: value == "none",
                expected="no reboot (sysUpTime did not go backwards)",
                severity=Severity.WARN,
                passed=said("no reboot"),
                headline=True,
            )
        )
    for token in options.interfaces:
        key = f"if.{token}"
        accepted = ("up", ADMIN_DOWN)
        judged.append(
            Expectation(
                condition=f"{key}.state",
                observation=f"{key}.state",
                accepts=lambda value, accepted=accepted: value in accepted,
                expected="up (or admin down for maintenance)",
                headline=True,
            )
        )
        if options.admin_down == "warn":
            judged.append(
                Expectation(
                    condition=f"{key}.admin_status",
                    observation=f"{key}.admin_status",
                    accepts=lambda value: value != "down",
                    expected=f"up; down is {ADMIN_DOWN}",
                    severity=Severity.WARN,
                )
            )
        for field, what in (
            ("in_errors", "errors"),
            ("out_errors", "errors"),
            ("in_discards", "discards"),
            ("in_utilisation", "utilisation"),
            ("out_utilisation", "utilisation"),
        ):
            suffix, unit = ("_pct", "%") if what == "utilisation" else ("_per_s", "/s")
            judged.append(
                Threshold(
                    condition=f"{key}.{field}",
                    observation=f"{key}.{field}{suffix}",
                    warn=getattr(options, f"{what}_warn"),
                    crit=getattr(options, f"{what}_crit"),
                    unit=unit,
                    needs_history=True,
                )
            )
    for entry in options.oids:
        if entry.expect:
            expected = entry.expect
            judged.append(
                Expectation(
                    condition=entry.observation,
                    observation=entry.observation,
                    accepts=lambda value, expected=expected: any(_same(e, value) for e in expected),
                    expected=" or ".join(str(e) for e in expected),
                )
            )
        elif entry.warn is not None or entry.crit is not None:
            judged.append(
                Threshold(
                    condition=entry.observation,
                    observation=entry.observation,
                    warn=entry.warn,
                    crit=entry.crit,
                    higher_is_worse=not entry.below,
                )
            )
    return tuple(judged)


PROBE = ProbeKind(
    kind="snmp",
    summary="SNMP v3/v2c: uptime and reboots, interface states, error rates, utilisation, OIDs",
    target_help="ADDRESS[:PORT]",
    options=SnmpOptions,
    measure=measure,
    conditions=conditions,
    target=lambda o: format_host_port(*o.target),
    host=lambda o: o.target[0],
    memory_clocks=("counters_at", "if_resolved_at"),
    headline=headline,
)
