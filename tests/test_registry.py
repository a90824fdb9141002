"""The registry lists every probe module, and every probe honours the one signature."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import subprocess
import sys

import probes
import probes.support
from monitor.core.conditions import Threshold
from monitor.core.model import CheckRef, ProbeResult, Severity, Verdict
from monitor.core.options import option_specs
from probes import registry
from probes.base import Headline, ProbeKind
from probes.registry import REGISTRY
from tests.conftest import REPO

NOW = 1_800_000_000.0

# Options of one check per kind, every option that takes a list given one.
EXAMPLES = {
    "tcp": {"target": "127.0.0.1:1"},
    "http": {"target": "https://127.0.0.1/", "headers": ["X-A: 1"], "expect_status": [200]},
    "tls": {"target": "127.0.0.1:1", "pin": ["sha256/" + "A" * 43 + "="]},
    "dns": {"target": "example.net", "server": "127.0.0.1", "expect": ["192.0.2.1"]},
    "snmp": {
        "target": "127.0.0.1:1161",
        "version": "2c",
        "community_env": "COMMWATCH_C",
        "interfaces": ["eth0"],
        "oids": ["1.3.6.1.4.1.2021.10.1.3.1 name=load1 warn=4"],
    },
    "ntp": {"target": "127.0.0.1:1123"},
    "sip": {"target": "127.0.0.1", "transport": "tls", "ok_codes": [200, 404]},
    "icmp": {"target": "127.0.0.1"},
    "path": {"target": "127.0.0.1", "method": "icmp", "max_hops": 8},
}


def test_every_probe_module_is_registered_under_its_own_name():
    """A module of probes/ is a kind (base aside); code only probes use lives in the one
    package probes/support, which the registry never lists."""
    found = list(pkgutil.iter_modules(probes.__path__))
    assert {m.name for m in found if m.ispkg} == {"support"}
    assert {m.name for m in found if not m.ispkg} - {"base", "registry"} == set(REGISTRY)
    for kind, probe in REGISTRY.items():
        assert probe.kind == kind
        assert inspect.getmodule(probe.measure).__name__ == f"probes.{kind}"


def test_asking_for_one_kind_loads_only_that_kind():
    code = (
        "import sys; from probes.registry import REGISTRY; "
        "assert 'tcp' in REGISTRY and 'nope' not in REGISTRY and len(REGISTRY) == 9; "
        "REGISTRY['tcp']; "
        "print(sorted(m for m in sys.modules if m.startswith('probes.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['probes.base',", "'probes.registry',", "'probes.tcp']"]


def test_support_code_defines_no_probe_kind():
    modules = [m.name for m in pkgutil.iter_modules(probes.support.__path__)]
    assert {"certificates", "revocation", "starttls", "snmp_engine"} <= set(modules)
    for name in modules:
        module = importlib.import_module(f"probes.support.{name}")
        assert not [value for value in vars(module).values() if isinstance(value, ProbeKind)]


def test_every_probe_has_the_one_signature():
    for probe in REGISTRY.values():
        assert isinstance(probe, ProbeKind)
        assert inspect.iscoroutinefunction(probe.measure)
        assert dataclasses.is_dataclass(probe.options)
        assert probe.options.__dataclass_params__.frozen
        specs = option_specs(probe.options)
        assert specs[0].name == "target" and specs[0].required
        assert all(spec.help for spec in specs)


def test_options_are_hashable_so_conditions_are_built_once_per_check(monkeypatch):
    """The runner caches each check's conditions by its (frozen) options."""
    for probe in REGISTRY.values():
        for spec in option_specs(probe.options):
            assert not isinstance(spec.default, list | dict | set), (probe.kind, spec.name)
    assert set(EXAMPLES) == set(REGISTRY)
    from monitor.config.checks import adhoc_check

    monkeypatch.setenv("COMMWATCH_C", "public")
    for kind, values in EXAMPLES.items():
        hash(adhoc_check(kind, values).options)


