"""YAML read as located nodes, so every complaint about the inventory can name file:line:column.

The document is composed here from the parser's events, not by PyYAML's composer and
constructor, so that everything YAML can express is either read with a place or refused with
one, and within bounds a hostile or broken file cannot stretch:

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
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.reader import Reader as _YamlReader
from yaml.resolver import Resolver

from monitor.core.files import read_bounded
from monitor.core.text import bounded_message

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_NODES = 1_000_000  # values in the document once every alias is expanded
MAX_DEPTH = 64  # nested lists and mappings, aliases expanded
MAX_SCALAR_CHARS = 8192
MAX_NUMBER_CHARS = 64
MAX_ERRORS = 100  # listed for one file; the rest are counted at the place where they begin

# libyaml's parser, where PyYAML was built with it, reads large inventories about 5x faster;
# it reports the same marks.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE = (_YAML + name for name in ("str", "map", "seq", "merge"))
# The explicit tags a scalar may carry, and the plain readings each accepts.
_SCALAR_TAGS = {
    _STR: None,
    _YAML + "int": {_YAML + "int"},
    _YAML + "float": {_YAML + "float", _YAML + "int"},
    _YAML + "bool": {_YAML + "bool"},
    _YAML + "null": {_YAML + "null"},
    _YAML + "timestamp": {_YAML + "timestamp"},
}
_NUMBER_TAGS = {_YAML + "int", _YAML + "float"}


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


# --- the composed document -----------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """A composed value: a scalar's Python value, a list of refs, or (key, value) ref pairs."""

    kind: str  # "scalar", "sequence" or "mapping"
    value: Any
    line: int
    column: int
    size: int = 1  # values in it, aliases expanded
    height: int = 1  # nesting levels in it, aliases expanded
    merge: bool = False  # a plain `<<`: as a key, it merges
    faulty: bool = False  # stands in for what a reported fault left unreadable


@dataclass(slots=True, frozen=True)
class _Alias:
    """A use of an anchored item: where the alias (or merge) is written."""

    target: _Item
    anchor: str
    line: int
    column: int


_Ref = _Item | _Alias


class Node:
    """A located YAML value. Reached through an alias, it is located at the alias."""

    __slots__ = ("_file", "_item", "_via")

    def __init__(self, ref: _Ref, file: str, via: _Alias | None = None) -> None:
        if isinstance(ref, _Alias):
            # The outermost alias is the place the user wrote this use.
            via = via or ref
            ref = ref.target
        self._item = ref
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
        return self._item.kind == "mapping"

    @property
    def is_sequence(self) -> bool:
        return self._item.kind == "sequence"

    def value(self) -> Any:
        """The plain Python value (YAML 1.1 safe types) of this node and everything below it."""
        item = self._item
        if item.kind == "scalar":
            return item.value
        if item.kind == "sequence":
            return [self._child(ref).value() for ref in item.value]
        return {self._child(key).value(): self._child(value).value() for key, value in item.value}

    def mapping(self, what: str) -> Iterator[tuple[str, Node, Node]]:
        """(key, key node, value node) for each entry with a text key; raises on a non-mapping
        first, or on a key that is not text once the others are read. Keys are unique
        (repeats were refused when the document was read)."""
        if not self.is_mapping:
            raise self.error(
                f"{what} must be a mapping of keys to values",
                "indent its keys under it as key: value lines",
            )
        odd: Node | None = None
        for key_ref, value_ref in self._item.value:
            key = self._child(key_ref)
            if isinstance(key.value(), str):
                yield key.value(), key, self._child(value_ref)
            elif odd is None:
                odd = key
        if odd is not None:
            name = odd.value()
            shown = "an empty key" if name is None else f"key {name!r}"
            raise odd.error(f"{shown} in {what} is not text", "keys are plain words")

    def sequence(self, what: str) -> Iterator[Node]:
        if not self.is_sequence:
            raise self.error(f"{what} must be a list", "write each entry on a line starting '- '")
        for ref in self._item.value:
            yield self._child(ref)

    def _child(self, ref: _Ref) -> Node:
        return Node(ref, self._file, self._via)


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
    composer = _Composer(file)
    root = composer.compose(text)
    if composer.faults:
        raise InventoryErrors(composer.faults)
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


