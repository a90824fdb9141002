"""What a run of a topology watches, as history stores it with the run (monitor.store.runs)."""

from __future__ import annotations

from collections.abc import Iterable

from monitor.config.maintenance import Window
from monitor.core.events import Subject
from monitor.engine.topology import Topology
from monitor.store.runs import RunScope, Watched


def scope_of(topology: Topology, windows: Iterable[Window] = ()) -> RunScope:
    """What a run of `topology` watches: its checks, and the links and groups it judges (a
    selection leaves out those it cannot judge whole)."""
    subjects = [
        *(
            Watched(subject=Subject.GROUP, subject_id=g.group_id, site_id=g.site_id)
            for g in topology.groups.values()
            if g.group_id in topology.evaluated_groups
        ),
        *(
            Watched(subject=Subject.LINK, subject_id=link.link_id, site_id=link.site_id)
            for link in topology.links.values()
            if link.link_id in topology.evaluated_links
        ),
        *(
            Watched(subject=Subject.CHECK, subject_id=c.check_id, site_id=c.site_id)
            for c in topology.checks.values()
        ),
    ]
    return RunScope(subjects=tuple(subjects), windows=tuple(windows))
