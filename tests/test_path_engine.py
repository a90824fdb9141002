"""Path diversity in the engine (monitor.engine.paths): `commwatch run` in the site namespace of
a routed network the test builds (tests/peers/path_topology.py), a site of two links each
tracing its own target: diverse routes converge nowhere; routes through one router converge
there, unless the link declares it among its edge hops; a route that changes mid-run is an
event of its link naming where it now meets the other. Then the rules themselves, on routes
written out."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import jsonschema
import pytest

from monitor.alerts import message
from monitor.config.loader import load_inventory
from monitor.core.events import EventKind, Subject
from monitor.core.model import CheckRef, ProbeResult, Severity
from monitor.core.yamlnodes import InventoryErrors
from monitor.engine import paths
from monitor.engine.paths import PathPolicy, PathState, Route, convergences, observe
from tests.peers.path_topology import TARGETS, Network, left, right

# The routed network and its fixtures (`routed`, `net`).
pytest_plugins = ("tests.peers.path_fixtures",)

COMMWATCH = str(Path(sys.executable).with_name("commwatch"))
REPORT_SCHEMA = json.loads(
    (Path(__file__).parents[1] / "monitor/output/schema/report.schema.json").read_text()
)
MEETING = f"site/a and site/b pass {right(7)} at hop 3"


def inventory(
    tmp_path: Path, edge_hops: int = 1, interval: str = "1m", timeout: str = "5s"
) -> Path:
    links = "".join(
        textwrap.dedent(f"""\
              - id: {link}
                edge_hops: {edge_hops}
                checks:
                  - id: route
                    kind: path
                    target: {TARGETS[link][0]}
                    interval: {interval}
                    timeout: {timeout}
                    retries: 1
        """)
        for link in ("a", "b")
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\n"
        f"history:\n  path: {tmp_path / 'history.db'}\n"
        "sites:\n  - id: site\n    links:\n" + textwrap.indent(links, "    ")
    )
    return path


def sweep(net: Network, tmp_path: Path, **keys: Any) -> dict[str, Any]:
    command = [COMMWATCH, "run", "--once", str(inventory(tmp_path, **keys))]
    done = subprocess.run(net.probe(*command), capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def site_group(document: dict[str, Any]) -> dict[str, Any]:
    (group,) = [g for g in document["groups"] if g["group_id"] == "site"]
    return group


def test_diverse_paths_converge_nowhere(net: Network, tmp_path: Path) -> None:
    group = site_group(sweep(net, tmp_path))
    assert group["status"] == "RESILIENT"
    assert group["converging"] == []


def test_paths_through_one_router_converge_there(net: Network, tmp_path: Path) -> None:
    net.converge()
    group = site_group(sweep(net, tmp_path))
    assert group["converging"] == [MEETING]
    assert group["status"] == "RESILIENT"  # both up: the finding is beside the state


def test_a_shared_hop_within_the_edge_hops_is_the_links_own(net: Network, tmp_path: Path) -> None:
    net.converge()
    assert site_group(sweep(net, tmp_path, edge_hops=3))["converging"] == []
    assert site_group(sweep(net, tmp_path, edge_hops=2))["converging"] == [MEETING]


def test_table_names_the_convergence_point(net: Network, tmp_path: Path) -> None:
    net.converge()
    command = [COMMWATCH, "run", "--once", "--format", "table", str(inventory(tmp_path))]
    done = subprocess.run(net.probe(*command), capture_output=True, text=True, timeout=60)
    assert MEETING in done.stdout


def _lines(stream: IO[str], until: float) -> Iterator[dict[str, Any]]:
    while time.monotonic() < until:
        line = stream.readline()
        if not line:
            return
        yield json.loads(line)


def test_a_route_changing_mid_run_is_an_event(net: Network, tmp_path: Path) -> None:
    net.reroute("mb", "b", 8)  # b through x from the start; a straight, until the change
    command = [
        COMMWATCH,
        "run",
        "--no-alerts",
        str(inventory(tmp_path, interval="1s", timeout="1s")),
    ]
    with subprocess.Popen(net.probe(*command), stdout=subprocess.PIPE, text=True) as run:
        try:
            assert run.stdout is not None
            seen: dict[str, int] = {}
            changes = []
            rerouted = False
            for item in _lines(run.stdout, time.monotonic() + 60):
                if item["type"] == "result":
                    seen[item["check_id"]] = seen.get(item["check_id"], 0) + 1
                if item["type"] == "event" and item["kind"] == "path_change":
                    changes.append(item)
                    break
                if not rerouted and min(seen.get(f"site/{x}/route", 0) for x in "ab") >= 2:
                    net.reroute("ma", "a", 7)
                    rerouted = True
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=30)
    assert rerouted and len(changes) == 1
    (change,) = changes
    assert change["subject"] == "link" and change["subject_id"] == "site/a"
    assert change["before"] == f"{left(1)} {right(3)} {TARGETS['a'][0]}"
    assert change["after"] == f"{left(1)} {right(3)} {right(7)} {TARGETS['a'][0]}"
    assert change["cause"] == (
        f"path to {TARGETS['a'][0]} changed at hop 3: 3 hops -> 4; now {MEETING}"
    )
    assert "path_change" in sqlite_kinds(tmp_path / "history.db")
    # The report's diversity section, from that history.
    listed = inventory(tmp_path, interval="1s", timeout="1s")
    for fmt in ("json", "table"):
        done = subprocess.run(
            [COMMWATCH, "report", "--format", fmt, "--since", "1h", str(listed)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        if fmt == "table":
            assert f"  site: {MEETING}" in done.stdout
            assert f"site/a/route → {TARGETS['a'][0]}: {change['after']} (1 changes" in done.stdout
            continue
        document = json.loads(done.stdout)
        jsonschema.validate(document, REPORT_SCHEMA)
        (group,) = document["paths"]
        assert group["group_id"] == "site" and group["converging"] == [MEETING]
        routes = {r["link_id"]: r for r in group["routes"]}
        assert routes["site/a"]["route"] == change["after"] and routes["site/a"]["changes"] == 1
        assert routes["site/b"]["changes"] == 0


def sqlite_kinds(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("select kind from events")}


# --- the rules, on routes written out ------------------------------------------------------

A, B = "site/a", "site/b"
POLICY = PathPolicy(
    edge_hops={A: 1, B: 1},
    link_of={"site/a/route": A, "site/b/route": B},
    site_of={A: "site", B: "site"},
    groups={"site": (A, B)},
)


def traced(link: str, path: str, reached: bool = True, at: float = 1000.0) -> ProbeResult:
    ref = CheckRef(
        check_id=f"{link}/route",
        site_id="site",
        link_id=link.partition("/")[2],
        kind="path",
        target="192.0.2.9",
        host="192.0.2.9",
    )
    return ProbeResult(
        check=ref,
        started_at=at,
        duration_ms=1.0,
        observations={"path": path, "address": "192.0.2.9", "destination_reached": reached},
        verdicts=(),
        severity=Severity.OK,
    )


def folded(*results: ProbeResult) -> tuple[PathState, list[Any]]:
    state, events = PathState(), []
    for result in results:
        state, new = observe(POLICY, state, result)
        events.extend(new)
    return state, events


def test_convergence_rules() -> None:
    state, events = folded(
        traced(A, "192.0.2.1 198.51.100.1 203.0.113.5 192.0.2.9"),
        traced(B, "192.0.2.1 198.51.100.7|198.51.100.1 * 203.0.113.5 192.0.2.9"),
    )
    assert events == []
    found = convergences(POLICY, state, "site")
    # Hop 1 (192.0.2.1) is within both edges; the destination is no convergence.
    assert [c.describe() for c in found] == [
        "site/a and site/b pass 198.51.100.1 at hop 2",
        "site/a and site/b pass 203.0.113.5 at hops 3 and 4",
    ]
    assert convergences(POLICY, state, "nowhere") == ()


def test_what_is_and_is_not_a_change() -> None:
    first = traced(A, "192.0.2.1 198.51.100.1 192.0.2.9")
    for same in (
        "192.0.2.1 * 192.0.2.9",  # a silent hop: nothing said
        "192.0.2.1 198.51.100.1|198.51.100.2 192.0.2.9",  # load balanced, one in common
    ):
        assert folded(first, traced(A, same, at=1001.0))[1] == []
    assert folded(first, traced(A, "192.0.2.1", reached=False, at=1001.0))[1] == []
    _, events = folded(first, traced(A, "192.0.2.1 198.51.100.2 192.0.2.9", at=1001.0))
    (event,) = events
    assert event.kind is EventKind.PATH_CHANGE and event.subject is Subject.LINK
    assert event.subject_id == A and event.at == 1001.0
    assert event.before == "192.0.2.1 198.51.100.1 192.0.2.9"
    assert event.cause == "path to 192.0.2.9 changed at hop 2: 3 hops -> 3"
    assert paths.Route.of(traced(A, "a b", reached=False)) is None


def test_route_text_round_trips() -> None:
    route = Route.of(traced(A, "192.0.2.1 * 198.51.100.2|198.51.100.1 192.0.2.9"))
    assert route is not None
    assert route.text() == "192.0.2.1 * 198.51.100.1|198.51.100.2 192.0.2.9"
    assert route.differs_from(route) is None


def test_a_path_change_is_alerted_as_a_warning_in_words() -> None:
    first = traced(A, "192.0.2.1 198.51.100.1 192.0.2.9")
    _, (event,) = folded(first, traced(A, "192.0.2.1 198.51.100.2 192.0.2.9", at=1001.0))
    assert message.event_severity(event) is Severity.WARN
    assert message.event_from_record(message.event_record(event)) == event
    assert message.change_text(event) == (
        "path changed: 192.0.2.1 198.51.100.1 192.0.2.9 → 192.0.2.1 198.51.100.2 192.0.2.9"
    )
    alert = message.Message("chat", "k", message.MessageKind.ALERT, "site", (event,), 1001.0)
    assert message.summary(alert).startswith("[PATH CHANGED] site: link site/a path changed: ")
    assert not alert.resolved


@pytest.mark.parametrize(
    ("value", "words"),
    [("-1", "-1 is out of range"), ("two", "expected a whole number"), ("256", "at most 255")],
)
def test_edge_hops_out_of_range_is_named_where_it_is(
    tmp_path: Path, value: str, words: str
) -> None:
    written = inventory(tmp_path).read_text().replace("edge_hops: 1", f"edge_hops: {value}", 1)
    (tmp_path / "inventory.yaml").write_text(written)
    with pytest.raises(InventoryErrors) as caught:
        load_inventory(tmp_path / "inventory.yaml")
    text = str(caught.value)
    assert "inventory.yaml:8:18:" in text and "'edge_hops'" in text and words in text
