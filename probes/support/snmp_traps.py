"""SNMP notifications received: traps and informs, through pysnmp's notification receiver
(RFC 3413 §3.4) on an engine and a UDP socket of their own.

pysnmp decides what it accepts (the communities and users it is given; a user's keys localized
to each sender engine id for traps, to this engine's own id for informs) and acknowledges every
inform it accepts. This module tells the caller, for each datagram, either the notification it
carried (`Notification`) or why it was refused (`Reason`), read from pysnmp's own statistics
counters around the datagram (RFC 3412/3414/3418: snmpInBadCommunityNames,
usmStatsWrongDigests, ...), since pysnmp drops a refused message without a word.

A sender cannot make it work without bound: datagrams beyond a token bucket per source address
(`per_source_rate`) and one for all sources (`total_rate`) are dropped before they are decoded,
which is where the cost is (about half a millisecond for v2c, more with SNMPv3 privacy); the
buckets are kept for at most `MAX_SOURCES` addresses. The kernel's receive buffer bounds what
waits to be read; asyncio reads one datagram per turn of the event loop, so probes keep theirs.
"""

from __future__ import annotations

import enum
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902
from pysnmp.proto.api import v2c

from monitor.core import logs
from monitor.core.model import ObservationValue
from monitor.core.secrets import SecretRef
from probes.support import pysnmp_compat
from probes.support.snmp_credentials import Credentials, Keyring
from probes.support.snmp_values import SYS_UPTIME, scalar

log = logging.getLogger(__name__)

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
# snmpTrapCommunity.0 (RFC 3584): a v1 trap's community, which pysnmp adds when it turns the
# trap into a v2 one. It is the secret itself: never kept.
SNMP_TRAP_COMMUNITY = "1.3.6.1.6.3.18.1.4.0"
MAX_VARBINDS = 64  # kept of one notification; a datagram holds at most ~1,400 anyway
MAX_SOURCES = 4096  # addresses whose rate is tracked; beyond, the longest known is forgotten
RECEIVE_BUFFER = 4 * 1024 * 1024
_REQUEST = "rfc3412.receiveMessage:request"
_USM_INCOMING = "rfc3414.processIncomingMsg"
_VERSIONS = {0: "1", 1: "2c", 3: "3"}
_LEVELS = {"noAuthNoPriv": 1, "authNoPriv": 2, "authPriv": 3}  # RFC 3411 SnmpSecurityLevel


class Reason(enum.StrEnum):
    """Why a notification was not taken (the `reason` label of
    commwatch_traps_rejected_total)."""

    COMMUNITY = "community"  # a community the traps: section does not list
    USER = "user"  # an SNMPv3 user it does not list (for traps: for the sender's engine id)
    AUTH = "auth"  # a wrong authentication passphrase or protocol, or security level
    PRIV = "priv"  # cannot be decrypted: a wrong privacy passphrase or protocol
    TIME_WINDOW = "time_window"  # an inform outside this engine's time window (a replay?)
    MALFORMED = "malformed"  # not SNMP, or a version or security model not spoken
    NOT_NOTIFICATION = "not_notification"  # SNMP, but not a trap or inform (a GET)
    RATE = "rate"  # beyond its source's rate: dropped undecoded
    OVERLOAD = "overload"  # beyond the rate of all sources together: dropped undecoded
    UNKNOWN_SOURCE = "unknown_source"  # accepted, but from no device the inventory watches
    DROPPED = "dropped"  # dropped by pysnmp for a reason it does not count


# pysnmp's counters, and the reason each one's rise means. An SNMPv3 sender's engine-id
# discovery (usmStatsUnknownEngineIDs, answered with a report) is no refusal: it comes first
# in every inform exchange.
_COUNTERS: tuple[tuple[str, str, Reason | None], ...] = (
    ("__SNMPv2-MIB", "snmpInBadCommunityNames", Reason.COMMUNITY),
    ("__SNMPv2-MIB", "snmpInASNParseErrs", Reason.MALFORMED),
    ("__SNMPv2-MIB", "snmpInBadVersions", Reason.MALFORMED),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames", Reason.USER),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests", Reason.AUTH),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels", Reason.AUTH),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors", Reason.PRIV),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows", Reason.TIME_WINDOW),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs", None),
    ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels", Reason.MALFORMED),
    ("__SNMP-MPD-MIB", "snmpInvalidMsgs", Reason.MALFORMED),
    ("__SNMP-MPD-MIB", "snmpUnknownPDUHandlers", Reason.NOT_NOTIFICATION),
)


@dataclass(frozen=True, slots=True)
class Notification:
    """One trap or inform pysnmp accepted."""

    source: tuple[str, int]  # the address and port the datagram came from
    received_at: float  # POSIX seconds
    version: str  # "1", "2c" or "3"
    inform: bool  # an InformRequest, acknowledged by now; else a trap
    user: str | None  # the SNMPv3 user; None for a community (which is never kept)
    engine_ids: tuple[str, ...]  # hex: the sender's SNMPv3 engine ids it carried
    trap_oid: str  # snmpTrapOID.0: what happened
    uptime: int | None  # the sender's sysUpTime.0, hundredths of a second
    varbinds: tuple[tuple[str, ObservationValue], ...]  # the rest, in order


