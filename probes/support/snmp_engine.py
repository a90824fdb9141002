"""SNMP requests over pysnmp's asyncio API, for every snmp check of one engine run.

One `SnmpRuntime` per event loop (pysnmp engines hang when reused across loops), made on first
use through `SharedResources` and closed with the run. It owns the engine's UDP sockets (with a
4 MiB receive buffer) and caps the exchanges in flight: answers beyond what the CPU decodes
within a timeout would wait in the socket until their timers ran out and look like timeouts.

SNMPv3: the first keys seen for a user name own pysnmp's engine-wide user, and pysnmp discovers
each agent's engine id (once, then cached) and localizes the keys inside the first request.
Other keys for the same user name (another site's passphrase) are installed per agent engine id
after an explicit discovery, because installing them engine-wide would overwrite the first
keys under devices being contacted at that moment. When a known agent stops answering, its
engine id is forgotten and discovered again at once: a re-imaged device (new engine id)
recovers within the same poll instead of timing out for the 300 s pysnmp keeps the old id, and
an agent that answers discovery but not our request is told apart from a dead one.

Secrets are revealed only to derive keys and communities for pysnmp, never put in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config
from pysnmp.entity.config import AUTH_SERVICES, PRIV_SERVICES, USM_KEY_TYPE_MASTER
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    get_cmd,
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
from pysnmp.proto import errind, rfc1902, rfc1905

from monitor.core.errors import AuthFailure, ConfigFailure, ProtocolFailure
from monitor.core.logs import Throttle
from monitor.core.model import ObservationValue
from monitor.core.options import format_host_port
from monitor.core.secrets import SecretRef
from probes.base import SharedResources
from probes.support import pysnmp_compat

log = logging.getLogger(__name__)

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

# What the agent sends for a variable it cannot give: kept as these words in observations.
NO_SUCH_OBJECT = "noSuchObject"
NO_SUCH_INSTANCE = "noSuchInstance"
END_OF_MIB_VIEW = "endOfMibView"
ABSENT = frozenset({NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW})

# Exchanges in flight on the engine. Beyond what the CPU decodes within a timeout, answers wait
# in the socket while their timers run out; better they wait here, unsent.
MAX_IN_FLIGHT = 64
RECEIVE_BUFFER = 4 * 1024 * 1024
MAX_TEXT = 256
MAX_WALK_ROWS = 4096
_DISCOVERY_USER = "commwatch-discovery"

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

# The type the MIB gives each object commwatch reads by itself (RFC 3418, RFC 2863), by OID for
# scalars and by column for tables. An agent answering another type is broken, or not what it
# claims: its value would be judged as something it is not (text as an uptime, a counter as a
# status), so the answer is a protocol error instead. Values for `oids` entries are any type.
_MIB_TYPES: dict[str, tuple[str, type]] = {
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
}

Value = ObservationValue
VarBinds = list[tuple[str, Value]]


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


@dataclass(frozen=True)
class Endpoint:
    """An agent's address and how patient to be with each request to it."""

    address: str
    port: int
    attempt_timeout: float
    retransmits: int
    deadline: float  # event-loop time by which the check must have its answer, or say why not

    @property
    def label(self) -> str:
        return format_host_port(self.address, self.port)

    @property
    def _domain(self) -> tuple[int, ...]:
        return udp6.DOMAIN_NAME if ":" in self.address else udp.DOMAIN_NAME

    @property
    def _transport_address(self) -> tuple[Any, ...]:
        return (self.address, self.port, 0, 0) if ":" in self.address else (self.address, self.port)


@dataclass(frozen=True)
class Reply:
    """What one exchange read, and what it learnt about the agent's engine on the way."""

    varbinds: VarBinds
    engine_id: str | None  # hex, SNMPv3 only
    engine_id_changed: bool


Outcome = tuple[Any, Any, Any, VarBinds]  # pysnmp's (indication, status, index, varbinds)


@dataclass
class Progress:
    """How far one exchange got: responses that answered our requests, table cells listed."""

    answers: int = 0
    cells: int = 0


Send = Callable[[Any, Progress], Awaitable[Outcome]]


