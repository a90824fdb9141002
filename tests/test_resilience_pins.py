"""The inventory's resilience sections at their edges (monitor/config/resilience.py): flapping,
min_up and history values at and past their bounds, what a group and a maintenance window carry
into the inventory, each section's faults at their place, references to a subject of the wrong
kind, and alerts faults placed at the key they name."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.inventory import FlapPolicy, HistoryConfig
from monitor.config.loader import load_inventory
from tests.test_inventory import RESILIENT, errors_of, write

FLAPPING = "{window: 15, high: 40, low: 20}"
GROUP = "  - id: backhaul-north\n    links: [ridge/microwave, valley/fibre]\n    min_up: 1\n"


def edited(*edits: tuple[str, str]) -> str:
    text = RESILIENT
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def section(name: str, body: str) -> str:
    """RESILIENT with a section added at the top, after `version: 1` (line 2 on)."""
    return edited(("version: 1\n", f"version: 1\n{name}:{body}\n"))


# --- flapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "policy"),
    [
        ("{window: 5, high: 40, low: 20}", FlapPolicy(window=5, high=40, low=20)),
        # low is above 0 (a share of changes is never below 0%), however little.
        ("{window: 100, high: 100, low: 0.01}", FlapPolicy(window=100, high=100, low=0.01)),
        ("{window: 15, high: 1, low: 0.5}", FlapPolicy(window=15, high=1, low=0.5)),
        ("{window: 30}", FlapPolicy(window=30, high=50, low=25)),  # the rest as by default
        ("{high: 60}", FlapPolicy(window=21, high=60, low=25)),
        ("{low: 10}", FlapPolicy(window=21, high=50, low=10)),
    ],
)
def test_flapping_values_at_their_bounds_load(tmp_path, written, policy):
    inventory = load_inventory(write(tmp_path, edited((FLAPPING, written))))
    assert inventory.resilience.flapping == policy


@pytest.mark.parametrize(
    ("written", "errors"),
    [
        ("{window: 4}", ["2:20: 'window': 4 is out of range (at least 5 and at most 100)"]),
        ("{window: 101}", ["2:20: 'window': 101 is out of range (at least 5 and at most 100)"]),
        (
            "{high: 0.9, low: 0.5}",
            ["2:18: 'high': 0.9 is out of range (at least 1 and at most 100)"],
        ),
        (
            "{low: 0}",
            [
                "2:17: 'low': flapping low 0% can never be reached (a check settles when its"
                " share of changes drops below low: use a share above 0, e.g. 1)"
            ],
        ),
        ("{high: 100.5}", ["2:18: 'high': 100.5 is out of range (at least 1 and at most 100)"]),
        ("{low: -1}", ["2:17: 'low': -1 is out of range (at least 0 and at most 100)"]),
        ("{low: 100.5}", ["2:17: 'low': 100.5 is out of range (at least 0 and at most 100)"]),
        (
            "{high: 40, low: 40}",  # equal: nothing would ever settle between them
            [
                "2:11: flapping low 40% is not below high 40% (a check starts flapping above "
                "high and settles below low: make low < high)"
            ],
        ),
        ("{share: 2}", ["2:12: unknown key 'share' in flapping (allowed: high, low, window)"]),
        (
            "often",
            [
                "2:11: flapping must be a mapping of keys to values (indent its keys under it as "
                "key: value lines)"
            ],
        ),
    ],
)
def test_flapping_values_past_their_bounds_are_refused_at_their_place(tmp_path, written, errors):
    assert errors_of(tmp_path, edited((FLAPPING, written))) == errors


# --- history ----------------------------------------------------------------------------------


def test_history_is_read_with_paths_from_the_inventorys_folder(tmp_path):
    text = section("history", " {path: h.sqlite3, retention: 30d, downsample_after: 2d}")
    inventory = load_inventory(write(tmp_path, text))
    assert inventory.resilience.history == HistoryConfig(
        path=tmp_path / "h.sqlite3", retention=30 * 86400.0, downsample_after=2 * 86400.0
    )


def test_history_keys_left_out_take_their_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    default = HistoryConfig()
    inventory = load_inventory(write(tmp_path, section("history", " {retention: 7d}")))
    assert inventory.resilience.history == HistoryConfig(
        path=tmp_path / "state" / "commwatch" / "history.sqlite3",
        retention=7 * 86400.0,
        downsample_after=default.downsample_after,
    )
    inventory = load_inventory(write(tmp_path, section("history", " {path: /srv/h.sqlite3}")))
    assert inventory.resilience.history == HistoryConfig(
        path=Path("/srv/h.sqlite3"),
        retention=default.retention,
        downsample_after=default.downsample_after,
    )
    assert load_inventory(write(tmp_path, RESILIENT)).resilience.history == default


def test_history_faults_are_placed_at_their_key(tmp_path):
    hint = "(write a duration such as 250ms, 30s, 5m, 1h or 1m30s)"
    assert errors_of(
        tmp_path, section("history", " {retention: soon, downsample_after: later}")
    ) == [
        f"2:22: 'retention': 'soon' is not a duration {hint}",
        f"2:46: 'downsample_after': 'later' is not a duration {hint}",
    ]
    assert errors_of(tmp_path, section("history", " {keep: 7d}")) == [
        "2:11: unknown key 'keep' in history (allowed: downsample_after, path, retention)"
    ]


# --- groups -----------------------------------------------------------------------------------


def backhaul(tmp_path, *edits: tuple[str, str]):
    inventory = load_inventory(write(tmp_path, edited(*edits)))
    return next(g for g in inventory.resilience.groups if g.id == "backhaul-north")


def test_a_group_carries_its_name_links_and_min_up(tmp_path):
    group = backhaul(tmp_path)
    assert (group.name, group.link_ids, group.min_up) == (
        "backhaul-north",  # the id when no name is written
        ("ridge/microwave", "valley/fibre"),
        1,
    )
    named = backhaul(
        tmp_path,
        ("  - id: backhaul-north\n", "  - id: backhaul-north\n    name: North backhaul\n"),
        ("    min_up: 1\nmaint", "    min_up: 2\nmaint"),
    )
    assert (named.name, named.min_up) == ("North backhaul", 2)


@pytest.mark.parametrize(
    ("edit", "errors"),
    [
        (
            ("    min_up: 1\nmaint", "    min_up: 0\nmaint"),
            ["6:13: 'min_up': 0 is out of range (at least 1 and at most 100)"],
        ),
        (
            ("    min_up: 1\nmaint", "    min_up: 101\nmaint"),
            ["6:13: 'min_up': 101 is out of range (at least 1 and at most 100)"],
        ),
        (
            ("    links: [ridge/microwave, valley/fibre]\n", ""),
            ["4:5: a group has no 'links' (add a 'links:' line to it)"],
        ),
        (
            ("  - id: backhaul-north\n", "  - name: nameless\n"),
            ["4:5: a group has no 'id' (add a 'id:' line to it)"],
        ),
        (
            (GROUP, "  - just-a-word\n"),
            [
                "4:5: a group must be a mapping of keys to values (indent its keys under it as "
                "key: value lines)"
            ],
        ),
        (
            ("groups:\n" + GROUP, "groups: {id: x}\n"),
            ["3:9: groups must be a list (write each entry on a line starting '- ')"],
        ),
    ],
)
def test_group_faults_are_placed_and_worded(tmp_path, edit, errors):
    assert errors_of(tmp_path, edited(edit)) == errors


def test_a_group_needs_no_more_links_up_than_it_has(tmp_path):
    assert errors_of(tmp_path, edited(("    min_up: 1\nmaint", "    min_up: 3\nmaint"))) == [
        "6:13: min_up 3 is more than the 2 links there are (min_up counts links that must be up; "
        "at most the number of links)"
    ]


def test_a_dependency_cycle_says_why_it_is_refused(tmp_path):
    text = edited(
        (
            'checks: [{id: router, kind: tcp, target: "127.0.0.1:1"}]',
            "depends_on: [ridge/console]\n"
            '        checks: [{id: router, kind: tcp, target: "127.0.0.1:1"}]',
        )
    )
    assert errors_of(tmp_path, text) == [
        "23:21: dependency cycle: ridge/microwave -> ridge/console -> ridge/microwave (a subject "
        "cannot depend, even indirectly, on itself)"
    ]


def test_an_inventory_knows_the_file_it_was_read_from(tmp_path):
    path = write(tmp_path, RESILIENT)
    assert load_inventory(path).path == str(path)


def test_a_reference_without_an_owner_id_says_so(tmp_path):
    errors = errors_of(
        tmp_path,
        edited(
            ("  - id: backhaul-north\n", "  - name: nameless\n"),
            ("valley/fibre]", "hill/x]"),
            ("  - id: valley-swap\n", "  - reason: swap\n"),
            ("applies_to: [valley/fibre/router]", "applies_to: [nowhere]"),
        ),
    )
    hint = "(use a full id: site, site/link or site/link/check)"
    assert errors == [
        "4:5: a group has no 'id' (add a 'id:' line to it)",
        f"5:12: group ? refers to unknown 'hill/x' {hint}",
        "14:5: a maintenance window has no 'id' (add a 'id:' line to it)",
        f"15:17: maintenance ? refers to unknown 'nowhere' {hint}",
    ]


# --- references to a subject of the wrong kind ------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (
            ("[ridge/microwave, valley/fibre]", "[ridge/microwave, valley]"),
            "5:12: group backhaul-north refers to 'valley', a site, where a link belongs "
            "(name a link: site/link)",
        ),
        (
            ("[ridge/microwave, valley/fibre]", "[ridge/microwave, valley/fibre/router]"),
            "5:12: group backhaul-north refers to 'valley/fibre/router', a check, where a link "
            "belongs (name a link: site/link)",
        ),
        (
            ("depends_on: [ridge/microwave]", "depends_on: [valley]"),
            "25:21: ridge/console refers to 'valley', a site, where a link or check belongs "
            "(name a link (site/link) or a check (site/link/check))",
        ),
    ],
)
def test_a_reference_to_a_subject_of_the_wrong_kind_is_refused(tmp_path, edit, error):
    """A group of sites would never be judged, a dependency on a site never hold anything."""
    assert errors_of(tmp_path, edited(edit)) == [error]


def test_a_maintenance_window_may_name_a_site_a_link_or_a_check(tmp_path):
    applies = "applies_to: [valley/fibre/router]"
    for target in ("valley", "valley/fibre", "valley/fibre/router"):
        inventory = load_inventory(write(tmp_path, edited((applies, f"applies_to: [{target}]"))))
        assert inventory.resilience.maintenance[1].applies_to == (target,)


# --- maintenance ------------------------------------------------------------------------------


def test_a_window_carries_its_id_subjects_and_zone(tmp_path):
    weekly, one_off = load_inventory(write(tmp_path, RESILIENT)).resilience.maintenance
    assert (weekly.window_id, weekly.applies_to, weekly.zone) == (
        "ridge-tuesday",
        ("ridge",),
        "America/Chicago",
    )
    assert (one_off.window_id, one_off.applies_to, one_off.zone) == (
        "valley-swap",
        ("valley/fibre/router",),
        "UTC",  # by default
    )


NEEDS = (
    "a maintenance window needs either start and end, or days, at and duration (one-off: "
    "start: 2026-12-01T02:00, end: 2026-12-01T04:00; weekly: days: [tue], at: '02:00', "
    "duration: 2h)"
)


@pytest.mark.parametrize(
    ("edit", "errors"),
    [
        (
            ("    end: 2026-12-01T03:00", "    end: 2026-12-01T01:00"),  # ends as it starts
            ["17:10: the window ends before it starts (make end later than start)"],
        ),
        (("    end: 2026-12-01T03:00\n", ""), [f"14:5: {NEEDS}"]),
        (("    start: 2026-12-01T01:00\n", ""), [f"14:5: {NEEDS}"]),
        (
            ("    end: 2026-12-01T03:00\n", "    end: 2026-12-01T03:00\n    days: [mon]\n"),
            [f"14:5: {NEEDS}"],
        ),
        (
            ("    applies_to: [valley/fibre/router]\n", ""),
            ["14:5: a maintenance window has no 'applies_to' (add a 'applies_to:' line to it)"],
        ),
        (
            ("  - id: valley-swap\n", "  - id: ridge-tuesday\n"),
            [
                "14:9: duplicate maintenance window id 'ridge-tuesday' (already used at line 8; "
                "ids must be unique)"
            ],
        ),
    ],
)
def test_maintenance_faults_are_placed_and_worded(tmp_path, edit, errors):
    assert errors_of(tmp_path, edited(edit)) == errors


def test_a_window_that_is_not_a_mapping_is_refused_at_its_place(tmp_path):
    # (The loader then also says what the window lacks: an echo of the same fault, not pinned.)
    errors = errors_of(tmp_path, edited(("maintenance:\n", "maintenance:\n  - 5\n")))
    assert errors[0] == (
        "8:5: a maintenance window must be a mapping of keys to values (indent its keys under "
        "it as key: value lines)"
    )


def test_maintenance_that_is_not_a_list_is_refused(tmp_path):
    start, end = RESILIENT.index("maintenance:"), RESILIENT.index("sites:")
    text = RESILIENT[:start] + "maintenance: {id: x}\n" + RESILIENT[end:]
    assert errors_of(tmp_path, text) == [
        "7:14: maintenance must be a list (write each entry on a line starting '- ')"
    ]


# --- alerts: a fault at the key it names ------------------------------------------------------

NOTIFIERS = """
  group_window: 10s
  notifiers:
    - id: noc
      kind: webhook
      url: https://127.0.0.1/hook
    - id: pager
      kind: webhook
      url: https://127.0.0.1/page"""
