"""The state document (`GET /api/v1/state`): the whole current picture a viewer starts from.

Everything in it is as the event stream has told it up to `stream.seq` (the feed's snapshot),
so a viewer that opens the stream with `Last-Event-ID: EPOCH.SEQ` continues exactly from it.
The inventory part names what each check is and when it runs, never its options: an option
may hold a secret (headers, communities, passphrases) or point at one, and a field the
document does not list cannot leak. `monitor/output/schema/state.schema.json` describes it;
change the two together with SCHEMA_VERSION.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from monitor import __version__
from monitor.api import codec
from monitor.api.feed import Snapshot
from monitor.config.diversity import Exposure
from monitor.config.inventory import Check, Group, Inventory, Link, Site
from monitor.engine import paths
from monitor.engine.pipeline import Monitor
from monitor.engine.views import GroupSummary, group_summaries
from monitor.output.records import event_record, group_record, iso_time, result_record

SCHEMA_VERSION = 4

JsonObject = dict[str, Any]


def _check(check: Check) -> JsonObject:
    ref = check.ref
    return {
        "id": ref.check_id,
        "kind": ref.kind,
        "target": ref.target,
        "host": ref.host,
        "tags": list(ref.tags),
        "description": check.description,
        "interval": check.interval,
        "timeout": check.timeout,
        "retries": check.retries,
        "retry_interval": check.retry_interval,
        "depends_on": list(check.depends_on),
        "vantage": list(check.vantage),
        "quorum": check.quorum,
    }


def _link(link: Link) -> JsonObject:
    return {
        "id": link.full_id,
        "name": link.name,
        "role": link.role,
        "medium": link.medium,
        "tags": list(link.tags),
        "availability_from": list(link.availability_from),
        "depends_on": list(link.depends_on),
        "risks": list(link.risks),
        "checks": [_check(check) for check in link.checks],
    }


def _site(site: Site) -> JsonObject:
    return {
        "id": site.id,
        "name": site.name,
        "tags": list(site.tags),
        "min_up": site.min_up,
        "risks": list(site.risks),
        "links": [_link(link) for link in site.links],
    }


def _group(group: Group) -> JsonObject:
    return {
        "id": group.id,
        "name": group.name,
        "links": list(group.link_ids),
        "min_up": group.min_up,
    }


def _exposure(exposure: Exposure) -> JsonObject:
    return {"risks": list(exposure.risks), "links": list(exposure.link_ids), "left": exposure.left}


def group_state(group: GroupSummary) -> JsonObject:
    """A group's record (`group_record`) and the shared risks that would take it below min_up:
    counting the links up now (`exposed`) and with every link up (`exposed_by_design`)."""
    risks, judged = group.risks, group.evaluated  # unjudged: nothing known is up
    return {
        **group_record(group),
        "risk_diverse_up": risks.diverse_up if judged else None,
        "exposed": [_exposure(e) for e in risks.exposed] if judged else [],
        "exposed_by_design": [_exposure(e) for e in risks.exposed_by_design],
    }


def inventory_part(inventory: Inventory) -> JsonObject:
    return {
        "path": inventory.path,
        "sites": [_site(site) for site in inventory.sites],
        "groups": [_group(group) for group in inventory.resilience.groups],
    }


def state_document(
    monitor: Monitor, snapshot: Snapshot, acks: Iterable[Mapping[str, Any]], now: float
) -> JsonObject:
    """The document at `now`: the checks the monitor runs, in inventory order, with their last
    result and whether they are paused; the groups as the snapshot's state judges them."""
    inventory, topology = monitor.inventory, monitor.topology
    checks = []
    for check in inventory.checks:
        check_id = check.ref.check_id
        if check_id not in topology.checks:
            continue
        last = snapshot.last_results.get(check_id)
        checks.append(
            {
                "check_id": check_id,
                "paused": monitor.is_paused(check_id),
                "last_result": None if last is None else result_record(last),
            }
        )
    started_at = monitor.started_at
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "state",
        "generated_at": iso_time(now),
        "stream": {"epoch": snapshot.epoch, "seq": snapshot.seq},
        "engine": {
            "version": __version__,
            "started_at": None if started_at is None else iso_time(started_at),
            "ready": monitor.ready.is_set(),
        },
        "inventory": inventory_part(inventory),
        "checks": checks,
        "groups": [
            group_state(g)
            for g in group_summaries(
                inventory,
                topology,
                snapshot.state,
                paths.observed(monitor.path_policy, snapshot.last_results.values()),
            )
        ],
        "acks": [dict(ack) for ack in acks],
        "engine_state": codec.engine_state_to_json(snapshot.state),
        "recent_events": [event_record(event) for event in snapshot.recent_events],
    }
