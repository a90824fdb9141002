"""Shared by the dashboard tests: a small inventory and fabricated results with fixed times, for
rendering tests where determinism matters (engine-driven tests use real checks and peers)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, RenderableType
from textual.binding import Binding
from textual.pilot import Pilot

from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.conditions import Expectation
from monitor.core.events import Event
from monitor.core.model import CertificateInfo, ErrorClass, ProbeError, ProbeResult, Severity
from monitor.engine.state import EngineState
from monitor.engine.step import step
from monitor.engine.views import topology_of
from probes.base import LatencyOptions
from tui.app import CommwatchApp, help_sections
from tui.screens.acknowledge import AckPrompt
from tui.widgets.event_log import EventLog

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC
DAY = 86400.0

# Every target is on loopback and nothing here is ever probed: rendering tests run no engine.
INVENTORY = """\
version: 1
defaults: {interval: 30s, timeout: 5s, latency_warn: 200ms, latency_crit: 1s}
sites:
  - id: psap-north
    name: North County PSAP
    tags: [psap]
    links:
      - id: fibre
        name: Metro fibre
        role: primary
        medium: fibre
        checks:
          - {id: edge-router, kind: tcp, target: "127.0.40.1:22"}
          - {id: cad-api, kind: http, target: "https://127.0.40.2:8443/health"}
          - {id: resolver, kind: dns, target: cad.example.net, server: "127.0.40.3:5353"}
      - id: lte
        name: LTE failover
        role: backup
        medium: lte
        checks:
          - {id: lte-router, kind: tcp, target: "127.0.41.1:22"}
  - id: dispatch
    name: Central Dispatch
    links:
      - id: mpls
        name: Carrier MPLS
        role: primary
        medium: mpls
        checks:
          - {id: paging, kind: http, target: "http://127.0.42.1:8080/status"}
          - {id: radio-core, kind: tcp, target: "127.0.42.2:5060"}
"""

# The same with a named redundancy group across both sites (it gets a row of its own).
GROUPED = (
    INVENTORY
    + """\
groups:
  - id: county-paths
    name: Every path into the county
    links: [psap-north/fibre, psap-north/lte, dispatch/mpls]
    min_up: 2
"""
)
ROWS = 11  # rows of INVENTORY: 2 sites, 3 links, 6 checks (GROUPED: one more)


def write_inventory(folder: Path, text: str = INVENTORY) -> Inventory:
    path = folder / "inventory.yaml"
    path.write_text(text)
    return load_inventory(path)


def certificate(subject: str, days_left: float, position: int, issuer: str) -> CertificateInfo:
    return CertificateInfo(
        fingerprint_sha256=(subject.encode().hex() * 64)[:64],
        position=position,
        subject=subject,
        issuer=issuer,
        serial="0a",
        not_before=NOW - 300 * DAY,
        not_after=NOW + days_left * DAY,
        key_type="EC",
        key_bits=256,
        signature_algorithm="ecdsa-with-SHA256",
        subject_alt_names=(),
        spki_sha256="AAAA",
        self_signed=position > 0,
    )


# The thresholds the fabricated results are judged by: warn 200 ms, crit 1 s.
LATENCY = LatencyOptions(latency_warn=0.2, latency_crit=1.0)


def latency_result(
    inventory: Inventory, check_id: str, ms: float, at: float, key: str = "connect_ms"
) -> ProbeResult:
    """A result judged the way the probe's latency threshold judges it (warn 200, crit 1000)."""
    check = next(c for c in inventory.checks if c.ref.check_id == check_id)
    verdict = LATENCY.latency(key).judge(ms)
    return ProbeResult(
        check=check.ref,
        started_at=at,
        duration_ms=ms,
        severity=verdict.severity,
        observations={key: ms},
        verdicts=(verdict,),
    )


def failed_result(
    inventory: Inventory, check_id: str, at: float, error: ErrorClass, message: str
) -> ProbeResult:
    check = next(c for c in inventory.checks if c.ref.check_id == check_id)
    severity = Severity.UNKNOWN if error is ErrorClass.TIMEOUT else Severity.CRIT
    return ProbeResult(
        check=check.ref,
        started_at=at,
        duration_ms=3.0,
        severity=severity,
        error=ProbeError(error, message),
    )


