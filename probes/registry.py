"""The probe registry: every probe kind, by name. Adding a kind is one module and one line here.

A kind's module is imported the first time the kind is asked for, so `commwatch probe tcp` never
loads the TLS, HTTP, DNS or SNMP machinery, and an inventory of tcp checks loads only tcp.
Membership and iteration over the names import nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from monitor.core.model import ProbeResult
from probes.base import Headline, ProbeKind

# kind -> the module under probes/ that defines its `PROBE`
_MODULES: dict[str, str] = {
    "tcp": "probes.tcp",
    "tls": "probes.tls",
    "http": "probes.http",
    "dns": "probes.dns",
    "snmp": "probes.snmp",
}


class Registry(Mapping[str, ProbeKind]):
    def __init__(self, modules: Mapping[str, str]) -> None:
        self._modules = dict(modules)
        self._loaded: dict[str, ProbeKind] = {}

    def __getitem__(self, kind: str) -> ProbeKind:
        if kind not in self._loaded:
            module = importlib.import_module(self._modules[kind])  # KeyError: no such kind
            probe: ProbeKind = module.PROBE
            self._loaded[kind] = probe
        return self._loaded[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


REGISTRY = Registry(_MODULES)


def headline(result: ProbeResult, now: float) -> Headline:
    """What the result's kind shows of it in a narrow column; nothing for a kind unknown here
    (a row of the history written by another version)."""
    if result.check.kind not in REGISTRY:
        return Headline()
    return REGISTRY[result.check.kind].headline(result, now)


def main_latency(result: ProbeResult) -> float | None:
    """The latency the result's kind names its main one, in milliseconds, if measured."""
    if result.check.kind not in REGISTRY:
        return None
    return REGISTRY[result.check.kind].main_latency(result)
