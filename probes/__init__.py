"""Probe kinds: one module per kind, each defining `PROBE = ProbeKind(...)` (probes/base.py), all
listed in probes/registry.py; code that only probes use lives in probes/support/."""
