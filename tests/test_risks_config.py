"""The `risks:` key: read on sites and links, inherited (a site's for every link of it, the link
adding its own), and every malformed risk refused at its own place with how to fix it."""

from __future__ import annotations

import pytest

from monitor.config.loader import load_inventory
from tests.test_inventory import errors_of, write

SITES = """\
sites:
  - id: north
    risks: [power:grid-a]
    links:
      - id: fibre
        risks: [carrier:att, conduit:main-st, power:grid-a]
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
      - id: lte
        risks: carrier:att
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
      - id: radio
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
  - id: south
    links:
      - id: mpls
        risks: ["co:Downtown CO #2"]
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
"""


def test_a_sites_risks_hold_for_each_of_its_links_and_each_link_adds_its_own(tmp_path):
    inventory = load_inventory(write(tmp_path, SITES))
    north, south = inventory.sites
    assert north.risks == ("power:grid-a",)
    assert {link.id: link.risks for link in north.links} == {
        # The site's first, then the link's own, each once however often written.
        "fibre": ("power:grid-a", "carrier:att", "conduit:main-st"),
        "lte": ("power:grid-a", "carrier:att"),  # a single risk needs no list
        "radio": ("power:grid-a",),
    }
    # A name is printable text, case and spaces kept as written.
    assert south.risks == () and south.links[0].risks == ("co:Downtown CO #2",)


def test_without_risks_nothing_is_declared(tmp_path):
    inventory = load_inventory(write(tmp_path, SITES.replace("risks:", "tags:")))
    assert all(link.risks == () for link in inventory.links)
    assert all(site.risks == () for site in inventory.sites)


@pytest.mark.parametrize(
    ("risk", "expected"),
    [
        ("att", "'risks': risk 'att' has no kind (write kind:name, e.g. carrier:att, "),
        (
            "Carrier:att",
            "'risks': risk kind 'Carrier' is not a lower-case word (write carrier:att)",
        ),
        (
            "'car rier:att'",
            "'risks': risk kind 'car rier' is not a lower-case word (a kind is a lower-case word",
        ),
        ("'9c:att'", "'risks': risk kind '9c' is not a lower-case word"),
        (
            "'carrier:'",
            "'risks': risk 'carrier:' has no name (write the name after the colon: carrier:name)",
        ),
        ("'carrier: '", "'risks': risk 'carrier: ' has no name"),
        # YAML reads a space after the colon as a mapping: the hint says so.
        (
            "carrier: att",
            "'risks': risk 'carrier: att' is read by YAML as a mapping, not as "
            "one risk (write carrier:att, without a space after the colon)",
        ),
        ("42", "'risks': a risk is kind:name text, not a number 42"),
        (
            "{carrier: }",
            "'risks': risk 'carrier:' is read by YAML as a mapping, not as one risk "
            "(write carrier:NAME, without a space after the colon)",
        ),
        ("{carrier: att, co: x}", "'risks': a risk is kind:name text, not a mapping"),
        (
            '"carrier:att\\u001b[2J"',
            "'risks': risk name 'att\\x1b[2J' holds a character that is not printable",
        ),
        (
            "'carrier:att '",
            "'risks': risk name 'att ' starts or ends with a space (write "
            "carrier:att: names are compared exactly)",
        ),
        ("carrier:" + "x" * 101, "'risks': risk name of 101 characters is too long"),
    ],
)
def test_a_malformed_risk_is_refused_at_its_place(tmp_path, risk, expected):
    text = SITES.replace("[carrier:att, conduit:main-st, power:grid-a]", f"[{risk}]")
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"6:17: {expected}"), errors[0]


def test_every_fault_is_reported_at_once_each_at_its_item(tmp_path):
    text = SITES.replace(
        "risks: [power:grid-a]\n", "risks:\n      - power:grid-a\n      - Power:b\n      - x\n"
    ).replace("risks: carrier:att", "risks: []")
    assert errors_of(tmp_path, text) == [
        "5:9: 'risks': risk kind 'Power' is not a lower-case word (write power:b)",
        "6:9: 'risks': risk 'x' has no kind (write kind:name, e.g. carrier:att, "
        "conduit:main-st, co:downtown, entry:north, power:grid-a)",
        "12:16: 'risks' is an empty list (list what the links ride (carrier:att, "
        "conduit:main-st, co:downtown, entry:north, power:grid-a) or leave it out)",
    ]


def test_a_mistyped_key_is_refused_with_the_right_one(tmp_path):
    errors = errors_of(tmp_path, SITES.replace("risks: carrier:att", "risk: carrier:att"))
    assert errors == ["9:9: unknown key 'risk' in a link (did you mean 'risks'?)"]


def test_a_group_that_lists_a_link_twice_is_refused(tmp_path):
    """Counted twice, one link would pass for a redundant pair."""
    bare = SITES.replace("risks:", "tags:")  # a fault of its own, risks or none
    text = bare + "groups:\n  - {id: pair, links: [north/fibre, north/fibre], min_up: 2}\n"
    assert errors_of(tmp_path, text) == [
        "19:23: group pair lists 'north/fibre' more than once (a link is one path however "
        "often it is listed: list each link once)",
        "19:59: min_up 2 is more than the 1 links there are (min_up counts links that must be "
        "up; at most the number of links)",
    ]
