"""What operators do to a running engine: run a check now, pause and resume it (an engine with a
scheduler of its own, or the probe processes of `run --workers`), acknowledge a subject's
problem and withdraw the acknowledgement (any engine). `Monitor` takes these from
`OperatorCommands`; every change is an item of the engine's stream (stored first, with history
on) and reaches its control watchers (`Monitor.watch_controls`) and stream watchers
(`Monitor.watch_stream`, the API's event stream).

An engine fed from a source without steering (a central taking its agents' results) runs no
checks, so it has nothing to run now or to pause: those commands raise `NoScheduler`, which the
API answers with 409 Conflict (the request is sound, the engine's role forbids it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

from monitor.config.inventory import Check
from monitor.core.events import Subject
from monitor.engine.acks import Acknowledgements, make_ack, reminder_holds
from monitor.engine.checks import status_of
from monitor.engine.scheduler import Steering
from monitor.engine.state import EngineState
from monitor.engine.topology import Topology
from monitor.store.controls import Ack, AckChange, AckEnd, Control, PauseChange

# Sees what operators do to the engine, in the engine's order: acknowledgements made and ended
# (an end caused by a change of state comes after the watchers saw that change), pauses.
ControlWatcher = Callable[[Control], None]


class NoScheduler(Exception):
    """The engine runs no checks of its own: its results come from elsewhere (agents)."""

    def __init__(self, check_id: str) -> None:
        super().__init__(
            f"this engine runs no checks of its own: {check_id!r} is probed by the agents "
            "whose results it takes, so it cannot be run now or paused here"
        )


class OperatorCommands:
    """The operator's side of `Monitor` (one of its bases), on the engine's own state."""

    checks: Mapping[str, Check]
    scheduler: Steering | None
    topology: Topology
    state: EngineState

    def __init__(self) -> None:
        self.acks = Acknowledgements()
        self._control_watchers: list[ControlWatcher] = []
        self._ack_expiry: asyncio.TimerHandle | None = None
        # Told until when each acknowledged subject's reminders are held, whenever the
        # acknowledgements in force change (the engine's alerting).
        self.on_acks_changed: Callable[[dict[str, float]], None] | None = None

    def watch_controls(self, watcher: ControlWatcher) -> Callable[[], None]:
        """Call `watcher` for every acknowledgement made or ended and every check paused or
        resumed from now on; returns how to stop."""
        self._control_watchers.append(watcher)
        return lambda: self._control_watchers.remove(watcher)

    def is_paused(self, check_id: str) -> bool:
        return self.scheduler is not None and self.scheduler.is_paused(check_id)

    def run_now(self, check_id: str) -> None:
        """Run a check at once (unless it is queued or running already). KeyError: no such
        check in this engine; NoScheduler: it runs none."""
        self._scheduler_for(check_id).run_now(check_id)

    def pause(self, check_id: str) -> None:
        """Stop scheduling a check (one running finishes and reports). KeyError: no such
        check; NoScheduler: this engine runs none."""
        scheduler = self._scheduler_for(check_id)
        if not scheduler.is_paused(check_id):
            scheduler.pause(check_id)
            self._publish(PauseChange(check_id, paused=True))

    def resume(self, check_id: str) -> None:
        scheduler = self._scheduler_for(check_id)
        if scheduler.is_paused(check_id):
            scheduler.resume(check_id)
            self._publish(PauseChange(check_id, paused=False))

    def _scheduler_for(self, check_id: str) -> Steering:
        if check_id not in self.checks:
            raise KeyError(check_id)
        if self.scheduler is None:
            raise NoScheduler(check_id)
        return self.scheduler

    def subject_of(self, subject_id: str) -> Subject | None:
        """What kind of subject `subject_id` is in this engine (a check it runs, a link or group
        it judges), or None."""
        topology = self.topology
        if subject_id in topology.checks:
            return Subject.CHECK
        if subject_id in topology.evaluated_links:
            return Subject.LINK
        if subject_id in topology.evaluated_groups:
            return Subject.GROUP
        return None

    def acknowledge(self, subject_id: str, *, comment: str, by: str, expires: float) -> Ack:
        """Acknowledge the problem of `subject_id` until `expires` (POSIX seconds), replacing
        any acknowledgement it has. KeyError: no such subject; AckRefused: why not."""
        subject = self.subject_of(subject_id)
        if subject is None:
            raise KeyError(subject_id)
        state = self.confirmed_state(subject, subject_id)
        ack = make_ack(
            subject, subject_id, state, comment=comment, by=by, at=time.time(), expires=expires
        )
        self._publish(self.acks.place(ack))
        self._arm_ack_expiry()
        return ack

    def confirmed_state(self, subject: Subject, subject_id: str) -> object:
        """The subject's confirmed state (a CheckStatus, LinkStatus or GroupStatus); None
        before its first."""
        if subject is Subject.CHECK:
            check = self.state.checks.get(subject_id)
            return None if check is None else status_of(check.hard)
        if subject is Subject.LINK:
            return self.state.links.get(subject_id)
        return self.state.groups.get(subject_id)

    def take_up_acks(self, stored: Iterable[Ack]) -> None:
        """Hold again the acknowledgements a previous run held (the engine's start, once its
        state is restored): those still in force for the same problem; the others end."""
        stored = list(stored)
        state_of = {
            ack.subject_id: self.confirmed_state(ack.subject, ack.subject_id)
            for ack in stored
            if self.subject_of(ack.subject_id) is ack.subject
        }
        for change in self.acks.take_up(stored, time.time(), state_of):
            self._publish(change)
        self._acks_changed()
        self._arm_ack_expiry()

    def withdraw_ack(self, subject_id: str) -> Ack | None:
        """End the acknowledgement of `subject_id`; the one that was, or None."""
        change = self.acks.end(subject_id, AckEnd.WITHDRAWN)
        if change is None:
            return None
        self._publish(change)
        self._arm_ack_expiry()
        return change.ended[0] if change.ended is not None else None

    def _arm_ack_expiry(self) -> None:
        self._cancel_ack_expiry()
        due = self.acks.next_expiry()
        if due is not None:
            loop = asyncio.get_running_loop()
            self._ack_expiry = loop.call_later(max(0.0, due - time.time()), self._expire_acks)

    def _cancel_ack_expiry(self) -> None:
        if self._ack_expiry is not None:
            self._ack_expiry.cancel()
            self._ack_expiry = None

    def _expire_acks(self) -> None:
        self._ack_expiry = None
        for change in self.acks.expire(time.time()):
            self._publish(change)
        self._arm_ack_expiry()

    def _publish(self, change: Control) -> None:
        """A change made: alerting learns of the acknowledgements in force at once, watchers
        of the change once it is announced."""
        if isinstance(change, AckChange):
            self._acks_changed()
        self._announce(change)

    def _acks_changed(self) -> None:
        if self.on_acks_changed is not None:
            self.on_acks_changed(reminder_holds(self.acks))

    def _announce(self, change: Control) -> None:
        """Tell the watchers of `change` (`Monitor` stores it first, and numbers it)."""
        self._tell_controls(change)

    def _tell_controls(self, change: Control) -> None:
        for watcher in tuple(self._control_watchers):
            watcher(change)
