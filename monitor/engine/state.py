"""The state engine: a pure function from (topology, previous state, result) to (state, events).

No I/O, no clock: time comes from the result. It turns raw results into what matters to an
emergency network: confirmed (hard) states after `retries` agreeing results, flapping, the state
of each link, how much redundancy each group has left, and which subjects are unreachable
because something they depend on is not known to work. Every change is an `Event` with before,
after and cause. The tables are the rules; the functions only look them up.

The states (monitor.core.events): a check is PENDING or a `Severity` (its events name it as
a `CheckStatus`, the same word); a link PENDING or a `LinkStatus` (UP, DOWN, UNKNOWN); a group
PENDING or a `GroupStatus` (RESILIENT, DEGRADED, AT RISK, DOWN, UNKNOWN). Where each rule lives:

- monitor.engine.checks: confirmation (CONFIRMATION, FIRST_CONFIRMATIONS) and flapping;
- monitor.engine.links: a link's status from its deciding checks (LINK_STATUS_OF_SEVERITY),
  a group's from its links;
- monitor.engine.holds: what is unreachable, why a change is held, when a held problem is
  announced after all (RELEASED_BECAUSE);
- monitor.engine.step: one result applied to all of them, with the events it causes;
- monitor.engine.restore: the state at start from a previous run's last events.

The rules that say what the engine does not know:

- Before its first confirmed state a check, link or group is PENDING. A first OK is confirmed at
  once (nothing needs to be waited for); a first problem needs `retries` agreeing results like
  any change, so one lost probe at start-up pages nobody. The first confirmed state is an event
  from PENDING like any other change: a site that starts AT RISK is news, one that starts
  RESILIENT is recorded and gives alerting nothing to say.
- A link has a status only once every check that decides it has a confirmed state, a group only
  once every link has one. A topology built for a selection of checks leaves the others out, so
  a link (and a group) that depends on an unselected check is never evaluated at all.
- A link is UNKNOWN when the worst of its deciding checks is; a group counts only links known
  to be up as up, and is UNKNOWN, not DOWN, when links nobody can see could make up the
  difference. Links that share a declared risk count as one path for it
  (monitor.config.diversity): a group one lost risk would take below `min_up` is AT RISK
  however many of its links are up.
- A group whose restored state its restored links no longer give (the inventory changed its
  `min_up` or its links' risks) is evaluated afresh, and so is one whose links all have a state
  and it none: its first state is an event at the next result of one of its links.
- A change is held (recorded and shown, not notified; the event says why) while its subject is
  in maintenance, flapping (a link or group: while a check deciding it flaps) or unreachable (a
  parent is down, not yet known, or its latest result fails; or the result started before the
  parent was seen working again). When nothing holds a problem any more and fresh results
  confirm it, one more event says so (before == after): a problem that began while held is
  announced once it is real, never left unsaid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from monitor.core.events import GroupStatus, LinkStatus, Subject, Suppression
from monitor.core.persistent import PersistentMap
from monitor.engine.checks import CheckState
from monitor.engine.links import NO_TALLY, LinkTally

HoldKey = tuple[Subject, str]


@dataclass(frozen=True, slots=True)
class EngineState:
    """What the engine knows after a step. Its maps are persistent: a step copies only what
    it changes, however large the inventory."""

    checks: PersistentMap[str, CheckState] = field(default_factory=PersistentMap)
    links: PersistentMap[str, LinkStatus] = field(default_factory=PersistentMap)  # once known
    groups: PersistentMap[str, GroupStatus] = field(default_factory=PersistentMap)  # once known
    unreachable: frozenset[str] = frozenset()  # check and link ids behind a parent not working
    tallies: PersistentMap[str, LinkTally] = field(default_factory=PersistentMap)
    # Subjects whose latest confirmed change, a problem, was held; and why.
    held: PersistentMap[HoldKey, tuple[Suppression, ...]] = field(default_factory=PersistentMap)
    # When each subject that was unreachable last stopped being so: a result that started
    # before then was taken while its parent did not work, and is judged unreachable too.
    reachable_since: PersistentMap[str, float] = field(default_factory=PersistentMap)

    def reachable_from(self, subject_id: str) -> float:
        """When the subject last stopped being unreachable; -inf if it never was."""
        since = self.reachable_since.get(subject_id)
        return -math.inf if since is None else since

    def tally(self, link_id: str) -> LinkTally:
        tally = self.tallies.get(link_id)
        return NO_TALLY if tally is None else tally