def test_a_kinds_main_latency_is_the_one_its_latency_threshold_judges(monkeypatch):
    """The history's latency column and the dashboard's trend show what `latency_warn` judges."""
    from monitor.config.checks import adhoc_check

    monkeypatch.setenv("COMMWATCH_C", "public")
    for kind, values in EXAMPLES.items():
        check = adhoc_check(kind, {**values, "latency_warn": "1s"} if kind != "snmp" else values)
        judged = [
            c.observation
            for c in check.probe.conditions(check.options)
            if isinstance(c, Threshold) and c.condition == "latency"
        ]
        assert judged == ([] if check.probe.latency is None else [check.probe.latency]), kind
    assert {kind for kind, probe in REGISTRY.items() if probe.latency is None} == {"snmp"}


def _echo_headline(result: ProbeResult, _now: float) -> Headline:
    return Headline(
        facts=(f"echoed {result.observations['echoes']}",),
        when_ok=("all well",),
        tells=frozenset({"echoes"}),
    )


# A kind no other layer has heard of: what the dashboard and the history show of its results
# comes from its own declaration alone.
ECHO = ProbeKind(
    kind="echo",
    target_help="HOST",
    options=object,
    measure=None,  # type: ignore[arg-type]  # never run: the results below are made by hand
    conditions=lambda _options: (),
    target=str,
    host=str,
    headline=_echo_headline,
    latency="rtt_ms",
)


def _echo_result(severity: Severity, observations: dict, verdicts: tuple = ()) -> ProbeResult:
    ref = CheckRef(
        check_id="s/l/echo",
        site_id="s",
        link_id="l",
        kind="echo",
        target="127.0.0.1",
        host="127.0.0.1",
    )
    return ProbeResult(
        check=ref,
        started_at=NOW,
        duration_ms=5.0,
        severity=severity,
        observations=observations,
        verdicts=verdicts,
    )


def test_the_dashboard_and_the_history_show_what_a_kind_declares(monkeypatch, tmp_path):
    from monitor.store.history import HistoryStore
    from tui.present import info_text
    from tui.state import RowState, advance

    monkeypatch.setitem(
        REGISTRY._kinds, "echo", registry.Listing(__name__, "echo: answers counted")
    )
    monkeypatch.setitem(REGISTRY._loaded, "echo", ECHO)
    told = Verdict("echo", "echoes", 0, "expected 3", Severity.CRIT, reason="no echo")
    untold = Verdict("loss", "loss_pct", 100, "expected 0", Severity.CRIT, reason="all lost")
    failing = _echo_result(Severity.CRIT, {"echoes": 0, "rtt_ms": 2.5}, (told, untold))
    fine = _echo_result(Severity.OK, {"echoes": 3, "rtt_ms": float("nan")})

    # Its fact, with the verdict it tells left out; its OK fact only when nothing is wrong.
    assert info_text(failing, NOW) == "all lost · echoed 0"
    assert info_text(fine, NOW) == "all well · echoed 3"
    assert advance(RowState(), failing, Severity.CRIT).latencies == (2.5,)
    assert advance(RowState(), fine, Severity.OK).latencies == (None,)  # NaN measures nothing
    with HistoryStore(tmp_path / "history.sqlite", create=True) as store:
        store.write([failing, fine])
        rows = store.results_since(NOW - 1)
    assert [row.latency_ms for row in rows] == [2.5, None]


def test_a_kind_unknown_here_shows_its_verdicts_and_no_latency():
    """A result whose kind this version does not know (another version's history row)."""
    from tui.present import info_text

    ref = CheckRef(
        check_id="s/l/x",
        site_id="s",
        link_id="l",
        kind="gone",
        target="127.0.0.1",
        host="127.0.0.1",
    )
    bad = Verdict("loss", "loss_pct", 100, "expected 0", Severity.CRIT, reason="all lost")
    result = ProbeResult(
        check=ref,
        started_at=NOW,
        duration_ms=5.0,
        severity=Severity.CRIT,
        observations={"latency_ms": 3.0},
        verdicts=(bad,),
    )
    assert info_text(result, NOW) == "all lost"
    assert registry.main_latency(result) is None
