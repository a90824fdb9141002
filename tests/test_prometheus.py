"""docs/prometheus/ against the real thing: a real Prometheus server, configured with the
shipped scrape config (the token from a file) and the shipped rules, scrapes a running engine
(tests/metrics_support.py); the test finds the series through Prometheus' HTTP API, sees a
shipped rule fire, and evaluates every query of the shipped Grafana dashboard there. promtool
checks the rules and runs their unit tests."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import yaml

from tests.conftest import REPO
from tests.metrics_support import served_engine
from tests.peers.prometheus_peers import poll, prometheus_binary, running_prometheus
from tests.test_metrics import CLUSTER_SECTION, documented, section

DOCS = REPO / "docs" / "prometheus"
RULES = DOCS / "commwatch-rules.yml"
DASHBOARD = DOCS / "grafana-dashboard.json"
TOKEN = "cw-viewer-token-0d9c7e"
# What a Grafana variable stands for when every value is chosen, for evaluating a query.
GRAFANA_VARIABLES = {"$site": ".*", "$__rate_interval": "1m"}
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# PromQL words that look like names: functions, aggregations, keywords, durations' units.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "or", "and", "unless",
    "bool", "offset", "sum", "min", "max", "avg", "count", "rate", "irate", "increase",
    "time", "vector",
}  # fmt: skip


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus_binary("promtool"), *arguments],
        cwd=DOCS,
        capture_output=True,
        text=True,
        timeout=60,
    )


def metric_names(expression: str) -> set[str]:
    """The metric names an expression reads (label matchers and strings taken out first)."""
    bare = re.sub(r"label_values\(([^,]+),[^)]*\)", r"\1", expression)  # Grafana's
    bare = re.sub(r'"[^"]*"', "", bare)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\bby\s*\([^)]*\)", "", bare)
    return {name for name in _NAME.findall(bare) if name not in PROMQL_WORDS}


def dashboard_queries() -> Iterator[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its variables'."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    yield value
                elif key == "query" and isinstance(value, dict):
                    yield value["query"]
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def known_name(name: str, names: set[str]) -> bool:
    """A documented name, or a summary's _count or _sum of one."""
    return name in names or re.sub(r"_(count|sum)$", "", name) in names


def test_the_rules_pass_promtool_check_and_their_unit_tests():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    tested = promtool("test", "rules", "commwatch-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_rules_and_the_dashboard_name_only_documented_metrics():
    # The engine's families, and the agents' and centrals' (a rule watches the leaf nodes).
    names = set(documented()) | set(documented(section(CLUSTER_SECTION)))
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    in_rules = set().union(*(metric_names(r["expr"]) for r in rules["groups"][0]["rules"]))
    # `up` is Prometheus' own, of every scrape.
    assert {n for n in in_rules if not known_name(n, names)} == {"up"}
    queries = list(dashboard_queries())
    assert len(queries) > 20
    in_dashboard = set().union(*(metric_names(q) for q in queries))
    assert {n for n in in_dashboard if not known_name(n, names)} == set()
    assert metric_names('sum by (site) (rate(commwatch_x_total{a="b"}[5m])) / y') == {
        "commwatch_x_total",
        "y",
    }
    assert metric_names("label_values(commwatch_y, site)") == {"commwatch_y"}


def scrape_config(target: str, token_file: str) -> str:
    """The shipped scrape config, pointed at `target` with `token_file`, scraping every
    second, with the shipped rules evaluated every second."""
    config = yaml.safe_load((DOCS / "scrape.yml").read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job["authorization"]["credentials_file"] == "/etc/prometheus/commwatch-viewer.token"
    job["authorization"]["credentials_file"] = token_file
    job["static_configs"] = [{"targets": [target]}]
    job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    return yaml.safe_dump(config)


async def test_a_real_prometheus_scrapes_the_engine_with_the_shipped_config(tmp_path, monkeypatch):
    (tmp_path / "prometheus").mkdir()
    token_file = tmp_path / "prometheus" / "viewer.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    async with served_engine(tmp_path, monkeypatch) as served:
        target = served.url.removeprefix("http://")
        config = scrape_config(target, str(token_file))
        async with running_prometheus(tmp_path / "prometheus", config) as prometheus:

            async def every_check() -> list[dict[str, Any]] | None:
                found = await prometheus.query("commwatch_check_severity")
                return found if len(found) == 5 else None

            checks = await poll("the checks' series in Prometheus", every_check)
            severities = {s["metric"]["check_id"]: s["value"][1] for s in checks}
            assert severities["psap/lte/router"] == "2"
            assert severities["psap/fibre/router"] == "0"
            assert {s["metric"]["job"] for s in checks} == {"commwatch"}

            # The group's status follows the checks' hard states, which may come a scrape after
            # their severities.
            async def group_at_risk() -> list[str] | None:
                found = await prometheus.query('commwatch_group_status{status="AT RISK"} == 1')
                return [s["metric"]["group"] for s in found] or None

            assert await poll("the group AT RISK in Prometheus", group_at_risk) == ["psap"]

            # The sites firing CommwatchSiteDown, once depot is the only one. On a loaded machine
            # a 1 s probe of psap's fibre can time out twice and take psap down for a moment: the
            # rule has no `for:`, so it fires, and is gone at the evaluation after the recovery.
            async def depot_alone_down() -> set[str] | None:
                alerts = (await prometheus.api("alerts"))["alerts"]
                firing = {
                    a["labels"]["site"]
                    for a in alerts
                    if a["labels"]["alertname"] == "CommwatchSiteDown" and a["state"] == "firing"
                }
                return firing if firing == {"depot"} else None

            assert await poll("depot the only site DOWN", depot_alone_down) == {"depot"}

            # Each query of the dashboard evaluates there, on what the engine exported.
            exported = set(await prometheus.api("label/__name__/values"))
            for query in dashboard_queries():
                if query.startswith("label_values("):
                    continue  # Grafana's own function; its metric name is checked below
                for variable, stands_for in GRAFANA_VARIABLES.items():
                    query = query.replace(variable, stands_for)
                await prometheus.query(query)
            named = set().union(*(metric_names(q) for q in dashboard_queries()))
            assert named - exported == set()
    # Prometheus sent the token of the file it was given, as the scrape config says.
    assert f"Bearer {TOKEN}" in served.authorizations
    assert set(served.authorizations) == {f"Bearer {TOKEN}"}
