"""The probe registry: every probe kind, by name. Adding a kind is one module and one line here."""

from __future__ import annotations

from probes import dns, http, snmp, tcp, tls
from probes.base import ProbeKind

REGISTRY: dict[str, ProbeKind] = {
    probe.kind: probe
    for probe in (
        tcp.PROBE,
        tls.PROBE,
        http.PROBE,
        dns.PROBE,
        snmp.PROBE,
    )
}
