"""Everything about the selected row: a check's verdicts, error, certificate chain and history;
a site's, link's or group's standing and its problems."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Set as AbstractSet
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.geometry import Size
from textual.widgets import Static

from monitor.config.diversity import link_name, loss_text, riders_text, risks_text
from monitor.config.inventory import Check, Link
from monitor.core.model import CertificateInfo, ProbeResult, VantageResult, as_number
from monitor.core.text import printable
from tui.board import Board
from tui.present import SYMBOLS, ack_text, age_text, clock_text, status_text
from tui.rows import Level, Row
from tui.state import HistoryLine, finished_at
from tui.widgets.severity_styles import SEVERITY_CLASSES, SeverityStyles

GROUP_DETAIL_ROWS = 30  # problems a site, link or group lists in the detail pane
ZOOM_DETAIL_ROWS = 500  # checks it lists zoomed


class DetailPane(SeverityStyles, Static):
    """Everything about the selected row: verdicts, error, history, certificate chain.

    Zoomed (the whole screen), a site, link or group lists every check below it, not only
    its problems."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {*SEVERITY_CLASSES, "detail--heading"}

    _height: int | None = None
    zoomed = False

    def show(self, board: Board, row: Row | None, now: float, paused: AbstractSet[str]) -> None:
        if row is None:
            self._show(Text("No row selected.", self._dim))
        elif row.level is Level.CHECK:
            assert row.check is not None
            self._show(self._check(board, row.check, now, row.check.ref.check_id in paused))
        else:
            self._show(self._group(board, row, now))

    def _show(self, content: RenderableType) -> None:
        """Lay the screen out again only when the pane's height changes: it is rewritten every
        second (its ages move on), and a layout repaints the whole screen."""
        self.update(content, layout=False)
        height = self.get_content_height(Size(0, 0), Size(0, 0), self.content_region.width)
        if height != self._height:
            self._height = height
            self.refresh(layout=True)

    @property
    def _dim(self) -> Style:
        return self.component_style("dim")

    def _heading(self, text: str) -> Text:
        return Text(text, self.component_style("detail--heading"))

    def _group(self, board: Board, row: Row, now: float) -> RenderableType:
        named = row.site is None  # a named group: its links are in several sites
        if row.link is not None:
            assert row.site is not None
            link = row.link
            title = f"{row.site.name or row.site.id} / {link.name or link.id}"
            facts = f"link {link.site_id}/{link.id} · {link.role} · {link.medium}"
            if link.availability_from:
                deciding = ", ".join(cid.rsplit("/", 1)[-1] for cid in link.availability_from)
                facts += f" · up or down by {deciding}"
            if link.risks:
                facts += f" · rides {risks_text(link.risks)}"
        elif row.site is not None:
            title = row.site.name or row.site.id
            facts = f"site {row.site.id}" + (
                f" · {', '.join(row.site.tags)}" if row.site.tags else ""
            )
        else:
            assert row.group is not None
            title = row.group.group.name or row.group.group.id
            sites = len({link.site_id for link in row.links})
            facts = f"group {row.group.group.id} · {len(row.links)} links in {sites} sites"
        standing = Text()
        if row.link is not None and board.engine is not None:
            standing = Text("link ") + self.state_mark(board.link_label(row.link))
            if cause := board.cause(row):
                standing.append(f" · {cause}")
            standing += self._hops(board, row.link)
        elif row.link is None and (group := board.group_status(row)) is not None:
            standing = self.state_mark(group.label)
            standing.append(f" · {group.describe()}")
            for link in row.links:
                standing.append("\n  ")
                standing += self.state_mark(board.link_label(link))
                name = link.full_id if named else link.id
                standing.append(f" {name} ({link.role or 'link'})")
                if cause := board.link_cause(link):
                    standing.append(f": {cause}", self._dim)
                if link.risks:
                    standing.append(f" · rides {risks_text(link.risks)}", self._dim)
                standing += self._hops(board, link)
            for exposure in group.risks.exposed_by_design:
                standing.append("\nby design, ")
                standing.append(riders_text(exposure, lambda i: link_name(group.site_id, i)))
                standing.append(f": {loss_text(exposure)} of min_up {exposure.min_up}")
        held = board.held(row.subject_id)
        if held:
            standing.append("\n")
            standing += self.held_text(f"held: {reason}" for reason in held)
        if (ack := board.acks.get(row.subject_id)) is not None:
            standing.append("\n" + ack_text(ack, now))
        tally = Counter(
            {status_text(severity): n for severity, n in board.tally.row_tally(row.key).items()}
        )
        counts = Text(" · ".join(f"{n} {label}" for label, n in sorted(tally.items())))
        # The problems (zoomed: every check), worst first. A group can hold thousands of
        # checks, and this pane is redrawn every second, so it lists a bounded number.
        table = Table.grid(padding=(0, 1))
        listed = sorted(
            (c for c in row.checks if self.zoomed or board.is_problem(c.ref.check_id)),
            key=lambda c: -_attention_rank(board, c.ref.check_id),
        )
        limit = ZOOM_DETAIL_ROWS if self.zoomed else GROUP_DETAIL_ROWS
        for check in listed[:limit]:
            state = board.states[check.ref.check_id]
            acked = check.ref.check_id in board.acked
            summary = "" if state.result is None else printable(state.result.summary())
            table.add_row(
                Text(
                    status_text(state.severity, acked), self.severity_style(state.severity, acked)
                ),
                Text(check.ref.check_id),
                Text(summary, self._dim, overflow="ellipsis", no_wrap=True),
            )
        more = len(listed) - limit
        what = "checks" if self.zoomed else "problems"
        tail = [Text(f"… and {more} more {what}", self._dim)] if more > 0 else []
        return Group(
            self._heading(title), Text(facts, self._dim), standing, counts, Text(), table, *tail
        )

    def _hops(self, board: Board, link: Link) -> Text:
        """A line per path check of the link: its latest route, hop by hop."""
        lines = Text()
        for check_id, route in board.hops(link):
            name = check_id.rsplit("/", 1)[-1]
            lines.append(f"\n    {name} → {printable(route.destination)}: ", self._dim)
            lines.append(printable(route.text()))
        return lines

    def _check(self, board: Board, check: Check, now: float, paused: bool) -> RenderableType:
        check_id = check.ref.check_id
        state = board.states[check_id]
        acked = check_id in board.acked
        parts: list[RenderableType] = [
            self._heading(check_id),
            Text(f"{check.kind} {check.ref.target} · every {_seconds(check.interval)}", self._dim),
        ]
        if check.description:
            parts.append(Text(check.description, self._dim))
        line = Text(status_text(state.severity, acked), self.severity_style(state.severity, acked))
        if state.changed_at is not None:
            line.append(f" since {clock_text(state.changed_at)}")
        result = state.result
        if result is not None:
            done = finished_at(result)
            line.append(f" · last {clock_text(done)} ({age_text(now - done)} ago)")
            line.append(f" · took {result.duration_ms:.0f} ms")
        if paused:
            line.append(" · paused")
        if acked:
            line.append(" · acknowledged")
        parts.append(line)
        if (ack := board.acks.get(check_id)) is not None:
            parts.append(Text(ack_text(ack, now)))
        confirmed = board.check_state(check_id)
        if confirmed is not None and confirmed.is_soft:
            soft = confirmed.soft
            need = board.confirmations[check_id]
            parts.append(
                Text(
                    f"unconfirmed: {status_text(soft)}, {confirmed.attempts} of {need} results"
                ).append(" to confirm", self._dim)
            )
        held = board.held(check_id)
        if held:
            parts.append(self.held_text(f"held: {reason}" for reason in held))
        if result is None:
            parts.append(Text("No result yet in this run.", self._dim))
            if not state.history:
                return Group(*parts)
        else:
            parts += self._result(check, result, now)
        parts += [Text(), self._heading(f"History (last {len(state.history)})")]
        parts.append(self._history(state.history))
        return Group(*parts)

    def _result(self, check: Check, result: ProbeResult, now: float) -> list[RenderableType]:
        parts: list[RenderableType] = []
        if result.error is not None:
            parts += [Text(), self._heading("Error")]
            parts.append(Text(f"{result.error.error_class}: {printable(result.error.message)}"))
        if result.verdicts:
            parts += [Text(), self._heading("Verdicts")]
            parts.append(self._verdicts(result))
        if result.vantage:
            seen_by = f"CRIT when {check.quorum} of {len(result.vantage)} see it down"
            parts += [Text(), self._heading(f"Vantage points ({seen_by})")]
            parts.append(self._vantage(result.vantage, now))
        if result.certificates:
            parts += [Text(), self._heading("Certificate chain")]
            parts.append(self._certificates(result.certificates, now))
            renewal = _renewal_line(result)
            if renewal:
                parts.append(Text(renewal, self._dim))
        return parts

    def _verdicts(self, result: ProbeResult) -> Table:
        table = Table.grid(padding=(0, 1))
        # Failing verdicts first, worst first: the reason for the state leads.
        for verdict in sorted(result.verdicts, key=lambda v: -v.severity.rank):
            table.add_row(
                Text(SYMBOLS[verdict.severity], self.severity_style(verdict.severity)),
                Text(printable(verdict.sentence())),
            )
        return table

    def _vantage(self, vantage: tuple[VantageResult, ...], now: float) -> Table:
        """Each vantage point as the quorum counted it, how long ago it last reported, and
        what it said then (one without a fresh result: what it said last, marked stale)."""
        table = Table.grid(padding=(0, 1))
        for part in vantage:
            seen = part.result
            said = Text(overflow="ellipsis", no_wrap=True)
            if seen is None:
                age = ""
                said.append("no result yet", self._dim)
            else:
                age = f"{age_text(now - finished_at(seen))} ago"
                if not part.fresh:
                    said.append(f"stale, last {seen.severity.name}: ", self._dim)
                said.append(printable(seen.summary()))
            table.add_row(
                Text(status_text(part.severity), self.severity_style(part.severity)),
                Text(printable(part.name)),
                Text(age, self._dim),
                said,
            )
        return table

    def _certificates(self, certificates: tuple[CertificateInfo, ...], now: float) -> Table:
        table = Table.grid(padding=(0, 1))
        for cert in certificates:
            role = "leaf" if cert.position == 0 else f"#{cert.position}"
            days = cert.days_left(now)
            if cert.not_after is None or days is None:
                expiry = "not after unreadable"
            else:
                not_after = dt.datetime.fromtimestamp(cert.not_after, dt.UTC)
                expiry = f"not after {not_after:%Y-%m-%d} ({days:.0f} days left)"
            table.add_row(Text(role, self._dim), Text(printable(cert.subject)))
            table.add_row(Text(""), Text(f"issuer {printable(cert.issuer)}", self._dim))
            table.add_row(
                Text(""),
                Text(
                    f"{expiry} · {cert.key_type} {cert.key_bits}"
                    f" · {printable(cert.signature_algorithm)}"
                    + (" · self-signed" if cert.self_signed else "")
                ),
            )
            if cert.malformed:
                table.add_row(Text(""), Text("malformed: " + "; ".join(cert.malformed)))
        return table

    def _history(self, history: tuple[HistoryLine, ...]) -> Table:
        table = Table.grid(padding=(0, 1))
        for line in reversed(history):
            table.add_row(
                Text(clock_text(line.at), self._dim),
                Text(status_text(line.severity), self.severity_style(line.severity)),
                Text(printable(line.summary), overflow="ellipsis", no_wrap=True),
            )
        return table


def _renewal_line(result: ProbeResult) -> str:
    """What the history says of the leaf: when this endpoint first served it, when it is due
    for renewal (the engine's observations; the renewal verdict says whether it is overdue)."""
    said = []
    for key, words in (
        ("certificate_first_seen", "leaf first seen"),
        ("renewal_due_at", "renewal due"),
    ):
        at = as_number(result.observations.get(key))
        if at is not None:
            said.append(f"{words} {dt.datetime.fromtimestamp(at, dt.UTC):%Y-%m-%d}")

    return " · ".join(said)


def _attention_rank(board: Board, check_id: str) -> int:
    severity = board.states[check_id].severity
    if severity is None or check_id in board.acked:
        return -1
    return severity.rank


def _seconds(seconds: float) -> str:
    return f"{seconds:g}s"
