"""A certificate subject is a peer's text: in the audit's CSV it never starts a formula, in its
Markdown it never becomes a link, HTML or a character reference; the audit's own numbers stay
numbers (an expired certificate's days left are negative)."""

from __future__ import annotations

import csv
import dataclasses
import io

from monitor.config.checks import adhoc_check
from monitor.core.model import ProbeResult, Severity
from monitor.output.audit import AuditReport, build_report
from monitor.output.audit_formats import render
from tests.tui_support import NOW, certificate

SUBJECT = '=HYPERLINK("https://evil.example/") [click](https://evil.example/) &#x202e; <b>x</b>'


def report_of(days_left: float) -> AuditReport:
    leaf = certificate(SUBJECT, days_left, 0, issuer="@SUM(A1)")
    check = adhoc_check("tls", {"target": "127.0.0.1:8443"})
    check = dataclasses.replace(check, ref=dataclasses.replace(check.ref, check_id="s/l/tls"))
    result = ProbeResult(
        check=check.ref,
        started_at=NOW,
        duration_ms=5.0,
        severity=Severity.CRIT,
        certificates=(leaf,),
    )
    return build_report([check], [result], now=NOW)


def test_csv_cells_start_no_formula_and_numbers_stay_numbers() -> None:
    rows = list(csv.DictReader(io.StringIO(render(report_of(-3.0), "csv", colour=False))))

    assert rows[0]["state"] == "EXPIRED"
    assert rows[0]["days_left"] == "-3.000"
    assert rows[0]["subject"] == f"'{SUBJECT}"
    assert rows[0]["issuer"] == "'@SUM(A1)"


def test_markdown_cells_render_as_the_text_itself() -> None:
    markdown = render(report_of(10.0), "markdown", colour=False)
    row = next(line for line in markdown.splitlines() if "HYPERLINK" in line)

    assert "\\[click\\](https://evil.example/)" in row
    assert "\\&#x202e;" in row
    assert "\\<b\\>x\\</b\\>" in row
    assert "[click](" not in row.replace("\\[click\\](", "")
