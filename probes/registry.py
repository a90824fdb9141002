"""The probe registry: every probe kind, by name. Adding a kind is one module and one line here.

A kind's module is imported the first time the kind is asked for, so `commwatch probe tcp` never
loads the TLS, HTTP, DNS or SNMP machinery, and an inventory of tcp checks loads only tcp.
Membership and iteration over the names import nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from probes.base import ProbeKind

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
