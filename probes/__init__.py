"""The probe registry: every probe kind, by name. Adding a kind is one module and one line here."""

from __future__ import annotations

from probes import dns, http, snmp, tcp
from probes.base import ProbeKind

REGISTRY: dict[str, ProbeKind] = {
    probe.kind: probe
    for probe in (
        tcp.PROBE,
        http.PROBE,
        dns.PROBE,
        snmp.PROBE,
    )
}
