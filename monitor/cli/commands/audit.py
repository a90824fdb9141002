"""`commwatch audit certs`: every certificate of every TLS-bearing check in the selection, and
what is wrong with each endpoint's chain, for cron or a systemd timer."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence

from monitor.cli.commands.selection import selection
from monitor.cli.commands.sweep import collect, interrupted
from monitor.cli.parsing import EXIT_UNKNOWN
from monitor.cli.values import worker_count
from monitor.config.inventory import Check, Inventory
from monitor.core.model import ProbeResult
from monitor.output import audit as audit_report
from monitor.output import audit_formats, terminal
from monitor.store import renewals
from monitor.store.schema import HistoryError


def run(args: argparse.Namespace) -> int:
    selected = selection(args)
    if selected is None:
        return EXIT_UNKNOWN
    checks = [c for c in selected.checks if c.probe.presents_certificates(c.options)]
    if not checks:
        print("commwatch: no TLS-bearing check (tls, https) in the selection", file=sys.stderr)
        return EXIT_UNKNOWN
    workers = worker_count(args.workers, len(checks))
    results, complete = asyncio.run(collect(selected.inventory, checks, workers))
    if not complete:
        interrupted(len(results), len(checks), "endpoints")
        return EXIT_UNKNOWN
    results = _with_history(selected.inventory, checks, results)
    report = audit_report.build_report(
        checks,
        results,
        now=time.time(),
        warn_days=args.warn,
        crit_days=args.crit,
        within_days=args.within,
    )
    if args.output:
        _write_atomically(args.output, audit_formats.render(report, args.format, colour=False))
    else:
        colour = terminal.use_colour(sys.stdout)
        print(audit_formats.render(report, args.format, colour))
    return report.exit_code


def _with_history(
    inventory: Inventory, checks: Sequence[Check], results: Sequence[ProbeResult]
) -> list[ProbeResult]:
    """The results with their renewal and issuer verdicts, judged against the certificates the
    history remembers per endpoint (read only: the audit records nothing). Without a history
    file each served leaf is judged alone: past its renewal date, it is overdue."""
    watch = renewals.CertificateWatch()
    try:
        watch.load(renewals.remembered(inventory.resilience.history.path))
    except HistoryError as exc:
        print(f"commwatch: {exc}; renewals judged without it", file=sys.stderr)
    by_id = {check.ref.check_id: check for check in checks}
    return [watch.judge(by_id.get(r.check.check_id), r) for r in results]


def _write_atomically(path: str, text: str) -> None:
    """A reader (a dashboard, a mail job) never sees half a report."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.replace(temporary, path)