class _Stop(Exception):
    """Composition cannot go on past this fault."""


@dataclass(slots=True)
class _Open:
    """A collection being composed."""

    item: _Item
    anchor: str | None
    key: _Ref | None = None  # a mapping's key waiting for its value
    merges: list[_Ref] | None = None


class _Composer:
    def __init__(self, file: str) -> None:
        self.file = file
        self.faults: list[InventoryError] = []
        self.anchors: dict[str, _Item] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.resolver = Resolver()
        self.constructor = SafeConstructor()

    def fault(self, line: int, column: int, message: str, hint: str = "") -> None:
        self.faults.append(InventoryError(Location(self.file, line, column), message, hint))
        if len(self.faults) > MAX_ERRORS:
            # Enough to show; reading on would only spend memory on faults nobody sees.
            raise _Stop()

    def stop(self, line: int, column: int, message: str, hint: str = "") -> _Stop:
        self.fault(line, column, message, hint)
        return _Stop()

    def compose(self, text: str) -> _Item | None:
        try:
            return self._read(text)
        except _Stop:
            return None

    def _read(self, text: str) -> _Item | None:
        bad = _YamlReader.NON_PRINTABLE.search(text)
        if bad is not None:
            line = text.count("\n", 0, bad.start()) + 1
            column = bad.start() - text.rfind("\n", 0, bad.start())
            self.fault(
                line,
                column,
                f"the character {bad.group()!r} is not allowed in YAML",
                "remove it; write control characters as escapes inside double quotes",
            )
            return None
        try:
            return self._compose(yaml.parse(text, Loader=_Loader))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = exc.problem or exc.context or "invalid YAML"
            self.fault(
                line,
                column,
                f"YAML syntax error: {problem}",
                "check indentation, colons and quotes around this point",
            )
        except yaml.YAMLError as exc:
            self.fault(1, 1, f"YAML error: {exc}")
        return None

    def _compose(self, events: Iterator[yaml.Event]) -> _Item | None:
        root: _Item | None = None
        documents = 0
        stack: list[_Open] = []
        for event in events:
            mark = event.start_mark
            line, column = mark.line + 1, mark.column + 1
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self.stop(
                        line,
                        column,
                        "a second YAML document starts here",
                        "an inventory is one document: remove this '---' and what follows, "
                        "or merge it into the first",
                    )
                continue
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                self._count(line, column, 1, len(stack) + 1)
                kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "sequence"
                self._collection_tag(event.tag, kind, line, column)
                item = _Item(kind, [], line, column)
                if event.anchor is not None:
                    self.open_anchors.add(event.anchor)
                stack.append(_Open(item, event.anchor, merges=[] if kind == "mapping" else None))
                continue
            if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                done = stack.pop()
                if done.merges is not None:
                    self._finish_mapping(done)
                if done.anchor is not None:
                    self.open_anchors.discard(done.anchor)
                    self._define(done.anchor, done.item)
                ref: _Ref = done.item
            elif isinstance(event, yaml.ScalarEvent):
                self._count(line, column, 1, len(stack) + 1)
                ref = self._scalar(event, line, column)
                if event.anchor is not None:
                    self._define(event.anchor, ref)
            elif isinstance(event, yaml.AliasEvent):
                ref = self._alias(event.anchor, line, column, len(stack))
            else:
                continue
            if stack:
                self._add(stack[-1], ref)
            else:
                root = _target(ref)
        return root

    def _count(self, line: int, column: int, size: int, depth: int, alias: bool = False) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise self.stop(
                line,
                column,
                f"the document grows past {MAX_NODES:,} values here",
                "aliases repeat what their anchor holds: share defaults with them, do not "
                "multiply lists"
                if alias
                else "split the inventory",
            )
        if depth > MAX_DEPTH:
            raise self.stop(
                line,
                column,
                f"lists and mappings nest deeper than {MAX_DEPTH} levels here",
                "an inventory needs a handful of levels: check the indentation and brackets",
            )

    def _define(self, anchor: str, item: _Item) -> None:
        if anchor in self.anchors:
            first = self.anchors[anchor]
            self.fault(
                item.line,
                item.column,
                f"anchor &{anchor} is defined a second time",
                f"the first is at line {first.line}; give each anchor its own name",
            )
            return
        self.anchors[anchor] = item

    def _alias(self, anchor: str, line: int, column: int, depth: int) -> _Ref:
        target = self.anchors.get(anchor)
        if target is None:
            if anchor in self.open_anchors:
                self.fault(
                    line,
                    column,
                    f"alias *{anchor} is used inside its own anchor &{anchor}",
                    "a value cannot contain itself",
                )
            else:
                self.fault(
                    line,
                    column,
                    f"alias *{anchor} refers to no anchor",
                    f"define &{anchor} on a value before this line, or fix the name",
                )
            return _Item("scalar", None, line, column, faulty=True)
        self._count(line, column, target.size, depth + target.height, alias=True)
        return _Alias(target, anchor, line, column)

    def _collection_tag(self, tag: str | None, kind: str, line: int, column: int) -> None:
        expected = _MAP if kind == "mapping" else _SEQ
        if tag not in (None, "!", expected):
            self._unsupported_tag(tag or "", line, column)

    def _unsupported_tag(self, tag: str, line: int, column: int) -> None:
        shown = "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag
        self.fault(
            line,
            column,
            f"the YAML tag {shown} is not supported",
            "commwatch reads plain values (text, numbers, true/false, lists, mappings): "
            "remove the tag",
        )

    def _scalar(self, event: yaml.ScalarEvent, line: int, column: int) -> _Item:
        text = event.value
        # Quoted and untagged, it is text: no reading to find (the common case, kept cheap).
        plain = (
            _STR
            if event.tag is None and not event.implicit[0]
            else self.resolver.resolve(yaml.ScalarNode, text, (True, False))
        )
        if event.tag is None:
            tag = plain if event.implicit[0] else _STR
        elif event.tag == "!":
            tag = _STR  # the non-specific tag: text
        else:
            tag = event.tag
        if tag in _NUMBER_TAGS and len(text) > MAX_NUMBER_CHARS:
            self.fault(
                line,
                column,
                f"a number of {len(text):,} characters is too long",
                f"numbers here have at most {MAX_NUMBER_CHARS} characters",
            )
            return _Item("scalar", text[:MAX_NUMBER_CHARS], line, column, faulty=True)
        if len(text) > MAX_SCALAR_CHARS:
            self.fault(
                line,
                column,
                f"a value of {len(text):,} characters is longer than the "
                f"{MAX_SCALAR_CHARS:,} allowed",
                "keep long data in a file the inventory names",
            )
            return _Item("scalar", "", line, column, faulty=True)
        if tag == event.tag:
            expected = _SCALAR_TAGS.get(tag, ())
            if expected == ():
                self._unsupported_tag(tag, line, column)
                return _Item("scalar", text, line, column, faulty=True)
            if expected is not None and plain not in expected:
                self.fault(line, column, f"{text!r} is not a !!{tag[len(_YAML) :]} value")
                return _Item("scalar", text, line, column, faulty=True)
        if tag == _STR or tag not in _SCALAR_TAGS:
            # `=` (YAML 1.1's "value") and `<<` read as text, except that `<<` as a key merges.
            return _Item("scalar", text, line, column, merge=tag == _MERGE)
        construct = self.constructor.yaml_constructors[tag]
        try:
            value = construct(self.constructor, yaml.ScalarNode(tag, text))
        except (ValueError, OverflowError, KeyError, yaml.YAMLError) as exc:
            # e.g. 2026-02-30 or 0000-01-01 read as dates that do not exist.
            self.fault(line, column, f"{text!r} cannot be read as !!{tag[len(_YAML) :]}: {exc}")
            return _Item("scalar", text, line, column, faulty=True)
        if isinstance(value, float) and not math.isfinite(value):
            # No key means "forever" or "undefined": an interval of .inf or a threshold of .nan
            # would pass every range check (comparisons with NaN are all false).
            self.fault(
                line, column, f"{text!r} is not a finite number", "write a number such as 30 or 7.5"
            )
            return _Item("scalar", text, line, column, faulty=True)
        return _Item("scalar", value, line, column)

    def _add(self, parent: _Open, ref: _Ref) -> None:
        item = parent.item
        target = _target(ref)
        item.size += target.size
        item.height = max(item.height, target.height + 1)
        if item.kind == "sequence":
            item.value.append(ref)
        elif parent.key is None:
            parent.key = ref
        else:
            key, parent.key = parent.key, None
            assert parent.merges is not None
            if _is_merge(key):
                parent.merges.append(ref)
            else:
                item.value.append((key, ref))

    def _finish_mapping(self, done: _Open) -> None:
        """Refuse repeated and unusable keys; fill in merged entries the mapping lacks."""
        entries: list[tuple[_Ref, _Ref]] = []
        seen: dict[Any, _Item] = {}
        for key, value in done.item.value:
            key_item = _target(key)
            if key_item.faulty:
                continue
            if key_item.kind != "scalar":
                self.fault(
                    key_item.line,
                    key_item.column,
                    "a key must be a single value, not a list or mapping",
                    "keys are plain words",
                )
                continue
            identity = (type(key_item.value), key_item.value)
            if identity in seen:
                self.fault(
                    key_item.line,
                    key_item.column,
                    f"key {key_item.value!r} appears twice in this mapping",
                    f"the first is at line {seen[identity].line}; keep one",
                )
                continue
            seen[identity] = key_item
            entries.append((key, value))
        merged: list[tuple[_Ref, _Ref]] = []
        for source in self._merge_sources(done):
            for key, value in source.target.value:
                key_item = _target(key)
                identity = (type(key_item.value), key_item.value)
                if identity not in seen:
                    # Earlier sources and the mapping's own keys win, as YAML's merge says.
                    seen[identity] = key_item
                    merged.append((_via(key, source), _via(value, source)))
        done.item.value = merged + entries

    def _merge_sources(self, done: _Open) -> Iterator[_Alias]:
        """Each mapping a `<<` key names, as an alias (an inline mapping as an alias without
        an anchor: its entries keep their own place)."""
        assert done.merges is not None
        if len(done.merges) > 1:
            second = done.merges[1]
            self.fault(
                second.line,
                second.column,
                "'<<' appears twice in this mapping",
                "merge several anchors with one list: <<: [*first, *second]",
            )
        for ref in done.merges[:1]:
            target = _target(ref)
            for source in target.value if target.kind == "sequence" else [ref]:
                if _target(source).faulty:
                    continue
                if _target(source).kind != "mapping":
                    self.fault(
                        source.line,
                        source.column,
                        "'<<' merges mappings only",
                        "name an anchored mapping, <<: *defaults, or a list of them",
                    )
                elif isinstance(source, _Alias):
                    yield source
                else:
                    yield _Alias(source, "", source.line, source.column)


def _target(ref: _Ref) -> _Item:
    return ref.target if isinstance(ref, _Alias) else ref


def _is_merge(key: _Ref) -> bool:
    return isinstance(key, _Item) and key.merge


def _via(ref: _Ref, source: _Alias) -> _Ref:
    """`ref`, reached through the merge of `source`. An inline merged mapping (anchor "") is
    not a detour: its entries stay where they are written."""
    if not source.anchor:
        return ref
    return _Alias(_target(ref), source.anchor, source.line, source.column)