@dataclass(frozen=True)
class Heard:
    """How many datagrams an agent had sent, and how many of them were not SNMP."""

    received: int
    undecodable: int


class SnmpRuntime:
    """The shared pysnmp engine of one event loop, with its sockets and in-flight cap."""

    def __init__(self) -> None:
        self.engine = SnmpEngine()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        # Per agent being talked to (only those: a flood from forged sources must not grow
        # them): exchanges in flight, datagrams received, and those of them that were not SNMP.
        self._talking: Counter[tuple[str, int]] = Counter()
        self._received: Counter[tuple[str, int]] = Counter()
        self._undecodable: Counter[tuple[str, int]] = Counter()
        self._noise = NoiseLog()
        self._domains: set[tuple[int, ...]] = set()
        self._master_keys: dict[tuple[Any, ...], bytes] = {}
        self._user_names: dict[str, tuple[Any, ...]] = {}
        self._engine_ids = pysnmp_compat.EngineIds(self.engine)
        self._watch_undecodable()

    def _watch_undecodable(self) -> None:
        """Count, per agent, the datagrams it sends and those pysnmp drops as not SNMP (or
        fails on: some garbage raises inside its decoder), so that an agent answering garbage
        is reported as such rather than as a silent timeout, and a flood of garbage costs a
        log line per sender now and then, not a traceback per datagram."""
        counters = pysnmp_compat.undecodable_counters(self.engine)

        def wrap(receive: pysnmp_compat.Receive) -> pysnmp_compat.Receive:
            def watched(snmp_engine: Any, domain: Any, address: Any, message: bytes) -> Any:
                sender = (str(address[0]), int(address[1]))
                if sender in self._talking:
                    self._received[sender] += 1
                before = pysnmp_compat.undecodable(counters)
                failure: Exception | None = None
                try:
                    return receive(snmp_engine, domain, address, message)
                except Exception as exc:  # a datagram must never take the dispatcher down
                    failure = exc
                    return b""
                finally:
                    if failure is not None or pysnmp_compat.undecodable(counters) != before:
                        if sender in self._talking:
                            self._undecodable[sender] += 1
                        self._noise.note(sender, len(message), failure)

            return watched

        pysnmp_compat.watch_received(self.engine, wrap)

    def _open(self, endpoint: Endpoint) -> None:
        domain = endpoint._domain
        if domain in self._domains:
            return
        ipv6 = domain == udp6.DOMAIN_NAME
        sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind(("::", 0) if ipv6 else ("0.0.0.0", 0))
            sock.setblocking(False)
            transport_class = udp6.Udp6AsyncioTransport if ipv6 else udp.UdpAsyncioTransport
            # pysnmp's command generator uses the transport registered for the domain, if any.
            config.add_transport(self.engine, domain, transport_class().open_server_mode(sock=sock))
        except BaseException:
            sock.close()
            raise
        self._domains.add(domain)

    def _heard(self, endpoint: Endpoint) -> Heard:
        agent = (endpoint.address, endpoint.port)
        return Heard(self._received[agent], self._undecodable[agent])

    @contextlib.contextmanager
    def _talking_to(self, endpoint: Endpoint) -> Iterator[None]:
        agent = (endpoint.address, endpoint.port)
        self._talking[agent] += 1
        try:
            yield
        finally:
            self._talking[agent] -= 1
            if not self._talking[agent]:
                del self._talking[agent], self._received[agent], self._undecodable[agent]

    def engine_id(self, endpoint: Endpoint) -> Any:
        return self._engine_ids.get(endpoint._domain, endpoint._transport_address)

    def forget_engine_id(self, endpoint: Endpoint) -> None:
        self._engine_ids.forget(endpoint._domain, endpoint._transport_address)

    async def close(self) -> None:
        self.engine.close_dispatcher()

    def _keys(self, credentials: Credentials) -> tuple[Any, Any, Any, Any]:
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

    def _user(self, credentials: Credentials, engine_id: Any) -> UsmUserData:
        auth_protocol, auth_key, priv_protocol, priv_key = self._keys(credentials)
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

    def _claims_user_name(self, credentials: Credentials) -> bool:
        """Whether these credentials own their user name in this engine: the first keys seen
        for a name do, and use pysnmp's engine-wide user, discovered and localized per agent
        inside the first request. Other keys for the same name (another site's passphrase, a
        rotation) get a user per agent engine id instead, so neither overwrites the other."""
        keys = self._keys(credentials)
        return self._user_names.setdefault(str(credentials.user), keys) == keys

    def _master_key(
        self, passphrase: bytes, protocols: tuple[Any, ...], derive: Callable[[bytes], Any]
    ) -> bytes:
        # Keyed by a digest so no passphrase is kept in the cache itself.
        key = (protocols, hashlib.sha256(passphrase).digest())
        if key not in self._master_keys:
            self._master_keys[key] = bytes(derive(passphrase))
        return self._master_keys[key]

    # --- requests ---------------------------------------------------------------------------

    def _target(self, endpoint: Endpoint) -> UdpTransportTarget | Udp6TransportTarget:
        self._open(endpoint)
        return pysnmp_compat.transport_target(
            endpoint._transport_address,
            ipv6=":" in endpoint.address,
            timeout=endpoint.attempt_timeout,
            retries=endpoint.retransmits,
        )

    async def get(self, endpoint: Endpoint, credentials: Credentials, oids: Sequence[str]) -> Reply:
        """GET `oids` in one PDU; values in the order asked."""
        names = [ObjectType(ObjectIdentity(oid)) for oid in oids]

        async def send(auth: Any, progress: Progress) -> Outcome:
            indication, status, index, varbinds = await get_cmd(
                self.engine,
                auth,
                self._target(endpoint),
                ContextData(),
                *names,
                lookupMib=False,
            )
            progress.answers += indication is None
            return indication, status, index, [_varbind(endpoint, vb) for vb in varbinds]

        return await self._exchange(endpoint, credentials, send)

    async def walk(
        self, endpoint: Endpoint, credentials: Credentials, columns: Sequence[str]
    ) -> Reply:
        """GETBULK walks of table columns, each ending at the end of its column."""

        async def send(auth: Any, progress: Progress) -> Outcome:
            rows: VarBinds = []
            for column in columns:
                last = _oid_key(column)
                async for indication, status, index, varbinds in bulk_walk_cmd(
                    self.engine,
                    auth,
                    self._target(endpoint),
                    ContextData(),
                    0,
                    25,
                    ObjectType(ObjectIdentity(column)),
                    lookupMib=False,
                    lexicographicMode=False,
                ):
                    if indication or status:
                        return indication, status, index, rows
                    progress.answers += 1
                    for varbind in varbinds:
                        name, value = _varbind(endpoint, varbind)
                        if value in ABSENT:
                            continue
                        if _oid_key(name) <= last:
                            # pysnmp would ask again from the same place until the row cap.
                            raise ProtocolFailure(
                                f"{endpoint.label} does not advance the walk of"
                                f" {_MIB_TYPES[column][0]}: it answered {name} after"
                                f" {'.'.join(map(str, last))}"
                            )
                        last = _oid_key(name)
                        rows.append((name, value))
                    progress.cells = len(rows)
                    if len(rows) > MAX_WALK_ROWS:
                        raise ProtocolFailure(
                            f"{endpoint.label} returned more than {MAX_WALK_ROWS} table"
                            " cells while listing interfaces"
                        )
            return None, 0, 0, rows

        return await self._exchange(endpoint, credentials, send)

    async def _exchange(
        self,
        endpoint: Endpoint,
        credentials: Credentials,
        send: Send,
    ) -> Reply:
        with self._talking_to(endpoint):
            return await self._within_deadline(endpoint, credentials, send, Progress())

    async def _within_deadline(
        self,
        endpoint: Endpoint,
        credentials: Credentials,
        send: Send,
        progress: Progress,
    ) -> Reply:
        before = self._heard(endpoint)
        # Engine ids this exchange learnt from the agent: proof that it is alive.
        discovered: list[Any] = []
        loop = asyncio.get_running_loop()
        asked = loop.time()
        sent_at: float | None = None
        try:
            async with asyncio.timeout_at(endpoint.deadline) as budget, self._slots:
                sent_at = loop.time()
                return await self._converse(
                    endpoint, credentials, send, before, progress, discovered
                )
        except TimeoutError:
            if not budget.expired():
                raise
            if sent_at is None:
                raise TimeoutError(
                    f"not sent to {endpoint.label}: this commwatch had {MAX_IN_FLIGHT} SNMP"
                    " exchanges in flight for the whole timeout (lower the concurrency or"
                    " lengthen the timeout)"
                ) from None
            # Out of time between retransmissions: say what silence means for this agent.
            failure = (
                _unanswered(endpoint, credentials)
                if discovered
                else self._silence(endpoint, credentials, before, progress)
            )
            waited = sent_at - asked
            if waited > (endpoint.deadline - asked) / 2:
                # Most of the time went on waiting for a slot: the agent had little of it.
                failure.args = (
                    f"{failure} [sent only after waiting {waited:.1f}s for one of the"
                    f" {MAX_IN_FLIGHT} exchange slots: commwatch is overloaded]",
                )
            raise failure from None

    async def _converse(
        self,
        endpoint: Endpoint,
        credentials: Credentials,
        send: Send,
        before: Heard,
        progress: Progress,
        discovered: list[Any],
    ) -> Reply:
        if credentials.version == "2c":
            outcome = await send(_community(credentials), progress)
            _raise_for(outcome, endpoint, self._silence(endpoint, credentials, before, progress))
            return Reply(outcome[3], None, False)

        owner = self._claims_user_name(credentials)

        async def attempt() -> Outcome:
            engine_id = self.engine_id(endpoint)
            if owner:
                outcome = await send(self._user(credentials, None), progress)
                if engine_id is None and self.engine_id(endpoint) is not None:
                    discovered.append(self.engine_id(endpoint))
                return outcome
            if engine_id is None:
                engine_id = await self._discover(endpoint, before)
                discovered.append(engine_id)
            return await send(self._user(credentials, engine_id), progress)

        known = self.engine_id(endpoint)
        outcome = await attempt()
        if isinstance(outcome[0], errind.RequestTimedOut | errind.UnknownEngineID):
            if not discovered:
                # A known agent gone quiet may have a new engine id (re-imaged): discover it
                # now rather than wait out the 300 s pysnmp would keep the old one.
                self.forget_engine_id(endpoint)
                outcome = await attempt()
            if discovered and isinstance(outcome[0], errind.RequestTimedOut):
                raise _unanswered(endpoint, credentials)
        silence = self._silence(endpoint, credentials, before, progress)
        _raise_for(outcome, endpoint, silence, credentials)
        engine_id = self.engine_id(endpoint)
        hex_id = None if engine_id is None else bytes(engine_id).hex()
        changed = known is not None and engine_id is not None and engine_id != known
        return Reply(outcome[3], hex_id, changed)

    async def _discover(self, endpoint: Endpoint, before: Heard) -> Any:
        """The agent's engine id, learnt from the report it sends to an unknown user."""
        indication, _, _, _ = await get_cmd(
            self.engine,
            UsmUserData(_DISCOVERY_USER),
            self._target(endpoint),
            ContextData(),
            ObjectType(ObjectIdentity(SYS_UPTIME)),
            lookupMib=False,
        )
        engine_id = self.engine_id(endpoint)
        if engine_id is None:
            if isinstance(indication, errind.RequestTimedOut):
                raise self._silence(endpoint, None, before, Progress())
            _raise_for((indication, 0, 0, []), endpoint, None)
            raise ProtocolFailure(f"{endpoint.label} did not reveal its SNMPv3 engine id")
        return engine_id

    def _silence(
        self,
        endpoint: Endpoint,
        credentials: Credentials | None,
        before: Heard,
        progress: Progress,
    ) -> Exception:
        """What running out of time means: garbage came back, or the agent answered part of
        the exchange, or SNMP that answers nothing we asked, or nothing at all."""
        heard = self._heard(endpoint)
        if heard.undecodable > before.undecodable:
            return ProtocolFailure(f"{endpoint.label} answers with datagrams that are not SNMP")
        if progress.answers:
            listed = f" (it had listed {progress.cells} table cells)" if progress.cells else ""
            return TimeoutError(
                f"{endpoint.label} answered {progress.answers} requests, but the exchange had"
                f" not finished when the time ran out{listed}: an overloaded agent, or a very"
                " large table (name interfaces by ifIndex, or allow more time)"
            )
        if heard.received > before.received:
            # pysnmp drops an answer that comes after its attempt's timer: lateness is the
            # likely cause, so this is a timeout, but not one that blames the community.
            return TimeoutError(
                f"{endpoint.label} sent {heard.received - before.received} SNMP messages, but"
                f" none answered a request of ours in time (later than the"
                f" {endpoint.attempt_timeout:.2g}s an attempt waits, or for another request id"
                " or community)"
            )
        if credentials is not None and credentials.version == "2c":
            return TimeoutError(
                f"no response from {endpoint.label} (wrong community or agent down: SNMPv2c"
                " agents silently ignore a community they do not know)"
            )
        return TimeoutError(
            f"no response from {endpoint.label} (SNMP agent down, unreachable or filtering)"
        )


