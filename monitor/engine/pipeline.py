"""The continuous engine with its resilience layer: scheduler -> state engine -> history,
alerts and the caller's sinks (JSON lines, the dashboard).

Data flows one way. The only thing sent back down is a command to the scheduler: look again
soon (`expedite`) while a change of state awaits confirmation.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from monitor.alerts.policy import Alerter
from monitor.config import maintenance
from monitor.config.inventory import Check, Inventory
from monitor.core.events import PENDING, Event, GroupStatus, LinkStatus, Pending
from monitor.core.model import ProbeResult
from monitor.engine.links import links_up_text
from monitor.engine.restore import restore
from monitor.engine.run_scope import scope_of
from monitor.engine.scheduler import Scheduler
from monitor.engine.state import EngineState
from monitor.engine.step import step
from monitor.engine.topology import CheckPolicy, GroupPolicy, LinkPolicy, Topology
from monitor.store.history import HistoryStore
from monitor.store.writer import HistoryWriter

log = logging.getLogger(__name__)


def topology_of(
    inventory: Inventory, checks: Iterable[Check] | None = None, *, confirm_at_once: bool = False
) -> Topology:
    """The state engine's view of the inventory, for `checks` (a selection; None: all of
    them). Links whose deciding checks the selection leaves out stay unevaluated, and so do
    groups with such a link: their state is never made up from part of what decides it.
    `confirm_at_once` treats every result as confirmed, for a one-shot sweep where there is no
    second result to wait for."""
    selected = None if checks is None else {check.ref.check_id for check in checks}
    policies, links = {}, {}
    for link in inventory.links:
        check_ids = tuple(c.ref.check_id for c in link.checks)
        links[link.full_id] = LinkPolicy(
            link.full_id, link.site_id, link.availability_from or check_ids, link.depends_on
        )
        for check in link.checks:
            if selected is not None and check.ref.check_id not in selected:
                continue
            policies[check.ref.check_id] = CheckPolicy(
                check.ref.check_id,
                link.site_id,
                link.full_id,
                1 if confirm_at_once else max(1, check.retries),
                check.depends_on,
            )
    resilience = inventory.resilience
    groups = {g.id: GroupPolicy(g.id, g.site_id, g.link_ids, g.min_up) for g in resilience.groups}
    windows = resilience.maintenance
    return Topology(
        policies,
        links,
        groups,
        resilience.flapping,
        in_maintenance=lambda ids, at: maintenance.in_maintenance(windows, ids, at),
    )


class Unevaluated(enum.StrEnum):
    """The label of a group a selection of checks cannot judge: no state, not even PENDING."""

    NOT_EVALUATED = "NOT EVALUATED"


NOT_EVALUATED: Final = Unevaluated.NOT_EVALUATED


@dataclass(frozen=True)
class GroupSummary:
    """A redundancy group as far as a selection of checks can judge it."""

    group_id: str
    name: str
    site_id: str
    status: GroupStatus | None  # None: not evaluated, or a link has no status yet
    up: int
    unknown: int
    total: int
    min_up: int
    not_evaluated: tuple[str, ...] = ()  # links whose deciding checks are not all selected
    waiting: tuple[str, ...] = ()  # evaluated links with no status yet

    @property
    def evaluated(self) -> bool:
        return not self.not_evaluated

    @property
    def label(self) -> GroupStatus | Pending | Unevaluated:
        """The status; NOT EVALUATED, or PENDING while a link has no status yet."""
        if not self.evaluated:
            return NOT_EVALUATED
        return PENDING if self.status is None else self.status

    def describe(self) -> str:
        """What the label rests on, in a few words."""
        if not self.evaluated:
            return f"checks deciding {', '.join(self.not_evaluated)} are not selected"
        if self.status is None:
            return f"no state yet for {', '.join(self.waiting)}"
        return links_up_text(self.up, self.unknown, self.total, self.min_up)


def group_summaries(
    inventory: Inventory, topology: Topology, state: EngineState
) -> tuple[GroupSummary, ...]:
    """Every group the topology's checks touch; one they do not touch at all is not part of
    what was asked, and is left out."""
    summaries = []
    for g in inventory.resilience.groups:
        if not any(link in topology.observed_links for link in g.link_ids):
            continue
        not_evaluated = tuple(lid for lid in g.link_ids if lid not in topology.evaluated_links)
        statuses = [state.links.get(lid) for lid in g.link_ids]
        summaries.append(
            GroupSummary(
                g.id,
                g.name,
                g.site_id,
                None if not_evaluated else state.groups.get(g.id),
                statuses.count(LinkStatus.UP),
                statuses.count(LinkStatus.UNKNOWN),
                len(g.link_ids),
                g.min_up,
                not_evaluated,
                tuple(lid for lid, status in zip(g.link_ids, statuses, strict=True) if not status),
            )
        )
    return tuple(summaries)


def sweep_state(
    inventory: Inventory, checks: Iterable[Check], results: Iterable[ProbeResult]
) -> tuple[Topology, EngineState]:
    """The state one sweep of `checks` shows, every result taken as confirmed."""
    topology = topology_of(inventory, checks, confirm_at_once=True)
    state = restore(topology)
    for result in results:
        state, _ = step(topology, state, result)
    return topology, state


class Monitor:
    """Runs `checks` continuously with state, history and alerts, until `stop()`.

    `on_result` and `on_event` see everything in order. With history on, they are called only
    once what they report is durably stored, so a crash never loses anything already shown.
    """

    def __init__(
        self,
        inventory: Inventory,
        checks: Sequence[Check],
        *,
        on_result: Callable[[ProbeResult], None],
        on_event: Callable[[Event], None],
        history: bool = True,
        alerts: bool = True,
        start_spread: float | None = None,
    ) -> None:
        self.inventory = inventory
        self.topology = topology_of(inventory, checks)
        self._retry = {c.ref.check_id: c.retry_interval for c in checks}
        self._on_result = on_result
        self._on_event = on_event
        self.state = restore(self.topology)
        self.scheduler = Scheduler(
            checks, inventory.concurrency, self._take, start_spread=start_spread
        )
        resilience = inventory.resilience
        self._writer = (
            HistoryWriter(
                resilience.history,
                on_acknowledged=self._acknowledged,
                run_scope=scope_of(self.topology, resilience.maintenance).to_json(),
            )
            if history
            else None
        )
        self._alerter = (
            Alerter(resilience.alerts, resilience.history.path)
            if alerts and resilience.alerts.notifiers
            else None
        )
        self._pending: list[tuple[int, ProbeResult | Event]] = []
        self._failure: Exception | None = None
        self._alert_queue: asyncio.Queue[tuple[Event, ...]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        self.scheduler.stop()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        last: list[Event] = []
        if self._writer is not None:
            self._writer.start()  # raises HistoryError at once for an unusable path
            with HistoryStore(self._writer.config.path) as store:
                last = store.last_events_before(time.time() + 1)
        alert_task = None
        if self._alerter is not None:
            await self._alerter.start()
            # A state alerting never took (a crash between storing and alerting, or a run
            # without alerts) is evaluated afresh, so that it reaches alerting like any first
            # state; it is not news where alerting already has it.
            last = await self._alerter.announced(last)
            alert_task = asyncio.create_task(self._deliver_alerts(), name="commwatch-alerts")
        self.state = restore(self.topology, last)
        try:
            await self.scheduler.run()
        finally:
            if alert_task is not None:
                await self._alert_queue.join()
                alert_task.cancel()
                await asyncio.gather(alert_task, return_exceptions=True)
                await self._alerter.aclose()
            if self._writer is not None:
                await asyncio.to_thread(self._writer.close)
                self._flush(self._writer.acknowledged)
        if self._failure is not None:
            raise self._failure

    def _take(self, result: ProbeResult) -> None:
        self.state, events = step(self.topology, self.state, result)
        check_state = self.state.checks.get(result.check.check_id)
        if check_state is not None and check_state.is_soft:
            self.scheduler.expedite(result.check.check_id, self._retry[result.check.check_id])
        if events and self._alerter is not None:
            self._alert_queue.put_nowait(events)
        if self._writer is None:
            self._emit(result)
            for event in events:
                self._emit(event)
            return
        for item in (result, *events):
            seq = (
                self._writer.add_result(item)
                if isinstance(item, ProbeResult)
                else self._writer.add_event(item)
            )
            if seq is None:
                # The store is stalled and refused it: show it anyway, it is not stored.
                self._emit(item)
            else:
                self._pending.append((seq, item))

    def _acknowledged(self, seq: int) -> None:
        """Called from the history thread after a commit."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._flush, seq)

    def _flush(self, seq: int) -> None:
        ready = 0
        while ready < len(self._pending) and self._pending[ready][0] <= seq:
            ready += 1
        stored, self._pending = self._pending[:ready], self._pending[ready:]
        try:
            for _, item in stored:
                self._emit(item)
        except Exception as exc:
            # A sink that cannot take more (a closed pipe) ends the run, as in the scheduler.
            self._failure = exc
            self.stop()

    def _emit(self, item: ProbeResult | Event) -> None:
        if isinstance(item, ProbeResult):
            self._on_result(item)
        else:
            self._on_event(item)

    async def _deliver_alerts(self) -> None:
        assert self._alerter is not None
        while True:
            events = await self._alert_queue.get()
            try:
                await self._alerter.submit(events)
            except Exception:
                log.exception("alerts could not take %d events", len(events))
            finally:
                self._alert_queue.task_done()
