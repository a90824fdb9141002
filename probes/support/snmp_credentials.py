"""SNMP credentials: what a check gives (by reference), and the keys pysnmp is handed.

Secrets are revealed only to derive keys and communities for pysnmp, never put in a message.
A passphrase is hashed into a master key once (about 20 ms each), not once per agent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysnmp.entity.config import AUTH_SERVICES, PRIV_SERVICES, USM_KEY_TYPE_MASTER
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    UsmUserData,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmAesCfb192Protocol,
    usmAesCfb256Protocol,
    usmDESPrivProtocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
)

from monitor.core.errors import ConfigFailure
from monitor.core.secrets import SecretRef

AUTH_PROTOCOLS = {
    "md5": usmHMACMD5AuthProtocol,
    "sha": usmHMACSHAAuthProtocol,
    "sha224": usmHMAC128SHA224AuthProtocol,
    "sha256": usmHMAC192SHA256AuthProtocol,
    "sha384": usmHMAC256SHA384AuthProtocol,
    "sha512": usmHMAC384SHA512AuthProtocol,
}
# AES-192/256 keys longer than the auth hash are extended one of two ways: Blumenthal's draft
# (net-snmp, most agents: aes192/aes256) or Reeder's (Cisco: aes192c/aes256c, as net-snmp
# names them). Checked against net-snmp's snmpd with SHA-1 authentication.
PRIV_PROTOCOLS = {
    "des": usmDESPrivProtocol,
    "aes": usmAesCfb128Protocol,
    "aes192": usmAesBlumenthalCfb192Protocol,
    "aes256": usmAesBlumenthalCfb256Protocol,
    "aes192c": usmAesCfb192Protocol,
    "aes256c": usmAesCfb256Protocol,
}


@dataclass(frozen=True)
class Credentials:
    """How to talk to one agent; secrets by reference only."""

    version: str  # "2c" or "3"
    community: SecretRef | None = None
    user: str | None = None
    auth_protocol: str | None = None
    auth_passphrase: SecretRef | None = None
    priv_protocol: str | None = None
    priv_passphrase: SecretRef | None = None

    @property
    def level(self) -> str:
        if self.version == "2c":
            return "v2c"
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"


class Keyring:
    """The master keys derived from passphrases, and which keys own each SNMPv3 user name in
    one pysnmp engine."""

    def __init__(self) -> None:
        self._master_keys: dict[tuple[Any, ...], bytes] = {}
        self._user_names: dict[str, tuple[Any, ...]] = {}

    def keys(self, credentials: Credentials) -> tuple[Any, Any, Any, Any]:
        """(auth protocol, auth master key, priv protocol, priv master key). Hashing a passphrase
        into a master key takes ~20 ms, so it is done once per passphrase, not per agent."""
        if credentials.user is None:
            raise ConfigFailure("SNMPv3 needs a user")
        auth_key = priv_key = auth_protocol = priv_protocol = None
        if credentials.auth_protocol and credentials.auth_passphrase is not None:
            auth_protocol = AUTH_PROTOCOLS[credentials.auth_protocol]
            auth_key = self._master_key(
                credentials.auth_passphrase.reveal_bytes(),
                (auth_protocol,),
                lambda secret: AUTH_SERVICES[auth_protocol].hash_passphrase(secret),
            )
        if credentials.priv_protocol and credentials.priv_passphrase is not None:
            priv_protocol = PRIV_PROTOCOLS[credentials.priv_protocol]
            priv_key = self._master_key(
                credentials.priv_passphrase.reveal_bytes(),
                (auth_protocol, priv_protocol),
                lambda secret: PRIV_SERVICES[priv_protocol].hash_passphrase(auth_protocol, secret),
            )
        return auth_protocol, auth_key, priv_protocol, priv_key

    def user(self, credentials: Credentials, engine_id: Any) -> UsmUserData:
        auth_protocol, auth_key, priv_protocol, priv_key = self.keys(credentials)
        return UsmUserData(
            credentials.user,
            auth_key,
            priv_key,
            authProtocol=auth_protocol,
            privProtocol=priv_protocol,
            securityEngineId=engine_id,
            authKeyType=USM_KEY_TYPE_MASTER,
            privKeyType=USM_KEY_TYPE_MASTER,
        )

    def claims_user_name(self, credentials: Credentials) -> bool:
        """Whether these credentials own their user name in this engine: the first keys seen
        for a name do, and use pysnmp's engine-wide user, discovered and localized per agent
        inside the first request. Other keys for the same name (another site's passphrase, a
        rotation) get a user per agent engine id instead, so neither overwrites the other."""
        keys = self.keys(credentials)
        return self._user_names.setdefault(str(credentials.user), keys) == keys

    def _master_key(
        self, passphrase: bytes, protocols: tuple[Any, ...], derive: Callable[[bytes], Any]
    ) -> bytes:
        # Keyed by a digest so no passphrase is kept in the cache itself.
        key = (protocols, hashlib.sha256(passphrase).digest())
        if key not in self._master_keys:
            self._master_keys[key] = bytes(derive(passphrase))
        return self._master_keys[key]


def community(credentials: Credentials) -> CommunityData:
    if credentials.community is None:
        raise ConfigFailure("SNMPv2c needs a community (community_env or community_file)")
    # Bytes, as the agent compares them: a community need not be UTF-8 (nor text at all).
    return CommunityData(credentials.community.reveal_bytes(), mpModel=1)
