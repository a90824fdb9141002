"""The inventory `commwatch demo` runs: the lab's sites, links and checks (the same ones the
shipped `inventory.yaml` names, a test keeps them in step) with intervals short enough to watch
things change, and SNMP checks of the lab's agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor.lab.lab import SNMP_ENV, SNMP_USER
from monitor.lab.layout import service
from monitor.lab.tls_peers import LAB_CA_FILE

Check = dict[str, Any]


def _ep(name: str, offset: int) -> str:
    return service(name).endpoint(offset)


def _tls(check_id: str, name: str, offset: int, server_name: str | None, **more: Any) -> Check:
    check: Check = {"id": check_id, "kind": "tls", "target": _ep(name, offset)}
    if server_name is not None:
        check["server_name"] = server_name
    return check | more


# SNMPv3 authPriv, what the field should use, with the lab's secrets by reference.
_V3_CREDENTIALS: Check = {
    "version": "3",
    "user": SNMP_USER,
    "auth_protocol": "sha256",
    "auth_passphrase_env": SNMP_ENV.auth_passphrase,
    "priv_protocol": "aes",
    "priv_passphrase_env": SNMP_ENV.priv_passphrase,
}


def _snmp_checks(device: str, offset: int, interfaces: list[str]) -> list[Check]:
    """The same agent read two ways: SNMPv3 authPriv (what the field should use) and v2c."""
    target, name = _ep(device, offset), device.removesuffix("-snmp")
    return [
        {
            "id": f"{name}-snmp-v3",
            "kind": "snmp",
            "target": target,
            **_V3_CREDENTIALS,
            "interfaces": interfaces,
        },
        {
            "id": f"{name}-snmp-v2c",
            "kind": "snmp",
            "target": target,
            "version": "2c",
            "community_env": SNMP_ENV.community,
            "interfaces": interfaces,
        },
    ]


def _site_ups(offset: int) -> Check:
    """The radio site's UPS: its mains fail for 90 s of every 5 minutes (on battery: CRIT)."""
    return {
        "id": "site-ups",
        "kind": "snmp",
        "target": _ep("ridge-ups-snmp", offset),
        **_V3_CREDENTIALS,
        "ups": True,
    }


