"""The engine as a viewer sees it: what the state document and each event of the stream say,
folded into the same values a local engine hands its dashboard.

`load(document)` starts (or starts again, after a resync) from the state document; `take(event,
payload)` applies one message of the stream in order: a `result` moves the mirrored
`EngineState` on by its patch (`codec.apply_patch`) and gives the `ProbeResult`, a `change` the
`Event`, `pause` and `ack` what the engine now holds. A result the engine replayed from its
store has no patch (`"state": null`): the mirrored state is then `stale`, patches are not
applied to it, until the `state` message that ends the replay is loaded as a document. A
message that cannot be read raises `ValueError` (`RecordError`, `CodecError`): the follower then
starts again from the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.api.codec import apply_patch, engine_state_from_json
from monitor.api.readers import (
    RecordError,
    event_from_record,
    inventory_from_document,
    result_from_record,
    timestamp,
)
from monitor.config.inventory import Inventory
from monitor.core.events import Event
from monitor.core.model import CheckRef, ProbeResult
from monitor.engine.state import EngineState

Item = ProbeResult | Event | None


class Mirror:
    """The viewer's copy of one engine's picture."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.inventory: Inventory | None = None
        self.refs: dict[str, CheckRef] = {}
        self.state: EngineState | None = None
        self.paused: set[str] = set()
        self.acks: dict[str, dict[str, Any]] = {}  # subject id -> the engine's ack record
        self.started_at: float | None = None
        self.recent_events: list[Event] = []  # the document's, for the event log to start with
        self.stale = False  # a replayed result passed without its patch: a document is due

    def load(self, document: Mapping[str, Any]) -> list[ProbeResult]:
        """Start from a state document; returns each check's last result, in the document's
        order. The inventory is read from the first document only: a viewer shows one."""
        if self.inventory is None:
            self.inventory = inventory_from_document(document, self.source)
            self.refs = {c.ref.check_id: c.ref for c in self.inventory.checks}
        try:
            state = engine_state_from_json(document["engine_state"])
            checks = list(document["checks"])
            acks = {str(a["subject_id"]): dict(a) for a in document["acks"]}
            started = document["engine"]["started_at"]
            recent = [event_from_record(record) for record in document["recent_events"]]
        except (KeyError, TypeError) as exc:
            raise RecordError(f"the engine sent a state document without {exc}") from None
        results = [
            result_from_record(entry["last_result"], self.refs.get(str(entry.get("check_id"))))
            for entry in checks
            if entry.get("last_result") is not None
        ]
        self.state, self.stale = state, False
        self.paused = {str(entry["check_id"]) for entry in checks if entry.get("paused")}
        self.acks = acks
        self.recent_events = recent
        self.started_at = None if started is None else timestamp(started)
        return results

    def take(self, kind: str, payload: Mapping[str, Any]) -> Item:
        """Apply one message of the stream; the result or event it reports, if any."""
        try:
            if kind == "result":
                record = payload["result"]
                result = result_from_record(record, self.refs.get(str(record.get("check_id"))))
                patch = payload["state"]
                if patch is None:
                    self.stale = True
                elif self.state is not None and not self.stale:
                    self.state = apply_patch(self.state, patch)
                return result
            if kind == "change":
                return event_from_record(payload["event"])
            if kind == "pause":
                check_id = str(payload["check_id"])
                if payload["paused"]:
                    self.paused.add(check_id)
                else:
                    self.paused.discard(check_id)
            elif kind == "ack":
                subject_id = str(payload["subject_id"])
                if payload["ack"] is None:
                    self.acks.pop(subject_id, None)
                else:
                    self.acks[subject_id] = dict(payload["ack"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise RecordError(f"the engine sent a {kind} message without {exc}") from None
        return None  # a kind this viewer does not know (a newer engine's) changes nothing
