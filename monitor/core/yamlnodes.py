"""YAML read as located nodes, so every complaint about the inventory can name file:line:column.

The document is composed by `monitor.core.yamlcompose` from the parser's events, not by
PyYAML's composer and constructor, so that everything YAML can express is either read with a
place or refused with one, and within bounds a hostile or broken file cannot stretch (the
`MAX_` limits below are yamlcompose's, but `MAX_FILE_BYTES` and `MAX_ERRORS`):

- the file is at most `MAX_FILE_BYTES`, a regular file or a pipe, UTF-8;
- one document; plain YAML values only (text, numbers, booleans, null, dates, lists and
  mappings): any other tag is refused at its place (`!!python/object`, `!!binary`, `!custom`);
  an explicit `!!int`, `!!float`, `!!bool`, `!!null` or `!!timestamp` must hold such a value;
- anchors (`&name`), aliases (`*name`) and merge keys (`<<: *name`) work, so shared defaults can
  be written once; a value reached through an alias is reported at the alias, the place of use,
  with the line it is written on; aliases may not expand the document beyond `MAX_NODES` values
  (a "billion laughs" file stops at the alias that crosses the line) nor nest it deeper than
  `MAX_DEPTH`;
- a value is at most `MAX_SCALAR_CHARS` long and a number at most `MAX_NUMBER_CHARS`, and finite
  (`.inf` and `.nan` would pass every range check);
- a key appears once in a mapping (YAML says so; PyYAML would keep the last silently);
- an error message is at most `monitor.core.text.MAX_MESSAGE_CHARS` (a quoted value is cut in the
  middle) and printable: the file's text never reaches a terminal raw.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.core.files import read_bounded
from monitor.core.text import bounded_message
from monitor.core.yamlcompose import MAPPING, SCALAR, SEQUENCE, Alias, Composer, Item, Ref, target

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_ERRORS = 100  # listed for one file; the rest are counted at the place where they begin


@dataclass(frozen=True)
class Location:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class InventoryError(Exception):
    """One fault in the inventory, at a place, with a hint on how to fix it."""

    def __init__(self, location: Location, message: str, hint: str = "") -> None:
        message, hint = bounded_message(message), bounded_message(hint)
        super().__init__(message)
        self.location = location
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.location}: {self.message}{hint}"


class InventoryErrors(Exception):
    """The faults found in one inventory file: in file order, each once (a bad inherited
    default is found by every check that inherits it), at most MAX_ERRORS and a last line
    saying where the ones not listed begin."""

    def __init__(self, errors: list[InventoryError]) -> None:
        unique = {(e.location.line, e.location.column, e.message): e for e in errors}
        ordered = [unique[key] for key in sorted(unique)]
        if len(ordered) > MAX_ERRORS:
            rest = ordered[MAX_ERRORS]
            ordered[MAX_ERRORS:] = [
                InventoryError(
                    rest.location,
                    "more problems from here on are not listed",
                    "fix the ones above first",
                )
            ]
        super().__init__("\n".join(str(e) for e in ordered))
        self.errors = ordered


# --- the composed document, located -------------------------------------------------------


class Node:
    """A located YAML value. Reached through an alias, it is located at the alias."""

    __slots__ = ("_file", "_item", "_via")

    def __init__(self, ref: Ref, file: str, via: Alias | None = None) -> None:
        if isinstance(ref, Alias):
            # The outermost alias is the place the user wrote this use.
            via = via or ref
            ref = ref.target
        self._item: Item = ref
        self._file = file
        self._via = via

    @property
    def location(self) -> Location:
        place = self._via or self._item
        return Location(self._file, place.line, place.column)

    def error(self, message: str, hint: str = "") -> InventoryError:
        if self._via is not None:
            used = f"written at line {self._item.line}, used here through *{self._via.anchor}"
            hint = f"{hint}; {used}" if hint else used
        return InventoryError(self.location, message, hint)

    @property
    def is_mapping(self) -> bool:
        return self._item.kind == MAPPING

    @property
    def is_sequence(self) -> bool:
        return self._item.kind == SEQUENCE

    def value(self) -> Any:
        """The plain Python value (YAML 1.1 safe types) of this node and everything below it."""
        item = self._item
        return item.value if item.kind == SCALAR else _plain(item)

    def mapping(self, what: str) -> Iterator[tuple[str, Node, Node]]:
        """(key, key node, value node) for each entry with a text key; raises on a non-mapping
        first, or on a key that is not text once the others are read. Keys are unique
        (repeats were refused when the document was read)."""
        entries, fault = self.entries(what)
        yield from entries
        if fault is not None:
            raise fault

    def entries(self, what: str) -> tuple[list[tuple[str, Node, Node]], InventoryError | None]:
        """`mapping(what)` as a list, with the fault it would raise (the list is empty when
        this is not a mapping at all)."""
        if self._item.kind != MAPPING:
            return [], self.error(
                f"{what} must be a mapping of keys to values",
                "indent its keys under it as key: value lines",
            )
        file, via = self._file, self._via
        entries = []
        odd: Node | None = None
        for key_ref, value_ref in self._item.value:
            # Keys are scalars: a list or mapping as a key was refused when the mapping was read.
            name = (key_ref.target if isinstance(key_ref, Alias) else key_ref).value
            if type(name) is str:
                entries.append((name, Node(key_ref, file, via), Node(value_ref, file, via)))
            elif odd is None:
                odd = Node(key_ref, file, via)
        if odd is None:
            return entries, None
        name = odd.value()
        shown = "an empty key" if name is None else f"key {name!r}"
        return entries, odd.error(f"{shown} in {what} is not text", "keys are plain words")

    def sequence(self, what: str) -> Iterator[Node]:
        if self._item.kind != SEQUENCE:
            raise self.error(f"{what} must be a list", "write each entry on a line starting '- '")
        file, via = self._file, self._via
        for ref in self._item.value:
            yield Node(ref, file, via)


def _plain(ref: Ref) -> Any:
    item = target(ref)
    if item.kind == SCALAR:
        return item.value
    if item.kind == SEQUENCE:
        return [_plain(child) for child in item.value]
    return {_plain(key): _plain(value) for key, value in item.value}


# --- reading -------------------------------------------------------------------------------


def read(path: str | Path) -> str:
    """The text of a YAML file, within MAX_FILE_BYTES; raises InventoryErrors on anything else
    (a folder, a device, a file too large, not UTF-8)."""
    file = str(path)
    start = Location(file, 1, 1)
    try:
        data = read_bounded(path, MAX_FILE_BYTES, pipes=True)
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise InventoryErrors(
                [
                    InventoryError(
                        start,
                        f"the inventory is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                        "split it, or check that this is the right file",
                    )
                ]
            ) from None
        hint = {
            errno.EACCES: "check the file's permissions",
            errno.EISDIR: "give the path of the inventory file, not of a folder",
            errno.EINVAL: "give the path of the inventory file, not of a device or socket",
        }.get(exc.errno or 0, "check the path")
        raise InventoryErrors(
            [InventoryError(start, f"cannot read the inventory: {exc.strerror}", hint)]
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[data.rfind(b"\n", 0, exc.start) + 1 : exc.start].decode()) + 1
        raise InventoryErrors(
            [
                InventoryError(
                    Location(file, line, column),
                    "the inventory is not UTF-8 text",
                    "save it as UTF-8",
                )
            ]
        ) from None


def load(text: str, file: str) -> Node | None:
    """The document's root node, or None for an empty document. Raises InventoryErrors with
    every fault of the YAML itself (syntax, tags, anchors, values, repeated keys, limits)."""
    composer = Composer(max_faults=MAX_ERRORS)
    root = composer.compose(text)
    if composer.faults:
        raise InventoryErrors(
            [
                InventoryError(Location(file, fault.line, fault.column), fault.message, fault.hint)
                for fault in composer.faults
            ]
        )
    return None if root is None else Node(root, file)


def read_value(text: str) -> Any:
    """`text` read as the inventory reads a value (a number, true/false, a date, text, a flow
    list or mapping), or `text` itself where it is no such value: command-line flags take the
    inventory's values and must get its bounds (a 5,000-digit number, 2026-02-30) without a
    traceback."""
    try:
        root = load(text, "<command line>")
    except InventoryErrors:
        return text
    return text if root is None else root.value()
