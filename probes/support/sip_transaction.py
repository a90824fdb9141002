"""The OPTIONS transaction of the sip probe, and the wait for the final response that answers it.

On UDP it is a non-INVITE client transaction (RFC 3261 §17.1.2.2): the request is retransmitted
when Timer E fires, first after T1, then after twice as long each time up to T2, and every T2
once a provisional response has come. On TCP and TLS the request is sent once, and the replies
framed by Content-Length. Either way the transaction ends at the first final response that
answers the request (its top Via branch, Call-ID and CSeq), at Timer F (64*T1), or at the
check's timeout, whichever comes first. Anything else that arrives is counted and ignored:
responses to other requests, requests, keepalives.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.core.errors import AnswerTimeout, ProtocolFailure, TlsFailure
from monitor.core.model import ObservationValue
from monitor.core.text import bounded_message
from probes.support.sip_message import (
    MalformedMessage,
    Message,
    OptionsRequest,
    OversizedMessage,
    Response,
    StreamFramer,
    parse_datagram,
)

_READ_CHUNK = 4096
_INBOX_SIZE = 64  # datagrams waiting to be read; a flood beyond it is dropped, not stored
_REASON_IN_MESSAGES = 60

Observations = dict[str, ObservationValue]


@dataclass(frozen=True)
class Timers:
    t1: float  # RFC 3261 T1: the first retransmission interval, and Timer F's unit
    t2: float  # the longest retransmission interval
    deadline: float  # on the event loop's clock: when the transaction gives up
    budget: float  # that, in seconds from the start, for the words of a timeout
    timer_f: bool = False  # whether Timer F set the budget, not the check's timeout


@dataclass(frozen=True)
class Answer:
    response: Response
    rtt_ms: float  # from the first transmission to the final response
    counts: Observations


class _Tally:
    """What a transaction saw on its way to a final response."""

    def __init__(self, request: OptionsRequest, seen: Observations) -> None:
        self.request = request
        self.seen = seen  # what the caller measured before (transport, TLS findings)
        self.started = time.perf_counter()
        self.retransmissions = 0
        self.provisional = 0
        self.ignored = 0
        self.last_provisional: Response | None = None

    def counts(self) -> Observations:
        return {
            "retransmissions": self.retransmissions,
            "provisional_responses": self.provisional,
            "ignored_messages": self.ignored,
        }

    def observations(self) -> Observations:
        return {**self.seen, **self.counts()}

    def read(self, parse: Callable[..., Message | None], *args: Any) -> Message | None:
        try:
            return parse(*args)
        except OversizedMessage as exc:
            raise ProtocolFailure(f"oversized response: {exc}", self.observations()) from None
        except MalformedMessage as exc:
            raise ProtocolFailure(f"malformed answer: {exc}", self.observations()) from None

    def final(self, message: Message) -> Answer | None:
        """The answer, when `message` is the final response to the request."""
        if not isinstance(message, Response) or not message.answers(self.request):
            self.ignored += 1
            return None
        if message.status < 200:
            self.provisional += 1
            self.last_provisional = message
            return None
        rtt_ms = round((time.perf_counter() - self.started) * 1000, 3)
        return Answer(message, rtt_ms, self.counts())

    def timed_out(self, timers: Timers) -> AnswerTimeout:
        provisional = self.last_provisional
        if provisional is not None:
            said = f"{provisional.status} {provisional.reason}".strip()
            words = f"only provisional responses ({bounded_message(said, _REASON_IN_MESSAGES)})"
        else:
            words = "no response"
        words += f" within {timers.budget:g}s" + (" (Timer F, 64*t1)" if timers.timer_f else "")
        if self.retransmissions:
            plural = "" if self.retransmissions == 1 else "s"
            words += f" after {self.retransmissions} retransmission{plural}"
        if self.ignored:
            words += (
                f"; ignored {self.ignored} message{'' if self.ignored == 1 else 's'} answering"
                " no request of this poll (another Via branch, Call-ID or CSeq)"
            )
        observations = self.observations()
        if provisional is not None:
            observations["provisional_status"] = provisional.status
        return AnswerTimeout(words, observations)


class _Inbox(asyncio.DatagramProtocol):
    """The datagrams of a connected UDP socket (only its peer's reach it), and its errors: a
    closed port's ICMP error arrives here as ConnectionRefusedError."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[bytes | OSError] = asyncio.Queue(_INBOX_SIZE)

    def datagram_received(self, data: bytes, _addr: tuple[str | int, ...]) -> None:
        if not self.items.full():
            self.items.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and not self.items.full():
            self.items.put_nowait(exc)


async def over_udp(
    address: str,
    port: int,
    make_request: Callable[[tuple[Any, ...]], OptionsRequest],
    limit: int,
    timers: Timers,
    seen: Observations,
) -> Answer:
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(_Inbox, remote_addr=(address, port))
    try:
        request = make_request(transport.get_extra_info("sockname"))
        wire = request.encode()
        tally = _Tally(request, seen)
        transport.sendto(wire)
        interval = timers.t1
        resend_at = loop.time() + interval
        while True:
            try:
                async with asyncio.timeout_at(min(resend_at, timers.deadline)):
                    item = await inbox.items.get()
            except TimeoutError:
                if loop.time() >= timers.deadline:
                    raise tally.timed_out(timers) from None
                # Timer E fired: send again, and wait twice as long (up to T2), or T2 once
                # the server said it is working on it.
                transport.sendto(wire)
                tally.retransmissions += 1
                interval = timers.t2 if tally.provisional else min(2 * interval, timers.t2)
                resend_at = loop.time() + interval
                continue
            if isinstance(item, OSError):
                raise item
            message = tally.read(parse_datagram, item, limit)
            answer = None if message is None else tally.final(message)
            if answer is not None:
                return answer
    finally:
        transport.close()


async def over_stream(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: OptionsRequest,
    limit: int,
    timers: Timers,
    seen: Observations,
) -> Answer:
    framer = StreamFramer(limit)
    tally = _Tally(request, seen)
    try:
        async with asyncio.timeout_at(timers.deadline):
            writer.write(request.encode())
            await writer.drain()
            while True:
                message = tally.read(framer.next)
                if message is None:
                    chunk = await reader.read(_READ_CHUNK)
                    if not chunk:
                        raise ProtocolFailure(
                            "the server closed the connection before a final response",
                            tally.observations(),
                        )
                    framer.feed(chunk)
                    continue
                answer = tally.final(message)
                if answer is not None:
                    return answer
    except TimeoutError:
        raise tally.timed_out(timers) from None
    except ssl.SSLError as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise TlsFailure(f"TLS failed after the handshake: {reason}", tally.observations()) from exc
    except ConnectionError as exc:
        raise ProtocolFailure(
            f"the connection failed before a final response: {exc.strerror or exc}",
            tally.observations(),
        ) from exc
