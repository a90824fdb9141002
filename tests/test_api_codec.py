"""The engine's state as JSON, and the patches a viewer mirrors it with: over real runs of the
real state engine (the real loader's inventory, the real topology, `step` over generated
results), the patches applied in order, through JSON, reproduce the engine's state exactly."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from pathlib import Path

import pytest

from monitor.api import codec
from monitor.config.loader import load_inventory
from monitor.core.model import ErrorClass, ProbeError, ProbeResult, Severity
from monitor.engine.restore import restore
from monitor.engine.state import EngineState
from monitor.engine.step import step
from monitor.engine.views import topology_of

WINDOW_START = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC).timestamp()

# Dependencies (unreachable, reachable_since), a redundancy group across sites, maintenance
# (held), a small flap window (flapping), retries (soft states): every field of the state moves.
INVENTORY = """\
version: 1
flapping: {window: 6, high: 40, low: 20}
groups:
  - id: backhaul-north
    links: [ridge/microwave, valley/fibre]
    min_up: 1
maintenance:
  - id: valley-swap
    applies_to: [valley/fibre/router]
    start: 2026-12-01T01:00:00+00:00
    end: 2026-12-01T01:10:00+00:00
defaults: {retries: 2}
sites:
  - id: ridge
    min_up: 1
    links:
      - id: microwave
        checks: [{id: router, kind: tcp, target: "127.0.0.1:1"}]
      - id: console
        depends_on: [ridge/microwave]
        availability_from: [rfss]
        checks:
          - {id: rfss, kind: tcp, target: "127.0.0.1:2"}
          - {id: web, kind: tcp, target: "127.0.0.1:3", depends_on: [ridge/microwave/router]}
  - id: valley
    links:
      - id: fibre
        checks:
          - {id: router, kind: tcp, target: "127.0.0.1:4"}
          - {id: switch, kind: tcp, target: "127.0.0.1:5", retries: 3}
"""


def through_json(value: object) -> object:
    """What a viewer receives: the compact JSON the stream carries, parsed."""
    return json.loads(json.dumps(value, separators=(",", ":"), allow_nan=False))


def engine_run(tmp_path: Path, seed: int, steps: int = 600) -> list[EngineState]:
    """The states of the real engine over `steps` generated results from the inventory."""
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    inventory = load_inventory(path)
    topology = topology_of(inventory)
    rng = random.Random(seed)
    refs = [check.ref for check in inventory.checks]
    state = restore(topology)
    states = [state]
    at = WINDOW_START - 300.0  # the run crosses the maintenance window
    for _ in range(steps):
        at += rng.uniform(0.5, 3.0)
        ref = rng.choice(refs)
        # Long steady spells and bursts of changes, so states are confirmed and flap.
        severity = rng.choice([Severity.OK] * 6 + [Severity.CRIT] * 3 + [Severity.UNKNOWN])
        error = None
        if severity is Severity.CRIT:
            error = ProbeError(ErrorClass.REFUSED, "connection refused")
        result = ProbeResult(ref, at, rng.uniform(0.1, 40.0), severity, error=error)
        state, _ = step(topology, state, result)
        states.append(state)
    return states


@pytest.mark.parametrize("seed", range(8))
def test_patches_applied_in_order_reproduce_the_engine_state_exactly(tmp_path, seed):
    states = engine_run(tmp_path, seed)
    mirror = codec.engine_state_from_json(through_json(codec.engine_state_to_json(states[0])))
    assert mirror == states[0]
    moved: set[str] = set()
    for before, after in itertools.pairwise(states):
        patch = through_json(codec.patch(before, after))
        moved |= set(patch)
        mirror = codec.apply_patch(mirror, patch)
        assert mirror == after
    # The run is a test of every field only if every field changed in it.
    assert moved == {
        "checks",
        "links",
        "groups",
        "unreachable",
        "tallies",
        "held",
        "reachable_since",
    }


@pytest.mark.parametrize("seed", range(3))
def test_every_state_of_a_run_round_trips_through_json(tmp_path, seed):
    for state in engine_run(tmp_path, seed, steps=200)[::10]:
        document = through_json(codec.engine_state_to_json(state))
        assert codec.engine_state_from_json(document) == state
        assert codec.engine_state_to_json(codec.engine_state_from_json(document)) == document


def test_a_patch_carries_only_what_changed(tmp_path):
    states = engine_run(tmp_path, 1, steps=300)
    assert codec.patch(states[-1], states[-1]) == {}
    assert codec.patch(EngineState(), EngineState()) == {}
    for before, after in itertools.pairwise(states):
        for name, entries in codec.patch(before, after).items():
            if name == "unreachable":
                assert entries["added"] or entries["removed"]
                continue
            assert entries, name
            for key, value in entries.items():
                # Each entry alone changes the state: none is sent that was already so.
                alone = codec.apply_patch(before, {name: {key: value}})
                assert alone != before, (name, key, value)


def test_a_deleted_entry_patches_null_and_applies_as_a_deletion():
    before = EngineState(links=EngineState().links.set("s/l", codec.LinkStatus.UP))
    after = EngineState()
    patch = codec.patch(before, after)
    assert patch == {"links": {"s/l": None}}
    assert codec.apply_patch(before, patch) == after


@pytest.mark.parametrize(
    "document",
    [{}, {"checks": {"a": {"hard": "FINE"}}}, {"checks": []}, {"unreachable": 3}],
)
def test_what_is_no_engine_state_is_a_codec_error(document):
    with pytest.raises(codec.CodecError):
        codec.engine_state_from_json(document)
    with pytest.raises(codec.CodecError):
        codec.apply_patch(EngineState(), {"checks": {"a": {"hard": "FINE"}}})
