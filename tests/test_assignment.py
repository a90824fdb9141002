"""Properties of the vantage assignment (monitor.cluster.assignment), over rosters and
inventories hypothesis makes: every pool check served by exactly one live member, the same
answer whatever the order or the process, one host never split across a pool's agents, and a
join or a leave moving only what the newcomer wins or the leaver held."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cluster.assignment import (
    DEFAULT_POOL,
    Roster,
    serves,
    share,
    vantage_points,
    winner,
)
from monitor.config.checks import adhoc_check
from monitor.config.inventory import Check
from tests.conftest import REPO

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
POOLS = st.sampled_from([DEFAULT_POOL, "noc", "north"])
HOSTS = st.sampled_from([f"10.0.{i // 10}.{i % 10}" for i in range(40)] + ["db.example"])


def check(number: int, host: str, vantage: tuple[str, ...] = ()) -> Check:
    made = adhoc_check("tcp", {"target": f"127.0.0.1:{1000 + number}"})
    ref = dataclasses.replace(made.ref, check_id=f"s/l/c{number}", host=host)
    return dataclasses.replace(made, ref=ref, vantage=vantage)


rosters = st.dictionaries(NAMES, st.frozensets(POOLS, min_size=1), min_size=1, max_size=8)
inventories = st.lists(
    st.tuples(HOSTS, st.lists(POOLS, unique=True, max_size=2).map(tuple)), max_size=60
).map(lambda rows: [check(i, host, vantage) for i, (host, vantage) in enumerate(rows)])


def holders(checks: list[Check], roster: Roster) -> dict[tuple[str, str], set[str]]:
    """(check id, vantage point) -> the agents that serve it."""
    served: dict[tuple[str, str], set[str]] = {}
    for each in checks:
        for entry in vantage_points(each):
            served[each.ref.check_id, entry] = {
                agent for agent in roster.pools_of if serves(agent, entry, each, roster)
            }
    return served


@settings(max_examples=300)
@given(rosters, inventories)
def test_each_pool_vantage_point_is_served_by_exactly_one_live_member(pools_of, checks):
    roster = Roster.of(pools_of)
    for (check_id, entry), agents in holders(checks, roster).items():
        members = {a for a, pools in pools_of.items() if entry in pools}
        assert len(agents) == (1 if members else 0), (check_id, entry, agents)
        assert agents <= members


@settings(max_examples=300)
@given(rosters, inventories, st.randoms(use_true_random=False))
def test_the_answer_does_not_depend_on_order(pools_of, checks, random):
    names = list(pools_of)
    random.shuffle(names)
    shuffled = Roster.of({name: pools_of[name] for name in names})
    reordered = list(checks)
    random.shuffle(reordered)
    for agent in pools_of:
        assert share(agent, checks, Roster.of(pools_of)) == share(agent, reordered, shuffled)


@settings(max_examples=300)
@given(rosters, inventories)
def test_one_host_of_one_pool_lands_on_one_agent(pools_of, checks):
    roster = Roster.of(pools_of)
    landed: dict[tuple[str, str], set[str]] = {}
    for each in checks:
        for entry in vantage_points(each):
            for agent in roster.pools_of:
                if serves(agent, entry, each, roster):
                    landed.setdefault((entry, each.ref.host), set()).add(agent)
    assert all(len(agents) == 1 for agents in landed.values()), landed


@settings(max_examples=300)
@given(rosters, inventories, NAMES, st.frozensets(POOLS, min_size=1))
def test_a_join_moves_only_what_the_newcomer_wins(pools_of, checks, newcomer, pools):
    if newcomer in pools_of:
        return
    before = holders(checks, Roster.of(pools_of))
    after = holders(checks, Roster.of({**pools_of, newcomer: pools}))
    for key, agents in after.items():
        if agents != before[key]:
            assert agents == {newcomer}, (key, before[key], agents)


@settings(max_examples=300)
@given(rosters, inventories, st.data())
def test_a_leave_moves_only_what_the_leaver_held(pools_of, checks, data):
    leaver = data.draw(st.sampled_from(sorted(pools_of)))
    before = holders(checks, Roster.of(pools_of))
    after = holders(checks, Roster.of({a: p for a, p in pools_of.items() if a != leaver}))
    for key, agents in after.items():
        if agents != before[key]:
            assert before[key] == {leaver}, (key, before[key], agents)


@given(rosters, inventories, NAMES)
def test_an_agent_named_as_a_vantage_point_serves_it_whoever_else_is_live(pools_of, checks, agent):
    named = [dataclasses.replace(c, vantage=(agent,)) for c in checks]
    assert share(agent, named, Roster.of(pools_of)) == {c.ref.check_id: agent for c in named}
    assert all(
        not serves(other, agent, c, Roster.of(pools_of))
        for c in named
        for other in pools_of
        if other != agent
    )


def test_a_check_without_vantage_is_the_default_pools():
    assert vantage_points(check(1, "h")) == (DEFAULT_POOL,)
    roster = Roster.of({"a": {DEFAULT_POOL}, "b": {"noc"}})
    assert share("a", [check(1, "h")], roster) == {"s/l/c1": DEFAULT_POOL}
    assert share("b", [check(1, "h")], roster) == {}


def test_an_agent_serving_two_vantage_points_of_a_check_runs_it_once_for_the_first():
    roster = Roster.of({"north": {"noc"}})
    both = check(1, "h", ("noc", "north"))
    assert share("north", [both], roster) == {"s/l/c1": "noc"}


def test_two_agents_share_two_hundred_hosts_about_evenly():
    roster = Roster.of({"agent-a": {DEFAULT_POOL}, "agent-b": {DEFAULT_POOL}})
    checks = [check(i, f"127.0.{i // 250}.{i % 250 + 1}") for i in range(200)]
    counts = Counter(winner(c.ref.host, roster.members(DEFAULT_POOL)) for c in checks)
    assert set(counts) == {"agent-a", "agent-b"}
    assert min(counts.values()) >= 60, counts  # a fair coin gives under 60 of 200 once in 10^4


def test_every_process_reaches_the_same_answer():
    """The weights are no `hash()`: that is salted per process (PYTHONHASHSEED)."""
    program = (
        "import json\n"
        "from monitor.cluster.assignment import winner\n"
        "print(json.dumps([winner(f'10.0.0.{i}', ['a', 'b', 'c']) for i in range(50)]))\n"
    )
    answers = {
        subprocess.run(
            [sys.executable, "-c", program],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(answers) == 1
    assert set(json.loads(answers.pop())) == {"a", "b", "c"}
