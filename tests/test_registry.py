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
from monitor.core.options import option_specs
from probes.base import ProbeKind
from probes.registry import REGISTRY
from tests.conftest import REPO


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
        "assert 'tcp' in REGISTRY and 'nope' not in REGISTRY and len(REGISTRY) == 5; "
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
    examples = {
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
    }
    assert set(examples) == set(REGISTRY)
    from monitor.config.checks import adhoc_check

    monkeypatch.setenv("COMMWATCH_C", "public")
    for kind, values in examples.items():
        hash(adhoc_check(kind, values).options)
