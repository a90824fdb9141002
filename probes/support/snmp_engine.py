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

Keys and communities come from probes/support/snmp_credentials.py, values are read by
snmp_values.py, and what an unclean answer means is said by snmp_outcomes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config
from pysnmp.hlapi.v3arch.asyncio import (
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    get_cmd,
)
from pysnmp.proto import errind

from monitor.core.errors import ProtocolFailure
from monitor.core.options import format_host_port
from probes.base import SharedResources
from probes.support import pysnmp_compat
from probes.support.snmp_credentials import Credentials, Keyring, community
from probes.support.snmp_noise import NoiseLog
from probes.support.snmp_outcomes import Outcome, raise_for, unanswered
from probes.support.snmp_values import (
    ABSENT,
    MIB_TYPES,
    SYS_UPTIME,
    VarBinds,
    oid_key,
    typed_varbind,
)

log = logging.getLogger(__name__)

# Exchanges in flight on the engine. Beyond what the CPU decodes within a timeout, answers wait
# in the socket while their timers run out; better they wait here, unsent.
MAX_IN_FLIGHT = 64
RECEIVE_BUFFER = 4 * 1024 * 1024
MAX_WALK_ROWS = 4096
_DISCOVERY_USER = "commwatch-discovery"


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
    def domain(self) -> tuple[int, ...]:
        domain: tuple[int, ...] = udp6.DOMAIN_NAME if ":" in self.address else udp.DOMAIN_NAME
        return domain

    @property
    def transport_address(self) -> tuple[Any, ...]:
        return (self.address, self.port, 0, 0) if ":" in self.address else (self.address, self.port)


@dataclass(frozen=True)
class Reply:
    """What one exchange read, and what it learnt about the agent's engine on the way."""

    varbinds: VarBinds
    engine_id: str | None  # hex, SNMPv3 only
    engine_id_changed: bool


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
        self._keyring = Keyring()
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
        domain = endpoint.domain
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
        return self._engine_ids.get(endpoint.domain, endpoint.transport_address)

    def forget_engine_id(self, endpoint: Endpoint) -> None:
        self._engine_ids.forget(endpoint.domain, endpoint.transport_address)

    async def close(self) -> None:
        self.engine.close_dispatcher()

    # --- requests ---------------------------------------------------------------------------

    def _target(self, endpoint: Endpoint) -> UdpTransportTarget | Udp6TransportTarget:
        self._open(endpoint)
        return pysnmp_compat.transport_target(
            endpoint.transport_address,
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
            return indication, status, index, [typed_varbind(endpoint.label, vb) for vb in varbinds]

        return await self._exchange(endpoint, credentials, send)

    async def walk(
        self, endpoint: Endpoint, credentials: Credentials, columns: Sequence[str]
    ) -> Reply:
        """GETBULK walks of table columns, each ending at the end of its column."""

        async def send(auth: Any, progress: Progress) -> Outcome:
            rows: VarBinds = []
            for column in columns:
                last = oid_key(column)
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
                        name, value = typed_varbind(endpoint.label, varbind)
                        if value in ABSENT:
                            continue
                        if oid_key(name) <= last:
                            # pysnmp would ask again from the same place until the row cap.
                            raise ProtocolFailure(
                                f"{endpoint.label} does not advance the walk of"
                                f" {MIB_TYPES[column][0]}: it answered {name} after"
                                f" {'.'.join(map(str, last))}"
                            )
                        last = oid_key(name)
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
                unanswered(endpoint.label, credentials)
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
            outcome = await send(community(credentials), progress)
            raise_for(
                outcome, endpoint.label, self._silence(endpoint, credentials, before, progress)
            )
            return Reply(outcome[3], None, False)

        owner = self._keyring.claims_user_name(credentials)

        async def attempt() -> Outcome:
            engine_id = self.engine_id(endpoint)
            if owner:
                outcome = await send(self._keyring.user(credentials, None), progress)
                if engine_id is None and self.engine_id(endpoint) is not None:
                    discovered.append(self.engine_id(endpoint))
                return outcome
            if engine_id is None:
                engine_id = await self._discover(endpoint, before)
                discovered.append(engine_id)
            return await send(self._keyring.user(credentials, engine_id), progress)

        known = self.engine_id(endpoint)
        outcome = await attempt()
        if isinstance(outcome[0], errind.RequestTimedOut | errind.UnknownEngineID):
            if not discovered:
                # A known agent gone quiet may have a new engine id (re-imaged): discover it
                # now rather than wait out the 300 s pysnmp would keep the old one.
                self.forget_engine_id(endpoint)
                outcome = await attempt()
            if discovered and isinstance(outcome[0], errind.RequestTimedOut):
                raise unanswered(endpoint.label, credentials)
        silence = self._silence(endpoint, credentials, before, progress)
        raise_for(outcome, endpoint.label, silence, credentials)
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
            raise_for((indication, 0, 0, []), endpoint.label, None)
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


async def runtime(shared: SharedResources) -> SnmpRuntime:
    """The run's shared SNMP runtime, made in the running loop on first use."""

    async def make() -> SnmpRuntime:
        return SnmpRuntime()

    async def close(item: SnmpRuntime) -> None:
        await item.close()

    return await shared.get("snmp.runtime", make, close)
