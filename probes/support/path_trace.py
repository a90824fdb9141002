"""One trace: probes with TTL 1, 2, 3 ... until the destination answers, a router says it is
unreachable, `max_hops` is passed or the time is up; who answered at each hop and how fast.

A hop's probes go out together; the next TTL's as soon as all of them are answered or `wait`
has passed, so a path of routers that answer costs a few round trips, and each silent hop
(a router that does not send time exceeded, or rate-limits it) costs `wait` once. Answers that
arrive late still count for the hop they belong to, told by their sequence number.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from probes.support.path_socket import REACHED, TIME_EXCEEDED, Answer, TraceSocket


@dataclass(frozen=True, slots=True)
class Hop:
    """One TTL: who answered (in the order first heard; more than one where the path is load
    balanced), each answer's round trip in ms, how many probes it was sent and what the last
    answer said (TIME_EXCEEDED, REACHED or the words of an unreachable; "" when silent)."""

    ttl: int
    addresses: tuple[str, ...]
    rtts_ms: tuple[float, ...]
    sent: int
    said: str

    @property
    def silent(self) -> bool:
        return not self.addresses


@dataclass(frozen=True, slots=True)
class Trace:
    hops: tuple[Hop, ...]
    reached: bool
    stopped_by: Hop | None  # the hop that said the destination is unreachable
    out_of_time: bool


@dataclass
class _Probes:
    sent: dict[int, tuple[int, float]] = field(default_factory=dict)  # sequence: (ttl, at)
    answers: dict[int, Answer] = field(default_factory=dict)  # sequence: the first answer
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, found: list[Answer]) -> None:
        for answer in found:
            sequence = answer.sequence
            if sequence < 0 and self.sent:  # a UDP reply: it answers the latest probe
                sequence = max(self.sent)
            if sequence in self.sent and sequence not in self.answers:
                self.answers[sequence] = answer
        self.arrived.set()

    def unanswered(self, ttl: int) -> int:
        return sum(1 for s, (t, _) in self.sent.items() if t == ttl and s not in self.answers)

    def final(self, ttl: int) -> bool:
        """Whether an answer at `ttl` ends the trace (the destination, or an unreachable)."""
        return any(
            self.sent[s][0] == ttl and a.kind != TIME_EXCEEDED for s, a in self.answers.items()
        )


async def trace(
    sock: TraceSocket, max_hops: int, probes_per_hop: int, wait: float, budget: float
) -> Trace:
    loop = asyncio.get_running_loop()
    probes = _Probes()
    deadline = time.perf_counter() + budget
    loop.add_reader(sock.fileno(), lambda: probes.take(sock.answers()))
    out_of_time = False
    try:
        for ttl in range(1, max_hops + 1):
            if time.perf_counter() >= deadline:
                out_of_time = True
                break
            for _ in range(probes_per_hop):
                sequence = len(probes.sent)
                probes.sent[sequence] = (ttl, time.perf_counter())
                sock.send(ttl, sequence)
            await _hop_answered(probes, ttl, min(deadline, time.perf_counter() + wait))
            if any(probes.final(t) for t in range(1, ttl + 1)):
                break
        probes.take(sock.answers())  # what arrived while the last wait ended
    finally:
        loop.remove_reader(sock.fileno())
    return _traced(probes, out_of_time)


async def _hop_answered(probes: _Probes, ttl: int, until: float) -> None:
    while probes.unanswered(ttl) and (left := until - time.perf_counter()) > 0:
        probes.arrived.clear()
        try:
            await asyncio.wait_for(probes.arrived.wait(), left)
        except TimeoutError:
            return


def _traced(probes: _Probes, out_of_time: bool) -> Trace:
    hops: list[Hop] = []
    last_ttl = max((ttl for ttl, _ in probes.sent.values()), default=0)
    for ttl in range(1, last_ttl + 1):
        hop = _hop(probes, ttl)
        hops.append(hop)
        if hop.said and hop.said != TIME_EXCEEDED:
            reached = hop.said == REACHED
            return Trace(tuple(hops), reached, None if reached else hop, out_of_time=False)
    return Trace(tuple(hops), False, None, out_of_time)


def _hop(probes: _Probes, ttl: int) -> Hop:
    addresses: list[str] = []
    rtts: list[float] = []
    said = ""
    for sequence, (sent_ttl, sent_at) in sorted(probes.sent.items()):
        answer = probes.answers.get(sequence)
        if sent_ttl != ttl or answer is None:
            continue
        if answer.source not in addresses:
            addresses.append(answer.source)
        rtts.append(round(max(0.0, answer.read_at - sent_at) * 1000, 3))
        # The destination or an unreachable outweighs a time exceeded at the same TTL.
        if said in ("", TIME_EXCEEDED):
            said = answer.kind
    sent = sum(1 for t, _ in probes.sent.values() if t == ttl)
    return Hop(ttl, tuple(addresses), tuple(rtts), sent, said)