class NoiseLog:
    """Datagrams that are not SNMP, logged at most once per sender per `INTERVAL` seconds with
    how many came since, and for at most `MAX_SENDERS_LOGGED` senders per interval (forged
    sources are many): a flood costs a few log lines, never one per datagram."""

    INTERVAL = 60.0
    MAX_SENDERS_LOGGED = 10

    def __init__(self) -> None:
        self._senders = Throttle(self.INTERVAL)
        self._window = time.monotonic()
        self._logged = 0  # senders logged in this interval
        self._unlogged = 0  # datagrams from senders beyond the interval's allowance

    def note(self, sender: tuple[str, int], size: int, failure: Exception | None) -> None:
        now = time.monotonic()
        if now - self._window >= self.INTERVAL:
            if self._unlogged:
                log.warning(
                    "SNMP: %d more datagrams that are not SNMP in the last %.0fs, beyond the"
                    " %d senders reported",
                    self._unlogged,
                    now - self._window,
                    self.MAX_SENDERS_LOGGED,
                )
            self._window, self._logged, self._unlogged = now, 0, 0
        if self._logged >= self.MAX_SENDERS_LOGGED:
            self._unlogged += 1
            return
        held = self._senders.let_through(sender)
        if held is None:
            return
        self._logged += 1
        # The type of a decoder failure, never its text: it quotes the datagram.
        why = f" ({type(failure).__name__} in the decoder)" if failure is not None else ""
        more = f"; {held} more since the last report" if held else ""
        log.warning(
            "SNMP: %s sent a %d-byte datagram that is not SNMP%s%s; next report from it in"
            " %.0fs at the earliest",
            format_host_port(*sender),
            size,
            why,
            more,
            self.INTERVAL,
        )


