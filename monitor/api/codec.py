"""EngineState as JSON and back, and the patches that keep a viewer's copy of it current.

A viewer mirrors the engine's state: it starts from `engine_state_to_json` in the state
document and applies, in order, the patch each `result` message of the event stream carries
(`apply_patch(mirror, patch)`); the mirror then equals the engine's state exactly, floats
included (JSON numbers written by `repr` read back to the same float).

A patch names, for each map of the state, the entries that changed (the new value, or null
for one deleted), and for the set of unreachable ids the members added and removed; a field
that did not change is left out, so a result that changed nothing patches `{}`. Between two
states of one engine it costs what changed, not the size of the inventory: the maps are
persistent and share every bucket a step did not touch (`PersistentMap.changed_keys`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from monitor.core.events import PENDING, GroupStatus, LinkStatus, Pending, Subject, Suppression
from monitor.core.model import Severity
from monitor.core.persistent import PersistentMap
from monitor.engine.checks import CheckState
from monitor.engine.links import LinkTally
from monitor.engine.state import EngineState, HoldKey

JsonObject = dict[str, Any]
Patch = JsonObject

K = TypeVar("K")
V = TypeVar("V")


class CodecError(ValueError):
    """A document or patch that is not an engine state this commwatch can read."""


def _severity(text: str) -> Severity:
    try:
        return Severity[text]
    except KeyError:
        raise CodecError(f"not a severity: {text!r}") from None


def _check_to_json(check: CheckState) -> JsonObject:
    return {
        "hard": PENDING.value if check.hard is PENDING else check.hard.name,
        "soft": check.soft.name,
        "attempts": check.attempts,
        "since": check.since,
        "last_at": check.last_at,
        "changes": "".join("1" if changed else "0" for changed in check.changes),
        "flapping": check.flapping,
    }


def _check_from_json(value: JsonObject) -> CheckState:
    hard: Severity | Pending = PENDING if value["hard"] == PENDING else _severity(value["hard"])
    return CheckState(
        hard=hard,
        soft=_severity(value["soft"]),
        attempts=int(value["attempts"]),
        since=float(value["since"]),
        last_at=float(value["last_at"]),
        changes=tuple(flag == "1" for flag in value["changes"]),
        flapping=bool(value["flapping"]),
    )


def _tally_to_json(tally: LinkTally) -> JsonObject:
    return {"known": tally.known, "counts": list(tally.counts), "flapping": tally.flapping}


def _tally_from_json(value: JsonObject) -> LinkTally:
    ok, warn, crit, unknown = (int(n) for n in value["counts"])
    return LinkTally(
        known=int(value["known"]), counts=(ok, warn, crit, unknown), flapping=int(value["flapping"])
    )


def _hold_key_to_json(key: HoldKey) -> str:
    # A subject word never holds a colon; the id after the first one may.
    subject, subject_id = key
    return f"{subject}:{subject_id}"


def _hold_key_from_json(text: str) -> HoldKey:
    subject, sep, subject_id = text.partition(":")
    if not sep:
        raise CodecError(f"not a held subject: {text!r}")
    return Subject(subject), subject_id


def _held_to_json(reasons: tuple[Suppression, ...]) -> list[str]:
    return [str(reason) for reason in reasons]


def _held_from_json(value: list[str]) -> tuple[Suppression, ...]:
    return tuple(Suppression(reason) for reason in value)


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _MapField(Generic[K, V]):
    """How one map of EngineState is written: its keys and its values, both ways."""

    name: str
    value_to_json: Callable[[V], Any]
    value_from_json: Callable[[Any], V]
    key_to_json: Callable[[K], str] = _same
    key_from_json: Callable[[str], K] = _same

    def get(self, state: EngineState) -> PersistentMap[K, V]:
        found: PersistentMap[K, V] = getattr(state, self.name)
        return found

    def to_json(self, entries: Mapping[K, V]) -> JsonObject:
        return {self.key_to_json(k): self.value_to_json(v) for k, v in entries.items()}

    def from_json(self, value: JsonObject) -> PersistentMap[K, V]:
        return PersistentMap(
            (self.key_from_json(k), self.value_from_json(v)) for k, v in value.items()
        )

    def patch(self, before: EngineState, after: EngineState) -> JsonObject:
        old, new = self.get(before), self.get(after)
        if old is new:
            return {}
        entries: JsonObject = {}
        for key in new.changed_keys(old):
            value = new.get(key)
            if value is None:
                entries[self.key_to_json(key)] = None
            elif value != old.get(key):
                entries[self.key_to_json(key)] = self.value_to_json(value)
        return entries

    def apply(self, entries: PersistentMap[K, V], changes: JsonObject) -> PersistentMap[K, V]:
        for text, value in changes.items():
            key = self.key_from_json(text)
            entries = (
                entries.delete(key)
                if value is None
                else entries.set(key, self.value_from_json(value))
            )
        return entries


_MAPS: tuple[_MapField[Any, Any], ...] = (
    _MapField("checks", _check_to_json, _check_from_json),
    _MapField("links", str, LinkStatus),
    _MapField("groups", str, GroupStatus),
    _MapField("tallies", _tally_to_json, _tally_from_json),
    _MapField("held", _held_to_json, _held_from_json, _hold_key_to_json, _hold_key_from_json),
    _MapField("reachable_since", float, float),
)


def engine_state_to_json(state: EngineState) -> JsonObject:
    """The whole state: every map as an object keyed by id, the unreachable ids sorted."""
    document: JsonObject = {field.name: field.to_json(field.get(state)) for field in _MAPS}
    document["unreachable"] = sorted(state.unreachable)
    return document


def engine_state_from_json(document: JsonObject) -> EngineState:
    """The inverse of `engine_state_to_json`; CodecError for what it cannot have written."""
    try:
        maps = {field.name: field.from_json(document[field.name]) for field in _MAPS}
        return EngineState(unreachable=frozenset(document["unreachable"]), **maps)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"not an engine state: {exc!r}") from None


def patch(before: EngineState, after: EngineState) -> Patch:
    """What changed from `before` to `after`: `{}` when nothing did."""
    if before is after:
        return {}
    changes: Patch = {}
    for field in _MAPS:
        entries = field.patch(before, after)
        if entries:
            changes[field.name] = entries
    if before.unreachable is not after.unreachable:
        added, removed = (
            after.unreachable - before.unreachable,
            before.unreachable - after.unreachable,
        )
        if added or removed:
            changes["unreachable"] = {"added": sorted(added), "removed": sorted(removed)}
    return changes


def apply_patch(state: EngineState, changes: Patch) -> EngineState:
    """`state` with `changes` applied: the viewer's mirror one result later."""
    try:
        updated: dict[str, Any] = {
            field.name: field.apply(field.get(state), changes[field.name])
            for field in _MAPS
            if field.name in changes
        }
        if "unreachable" in changes:
            members = changes["unreachable"]
            updated["unreachable"] = (state.unreachable - set(members["removed"])) | set(
                members["added"]
            )
        return replace(state, **updated) if updated else state
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"not a patch of an engine state: {exc!r}") from None
