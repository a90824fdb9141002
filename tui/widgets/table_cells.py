"""What each cell of a check table row says (status, name, age, latency trend, info), styled by
the table's severity styles. How the cells are laid out and drawn is the table's business."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from rich.style import Style
from rich.text import Text

from monitor.config.diversity import risks_text
from monitor.core.text import printable
from tui.board import Board
from tui.present import age_text, info_text, soft_text, sparkline, status_text
from tui.rows import Level, Row
from tui.state import finished_at
from tui.widgets.severity_styles import SeverityStyles


def row_cells(
    styles: SeverityStyles,
    board: Board,
    row: Row,
    now: float,
    paused: AbstractSet[str],
    trend_width: int,
) -> dict[str, Text]:
    """Every cell of a row, by column key; `trend_width` 0 when there is no trend column."""
    if row.level is Level.CHECK:
        return _check_cells(styles, board, row, now, paused, trend_width)
    facts: list[str] = []
    if row.link is None:
        style = styles.component_style("row--site")
        group = board.group_status(row)
        if group is not None and group.status is not None:
            facts.append(group.describe())
            if not group.risks.exposed and group.risks.exposed_by_design:
                # Not what its state rests on now, but one event would take it down with
                # every link back up.
                shared = (risk for e in group.risks.exposed_by_design for risk in e.risks)
                facts.append(f"shared {risks_text(shared)}")
        if (cause := board.cause(row)) != "":
            facts.append(cause)
        n = len(row.checks)
        if row.site is not None:
            name = Text(row.site.name or row.site.id, style)
            facts.append(f"{row.site.id} · {len(row.site.links)} links · {n} checks")
        else:
            assert row.group is not None
            name = Text(row.group.group.name or row.group.group.id, style)
            sites = len({link.site_id for link in row.links})
            facts.append(f"group {row.group.group.id} · {sites} sites · {n} checks")
        label: str | None = None if group is None else group.label
    else:
        style = styles.component_style("row--link")
        name = Text(f"  {row.link.id}", style)
        if (cause := board.cause(row)) != "":
            facts.append(cause)
        facts += [d for d in (row.link.role, row.link.medium, row.link.name) if d]
        label = board.link_label(row.link)
    if board.engine is not None:
        status = styles.state_mark(label)
        if row.subject_id in board.acks:
            status.append(" ack", styles.component_style("acked"))
    else:
        # No state engine (fabricated results): the worst below.
        severity, acked = board.tally.row_status(row.key)
        status = Text(status_text(severity, acked), styles.severity_style(severity, acked))
    info = styles.held_text(board.held(row.subject_id)) + Text(" · ".join(facts), style)
    return {"status": status, "name": name, "age": Text(), "trend": Text(), "info": info}


def _check_cells(
    styles: SeverityStyles,
    board: Board,
    row: Row,
    now: float,
    paused: AbstractSet[str],
    trend_width: int,
) -> dict[str, Text]:
    check = row.check
    assert check is not None
    check_id = check.ref.check_id
    state = board.states[check_id]
    acked = check_id in board.acked
    dim = styles.component_style("acked") if acked else Style()
    own_id = check_id.rsplit("/", 1)[-1]
    result = state.result
    confirmed = board.check_state(check_id)
    if confirmed is not None and confirmed.is_soft and not acked:
        soft = confirmed.soft
        status = Text(
            soft_text(soft, confirmed.attempts, board.confirmations[check_id]),
            styles.severity_style(soft) + styles.component_style("soft"),
        )
    else:
        status = Text(
            status_text(state.severity, acked), styles.severity_style(state.severity, acked)
        )
    return {
        "status": status,
        "name": Text(f"    {own_id} ", dim) + Text(check.kind, styles.component_style("dim") + dim),
        "age": age_cell(styles, board, row, now, paused),
        "trend": Text(sparkline(state.latencies, trend_width), dim),
        "info": styles.held_text(board.held(check_id))
        + Text("" if result is None else printable(info_text(result, now)), dim),
    }


def age_cell(
    styles: SeverityStyles, board: Board, row: Row, now: float, paused: AbstractSet[str]
) -> Text:
    """How long ago a check's latest result came, `‖`-marked while it is paused."""
    assert row.check is not None
    check_id = row.check.ref.check_id
    result = board.states[check_id].result
    age = "" if result is None else age_text(now - finished_at(result))
    if check_id in paused:
        return Text(f"‖ {age}".rstrip(), styles.component_style("dim"))
    return Text(age)