async def runtime(shared: SharedResources) -> SnmpRuntime:
    """The run's shared SNMP runtime, made in the running loop on first use."""

    async def make() -> SnmpRuntime:
        return SnmpRuntime()

    async def close(item: SnmpRuntime) -> None:
        await item.close()

    return await shared.get("snmp.runtime", make, close)


# --- credentials ------------------------------------------------------------------------------


def _community(credentials: Credentials) -> CommunityData:
    if credentials.community is None:
        raise ConfigFailure("SNMPv2c needs a community (community_env or community_file)")
    # Bytes, as the agent compares them: a community need not be UTF-8 (nor text at all).
    return CommunityData(credentials.community.reveal_bytes(), mpModel=1)


# --- outcomes ---------------------------------------------------------------------------------


def _unanswered(endpoint: Endpoint, credentials: Credentials) -> Exception:
    """The agent answered engine-id discovery (so it is up) but not our request."""
    if credentials.priv_protocol:
        return AuthFailure(
            f"{endpoint.label} answers SNMPv3 engine discovery but not user "
            f"{credentials.user!r} at authPriv: wrong privacy passphrase or protocol?"
            " (agents silently drop requests they cannot decrypt)"
        )
    return TimeoutError(
        f"{endpoint.label} answers SNMPv3 engine discovery but not the request of user"
        f" {credentials.user!r}"
    )


