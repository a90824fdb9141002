"""The options of an snmp check: the agent, the credentials (by reference), what to read, and
the bounds it is judged against. OID entries and interfaces are parsed here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from monitor.core import yamlnodes
from monitor.core.options import (
    OptionError,
    boolean,
    choice,
    duration,
    each,
    integer,
    ip_port,
    is_number,
    number,
    option,
    text,
    type_name,
)
from monitor.core.secrets import SecretRef, secret_env, secret_file
from probes.support.snmp_credentials import AUTH_PROTOCOLS, PRIV_PROTOCOLS, Credentials


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
        index: int = integer(1, 2**31 - 1)(value)
        return index
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


def _minutes(help_text: str, default: float | None) -> Any:
    return option(default, parse=number(0), metavar="MINUTES", help=help_text)


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
        parse=choice(*AUTH_PROTOCOLS),
        metavar="PROTOCOL",
        help="SNMPv3 authentication: " + ", ".join(AUTH_PROTOCOLS),
    )
    auth_passphrase_env: SecretRef | None = option(
        None, parse=secret_env, metavar="NAME", help="SNMPv3 auth passphrase env var"
    )
    auth_passphrase_file: SecretRef | None = option(
        None, parse=secret_file, metavar="PATH", help="SNMPv3 auth passphrase file"
    )
    priv_protocol: str | None = option(
        None,
        parse=choice(*PRIV_PROTOCOLS),
        metavar="PROTOCOL",
        help="SNMPv3 privacy (encryption): " + ", ".join(PRIV_PROTOCOLS),
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
    ups: bool = option(
        False,
        parse=boolean,
        metavar="BOOL",
        help="read the UPS-MIB (RFC 1628): on battery is CRIT, bypass WARN",
    )
    # A radio site's UPS: 30 minutes is the time to get a generator or a technician moving,
    # 10 the time left to save what can be saved; a battery under half charge will not carry
    # the site through a second outage, under a quarter hardly through one.
    battery_minutes_warn: float | None = _minutes("WARN below this many battery minutes left", 30)
    battery_minutes_crit: float | None = _minutes("CRIT below this many battery minutes left", 10)
    battery_charge_warn: float | None = _percent("WARN below this battery charge", 50.0)
    battery_charge_crit: float | None = _percent("CRIT below this battery charge", 25.0)
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
        if not (self.system or self.interfaces or self.oids or self.ups):
            raise OptionError(
                "nothing to read",
                "enable system or ups, or list interfaces or oids",
                key="system",
            )
        for name in ("errors", "discards", "utilisation"):
            warn, crit = getattr(self, f"{name}_warn"), getattr(self, f"{name}_crit")
            _check_order(f"{name}_warn", f"{name}_warn above {name}_crit", warn, crit)
        for name in ("battery_minutes", "battery_charge"):
            warn, crit = getattr(self, f"{name}_warn"), getattr(self, f"{name}_crit")
            _check_order(f"{name}_warn", f"{name}_warn below {name}_crit", warn, crit, True)
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
        found: SecretRef | None = getattr(self, f"{name}{suffix}_env") or getattr(
            self, f"{name}{suffix}_file"
        )
        return found

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