def scenario(inventory: Inventory) -> list[ProbeResult]:
    """A varied picture: OK, slow (WARN), refused (CRIT), timeout (UNKNOWN), an HTTP 503, a
    certificate close to expiry; several results per check so sparklines and history show."""
    results = []
    for i, ms in enumerate((4, 5, 7, 6, 5, 4, 9, 5)):
        results.append(latency_result(inventory, "psap-north/fibre/edge-router", ms, NOW - 80 + i))
    for i, ms in enumerate((120, 150, 180, 240, 260, 310)):
        results.append(latency_result(inventory, "psap-north/lte/lte-router", ms, NOW - 60 + i))
    results.append(latency_result(inventory, "dispatch/mpls/radio-core", 3, NOW - 70))
    results.append(
        failed_result(
            inventory,
            "dispatch/mpls/radio-core",
            NOW - 30,
            ErrorClass.REFUSED,
            "connection refused",
        )
    )
    results.append(
        failed_result(
            inventory, "psap-north/fibre/resolver", NOW - 45, ErrorClass.TIMEOUT, "no answer in 5s"
        )
    )
    results.append(http_result(inventory, "dispatch/mpls/paging", 503, 42.0, NOW - 20))
    chain = (
        certificate("CN=cad.example.net", 9, 0, "CN=Example Issuing CA"),
        certificate("CN=Example Issuing CA", 900, 1, "CN=Example Root CA"),
    )
    for i, ms in enumerate((30, 35, 28, 33)):
        results.append(
            http_result(inventory, "psap-north/fibre/cad-api", 200, ms, NOW - 40 + i, chain)
        )
    return results


def engine_view(
    inventory: Inventory, results: list[ProbeResult], confirm_at_once: bool = True
) -> tuple[list[ProbeResult], list[Event], EngineState]:
    """What the state engine makes of `results` (by default every result taken as confirmed,
    as in a sweep; else as a running engine confirms them, after `retries` agreeing results):
    the arguments of `DashboardScreen.apply_results` when the engine runs."""
    topology = topology_of(inventory, confirm_at_once=confirm_at_once)
    state, events = EngineState(), []
    for result in sorted(results, key=lambda r: r.started_at):
        state, new = step(topology, state, result)
        events += new
    return results, events, state


def http_result(
    inventory: Inventory,
    check_id: str,
    status: int,
    ms: float,
    at: float,
    certificates: tuple[CertificateInfo, ...] = (),
) -> ProbeResult:
    check = next(c for c in inventory.checks if c.ref.check_id == check_id)
    verdicts = (
        Expectation("status", "status", lambda v: v == 200, "200").judge(status),
        LATENCY.latency("latency_ms").judge(ms),
    )
    return ProbeResult(
        check=check.ref,
        started_at=at,
        duration_ms=ms,
        severity=Severity.worst(v.severity for v in verdicts),
        observations={"status": status, "latency_ms": ms},
        verdicts=verdicts,
        certificates=certificates,
    )


async def until(pilot: Pilot[None], predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until `predicate()` holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {predicate.__doc__ or predicate}")
        await pilot.pause(0.05)


def cell(app: CommwatchApp, key: str, column: str) -> str:
    return app.dashboard.table.get_cell(key, column).plain


def shown(app: CommwatchApp) -> list[str]:
    return [row.key for row in app.dashboard.table.shown]


def rendered(renderable: RenderableType, width: int = 120) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def log_lines(app: CommwatchApp) -> list[str]:
    return app.dashboard.query_one(EventLog).texts


def log_on_screen(app: CommwatchApp) -> list[str]:
    """The event log's lines as it paints them now, top to bottom, blank lines left out."""
    log = app.dashboard.query_one(EventLog)
    lines = (log.render_line(y).text.rstrip() for y in range(log.size.height))
    return [line for line in lines if line]


def toasts(app: CommwatchApp) -> list[str]:
    """The notifications on screen, as their toasts read (title, then message)."""
    return [str(toast.render()) for toast in app.screen.query("Toast")]


def help_bindings() -> list[Binding]:
    """Every key the help screen lists, whichever section lists it."""
    return [binding for _, bindings in help_sections() for binding in bindings]


async def acknowledge(
    pilot: Pilot[None], comment: str = "on it, ticket 42", expires: str | None = None
) -> None:
    """`a` on the selected row, then the prompt answered as an operator types: the comment,
    enter, the expiry (left at its default unless given), enter."""
    await pilot.press("a")
    await until(pilot, lambda: isinstance(pilot.app.screen, AckPrompt))
    await pilot.press(*comment, "enter")
    if expires is not None:
        await pilot.press(*["backspace"] * 10, *expires)
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(pilot.app.screen, AckPrompt))