def demo_inventory(offset: int = 0, history_path: Path | None = None) -> dict[str, Any]:
    """The lab's inventory as YAML-ready data, for a lab whose ports are shifted by `offset`."""
    document: dict[str, Any] = {
        "version": 1,
        "defaults": {
            "interval": "10s",
            "timeout": "5s",
            "retries": 2,
            "retry_interval": "5s",
            "latency_warn": "500ms",
            "latency_crit": "2s",
            "ca_file": str(LAB_CA_FILE),
        },
        "sites": [
            {
                "id": "psap-north",
                "name": "North County PSAP",
                "tags": ["psap", "tier1"],
                "min_up": 1,
                "links": [
                    {
                        "id": "fibre-primary",
                        "name": "Metro fibre to the county data centre",
                        "role": "primary",
                        "medium": "fibre",
                        "risks": ["carrier:metro-fibre", "conduit:main-st", "co:downtown"],
                        "checks": [
                            {
                                "id": "edge-router",
                                "kind": "tcp",
                                "target": _ep("psap-edge-router", offset),
                            },
                            {
                                "id": "cad-api",
                                "kind": "http",
                                "target": f"http://{_ep('cad-api', offset)}/health",
                                "expect_status": 200,
                                "body_contains": "ok",
                            },
                            _tls(
                                "cad-api-tls", "cad-api-tls", offset, "cad.psap-north.example.net"
                            ),
                            {
                                "id": "resolver",
                                "kind": "dns",
                                "target": "cad.psap-north.example.net",
                                "server": _ep("psap-resolver", offset),
                                "type": "A",
                                "expect": ["127.0.10.2"],
                            },
                            *_snmp_checks(
                                "psap-edge-router-snmp", offset, ["ge-0/0/0", "ge-0/0/1"]
                            ),
                        ],
                    },
                    {
                        "id": "lte-backup",
                        "name": "LTE failover router",
                        "role": "backup",
                        "medium": "lte",
                        # The cell site's own backhaul runs through the same central office.
                        "risks": ["carrier:cellco", "co:downtown"],
                        "availability_from": ["lte-router", "cad-api-via-lte"],
                        "defaults": {"latency_warn": "1s", "latency_crit": "4s"},
                        "checks": [
                            {
                                "id": "lte-router",
                                "kind": "tcp",
                                "target": _ep("lte-router", offset),
                            },
                            {
                                "id": "cad-api-via-lte",
                                "kind": "http",
                                "target": f"http://{_ep('cad-api-via-lte', offset)}/health",
                                "expect_status": "200-299",
                            },
                            _tls(
                                "lte-router-webui",
                                "lte-router-webui",
                                offset,
                                "lte-gw.psap-north.example.net",
                            ),
                        ],
                    },
                ],
            },
            {
                "id": "dispatch-central",
                "name": "Central Fire & EMS Dispatch",
                "tags": ["dispatch", "tier1"],
                "links": [
                    {
                        "id": "mpls-a",
                        "name": "Carrier A MPLS",
                        "role": "primary",
                        "medium": "mpls",
                        "risks": ["carrier:carrier-a", "conduit:5th-ave"],
                        "checks": [
                            {
                                "id": "paging-gateway",
                                "kind": "http",
                                "target": f"http://{_ep('paging-gateway', offset)}/status",
                                "expect_status": [200, 204],
                                "latency_warn": "300ms",
                                "latency_crit": "1s",
                            },
                            _tls(
                                "paging-gateway-tls",
                                "paging-gateway-tls",
                                offset,
                                "paging.dispatch.example.net",
                            ),
                            {
                                "id": "dns-srv-sip",
                                "kind": "dns",
                                "target": "_sip._udp.dispatch.example.net",
                                "server": _ep("dispatch-resolver", offset),
                                "type": "SRV",
                            },
                            {
                                "id": "master-clock",
                                "kind": "ntp",
                                "target": _ep("dispatch-master-clock", offset),
                            },
                            {
                                "id": "sip-trunk",
                                "kind": "sip",
                                "target": _ep("dispatch-sbc", offset),
                            },
                        ],
                    },
                    {
                        "id": "mpls-b",
                        "name": "Carrier B MPLS (diverse path)",
                        "role": "secondary",
                        "medium": "mpls",
                        # Two carriers, one conduit: diverse on paper, one backhoe away.
                        "risks": ["carrier:carrier-b", "conduit:5th-ave"],
                        "checks": [
                            {
                                "id": "ce-router",
                                "kind": "tcp",
                                "target": _ep("carrier-b-ce-router", offset),
                            },
                            _tls("carrier-portal", "carrier-b-portal", offset, None, timeout="2s"),
                            {
                                "id": "sip-trunk-b",
                                "kind": "sip",
                                "target": _ep("carrier-b-sbc", offset),
                                "transport": "tcp",
                            },
                        ],
                    },
                ],
            },
            {
                "id": "radio-ridge",
                "name": "Ridge Mountain radio site",
                "tags": ["radio-site", "p25"],
                "defaults": {"interval": "15s"},
                "links": [
                    {
                        "id": "microwave",
                        "name": "Licensed microwave backhaul",
                        "role": "primary",
                        "medium": "microwave",
                        "risks": ["path:ridge-psap-hop"],
                        "depends_on": ["psap-north/fibre-primary"],
                        # The radio's own view of its interfaces decides too.
                        "availability_from": [
                            "site-router",
                            *(c["id"] for c in _snmp_checks("ridge-radio-snmp", offset, [])[:1]),
                        ],
                        "checks": [
                            {
                                "id": "site-router",
                                "kind": "tcp",
                                "target": _ep("ridge-site-router", offset),
                            },
                            {
                                # The kernel answers: no lab peer, no port to shift.
                                "id": "site-router-ping",
                                "kind": "icmp",
                                "target": service("ridge-site-router").address,
                                "echo_interval": "200ms",
                                "size": 1400,
                                "dont_fragment": True,
                                "jitter_warn": "30ms",
                            },
                            _tls(
                                "rfss-console",
                                "rfss-console",
                                offset,
                                "rfss.radio-ridge.example.net",
                            ),
                            *_snmp_checks("ridge-radio-snmp", offset, ["rf0", "eth0", "eth1"]),
                            _site_ups(offset),
                        ],
                    },
                    {
                        "id": "satellite",
                        "name": "Satellite backup",
                        "role": "backup",
                        "medium": "satellite",
                        "risks": ["carrier:vsat-co"],
                        "availability_from": ["vsat-modem"],
                        "defaults": {"latency_warn": "900ms", "latency_crit": "3s"},
                        "checks": [
                            {
                                "id": "vsat-modem",
                                "kind": "http",
                                "target": f"http://{_ep('vsat-modem', offset)}/health",
                            },
                            _tls(
                                "vsat-modem-tls",
                                "vsat-modem-tls",
                                offset,
                                "vsat.radio-ridge.example.net",
                            ),
                        ],
                    },
                ],
            },
        ],
        "groups": [
            {
                "id": "county-dispatch-paths",
                "name": "Every path into county dispatch",
                "links": [
                    "dispatch-central/mpls-a",
                    "dispatch-central/mpls-b",
                    "psap-north/fibre-primary",
                ],
                "min_up": 2,
            }
        ],
    }
    if history_path is not None:
        document["history"] = {"path": str(history_path)}
    return document


def write_demo_inventory(folder: Path, offset: int = 0) -> Path:
    """Writes `inventory.yaml` (history kept beside it, apart from any real history) into
    `folder` and returns its path."""
    path = folder / "inventory.yaml"
    document = demo_inventory(offset, folder / "history.sqlite3")
    header = "# Written by `commwatch demo` for its lab; regenerated at every start.\n"
    path.write_text(header + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path
