"""`GET /metrics` of a real engine probing real peers (tests/metrics_support.py): the values
each family shows, the formats a scraper can ask for, `promtool check metrics` on a real
scrape, that every family is documented in docs/prometheus/README.md as exported (name, type,
labels) and nothing documented is missing, and that no target or secret becomes a label.

The 401 without a token is the auth middleware's (monitor/api/server.py) and is tested with
it; here the route's declared role is pinned."""

from __future__ import annotations

import asyncio
import gc
import gzip
import re
import subprocess
from collections.abc import Mapping

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from monitor.api import metrics
from monitor.api.metric_families import METRICS_VERSION
from monitor.api.roles import Role, required_role
from tests.conftest import REPO
from tests.metrics_support import HOOK_SECRET, Served, idle_monitor, served_engine
from tests.peers.snmp_peers import COMMUNITY

README = REPO / "docs" / "prometheus" / "README.md"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# A documented row: | `name` | type | `label`, `label` | meaning |
_ROW = re.compile(r"^\| `((?:commwatch|process)_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


CLUSTER_SECTION = "## Agents and centrals"  # the agent's and the central's own families


def section(heading: str, text: str | None = None) -> str:
    """The part of the README (or `text`) under `heading`, to the next heading of its level or
    a higher one."""
    text = README.read_text(encoding="utf-8") if text is None else text
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + 1
    ends = [text.find(f"\n{'#' * n} ", start + 1) for n in range(1, len(level) + 1)]
    end = min((at for at in ends if at != -1), default=len(text))
    return text[start:end]


def documented(text: str | None = None) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels) of every metric `text` lists; without it, of what the engine
    exports: docs/prometheus/README.md without its section on agents and centrals."""
    if text is None:
        readme = README.read_text(encoding="utf-8")
        text = readme.replace(section(CLUSTER_SECTION, readme), "")
    rows = _ROW.findall(text)
    return {name: (kind, frozenset(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def exported(openmetrics: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels) of every family of an OpenMetrics exposition, named as
    documented."""
    found = {}
    for family in openmetrics_families(openmetrics):
        # OpenMetrics names a counter without its _total and an info metric without _info.
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        labels = set().union(*(sample.labels for sample in family.samples))
        found[family.name + suffix] = (family.type, frozenset(labels))
    return found


