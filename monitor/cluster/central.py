"""The central engine's source of results: what the agents published to the results stream
(monitor.cluster.stream), read through a durable JetStream pull consumer and handed to a
`Monitor` that runs no scheduler of its own (`Monitor(source=...)`).

At least once, and never counted twice. A message is acknowledged once the engine has settled
its result (shown and, with history on, stored): a central that dies before that gets it again.
So one can arrive twice: redelivered after a crash between the store and the ack, after
`ACK_WAIT` without an ack, or published twice by an agent beyond the stream's duplicate window.
A result whose (check, started_at) is not newer than the last one taken for that check (from
the history at start, from this run after) is therefore dropped, acknowledged and counted as a
duplicate: the state engine never counts one run twice and the history never stores it twice.
A check seen from several vantage points counts that per vantage point, and the engine gets
the combination of each one's latest result (monitor.engine.quorum) instead of the result.

Anything else that is not a result of a check of this central's own inventory is terminated
(`term`: JetStream never redelivers it), counted per `Rejection`, and logged at most once a
minute per kind; nothing a publisher sends can stop the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.api.readers import RecordError, result_from_record
from monitor.cluster.admission import Admission
from monitor.cluster.arrivals import StreamArrivals
from monitor.cluster.assignment import implied_vantage
from monitor.cluster.connection import connect_options, connected_server, trouble
from monitor.cluster.stream import (
    AGENT_HEADER,
    MSG_ID,
    PREFIXES,
    SCHEMA,
    SCHEMA_HEADER,
    VANTAGE_HEADER,
)
from monitor.config.cluster import NatsConfig
from monitor.config.inventory import Check
from monitor.core.logs import Throttle
from monitor.core.model import ProbeResult
from monitor.core.text import printable
from monitor.engine.quorum import Vantages, seen_from_several
from monitor.store.history import HistoryStore

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

log = logging.getLogger(__name__)

DURABLE = "central"  # with the central's name after it: each central reads every result
BATCH = 256  # messages asked for at once
# Seconds a fetch waits for the first message; after one that brought nothing, alerting is told
# how far the stream is taken (StreamArrivals.quiet).
FETCH_WAIT = 1.0
# Seconds before JetStream redelivers a message not acknowledged: how long what a crashed
# central held waits for the next one. One the engine is slow to settle comes twice, and the
# second is dropped as a duplicate.
ACK_WAIT = 10.0
MAX_UNSETTLED = 2048  # taken, not yet settled: beyond it the consumer waits for the engine
LOG_INTERVAL = 60.0  # a line per kind of rejection at most this often
RETRY_PAUSE = 1.0  # after a failed fetch (NATS away: nats-py reconnects meanwhile)
RECONNECT_WAIT = 1  # seconds between nats-py's attempts to connect


class Rejection(enum.StrEnum):
    """Why a message on the results stream was refused."""

    MALFORMED = "malformed"  # not JSON, or not a result record
    SCHEMA = "schema"  # another record schema than this central reads
    UNKNOWN_CHECK = "unknown check"  # a check this central's inventory does not have
    FORGED = "forged"  # its subject, headers and record disagree about who sent what
    UNASSIGNED = "not assigned"  # from an agent not serving the vantage point it names


@dataclass(frozen=True, slots=True)
class Taken:
    """A result handed to the engine and not yet settled: whose run of which check."""

    check_id: str
    vantage: str
    started_at: float


class Rejected(Exception):
    def __init__(self, kind: Rejection, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ConsumerFigures:
    """What the consumer has done since it started."""

    taken: int  # results handed to the engine
    settled: int  # of those, acknowledged once the engine settled them
    duplicates: int  # results not newer than the last of their check: dropped, acknowledged
    rejected: Mapping[Rejection, int]  # terminated messages, per kind


def durable_name(central: str) -> str:
    """The durable consumer of the central named `central`: its own, so that every central
    reads every result (one shared would split them among the centrals)."""
    return f"{DURABLE}-{central}"


@dataclass(frozen=True, slots=True)
class ConsumerBacklog:
    """What the server holds for the consumer, from its consumer info."""

    pending: int  # in the stream, not delivered to this consumer yet
    unacknowledged: int  # delivered, not acknowledged yet


async def connect(config: NatsConfig) -> Client:
    """A connection to NATS, tried again and again until it is made (a central waits for its
    NATS) and kept up by nats-py after that. Its troubles are logged in commwatch's words, at
    most once a minute each, never with the library's message (it may quote the server)."""
    from nats.aio.client import Client

    throttle = Throttle(LOG_INTERVAL)

    async def troubled(exc: Exception) -> None:
        what = trouble(exc, config.url, "central")
        if throttle.let_through(what) is not None:
            log.warning("%s; trying again", what)

    server = [config.url]  # the one connected to last (of a cluster: a node), once known

    async def disconnected() -> None:
        if client.is_closed or client.is_draining:
            return  # its own stop: nothing to reconnect
        log.warning("disconnected from NATS at %s; reconnecting", server[0])

    async def reconnected() -> None:
        server[0] = connected_server(client, config)
        log.warning("connected to NATS at %s again", server[0])

    client = Client()
    await client.connect(
        config.servers,
        name="commwatch-central",
        allow_reconnect=True,
        max_reconnect_attempts=-1,  # the first connection too
        reconnect_time_wait=RECONNECT_WAIT,
        connect_timeout=2,
        error_cb=troubled,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        **connect_options(config),
    )
    server[0] = connected_server(client, config)
    return client


