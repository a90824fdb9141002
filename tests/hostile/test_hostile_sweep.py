"""Every kind of hostile peer at once, in one `commwatch run --once`, beside healthy checks: each
hostile check ends in a classified CRIT or UNKNOWN within its timeout, the healthy ones stay OK,
nothing prints a traceback, and the process's memory stays close to that of a sweep of the
healthy checks alone."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.hostile import stream_peers
from tests.hostile.dns_servers import header_only, scripted_server, self_pointing_answer, with_id
from tests.hostile.snmp_agents import (
    COMMUNITY,
    DECODER_CRASH,
    SYS_UPTIME,
    V2C,
    Behaviour,
    healthy_system,
    random_garbage,
    scripted_agent,
)
from tests.hostile.test_dns_hostile import real_answer
from tests.hostile.test_snmp_hostile import endless_names
from tests.peers.http_peers import http_server
from tests.peers.tcp_peers import accepting_listener

TIMEOUT_S = 2.0
# A check's duration includes its scheduling inside the sweep; the runner's timeout is exact.
MARGIN_S = 0.5
# Extra resident memory a sweep of hostile peers may take over the same sweep without them.
MEMORY_MARGIN_KIB = 48 * 1024

HTTP = (
    "hang_after_accept",
    "slowloris",
    "endless_headers",
    "huge_header",
    "endless_chunked",
    "huge_body",
    "endless_garbage",
)
TLS = (
    "hang_after_accept",
    "truncated_tls_record",
    "cut_tls_record",
    "endless_tls_records",
    "endless_garbage",
)


def _stray_dns(query: bytes) -> list[tuple[float, bytes]]:
    stray = with_id(real_answer(query), int.from_bytes(query[:2], "big") ^ 0xFFFF)
    return [(0.01 * i, stray) for i in range(50)]


def _check(check_id: str, kind: str, target: str, **options: Any) -> str:
    values = {"id": check_id, "kind": kind, "target": target, **options}
    return "          - " + json.dumps(values)


def _inventory(folder: Path, checks: list[str]) -> Path:
    path = folder / f"inventory-{len(checks)}.yaml"
    path.write_text(
        f"""\
version: 1
defaults: {{interval: 1m, timeout: {TIMEOUT_S}s}}
concurrency: {{global: 64, per_host: 64}}
sites:
  - id: site
    links:
      - id: link
        checks:
"""
        + "\n".join(checks)
        + "\n"
    )
    return path


def _sweep(inventory: Path) -> tuple[dict[str, Any], str, int]:
    """`commwatch run --once` on `inventory`: its document, its stderr, its peak RSS in KiB."""
    out, err = inventory.with_suffix(".out"), inventory.with_suffix(".err")
    # Files, not pipes: a flood on stderr must not block the process while stdout is read.
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "--once", str(inventory)],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "CW_HOSTILE_COMMUNITY": COMMUNITY},
        )
        _, _, usage = os.wait4(process.pid, 0)
        process.returncode = 0  # reaped by wait4, which also gives its resource usage
    return json.loads(out.read_text()), err.read_text(errors="replace"), usage.ru_maxrss


async def test_hostile_peers_of_every_kind_at_once(tmp_path: Path) -> None:
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0  # Linux reports KiB
    behaviours = {f"http-{name}": getattr(stream_peers, name) for name in HTTP}
    behaviours |= {f"tls-{name}": getattr(stream_peers, name) for name in TLS}
    snmp_flood = Behaviour(
        values=healthy_system(), garbage=(DECODER_CRASH,) * 300 + random_garbage(300)
    )
    snmp_lies = Behaviour(values={**healthy_system(), SYS_UPTIME: V2C.OctetString(b"0")})
    snmp_endless = Behaviour(values=healthy_system(), next_of=endless_names)
    snmp_silent_garbage = Behaviour(garbage=random_garbage(5), answer=False)
    snmp = {"version": "2c", "community_env": "CW_HOSTILE_COMMUNITY"}
    async with (
        stream_peers.serving(behaviours) as ports,
        accepting_listener() as healthy_tcp,
        http_server() as healthy_http,
        scripted_server(_stray_dns) as dns_strays,
        scripted_server(lambda q: [(0.0, self_pointing_answer(q))]) as dns_loop,
        scripted_server(lambda q: [(0.0, header_only(q, 65535))]) as dns_counts,
        scripted_agent(snmp_flood) as flood,
        scripted_agent(snmp_lies) as lies,
        scripted_agent(snmp_endless) as endless,
        scripted_agent(snmp_silent_garbage) as garbage,
    ):
        healthy = [
            _check("ok-tcp", "tcp", f"127.0.0.1:{healthy_tcp}"),
            _check("ok-http", "http", f"{healthy_http.url}/ok"),
            # The real answer follows 600 garbage datagrams: read, and OK.
            _check("ok-snmp-flood", "snmp", flood.target, **snmp),
        ]
        hostile = [
            *(
                _check(name, "http", f"http://127.0.0.1:{ports[name]}/", body_contains="zzz")
                for name in ports
                if name.startswith("http-") and name != "http-huge_body"
            ),
            _check(
                "http-huge_body",
                "http",
                f"http://127.0.0.1:{ports['http-huge_body']}/",
                body_contains="zzz",
            ),
            *(
                _check(name, "tls", f"127.0.0.1:{ports[name]}")
                for name in ports
                if name.startswith("tls-")
            ),
            _check("dns-strays", "dns", "cad.example.net", server=dns_strays),
            _check("dns-loop", "dns", "cad.example.net", server=dns_loop),
            _check("dns-counts", "dns", "cad.example.net", server=dns_counts),
            _check("snmp-lies", "snmp", lies.target, **snmp),
            _check("snmp-endless", "snmp", endless.target, interfaces=["if-none"], **snmp),
            _check("snmp-garbage", "snmp", garbage.target, **snmp),
        ]
        calm = await asyncio.to_thread(_sweep, _inventory(tmp_path, healthy))
        stormy = await asyncio.to_thread(_sweep, _inventory(tmp_path, healthy + hostile))

    calm_document, calm_errors, calm_rss = calm
    document, errors, rss = stormy
    assert calm_document["summary"]["worst"] == "OK", calm_document
    results = {r["check_id"].rsplit("/", 1)[1]: r for r in document["results"]}
    assert len(results) == len(healthy) + len(hostile)
    for name, result in results.items():
        if name.startswith("ok-"):
            assert result["severity"] == "OK", (name, result["summary"])
            continue
        assert result["severity"] in ("CRIT", "UNKNOWN"), (name, result["summary"])
        assert result["error"] is None or result["error"]["class"] != "internal", (name, result)
        assert result["duration_ms"] <= (TIMEOUT_S + MARGIN_S) * 1000, (name, result["summary"])
    assert "Traceback" not in errors + calm_errors
    assert rss - calm_rss < MEMORY_MARGIN_KIB, (rss, calm_rss)
    print(f"peak RSS: healthy sweep {calm_rss} KiB, with hostile peers {rss} KiB")