# pysnmp's error indications for SNMPv3 report PDUs, and what they tell the engineer.
_REPORTS: tuple[tuple[type, str], ...] = (
    (errind.UnknownUserName, "unknown user {user} (usmStatsUnknownUserNames)"),
    (
        errind.WrongDigest,
        "wrong authentication passphrase or protocol for user {user} (usmStatsWrongDigests)",
    ),
    (
        errind.DecryptionError,
        "wrong privacy passphrase or protocol for user {user} (usmStatsDecryptionErrors)",
    ),
    (
        errind.UnsupportedSecurityLevel,
        "user {user} may not use security level {level} (usmStatsUnsupportedSecLevels)",
    ),
    (
        errind.NotInTimeWindow,
        "the agent keeps rejecting our messages as outside its time window"
        " (usmStatsNotInTimeWindows): its engine boots/time are inconsistent",
    ),
)


def _raise_for(
    outcome: Outcome,
    endpoint: Endpoint,
    silence: Exception | None,
    credentials: Credentials | None = None,
) -> None:
    indication, status, index, varbinds = outcome
    if indication is None:
        if status:
            _raise_for_status(int(status), int(index), varbinds, endpoint)
        return
    if isinstance(indication, errind.RequestTimedOut) and silence is not None:
        raise silence
    user = repr(credentials.user) if credentials is not None else "?"
    level = credentials.level if credentials is not None else "?"
    for kind, message in _REPORTS:
        if isinstance(indication, kind):
            raise AuthFailure(f"{endpoint.label}: " + message.format(user=user, level=level))
    if isinstance(indication, errind.UnknownSecurityName | errind.UnsupportedSecurityModel):
        raise ConfigFailure(f"pysnmp cannot use these credentials: {indication}")
    raise ProtocolFailure(f"{endpoint.label}: {indication}")