async def scrape(served: Served, **headers: str) -> tuple[Mapping[str, str], bytes]:
    """The headers and the body as sent, not decompressed."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(served.url + "/metrics", headers=headers) as response,
    ):
        return response.headers, await response.read()


async def text_of(served: Served, accept: str = "") -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(served.url + "/metrics", headers={"Accept": accept}) as response,
    ):
        assert response.status == 200
        return await response.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[name, frozenset(labels.items())]


def check(check_id: str, kind: str) -> dict[str, str]:
    site, link, _ = check_id.split("/")
    return {"check_id": check_id, "site": site, "link": f"{site}/{link}", "kind": kind}


async def test_a_scrape_pauses_garbage_collection_and_leaves_it_as_it_found_it(tmp_path):
    """While a scrape is encoded the cyclic collector is off (a full collection would hold the
    event loop); after it, and after two at once, it is as it was, off included."""
    exporter = metrics.Exporter(idle_monitor(tmp_path))
    exporter.renewal.close()  # the scrapes' own pauses only, no renewal's between them
    seen: list[bool] = []

    class Probe:  # a collector after the engine's families, called in the encoding thread
        def collect(self) -> list:
            seen.append(gc.isenabled())
            return []

    exporter.collectors = (*exporter.collectors, Probe())  # type: ignore[assignment]
    try:
        assert gc.isenabled()
        await asyncio.gather(exporter.exposition(""), exporter.exposition(""))
        assert gc.isenabled() and seen == [False, False]
        gc.disable()
        await exporter.exposition("")
        assert not gc.isenabled()
    finally:
        gc.enable()
        exporter.close()


def test_metrics_is_a_viewer_route():
    assert required_role(metrics.metrics) is Role.VIEWER


async def test_the_scrape_shows_checks_links_groups_and_the_engine(tmp_path, monkeypatch):
    async with served_engine(tmp_path, monkeypatch) as served:
        text = await text_of(served)
        found = samples(text)
        monitor = served.monitor
    router, lte, gw = "psap/fibre/router", "psap/lte/router", "psap/fibre/gw"
    assert value(found, "commwatch_check_severity", **check(router, "tcp")) == 0
    assert value(found, "commwatch_check_severity", **check(lte, "tcp")) == 2
    assert value(found, "commwatch_check_hard_severity", **check(lte, "tcp")) == 2
    assert value(found, "commwatch_check_flapping", **check(router, "tcp")) == 0
    last = value(found, "commwatch_check_last_result_timestamp_seconds", **check(router, "tcp"))
    assert last == monitor.state.checks[router].last_at
    assert 0 < value(found, "commwatch_check_duration_seconds", **check(gw, "tls")) < 1
    assert 0 < value(found, "commwatch_check_latency_seconds", **check(gw, "tls")) < 1
    # snmp has no main latency: no series rather than a made-up one.
    assert not any(
        name == "commwatch_check_latency_seconds" and ("kind", "snmp") in labels
        for name, labels in found
    )
    assert (
        value(
            found,
            "commwatch_certificate_expiry_timestamp_seconds",
            **check(gw, "tls"),
            position="0",
        )
        == served.leaf_not_after
    )
    switch = {**check("psap/fibre/switch", "snmp"), "interface": "lo"}
    assert value(found, "commwatch_snmp_interface_oper_status", **switch) == 1  # up
    assert value(found, "commwatch_snmp_interface_admin_status", **switch) == 1
    for direction in ("in", "out"):
        errors = "commwatch_snmp_interface_errors_per_second"
        assert value(found, errors, **switch, direction=direction) >= 0
        ratio = value(
            found, "commwatch_snmp_interface_utilisation_ratio", **switch, direction=direction
        )
        assert 0 <= ratio <= 1
    assert (
        value(found, "commwatch_snmp_interface_discards_per_second", **switch, direction="in") >= 0
    )

    def status(name: str, **labels: str) -> list[str]:
        return sorted(
            dict(key)["status"]
            for (metric, key), v in found.items()
            if metric == name and v == 1 and labels.items() <= dict(key).items()
        )

    assert status("commwatch_link_status", link="psap/fibre") == ["UP"]
    assert status("commwatch_link_status", link="psap/lte") == ["DOWN"]
    assert status("commwatch_group_status", group="psap", site="psap") == ["AT RISK"]
    assert status("commwatch_group_status", group="depot", site="depot") == ["DOWN"]
    # A state set: every status is a series, 0 but for the current one.
    assert (
        sum(1 for (m, key) in found if m == "commwatch_group_status" and ("group", "psap") in key)
        == 7
    )
    assert value(found, "commwatch_group_links_up", group="psap", site="psap") == 1
    assert value(found, "commwatch_group_links", group="psap", site="psap") == 2
    assert value(found, "commwatch_group_min_links_up", group="psap", site="psap") == 1

    assert (
        value(found, "commwatch_build_info", version="0.1.0", metrics_version=str(METRICS_VERSION))
        == 1
    )
    assert value(found, "commwatch_engine_ready") == 1
    assert value(found, "commwatch_engine_start_timestamp_seconds") == monitor.started_at
    assert value(found, "commwatch_checks", kind="tcp") == 3
    assert value(found, "commwatch_checks", kind="snmp") == 1
    assert value(found, "commwatch_results_total", kind="tcp", severity="CRIT") >= 2
    assert value(found, "commwatch_results_total", kind="tls", severity="OK") >= 1
    assert value(found, "commwatch_events_total", subject="group", kind="hard") >= 2
    assert value(found, "commwatch_checks_paused") == 0
    assert value(found, "commwatch_scheduler_start_lag_seconds_count") >= 6
    assert value(found, "commwatch_store_queue_depth") >= 0
    assert value(found, "commwatch_store_rejected_total", item="result") == 0
    assert value(found, "commwatch_alert_outbox_depth", notifier="noc") >= 0
    assert value(found, "process_resident_memory_bytes") > 0


async def test_no_target_and_no_secret_is_in_the_exposition(tmp_path, monkeypatch):
    async with served_engine(tmp_path, monkeypatch) as served:
        text = await text_of(served)
    assert served.targets  # the inventory's host:port texts
    for secret in (COMMUNITY, HOOK_SECRET, *served.targets, "127.0.0.1"):
        assert secret not in text


async def test_openmetrics_when_asked_and_compressed_when_accepted(tmp_path, monkeypatch):
    async with served_engine(tmp_path, monkeypatch) as served:
        plain, plain_body = await scrape(served, **{"Accept-Encoding": "identity"})
        om, om_body = await scrape(
            served,
            Accept="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            **{"Accept-Encoding": "gzip"},
        )
    assert plain["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in plain
    assert om["Content-Type"].startswith(OPENMETRICS)  # and the escaping the library names
    assert om["Content-Encoding"] == "gzip" and om["Vary"] == "Accept-Encoding"
    om_text = gzip.decompress(om_body).decode()
    assert om_text.endswith("# EOF\n")
    assert "# TYPE commwatch_results counter" in om_text
    assert b"# TYPE commwatch_results_total counter" in plain_body


async def test_gzip_is_sent_only_where_the_scraper_takes_it(tmp_path, monkeypatch):
    async with served_engine(tmp_path, monkeypatch) as served:
        sent = {
            accept: (await scrape(served, **{"Accept-Encoding": accept}))
            for accept in ("gzip;q=0, identity", "*", "br;q=1, GZIP;q=0.5", "deflate")
        }
    refused, anything, weighted, other = (sent[a] for a in sent)
    for headers, body in (refused, other):
        assert "Content-Encoding" not in headers and body.endswith(b"\n")
    for headers, body in (anything, weighted):
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body).startswith(b"# HELP ")


@pytest.mark.parametrize(
    ("header", "takes"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("x-gzip", True),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0", False),
        ("gzip;q=0.001", True),
        ("gzip;q=0, *", False),  # refused by name: `*` is for the codings not named
        ("identity", False),
        ("", False),
        ("gzip;q=nonsense", False),
        ("GZip ; Q=0.5", True),
    ],
)
def test_accept_encoding_is_read_as_rfc_9110_says(header, takes):
    assert metrics.accepts_gzip(header) is takes


async def test_a_real_scrape_passes_promtool_check_metrics(tmp_path, monkeypatch):
    async with served_engine(tmp_path, monkeypatch) as served:
        text = await text_of(served)
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


async def test_every_exported_family_is_documented_as_it_is_and_every_documented_one_exported(
    tmp_path, monkeypatch
):
    async with served_engine(tmp_path, monkeypatch) as served:
        # OpenMetrics says every family's type (the text format has no info type).
        text = await text_of(served, OPENMETRICS)
    assert exported(text) == documented()


def test_the_documented_rows_are_read_with_their_types_and_labels():
    rows = documented()
    assert rows["commwatch_check_severity"] == (
        "gauge",
        frozenset({"check_id", "site", "link", "kind"}),
    )
    assert rows["commwatch_results_total"] == ("counter", frozenset({"kind", "severity"}))
    assert rows["commwatch_build_info"] == ("info", frozenset({"version", "metrics_version"}))
    assert rows["commwatch_engine_ready"] == ("gauge", frozenset())
