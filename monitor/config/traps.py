"""The inventory's `traps:` section: where `commwatch run` and `commwatch tui` listen for SNMP
traps and informs, and which senders they accept (v1/v2c communities and SNMPv3 users, secrets
by reference only). Receiving lives in monitor.engine.traps; this is only what the user
configured, checked at load time.

    traps:
      listen: 127.0.0.1:1162            # `--traps HOST:PORT` overrides
      communities:
        - {community_env: COMMWATCH_TRAP_COMMUNITY}
        - {community_file: /etc/commwatch/trap-community}
      users:
        - user: traps
          auth_protocol: sha256
          auth_passphrase_env: COMMWATCH_TRAP_AUTH
          priv_protocol: aes
          priv_passphrase_file: /etc/commwatch/trap-priv
          engine_id: "0x80001f8803aabbccddeeff"   # or a list: the devices sending traps as it
      local_engine_id: "0x80001f8804636f6d6d"      # this receiver's own (informs); default: new
      per_source_rate: 50               # notifications a second from one address
      total_rate: 1000                  # from all of them together

The default port is unprivileged (162 needs root) and the default address is loopback:
commwatch listens beyond this machine only where the inventory or the flag says so. An SNMPv3
trap is sent by its device's engine, so a user's keys are localized to each engine id it lists;
an inform is sent to this receiver's engine, whose id the sender learns by discovery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from monitor.config.api import Listen, listen_address
from monitor.config.reader import Fields, Reader
from monitor.core.options import OptionError, choice, each, number, text, type_name
from monitor.core.secrets import SecretRef
from monitor.core.yamlnodes import Node

DEFAULT_PORT = 1162  # net-snmp's own example port for an unprivileged snmptrapd
DEFAULT_LISTEN = Listen("127.0.0.1", DEFAULT_PORT)  # beyond loopback only where it is written
DEFAULT_PER_SOURCE_RATE = 50.0
DEFAULT_TOTAL_RATE = 1000.0
_ENGINE_ID_HINT = (
    "write the engine id in hex and in quotes, e.g. engine_id: '0x80001f8803aabbccddeeff'"
    " (5 to 32 octets; unquoted, YAML reads the digits as a number)"
)
_TRAPS_KEYS = (
    "listen",
    "communities",
    "users",
    "local_engine_id",
    "per_source_rate",
    "total_rate",
)
_COMMUNITY_KEYS = ("community_env", "community_file")
_USER_KEYS = (
    "user",
    "auth_protocol",
    "auth_passphrase_env",
    "auth_passphrase_file",
    "priv_protocol",
    "priv_passphrase_env",
    "priv_passphrase_file",
    "engine_id",
)


@dataclass(frozen=True)
class TrapUser:
    """An SNMPv3 user whose notifications are accepted; its passphrases by reference."""

    user: str
    auth_protocol: str | None = None
    auth_passphrase: SecretRef | None = None
    priv_protocol: str | None = None
    priv_passphrase: SecretRef | None = None
    # The engines whose traps it signs (a trap's keys are localized to its sender's engine).
    engine_ids: tuple[bytes, ...] = ()

    @property
    def level(self) -> str:
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"


@dataclass(frozen=True, kw_only=True)
class TrapsConfig:
    listen: Listen = DEFAULT_LISTEN
    communities: tuple[SecretRef, ...] = ()  # accepted in SNMPv1 and SNMPv2c notifications
    users: tuple[TrapUser, ...] = ()
    local_engine_id: bytes | None = None  # None: pysnmp makes one at each start
    per_source_rate: float = DEFAULT_PER_SOURCE_RATE  # notifications per second, per address
    total_rate: float = DEFAULT_TOTAL_RATE


def engine_id(value: Any) -> bytes:
    """An SNMP engine id (RFC 3411 SnmpEngineID: 5 to 32 octets), written in hex."""
    if not isinstance(value, str):
        raise OptionError(
            f"expected an engine id in quotes, got {type_name(value)}", _ENGINE_ID_HINT
        )
    digits = value.strip().lower().removeprefix("0x").replace(":", "")
    if not re.fullmatch(r"(?:[0-9a-f]{2}){5,32}", digits):
        raise OptionError(
            f"{value!r} is not an engine id of 5 to 32 octets in hex", _ENGINE_ID_HINT
        )
    return bytes.fromhex(digits)


_ENGINE_IDS = each(engine_id)


class TrapsReader(Reader):
    """The `traps:` section, each fault at its place."""

    def traps(self, fields: Fields) -> TrapsConfig | None:
        if "traps" not in fields:
            return None
        node = fields["traps"][1]
        inner = self.fields(node, "traps", _TRAPS_KEYS)
        default = TrapsConfig()
        config = TrapsConfig(
            listen=self.plain(inner, "listen", listen_address, default.listen),
            communities=self._communities(inner),
            users=self._users(inner),
            local_engine_id=self.plain(inner, "local_engine_id", engine_id, None),
            per_source_rate=self.plain(
                inner, "per_source_rate", number(0.1, 1_000_000), default.per_source_rate
            ),
            total_rate=self.plain(inner, "total_rate", number(1, 1_000_000), default.total_rate),
        )
        if not config.communities and not config.users and not self.errors:
            self.fail(
                node.error(
                    "traps: accepts nothing without communities or users",
                    "add communities: [{community_env: NAME}] for v1/v2c, or users: for SNMPv3",
                )
            )
        return config

    def _communities(self, fields: Fields) -> tuple[SecretRef, ...]:
        if "communities" not in fields:
            return ()
        found: list[SecretRef] = []
        for node in self.items(fields["communities"][1], "traps communities"):
            inner = self.fields(node, "a traps community", _COMMUNITY_KEYS)
            secret = self._one_secret(node, inner, "community", _COMMUNITY_KEYS)
            if secret is not None:
                found.append(secret)
        return tuple(found)

    def _users(self, fields: Fields) -> tuple[TrapUser, ...]:
        if "users" not in fields:
            return ()
        # Protocol names only; the library behind them loads when the receiver starts.
        from probes.support.snmp_credentials import AUTH_PROTOCOLS, PRIV_PROTOCOLS

        users: list[TrapUser] = []
        seen: dict[tuple[str, bytes], Node] = {}
        for node in self.items(fields["users"][1], "traps users"):
            inner = self.fields(node, "a traps user", _USER_KEYS, ("user",))
            user = self._user(node, inner, AUTH_PROTOCOLS, PRIV_PROTOCOLS)
            if user is None:
                continue
            # A trap's keys are localized to its sender's engine: one set per (user, engine).
            # (Informs use this receiver's engine: the first entry of a name serves them.)
            for key in user.engine_ids:
                if (user.user, key) in seen:
                    self.fail(
                        node.error(
                            f"user {user.user!r} is already listed for engine id"
                            f" {key.hex()} at line {seen[user.user, key].location.line}",
                            "list each user once per engine id",
                        )
                    )
                seen.setdefault((user.user, key), node)
            users.append(user)
        return tuple(users)

    def _user(self, node: Node, inner: Fields, auth: Any, priv: Any) -> TrapUser | None:
        name = self.plain(inner, "user", text, None)
        auth_protocol = self.plain(inner, "auth_protocol", choice(*auth), None)
        priv_protocol = self.plain(inner, "priv_protocol", choice(*priv), None)
        secrets = {}
        for level, protocol in (("auth", auth_protocol), ("priv", priv_protocol)):
            keys = (f"{level}_passphrase_env", f"{level}_passphrase_file")
            given = any(key in inner for key in keys)
            if (f"{level}_protocol" in inner) != given:
                self.fail(
                    node.error(
                        f"{level}_protocol and {level}_passphrase go together",
                        f"set both {level}_protocol and {level}_passphrase_env (or _file)",
                    )
                )
                return None
            secrets[level] = (
                self._one_secret(node, inner, f"{level}_passphrase", keys) if given else None
            )
            if given and (protocol is None or secrets[level] is None):
                return None
        if priv_protocol is not None and auth_protocol is None:
            self.fail(node.error("SNMPv3 privacy needs authentication", "add auth_protocol"))
            return None
        engine_ids = self.plain(inner, "engine_id", _ENGINE_IDS, ())
        if name is None:
            return None
        return TrapUser(
            user=name,
            auth_protocol=auth_protocol,
            auth_passphrase=secrets["auth"],
            priv_protocol=priv_protocol,
            priv_passphrase=secrets["priv"],
            engine_ids=engine_ids,
        )

    def _one_secret(
        self, node: Node, inner: Fields, what: str, keys: tuple[str, ...]
    ) -> SecretRef | None:
        given = [key for key in keys if key in inner]
        if len(given) != 1:
            self.fail(
                node.error(
                    f"a {what} needs exactly one of {' and '.join(keys)}",
                    "secrets are given by reference only, never written in the inventory",
                )
            )
            return None
        return self.secret_ref(inner, given[0])
