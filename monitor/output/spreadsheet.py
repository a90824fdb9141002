"""CSV for spreadsheets, one writer for every report that offers it (the certificate audit,
the availability report): a header row, a row per item, `\\n` line ends, no final line break.

Text cells are inert whatever they hold: each goes through `spreadsheet_cell` (no formula, no
control character). Figures are written as they are, so a negative one stays a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.core.text import spreadsheet_cell


@dataclass(frozen=True, slots=True)
class Figure:
    """A number cell with `places` decimals (0 for a count); empty for None."""

    value: float | None
    places: int = 3

    def __str__(self) -> str:
        return "" if self.value is None else f"{self.value:.{self.places}f}"


Cell = str | Figure


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_cell(name) for name in header])
    writer.writerows([_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue().rstrip("\n")


def _cell(cell: Cell) -> str:
    return str(cell) if isinstance(cell, Figure) else spreadsheet_cell(cell)
