"""Results as tables for people: the sweep's table, one result's verdict list, the redundancy
groups, and the column layout the audit and the availability report share.

Summaries, messages and observed values quote peers (certificate subjects, DNS data, SNMP
strings): every one goes through `printable` here, so none can drive the terminal or forge a
line. Check ids and targets too, cheaply, whatever the inventory holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from monitor.core.model import ProbeResult, Severity, shown_value
from monitor.core.text import printable
from monitor.output.records import GroupView, worst
from monitor.output.terminal import severity_label


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(results: Sequence[ProbeResult], colour: bool) -> str:
    """A fixed-column table, worst first, then by check id."""
    ordered = sorted(results, key=lambda r: (-r.severity.rank, r.check.check_id))
    shown = [(r, printable(r.check.check_id), printable(r.check.target)) for r in ordered]
    id_width = min(max((len(check_id) for _, check_id, _ in shown), default=5), 48)
    target_width = min(max((len(target) for _, _, target in shown), default=6), 40)
    lines = [
        f"{'STATE':<7}  {'CHECK':<{id_width}}  {'KIND':<5}  {'TARGET':<{target_width}}  "
        f"{'TIME':>8}  DETAIL"
    ]
    for r, check_id, target in shown:
        lines.append(
            f"{severity_label(r.severity, colour)}  {_clip(check_id, id_width):<{id_width}}"
            f"  {r.check.kind:<5}  {_clip(target, target_width):<{target_width}}"
            f"  {r.duration_ms:>6.0f}ms  {printable(r.summary())}"
        )
    counts = Counter(r.severity for r in results)
    totals = ", ".join(f"{counts.get(s, 0)} {s.name}" for s in Severity)
    lines.append(f"\n{len(results)} checks: {totals}; worst {worst(results).name}")
    return "\n".join(lines)


def verdict_list(result: ProbeResult, colour: bool) -> str:
    """The readable form of one result, for `commwatch probe`: what failed first."""
    ref = result.check
    lines = [
        f"{severity_label(result.severity, colour).rstrip()}  {ref.kind} {printable(ref.target)}"
        f"  ({result.duration_ms:.0f} ms)"
    ]
    if result.error is not None:
        lines.append(f"  error    {result.error.error_class}: {printable(result.error.message)}")
    failing_first = sorted(result.verdicts, key=lambda v: -v.severity.rank)
    lines.extend(
        f"  {severity_label(v.severity, colour)}  {printable(v.describe())}" for v in failing_first
    )
    for key, value in result.observations.items():
        lines.append(f"  observed {printable(key)} = {printable(shown_value(value))}")
    return "\n".join(lines)


def groups_table(groups: Sequence[GroupView]) -> str:
    # Columns as wide as their longest entry, and never narrower than the usual ones: the
    # layout only moves when a NOT EVALUATED row or a long id needs the room.
    width = max((len(g.label) for g in groups), default=0)
    id_width = max((len(g.group_id) for g in groups), default=0)
    lines = ["\nREDUNDANCY"]
    lines += [
        f"  {g.label:<{max(width, 10)}} {g.group_id:<{max(id_width, 24)}} {g.describe()}"
        for g in groups
    ]
    return "\n".join(lines)


def not_evaluated_note(groups: Sequence[GroupView]) -> str | None:
    """A line for people when the selection leaves groups unjudged (None when it does not)."""
    ids = [g.group_id for g in groups if not g.evaluated]
    if not ids:
        return None
    return (
        f"commwatch: redundancy not evaluated for {', '.join(ids)}: the selection leaves out"
        " checks that decide some of their links"
    )


# --- columns -------------------------------------------------------------------------------


def column_widths(
    header: Sequence[str], rows: Sequence[Sequence[str]], caps: Mapping[int, int] | None = None
) -> list[int]:
    """Each column as wide as its widest cell, header included; `caps` bounds some of them."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
    for index, cap in (caps or {}).items():
        widths[index] = min(widths[index], cap)
    return widths


def column_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Cells left-aligned in their columns, two spaces apart, cut to a capped width; no
    trailing spaces. The cells must already be printable."""
    return "  ".join(c[: widths[i]].ljust(widths[i]) for i, c in enumerate(cells)).rstrip()