def _raise_for_status(status: int, index: int, varbinds: VarBinds, endpoint: Endpoint) -> None:
    name = _ERROR_STATUS.get(status, f"error status {status}")
    where = f" at {varbinds[index - 1][0]}" if 0 < index <= len(varbinds) else ""
    if name == "authorizationError":
        raise AuthFailure(f"{endpoint.label} denied access{where} (authorizationError)")
    if name == "tooBig":
        raise ProtocolFailure(f"{endpoint.label}: the answer is too big for one message (tooBig)")
    raise ProtocolFailure(f"{endpoint.label} answered {name}{where}")


# RFC 3416 error-status values.
_ERROR_STATUS = dict(
    enumerate(
        [
            "noError",
            "tooBig",
            "noSuchName",
            "badValue",
            "readOnly",
            "genErr",
            "noAccess",
            "wrongType",
            "wrongLength",
            "wrongEncoding",
            "wrongValue",
            "noCreation",
            "inconsistentValue",
            "resourceUnavailable",
            "commitFailed",
            "undoFailed",
            "authorizationError",
            "notWritable",
            "inconsistentName",
        ]
    )
)


# --- values -----------------------------------------------------------------------------------


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(arc) for arc in oid.split("."))


def _varbind(endpoint: Endpoint, varbind: Any) -> tuple[str, Value]:
    """One answered variable as (OID, observation value); an object the MIB types otherwise
    than the agent answered is a protocol error (see `_MIB_TYPES`)."""
    name, value = str(varbind[0]), varbind[1]
    column, _, _ = name.rpartition(".")
    known = _MIB_TYPES.get(name) or _MIB_TYPES.get(column)
    absent = isinstance(value, rfc1905.NoSuchObject | rfc1905.NoSuchInstance | rfc1905.EndOfMibView)
    if known is not None and not absent and value.tagSet != known[1].tagSet:
        what, expected = known
        raise ProtocolFailure(
            f"{endpoint.label} answered {name} ({what}) with {type(value).__name__}, where the"
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