@dataclass(frozen=True)
class Accepted:
    """Whose notifications pysnmp is to take: communities (v1 and v2c), and SNMPv3 users with
    the engine ids of the devices whose traps they sign."""

    communities: Sequence[SecretRef] = ()
    users: Sequence[tuple[Credentials, tuple[bytes, ...]]] = ()


@dataclass(frozen=True)
class Limits:
    per_source_rate: float  # datagrams a second from one address
    total_rate: float  # from all addresses together


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens, self.at = tokens, at


class Buckets:
    """Token buckets, one per key (and its capacity one second's worth): `take` says whether
    one more may pass now. At most `max_keys` are kept; a new key beyond them makes the oldest
    one forgotten, which only ever lets that key start afresh."""

    def __init__(self, rate: float, max_keys: int) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: dict[Any, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Any, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key] = _Bucket(self.rate, now)
        else:
            bucket.tokens = min(self.rate, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


class ListenError(Exception):
    """The receiver cannot listen (the address is taken, a port needs privileges, a secret
    cannot be read)."""


Deliver = Callable[[Notification], None]
Reject = Callable[[tuple[str, int], Reason], None]


class TrapListener:
    """pysnmp's notification receiver on one UDP address. `bind` takes the address at once (so
    a taken one fails before anything runs); `start` begins reading, in the running loop. Each
    datagram ends in one call: `deliver` with its notification or `reject` with the reason."""

    def __init__(
        self,
        accepted: Accepted,
        limits: Limits,
        *,
        deliver: Deliver,
        reject: Reject,
        local_engine_id: bytes | None = None,
    ) -> None:
        self._deliver = deliver
        self._reject = reject
        self._sources = Buckets(limits.per_source_rate, MAX_SOURCES)
        self._all = Buckets(limits.total_rate, 1)
        self._socket: socket.socket | None = None
        self._bugs = logs.BugLog(log)
        self.engine = (
            engine.SnmpEngine()
            if local_engine_id is None
            else engine.SnmpEngine(rfc1902.OctetString(local_engine_id))
        )
        self.engine_id = bytes(self.engine.snmpEngineID)
        self._counters = [
            (pysnmp_compat.statistics(self.engine, module, (name,), "tell why")[0], reason)
            for module, name, reason in _COUNTERS
        ]
        self._heard: Notification | None = None  # what the datagram being handled carried
        self._refused: Reason | None = None  # or why it was refused once pysnmp accepted it
        self._security_engine_id: bytes | None = None
        # The security level each SNMPv3 user was given, per engine its keys are for: pysnmp's
        # receiver takes any level a user's keys allow, noAuthNoPriv included.
        self._levels: dict[tuple[str, bytes], int] = {}
        self._accept(accepted)
        self.engine.observer.register_observer(self._usm_incoming, _USM_INCOMING)
        ntfrcv.NotificationReceiver(self.engine, self._notified)
        pysnmp_compat.watch_received(self.engine, self._watched)

    def _accept(self, accepted: Accepted) -> None:
        for index, community in enumerate(accepted.communities, 1):
            try:
                name = community.reveal_bytes()
            except ValueError as exc:  # OptionError: unset, unreadable (never the value)
                raise ListenError(f"traps community {community}: {exc}") from None
            config.add_v1_system(self.engine, f"commwatch-trap-community-{index}", name)
        keyring, informs = Keyring(), set()
        for credentials, engine_ids in accepted.users:
            try:
                auth_protocol, auth_key, priv_protocol, priv_key = keyring.keys(credentials)
            except ValueError as exc:
                raise ListenError(f"traps user {credentials.user!r}: {exc}") from None
            # The first entry of a name also takes informs, signed for this engine's own id.
            targets: list[bytes | None] = list(engine_ids)
            if credentials.user not in informs:
                informs.add(credentials.user)
                targets.append(None)
            level = _LEVELS[credentials.level]
            for engine_id in targets:
                self._levels[str(credentials.user), engine_id or self.engine_id] = level
                config.add_v3_user(
                    self.engine,
                    credentials.user,
                    auth_protocol or config.USM_AUTH_NONE,
                    auth_key,
                    priv_protocol or config.USM_PRIV_NONE,
                    priv_key,
                    securityEngineId=None if engine_id is None else rfc1902.OctetString(engine_id),
                    authKeyType=config.USM_KEY_TYPE_MASTER,
                    privKeyType=config.USM_KEY_TYPE_MASTER,
                )

    # --- the socket ---------------------------------------------------------------------------

    def bind(self, host: str, port: int) -> tuple[str, int]:
        """Take the address now (not read yet: the kernel holds what comes meanwhile); the
        address bound (port 0 asks for any free one)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ListenError(_bind_failure(host, port, exc)) from None
        self._socket = sock
        bound = sock.getsockname()
        return str(bound[0]), int(bound[1])

    def start(self) -> None:
        """Begin reading the bound socket, in the running event loop."""
        if self._socket is None:
            raise RuntimeError("bind() first")
        ipv6 = self._socket.family == socket.AF_INET6
        transport = udp6.Udp6AsyncioTransport() if ipv6 else udp.UdpAsyncioTransport()
        domain = udp6.DOMAIN_NAME if ipv6 else udp.DOMAIN_NAME
        config.add_transport(self.engine, domain, transport.open_server_mode(sock=self._socket))

    async def close(self) -> None:
        self.engine.close_dispatcher()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # --- each datagram ------------------------------------------------------------------------

    def _watched(self, receive: pysnmp_compat.Receive) -> pysnmp_compat.Receive:
        def watched(snmp_engine: Any, domain: Any, address: Any, message: bytes) -> Any:
            source = (str(address[0]), int(address[1]))
            now = time.monotonic()
            if not self._sources.take(source[0], now):
                self._told(source, Reason.RATE)
                return b""
            if not self._all.take(None, now):
                self._told(source, Reason.OVERLOAD)
                return b""
            before = [int(counter.syntax) for counter, _ in self._counters]
            self._heard, self._refused, self._security_engine_id = None, None, None
            try:
                receive(snmp_engine, domain, address, message)
            except Exception as exc:  # a datagram must never take the dispatcher down
                self._bugs.report(f"SNMP notification from {source[0]}", exc)
                self._told(source, Reason.MALFORMED)
                return b""
            heard, self._heard = self._heard, None
            if heard is not None:
                self._handed(heard)
                return b""
            if self._refused is not None:
                self._told(source, self._refused)
                return b""
            risen = [
                reason
                for (counter, reason), count in zip(self._counters, before, strict=True)
                if int(counter.syntax) != count
            ]
            if risen == [None]:
                return b""  # an SNMPv3 sender learning this engine's id: answered already
            self._told(source, next((r for r in risen if r is not None), Reason.DROPPED))
            return b""

        return watched

    def _handed(self, notification: Notification) -> None:
        try:
            self._deliver(notification)
        except Exception as exc:  # the caller's fault; the receiver goes on
            self._bugs.report(f"handling an SNMP notification from {notification.source[0]}", exc)

    def _told(self, source: tuple[str, int], reason: Reason) -> None:
        try:
            self._reject(source, reason)
        except Exception as exc:
            self._bugs.report("counting a refused SNMP notification", exc)

    def _usm_incoming(self, _engine: Any, _point: str, variables: Any, _ctx: Any) -> None:
        # The context also holds the user's localized keys: only the sender's engine id is read.
        engine_id = variables.get("securityEngineId")
        self._security_engine_id = None if engine_id is None else bytes(engine_id)

    def _notified(
        self,
        snmp_engine: Any,
        _state_reference: Any,
        context_engine_id: Any,
        _context_name: Any,
        varbinds: Any,
        _cb_ctx: Any,
    ) -> None:
        request = snmp_engine.observer.get_execution_context(_REQUEST)
        address = request["transportAddress"]
        model = int(request["messageProcessingModel"])
        if model == 3:
            engine_id = self._security_engine_id or b""
            wanted = self._levels.get((str(request["securityName"]), engine_id), 3)
            if int(request["securityLevel"]) < wanted:
                # Signed or encrypted keys were given for this user: a message without them is
                # anyone's. (An inform has been acknowledged by now; what it says is not taken.)
                self._refused = Reason.AUTH
                return
        engine_ids = [self._security_engine_id, bytes(context_engine_id)]
        values = [(str(name), scalar(value)) for name, value in varbinds]
        found = dict(values[:3])
        uptime = found.get(SYS_UPTIME)
        self._heard = Notification(
            source=(str(address[0]), int(address[1])),
            received_at=time.time(),
            version=_VERSIONS.get(model, str(model)),
            inform=request["pdu"].tagSet == v2c.InformRequestPDU.tagSet,
            user=str(request["securityName"]) if model == 3 else None,
            engine_ids=tuple(
                dict.fromkeys(
                    eid.hex() for eid in engine_ids if eid and eid != self.engine_id and model == 3
                )
            ),
            trap_oid=str(found.get(SNMP_TRAP_OID, "")),
            uptime=uptime if isinstance(uptime, int) else None,
            varbinds=tuple(
                (name, value)
                for name, value in values
                if name not in (SYS_UPTIME, SNMP_TRAP_OID, SNMP_TRAP_COMMUNITY)
            )[:MAX_VARBINDS],
        )


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    why = exc.strerror or type(exc).__name__
    hint = ""
    if isinstance(exc, PermissionError) and port < 1024:
        hint = (
            f" (port {port} needs root or CAP_NET_BIND_SERVICE; the default 1162 does not:"
            " point the devices at it, or forward 162 to it)"
        )
    elif exc.errno == 98:  # EADDRINUSE
        hint = " (another trap receiver, snmptrapd or a second commwatch, has it)"
    return f"cannot listen for SNMP traps on {where}: {why}{hint}"
