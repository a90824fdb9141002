"""The dashboard attached to an engine elsewhere (`commwatch tui --connect URL`).

The same app and screen as the local dashboard, fed from the engine's API instead of a
`Monitor` in this process: no probe runs here and no notification leaves from here. The
`Follower` (monitor.api.client) keeps the viewer attached; the `Mirror` (monitor.api.mirror)
turns the state document and each event into the results, events and `EngineState` the screen
already knows. Run now, pause and acknowledge go to the engine as requests with the operator's
token; what follows comes back on the event stream to every viewer, this one included. A
control the engine holds but its history has not stored yet (answered 202) is told as a
warning: an engine restart before its history catches up would forget it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from yarl import URL

from monitor.api.client import (
    ApiClient,
    ApiError,
    Connection,
    Document,
    Follower,
    stream_position,
)
from monitor.api.mirror import Mirror
from monitor.api.readers import RecordError, timestamp
from monitor.api.sse import SseEvent
from monitor.config.inventory import Check
from monitor.core.events import Event
from monitor.core.model import ProbeResult, Severity
from monitor.core.text import printable
from monitor.engine.state import EngineState
from tui.app import CommwatchApp, checks_text
from tui.messages import (
    Acknowledge,
    HistoryLoaded,
    ResultArrived,
    RunNow,
    TogglePause,
    Unacknowledge,
)
from tui.present import clock_text
from tui.state import HISTORY, TREND_POINTS, AckShown, HistoryLine

log = logging.getLogger(__name__)

HISTORY_CHECKS = 500  # beyond this many checks, no history is asked for: a request per check
COMMANDS_AT_ONCE = 8  # requests in flight for a command on many checks (a site's row)


@dataclass(frozen=True, slots=True)
class Answered:
    """What a command's request brought back: the change it made, as the event stream's message
    saying the same (None: the stream brings what follows, as a run now's result), and whether
    the engine's history has stored it (a run now has nothing to store)."""

    said: tuple[str, dict[str, Any]] | None = None
    stored: bool = True


Request = Callable[[ApiClient], Awaitable[Answered]]


async def _run_now(client: ApiClient, check_id: str) -> Answered:
    await client.run_now(check_id)  # 202 {"queued": true}, always: queued is all it says
    return Answered()


async def _set_paused(client: ApiClient, check_id: str, paused: bool) -> Answered:
    answer = await client.set_paused(check_id, paused)
    now = bool(answer.body.get("paused", paused))
    return Answered(("pause", {"check_id": check_id, "paused": now}), answer.stored)


async def _acknowledge(client: ApiClient, subject_id: str, comment: str, expires: str) -> Answered:
    answer = await client.acknowledge(subject_id, comment, expires)
    return Answered(("ack", {"subject_id": subject_id, "ack": answer.body}), answer.stored)


async def _unacknowledge(client: ApiClient, subject_id: str) -> Answered:
    answer = await client.unacknowledge(subject_id)
    return Answered(("ack", {"subject_id": subject_id, "ack": None}), answer.stored)


def _unstored_text(lead: str, unstored: int, answered: int) -> str:
    """The warning that `unstored` of the `answered` controls are in force in the engine but
    not in its history yet: what an engineer must know before relying on them."""
    again = "it" if unstored == 1 else "them"
    which = again if unstored == answered else f"{unstored} of them"
    return (
        f"{lead} In force, but the engine's history has not stored {which} yet (disk "
        f"stalled?): an engine restart would forget {again}."
    )


class RemoteApp(CommwatchApp):
    """The dashboard of one engine's API. `document` is its state document, read already (the
    command line reads it first, to fail at once when the engine cannot be reached). `checks`
    is a selection of the engine's (None: all of them): only those rows, and the links, sites
    and groups they belong to, and only their changes in the event log, are shown."""

    def __init__(
        self,
        url: URL,
        document: Document,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        clock: Callable[[], float] = time.time,
        checks: Iterable[Check] | None = None,
    ) -> None:
        mirror = Mirror(str(url))
        first = mirror.load(document)
        assert mirror.inventory is not None
        super().__init__(
            mirror.inventory,
            checks=checks,
            judged_by=mirror.inventory.checks,
            engine=False,
            history=False,
            alerts=False,
            clock=clock,
        )
        self.sub_title = str(url)
        self.url = url
        self.mirror = mirror
        self.connection: Connection | None = None
        self._first = first
        self._shown_subjects = self.board.subject_ids()
        self._recent_events = [e for e in mirror.recent_events if self._shows(e)]
        self._position = stream_position(document)
        self._token = token
        self._ca_file = ca_file
        self._client: ApiClient | None = None
        # When the newest result delivered of each check started (delivered: maybe not yet on
        # the board), so a document that follows a replay shows none of them twice.
        self._delivered: dict[str, float] = {}
        if mirror.started_at is not None:
            self.started_at = mirror.started_at  # "since": when the engine started

    def on_mount(self) -> None:
        # The base class's on_mount (after this one) installs the dashboard.
        self.call_after_refresh(self._start_following)

    def _start_following(self) -> None:
        self._show_document(self._first)
        self.run_worker(self._follow(), name="follower")
        if 0 < len(self.board.checks) <= HISTORY_CHECKS:
            self.run_worker(self._read_engine_history(), name="history")
        else:
            self.post_message(HistoryLoaded({}, {}, self._recent_events))

    async def _read_engine_history(self) -> None:
        """What the engine's store remembers from before what the document showed, in front
        of each check's sparkline and history, as a local dashboard reads its own store."""
        before = {r.check.check_id: r.started_at for r in self._first}
        latencies: dict[str, list[float | None]] = {}
        history: dict[str, list[HistoryLine]] = {}
        limit = asyncio.Semaphore(COMMANDS_AT_ONCE)
        async with ApiClient(self.url, token=self._token, ca_file=self._ca_file) as client:

            async def one(check_id: str) -> None:
                async with limit:
                    records = await client.history(check_id, TREND_POINTS)
                first = before.get(check_id, math.inf)
                older = [(r, line) for r in records if (line := _history_line(r)).at < first]
                latencies[check_id] = [_latency(r) for r, _ in older]
                history[check_id] = [line for _, line in older][-HISTORY:]

            check_ids = list(self.board.checks)
            try:
                await one(check_ids[0])  # alone: an engine without history says so once (503)
            except (ApiError, ValueError) as exc:
                log.debug("no history from the engine: %s", exc)
                self.post_message(HistoryLoaded({}, {}, self._recent_events))
                return
            outcomes = await asyncio.gather(*map(one, check_ids[1:]), return_exceptions=True)
        for outcome in outcomes:
            # A check whose history cannot be read starts its sparkline empty.
            unforeseen = not isinstance(outcome, ApiError | ValueError)
            if isinstance(outcome, BaseException) and unforeseen:
                raise outcome
        self.post_message(HistoryLoaded(latencies, history, self._recent_events))

    async def _follow(self) -> None:
        async with ApiClient(self.url, token=self._token, ca_file=self._ca_file) as client:
            self._client = client
            follower = Follower(
                client,
                on_document=self._engine_document,
                on_message=self._engine_message,
                on_connection=self._engine_link,
                clock=self.now,
            )
            follower.last_event_id = self._position
            await follower.run()

    # --- what the engine says ----------------------------------------------------------------

    def engine_state(self) -> EngineState | None:
        return self.mirror.state

    def _engine_document(self, document: Document) -> None:
        """After a resync: the engine's picture again (what the screen has seen is kept)."""
        self._show_document(self.mirror.load(document))

    def _show_document(self, results: Sequence[ProbeResult]) -> None:
        for result in results:
            if result.started_at > self._delivered.get(result.check.check_id, -math.inf):
                self.deliver(result)
        self.dashboard.show_paused(frozenset(self.mirror.paused))
        self._show_acks()

    def deliver(self, result: ProbeResult) -> None:
        check_id = result.check.check_id
        self._delivered[check_id] = max(result.started_at, self._delivered.get(check_id, -math.inf))
        super().deliver(result)

    def _engine_message(self, event: SseEvent, payload: dict[str, Any]) -> None:
        self._engine_said(event.event, payload)

    def _engine_said(self, kind: str, payload: dict[str, Any]) -> None:
        item = self.mirror.take(kind, payload)
        if isinstance(item, ProbeResult):
            self.deliver(item)
        elif isinstance(item, Event):
            if self._shows(item):
                self.deliver_event(item)
        elif kind == "pause":
            self.dashboard.show_paused(frozenset(self.mirror.paused))
        elif kind == "ack":
            self._show_acks()

    def _shows(self, event: Event) -> bool:
        """Whether the event is of a subject the dashboard shows (a selection shows some)."""
        return event.subject_id in self._shown_subjects

    def apply_arrivals(self, arrivals: Sequence[ResultArrived]) -> None:
        super().apply_arrivals(arrivals)
        # The engine's acknowledgements, not the board's own rule, say which problems are
        # acknowledged; one that arrived with the document shows once its problem has.
        self._show_acks()

    def _show_acks(self) -> None:
        shown = {}
        for subject_id, record in self.mirror.acks.items():
            try:
                expires = timestamp(record["expires"])
                shown[subject_id] = AckShown(
                    printable(str(record["by"])), expires, printable(str(record["comment"]))
                )
            except (KeyError, ValueError):
                log.warning("the engine sent an acknowledgement this viewer cannot read")
        self.dashboard.show_acknowledged(shown)

    def _engine_link(self, connection: Connection) -> None:
        before, self.connection = self.connection, connection
        if connection.connected:
            self.dashboard.show_connection("")
            if before is not None:
                self.notify(f"Reconnected to {self.url}.", timeout=3)
            return
        self.dashboard.show_connection(f"disconnected since {clock_text(connection.since)}")
        self.notify(
            f"Lost {self.url}: {printable(connection.reason)}. Reconnecting…",
            severity="warning",
            timeout=5,
            markup=False,
        )

    # --- commands to the engine --------------------------------------------------------------

    def on_run_now(self, message: RunNow) -> None:
        message.prevent_default()  # not the local scheduler's: there is none
        check_ids = message.check_ids
        if check_ids:
            self._command(
                f"Running {checks_text(check_ids)} now.",
                [functools.partial(_run_now, check_id=cid) for cid in check_ids],
            )

    def on_toggle_pause(self, message: TogglePause) -> None:
        message.prevent_default()
        check_ids = message.check_ids
        resume = all(cid in self.mirror.paused for cid in check_ids)
        self._command(
            f"{'Resumed' if resume else 'Paused'} {checks_text(check_ids)}.",
            [functools.partial(_set_paused, check_id=cid, paused=not resume) for cid in check_ids],
        )

    def on_acknowledge(self, message: Acknowledge) -> None:
        message.prevent_default()  # the engine's, not a local one
        subject_id = message.subject_id
        self._command(
            f"Acknowledged {subject_id}.",
            [
                functools.partial(
                    _acknowledge,
                    subject_id=subject_id,
                    comment=message.comment,
                    expires=message.expires,
                )
            ],
        )

    def on_unacknowledge(self, message: Unacknowledge) -> None:
        message.prevent_default()
        subject_id = message.subject_id
        self._command(
            f"Acknowledgement of {subject_id} ended.",
            [functools.partial(_unacknowledge, subject_id=subject_id)],
        )

    def _command(self, done: str, requests: Sequence[Request]) -> None:
        self.run_worker(self._send(done, requests), group="commands")

    async def _send(self, done: str, requests: Sequence[Request]) -> None:
        client = self._client
        if client is None:
            self.notify("Not attached to the engine yet.", severity="warning", timeout=3)
            return
        limit = asyncio.Semaphore(COMMANDS_AT_ONCE)

        async def one(request: Request) -> Answered:
            async with limit:
                return await request(client)

        outcomes = await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, ApiError)]
        unexpected = [o for o in outcomes if isinstance(o, BaseException) and o not in failures]
        if unexpected:
            raise unexpected[0]
        answered = [o for o in outcomes if isinstance(o, Answered)]
        for outcome in answered:
            # What the engine now holds, as its stream will say it too (applying it twice
            # changes nothing): this viewer shows it at once.
            if outcome.said is not None:
                self._engine_said(*outcome.said)
        self._tell(done, answered, failures)

    def _tell(self, done: str, answered: Sequence[Answered], failures: Sequence[ApiError]) -> None:
        """The command's outcome: done, refused, or in force but not stored (202)."""
        if any(f.status == 403 for f in failures):
            self.notify(
                "This needs an operator token: the viewer's token may only look.",
                severity="error",
                timeout=6,
            )
        elif failures:
            self.notify(
                f"The engine refused: {failures[0]}", severity="error", timeout=6, markup=False
            )
        unstored = sum(not a.stored for a in answered)
        if unstored:
            lead = f"{len(answered)} done." if failures else done
            text = _unstored_text(lead, unstored, len(answered))
            self.notify(text, severity="warning", timeout=12, markup=False)
        elif not failures:
            self.notify(done, timeout=2, markup=False)


def _latency(record: dict[str, Any]) -> float | None:
    value = record.get("latency_ms")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _history_line(record: dict[str, Any]) -> HistoryLine:
    """A stored result as the detail pane lists it (ValueError when it cannot be read)."""
    try:
        severity = Severity[str(record["severity"])]
        done = timestamp(record["started_at"]) + float(record["duration_ms"]) / 1000
        return HistoryLine(done, severity, str(record["summary"]))
    except (KeyError, TypeError, ValueError):
        raise RecordError("the engine sent a stored result this viewer cannot read") from None
