"""The shared-risk analysis (monitor.config.diversity) and the group rule that counts with it
(monitor.engine.links.group_status): a table of cases, then properties against a brute force
that removes each risk's links and counts what is left."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.diversity import (
    diverse_up,
    exposures,
    exposures_clause,
    shared_risks,
)
from monitor.core.events import GroupStatus, LinkStatus
from monitor.engine.links import group_status, group_text
from monitor.engine.topology import GroupPolicy

UP, DOWN, UNKNOWN = LinkStatus.UP, LinkStatus.DOWN, LinkStatus.UNKNOWN


def policy(risks: dict[str, list[str]], min_up: int = 1, site: str = "s") -> GroupPolicy:
    link_ids = tuple(f"{site}/{name}" for name in risks)
    by_link = {f"{site}/{name}": tuple(r) for name, r in risks.items()}
    return GroupPolicy(site, site, link_ids, min_up, shared_risks(link_ids, by_link))


def statuses(**links: LinkStatus) -> dict[str, LinkStatus]:
    return {f"s/{name}": status for name, status in links.items()}


ATT, VZ, MAIN = "carrier:att", "carrier:vz", "conduit:main-st"

# (the links' risks, min_up, their statuses) -> the group's status, and its count's words.
TABLE = [
    # Two carriers' worth of redundancy that is one carrier: AT RISK with both up.
    (
        {"fibre": [ATT], "lte": [ATT]},
        1,
        {"fibre": UP, "lte": UP},
        GroupStatus.AT_RISK,
        "2 of 2 links up (needs 1), but fibre and lte both ride carrier:att (losing it leaves 0)",
    ),
    # Truly diverse: as without risks.
    (
        {"fibre": [ATT, MAIN], "lte": [VZ]},
        1,
        {"fibre": UP, "lte": UP},
        GroupStatus.RESILIENT,
        "2 of 2 links up (needs 1)",
    ),
    # Two risks the same links ride are one exposure; one link down: AT RISK by count alone.
    (
        {"fibre": [ATT, MAIN], "lte": [ATT, MAIN]},
        1,
        {"fibre": UP, "lte": DOWN},
        GroupStatus.AT_RISK,
        "1 of 2 links up (needs 1)",
    ),
    (
        {"fibre": [ATT, MAIN], "lte": [ATT, MAIN]},
        1,
        {"fibre": UP, "lte": UP},
        GroupStatus.AT_RISK,
        "2 of 2 links up (needs 1), but fibre and lte both ride carrier:att and conduit:main-st "
        "(losing any one of them leaves 0)",
    ),
    # A third, diverse link: losing carrier:att leaves one, which is enough...
    (
        {"a": [ATT], "b": [ATT], "c": [VZ]},
        1,
        {"a": UP, "b": UP, "c": UP},
        GroupStatus.RESILIENT,
        "3 of 3 links up (needs 1)",
    ),
    # ...until the diverse one is down: not DEGRADED (two up, one needed) but AT RISK.
    (
        {"a": [ATT], "b": [ATT], "c": [VZ]},
        1,
        {"a": UP, "b": UP, "c": DOWN},
        GroupStatus.AT_RISK,
        "2 of 3 links up (needs 1), but a and b both ride carrier:att (losing it leaves 0)",
    ),
    # min_up 2 of 4: losing carrier:att leaves 2, enough; losing the conduit only 1.
    (
        {"a": [ATT], "b": [ATT, MAIN], "c": [MAIN], "d": [MAIN]},
        2,
        {"a": UP, "b": UP, "c": UP, "d": UP},
        GroupStatus.AT_RISK,
        "4 of 4 links up (needs 2), but b, c and d all ride conduit:main-st (losing it leaves 1)",
    ),
    # The shared risk rides only one of the links up now: nothing to name beyond the count.
    (
        {"a": [ATT], "b": [ATT], "c": [VZ]},
        2,
        {"a": UP, "b": DOWN, "c": UP},
        GroupStatus.AT_RISK,
        "2 of 3 links up (needs 2)",
    ),
    # Unknown links are not counted as up, and carry no exposure.
    (
        {"a": [ATT], "b": [ATT], "c": [VZ]},
        1,
        {"a": UP, "b": UNKNOWN, "c": UP},
        GroupStatus.DEGRADED,
        "2 of 3 links up, 1 unknown (needs 1)",
    ),
    # Down already: no single risk is what would take it down.
    (
        {"fibre": [ATT], "lte": [ATT]},
        1,
        {"fibre": DOWN, "lte": DOWN},
        GroupStatus.DOWN,
        "0 of 2 links up (needs 1)",
    ),
]


@pytest.mark.parametrize(("risks", "min_up", "links", "status", "text"), TABLE)
def test_a_group_counts_only_risk_diverse_paths(risks, min_up, links, status, text):
    group = policy(risks, min_up)
    linked = {f"s/{name}": value for name, value in links.items()}
    assert group_status(group, linked) is status
    assert group_text(group, linked) == text


def test_a_named_group_names_its_links_in_full():
    group = GroupPolicy(
        "paths",
        "",
        ("n/fibre", "s/lte"),
        1,
        shared_risks(("n/fibre", "s/lte"), {"n/fibre": (ATT,), "s/lte": (ATT,)}),
    )
    assert group_text(group, {"n/fibre": UP, "s/lte": UP}).endswith(
        ", but n/fibre and s/lte both ride carrier:att (losing it leaves 0)"
    )


def test_a_risk_one_link_alone_rides_is_no_shared_risk():
    assert shared_risks(("s/a", "s/b"), {"s/a": (ATT, MAIN), "s/b": (VZ,)}) == ()


# --- properties ------------------------------------------------------------------------------

RISKS = [f"r{i}" for i in range(5)]
STATUSES = [UP, UP, DOWN, UNKNOWN]  # up more often: exposures need links up


@st.composite
def groups(
    draw: st.DrawFn,
) -> tuple[GroupPolicy, dict[str, tuple[str, ...]], dict[str, LinkStatus]]:
    count = draw(st.integers(min_value=1, max_value=6))
    names = [f"l{i}" for i in range(count)]
    risks = {
        f"s/{name}": tuple(draw(st.lists(st.sampled_from(RISKS), max_size=3, unique=True)))
        for name in names
    }
    min_up = draw(st.integers(min_value=1, max_value=count))
    link_ids = tuple(risks)
    group = GroupPolicy("s", "s", link_ids, min_up, shared_risks(link_ids, risks))
    links = {link_id: draw(st.sampled_from(STATUSES)) for link_id in link_ids}
    return group, risks, links


def brute_force_exposed(risks: dict[str, tuple[str, ...]], up: set[str], min_up: int) -> set[str]:
    """Every risk two or more up links ride that, lost with all its links, leaves fewer than
    min_up of the up links: what the analysis must name, all of it and nothing else."""
    if len(up) < min_up:
        return set()
    found = set()
    for risk in RISKS:
        riders = {link for link in up if risk in risks[link]}
        if len(riders) > 1 and len(up - riders) < min_up:
            found.add(risk)
    return found


def old_rule(group: GroupPolicy, links: dict[str, LinkStatus]) -> GroupStatus:
    """The group rule before risks, as it was written."""
    up = sum(1 for link in group.link_ids if links[link] is UP)
    if up < group.min_up:
        unknown = sum(1 for link in group.link_ids if links[link] is UNKNOWN)
        return GroupStatus.UNKNOWN if up + unknown >= group.min_up else GroupStatus.DOWN
    if up == group.min_up:
        return GroupStatus.AT_RISK
    return GroupStatus.RESILIENT if up == len(group.link_ids) else GroupStatus.DEGRADED


@settings(max_examples=400, deadline=None)
@given(groups())
def test_every_shared_risk_that_would_take_the_group_below_min_up_is_named_and_no_other(drawn):
    group, risks, links = drawn
    up = {link for link, status in links.items() if status is UP}
    for counted in (up, set(group.link_ids)):  # now, and by design: every link up
        found = exposures(group.shared_risks, counted, group.min_up)
        named = [risk for e in found for risk in e.risks]
        assert sorted(named) == sorted(brute_force_exposed(risks, counted, group.min_up))
        for e in found:
            # Each exposure: the very links that ride it, and what losing them leaves.
            assert all(
                set(e.link_ids) == {link for link in counted if r in risks[link]} for r in e.risks
            )
            assert e.left == len(counted) - len(e.link_ids) < group.min_up
        assert [e.left for e in found] == sorted(e.left for e in found)  # worst first


@settings(max_examples=400, deadline=None)
@given(groups())
def test_a_group_is_at_risk_exactly_when_one_event_takes_it_below_min_up(drawn):
    """One event: a link failing, or a shared risk lost with every link that rides it."""
    group, risks, links = drawn
    up = {link for link, status in links.items() if status is UP}
    status = group_status(group, links)
    if len(up) < group.min_up:
        assert status is old_rule(group, links)  # DOWN or UNKNOWN: risks change nothing
        return
    one_event_is_enough = len(up) - 1 < group.min_up or bool(
        brute_force_exposed(risks, up, group.min_up)
    )
    assert (status is GroupStatus.AT_RISK) is one_event_is_enough
    # The risk-diverse count says the same in one number.
    assert (diverse_up(group.shared_risks, up) <= group.min_up) is one_event_is_enough
    if not one_event_is_enough:
        assert status is old_rule(group, links)  # RESILIENT or DEGRADED, as before


@settings(max_examples=200, deadline=None)
@given(groups())
def test_without_shared_risks_a_group_is_judged_exactly_as_before(drawn):
    group, _, links = drawn
    bare = GroupPolicy(group.group_id, group.site_id, group.link_ids, group.min_up)
    assert group_status(bare, links) is old_rule(group, links)
    assert exposures_clause(exposures((), set(links), group.min_up), str) == ""


@settings(max_examples=200, deadline=None)
@given(groups(), st.sampled_from(RISKS), st.integers(min_value=0, max_value=5))
def test_declaring_one_more_risk_never_makes_a_group_look_more_diverse(drawn, risk, which):
    group, risks, links = drawn
    link_id = group.link_ids[which % len(group.link_ids)]
    more = {**risks, link_id: tuple(dict.fromkeys((*risks[link_id], risk)))}
    riskier = GroupPolicy(
        "s", "s", group.link_ids, group.min_up, shared_risks(group.link_ids, more)
    )
    up = {link for link, status in links.items() if status is UP}
    assert diverse_up(riskier.shared_risks, up) <= diverse_up(group.shared_risks, up)
    named = {r for e in exposures(group.shared_risks, up, group.min_up) for r in e.risks}
    assert named <= {r for e in exposures(riskier.shared_risks, up, group.min_up) for r in e.risks}


@settings(max_examples=200, deadline=None)
@given(groups(), st.randoms())
def test_the_order_links_are_listed_in_changes_no_judgement(drawn, random):
    group, risks, links = drawn
    shuffled = list(group.link_ids)
    random.shuffle(shuffled)
    other = GroupPolicy("s", "s", tuple(shuffled), group.min_up, shared_risks(shuffled, risks))
    assert group_status(other, links) is group_status(group, links)
    up = {link for link, status in links.items() if status is UP}

    def named(g: GroupPolicy) -> set[tuple[str, frozenset[str]]]:
        return {
            (r, frozenset(e.link_ids))
            for e in exposures(g.shared_risks, up, g.min_up)
            for r in e.risks
        }

    assert named(other) == named(group)