URL_HINT = "(write a full URL such as https://192.0.2.10/hooks/commwatch)"


def test_alerts_load(tmp_path):
    alerts = load_inventory(write(tmp_path, section("alerts", NOTIFIERS))).resilience.alerts
    assert (alerts.group_window, [n.id for n in alerts.notifiers]) == (10.0, ["noc", "pager"])


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            NOTIFIERS.replace("https://127.0.0.1/page", "ftp://127.0.0.1/page"),
            "10:12: alerts: the notifier URL (ftp://127.0.0.1) is not an http:// or https:// "
            f"URL {URL_HINT}",
        ),
        (
            NOTIFIERS.replace("    - id: pager\n      kind: webhook\n", "    - id: pager\n"),
            "8:7: alerts: 'kind' is required for a notifier",  # at the notifier: no such key
        ),
        (
            NOTIFIERS.replace("  group_window: 10s", "  group_window: 10s\n  colour: red"),
            "4:11: alerts: unknown key 'colour' in alerts (allowed: notifiers, group_window, "
            "retention, retry_base, retry_cap, give_up_after)",
        ),
        (
            NOTIFIERS.replace("  group_window: 10s", "  group_window: 10s\n  5: red"),
            "4:3: key 5 in mapping is not text (keys are plain words)",  # not a traceback
        ),
        (
            NOTIFIERS.replace("id: pager", "id: noc"),
            "5:5: alerts: notifier id noc is used twice (give every notifier its own id)",
        ),
        (
            "\n  notifiers: {id: noc}",
            "3:14: alerts: notifiers is a list (write one '- id: ...' item per notifier)",
        ),
        (" [noc]", "2:9: alerts: alerts is a mapping, got a list (write notifiers: [...])"),
    ],
)
def test_an_alerts_fault_is_placed_at_the_key_it_names(tmp_path, body, error):
    assert errors_of(tmp_path, section("alerts", body)) == [error]