def last_started(history: Path) -> dict[str, float]:
    """When each check's latest stored result started: what a restarted central has taken."""
    with HistoryStore(history) as store:
        return store.last_started()


class ResultConsumer:
    """A `ResultSource` for `Monitor`: the results stream's messages for `checks`, in stream
    order, through the durable consumer `durable` of `stream`. `history`: the engine's history
    database, read at start for what it already holds; None without history. `admission`:
    who may report what (monitor.cluster.admission); None admits every agent."""

    def __init__(
        self,
        js: JetStreamContext,
        checks: Iterable[Check],
        *,
        stream: str,
        history: Path | None,
        durable: str = DURABLE,
        admission: Admission | None = None,
    ) -> None:
        self._js = js
        self._admission = admission
        self._checks = {check.ref.check_id: check for check in checks}
        self._stream = stream
        self._history = history
        self._durable = durable
        self._stored: dict[str, float] = {}  # the history's last start per check
        # Per (check, vantage point); the vantage point "" for a check seen from one.
        self._last: dict[tuple[str, str], float] = {}
        self._unsettled: dict[int, tuple[Taken, Msg]] = {}  # id(result taken) -> its message
        # The unsettled runs, each with its message's stream sequence.
        self._in_flight: dict[Taken, int] = {}
        self._vantages = Vantages()
        self._room = asyncio.Event()
        self._room.set()
        # Acks and terms not sent yet, in order, and the task sending them (while there are).
        self._replies: deque[Callable[[], Awaitable[None]]] = deque()
        self._replying: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._throttle = Throttle(LOG_INTERVAL)
        self._taken = self._settled = self._duplicates = 0
        self._rejected: Counter[Rejection] = Counter()
        self.arrivals = StreamArrivals()  # when each result reached the stream, for alerting

    def figures(self) -> ConsumerFigures:
        return ConsumerFigures(
            taken=self._taken,
            settled=self._settled,
            duplicates=self._duplicates,
            rejected=dict(self._rejected),
        )

    async def backlog(self, timeout: float) -> ConsumerBacklog | None:
        """The server's figures of this consumer; None when it does not answer in `timeout`
        seconds (NATS away, the consumer not made yet)."""
        import nats.errors

        try:
            info = await self._js.consumer_info(self._stream, self._durable, timeout=timeout)
        except (nats.errors.Error, TimeoutError):  # nats.js's errors are nats.errors.Error
            return None
        return ConsumerBacklog(info.num_pending or 0, info.num_ack_pending or 0)

    def stop(self) -> None:
        self._stopped.set()

    async def run(self, take: Callable[[ProbeResult], None]) -> None:
        if self._stopped.is_set():
            return
        import nats.errors

        if self._history is not None:
            self._stored = await asyncio.to_thread(last_started, self._history)
        subscription = await self._subscribe()
        stopped = asyncio.create_task(self._stopped.wait())
        try:
            while not self._stopped.is_set():
                if not await _unless_stopped(asyncio.create_task(self._room.wait()), stopped):
                    return
                # Stopped while fetching: what it would have brought stays unacknowledged, to
                # be redelivered (or dropped as a duplicate).
                fetching = asyncio.create_task(subscription.fetch(BATCH, timeout=FETCH_WAIT))
                if not await _unless_stopped(fetching, stopped):
                    return
                fetched = await self._fetched(fetching)
                if not fetched:
                    await self.arrivals.quiet(subscription)
                for msg in fetched:
                    self._handle(msg, take)
        finally:
            stopped.cancel()
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()  # the durable consumer stays

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        """The durable consumer of every subject of the stream: the agents' own, and those
        it sources from the sites' leaf nodes (monitor.cluster.stream)."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            # A central's first start takes what the stream kept from before it.
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT,
            max_ack_pending=2 * MAX_UNSETTLED,
        )
        resume = await self._unfiltered()
        if resume is not None:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = resume
        # nats-py makes the consumer filter what it is given: "" is no filter.
        return await self._js.pull_subscribe(
            "", durable=self._durable, stream=self._stream, config=config
        )

    async def _unfiltered(self) -> int | None:
        """A consumer of an earlier commwatch, which took `commwatch.results.>` alone, deleted
        for one of every subject to be made in its place (NATS 2.9 changes no consumer's
        filter): the stream sequence the new one starts from, the first the old one had not
        acknowledged. None when there was none such."""
        from nats.js.errors import NotFoundError

        try:
            info = await self._js.consumer_info(self._stream, self._durable)
        except NotFoundError:
            return None
        if not info.config.filter_subject:
            return None
        resume = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
        await self._js.delete_consumer(self._stream, self._durable)
        log.warning(
            "consumer %s took only %s: made again for every subject of stream %s, from its "
            "sequence %d on (the first not acknowledged)",
            self._durable,
            printable(info.config.filter_subject),
            self._stream,
            resume,
        )
        return resume

    async def _fetched(self, fetching: asyncio.Task[list[Msg]]) -> list[Msg]:
        import nats.errors

        try:
            return fetching.result()
        except TimeoutError:
            return []  # nothing published meanwhile
        except nats.errors.ConnectionClosedError:
            raise
        except nats.errors.Error as exc:
            if self._throttle.let_through("fetch") is not None:
                log.warning("cannot fetch results from NATS (%s); trying again", exc)
            await asyncio.sleep(RETRY_PAUSE)
            return []

    def _handle(self, msg: Msg, take: Callable[[ProbeResult], None]) -> None:
        arrived = self.arrivals.handled(msg)
        try:
            result, vantage = self._read(msg)
        except Rejected as rejected:
            self._reject(msg, rejected)
            return
        check_id = result.check.check_id
        key = (check_id, vantage)
        # After a restart the history knows each check's last start, not each vantage point's.
        last = self._last.get(key, self._stored.get(check_id))
        taken = Taken(check_id, vantage, result.started_at)
        if last is not None and result.started_at <= last:
            self._duplicates += 1
            # A delivery again of a message still on its way to the store is acknowledged
            # when it is stored, not before: an ack of either delivery acknowledges the
            # message. Another message of the same run (published twice) is acknowledged now,
            # or it would come back after ACK_WAIT and be counted again.
            if self._in_flight.get(taken) != _sequence(msg):
                self._reply(msg.ack)
            return
        self._in_flight[taken] = _sequence(msg)
        self._last[key] = result.started_at
        if vantage:
            # Judged as of when it reached the stream, not by this central's clock: every
            # central, keeping up or catching up, combines the same results alike.
            result = self._vantages.take(self._checks[check_id], vantage, result, arrived)
        self._unsettled[id(result)] = (taken, msg)
        if len(self._unsettled) >= MAX_UNSETTLED:
            self._room.clear()
        self._taken += 1
        take(result)

    def settled(self, result: ProbeResult) -> None:
        entry = self._unsettled.pop(id(result), None)
        if entry is None:
            return
        self._in_flight.pop(entry[0], None)
        self._settled += 1
        self._reply(entry[1].ack)
        if len(self._unsettled) < MAX_UNSETTLED:
            self._room.set()

    def _read(self, msg: Msg) -> tuple[ProbeResult, str]:
        """The message's result and, for a check seen from several vantage points, which one
        it is from (else "")."""
        headers = msg.headers or {}
        schema = headers.get(SCHEMA_HEADER)
        if schema != SCHEMA:
            raise Rejected(Rejection.SCHEMA, f"schema {schema!r}, this central reads {SCHEMA}")
        tokens = msg.subject.split(".")
        agent = headers.get(AGENT_HEADER)
        if len(tokens) != 4 or ".".join(tokens[:2]) not in PREFIXES or tokens[3] != agent:
            raise Rejected(Rejection.FORGED, f"agent {agent!r} does not match the subject")
        try:
            record = json.loads(msg.data)
        except (ValueError, UnicodeDecodeError):
            raise Rejected(Rejection.MALFORMED, "the data is not JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get("check_id"), str):
            raise Rejected(Rejection.MALFORMED, "the data is not a result record")
        check = self._checks.get(record["check_id"])
        if check is None:
            raise Rejected(Rejection.UNKNOWN_CHECK, f"check {record['check_id']!r}")
        ref = check.ref
        try:
            result = result_from_record(record, ref)
        except RecordError as exc:
            raise Rejected(Rejection.MALFORMED, str(exc)) from None
        claimed = (record.get("site_id"), record.get("link_id"), record.get("kind"), tokens[2])
        if claimed != (ref.site_id, ref.link_id, ref.kind, ref.site_id):
            raise Rejected(Rejection.FORGED, f"{ref.check_id!r} is not of that site, link, kind")
        # The id the agent gave it (monitor.cluster.stream.message_id): its name, the check's.
        if not str(headers.get(MSG_ID, "")).startswith(f"{agent}.{ref.check_id}."):
            raise Rejected(Rejection.FORGED, f"the message id is not {agent}'s for that check")
        if result.vantage:
            # Only a central combines: a vantage list from an agent would be shown as though.
            raise Rejected(Rejection.FORGED, "an agent's result has no vantage points")
        vantage = headers.get(VANTAGE_HEADER) or implied_vantage(check, str(agent))
        if self._admission is not None:
            refused = self._admission.refusal(check, str(agent), vantage, result.started_at)
            if refused is not None:
                raise Rejected(Rejection.UNASSIGNED, refused)
        if not seen_from_several(check):
            return result, ""
        if vantage not in check.vantage:
            raise Rejected(Rejection.UNASSIGNED, f"{ref.check_id!r} is not seen from {vantage!r}")
        return result, vantage

    def _reject(self, msg: Msg, rejected: Rejected) -> None:
        self._rejected[rejected.kind] += 1
        held = self._throttle.let_through(rejected.kind)
        if held is not None:
            log.warning(
                "rejected a %s message on %s: %s (%d more of this kind since the last line)",
                rejected.kind,
                msg.subject,
                rejected.detail,
                held,
            )
        self._reply(msg.term)

    def _reply(self, reply: Callable[[], Awaitable[None]]) -> None:
        """Acknowledge or terminate a message; sent in the background, in order of calls. One
        task sends every reply queued while it runs: a task per reply cost the consumer more
        than the reply itself."""
        self._replies.append(reply)
        if self._replying is None or self._replying.done():
            self._replying = asyncio.create_task(self._send_replies(), name="commwatch-acks")

    async def _send_replies(self) -> None:
        while self._replies:
            await _send(self._replies.popleft())

    async def aclose(self) -> None:
        """Wait for every acknowledgement made so far to be handed to the connection (drain or
        close the connection after this, and they are sent)."""
        if self._replying is not None:
            await self._replying
        figures = self.figures()
        log.info(
            "results consumer: %d taken, %d duplicates dropped, rejected %s",
            figures.taken,
            figures.duplicates,
            dict(figures.rejected) or "none",
        )


def _sequence(msg: Msg) -> int:
    """The message's place in the stream: the same for each delivery of one message."""
    return int(msg.metadata.sequence.stream)


async def _send(reply: Callable[[], Awaitable[None]]) -> None:
    import nats.errors

    try:
        await reply()
    except nats.errors.Error as exc:
        # Not acknowledged: JetStream redelivers it after ACK_WAIT, and it is dropped then as
        # a duplicate (a terminated one is rejected again).
        log.info("a reply to NATS was not sent (%s)", type(exc).__name__)


async def _unless_stopped(task: asyncio.Task[object], stopped: asyncio.Task[object]) -> bool:
    """Wait for `task` unless `stopped` comes first (then `task` is cancelled); whether `task`
    finished."""
    await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return True
    task.cancel()
    # Whatever it ends with now (nats-py may turn the cancellation into its own error) is
    # of no interest: the run is stopping.
    await asyncio.gather(task, return_exceptions=True)
    return False
