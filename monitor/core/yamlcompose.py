"""A YAML document composed from libyaml's parser events, within bounds, every value with its place.

PyYAML's own composer and constructor would lose where an alias is used (an aliased value is
the anchored node itself), keep the last of repeated keys silently, build any tag, and expand
aliases without limit. Here every value is an `Item` with its line and column, a use of an
anchor is an `Alias` saying where it is written, and every fault is a `Fault` with its place;
`monitor.core.yamlnodes` turns them into located nodes and `file:line:column` errors.

This runs once per value of the inventory (60,000 for 10,000 checks), so the loop is written for
speed: events are dispatched on their exact type, plain values already read are not read again,
and counting is inline.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import yaml
from yaml.constructor import SafeConstructor
from yaml.reader import Reader as _YamlReader
from yaml.resolver import Resolver

MAX_NODES = 1_000_000  # values in the document once every alias is expanded
MAX_DEPTH = 64  # nested lists and mappings, aliases expanded
MAX_SCALAR_CHARS = 8192
MAX_NUMBER_CHARS = 64

# libyaml's parser, where PyYAML was built with it, reads large inventories about 5x faster;
# it reports the same marks.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE = (_YAML + name for name in ("str", "map", "seq", "merge"))
# The explicit tags a scalar may carry, and the plain readings each accepts.
_SCALAR_TAGS: dict[str, set[str] | None] = {
    _STR: None,
    _YAML + "int": {_YAML + "int"},
    _YAML + "float": {_YAML + "float", _YAML + "int"},
    _YAML + "bool": {_YAML + "bool"},
    _YAML + "null": {_YAML + "null"},
    _YAML + "timestamp": {_YAML + "timestamp"},
}
_NUMBER_TAGS = {_YAML + "int", _YAML + "float"}
_UNTAGGED_PLAIN = (True, False)

SCALAR, SEQUENCE, MAPPING = "scalar", "sequence", "mapping"


@dataclass(slots=True)
class Item:
    """A composed value: a scalar's Python value, a list of refs, or (key, value) ref pairs."""

    kind: str  # SCALAR, SEQUENCE or MAPPING
    value: Any
    line: int
    column: int
    size: int = 1  # values in it, aliases expanded (0: a collection not measured yet)
    height: int = 1  # nesting levels in it, aliases expanded
    merge: bool = False  # a plain `<<`: as a key, it merges
    faulty: bool = False  # stands in for what a reported fault left unreadable


@dataclass(slots=True, frozen=True)
class Alias:
    """A use of an anchored item: where the alias (or merge) is written."""

    target: Item
    anchor: str
    line: int
    column: int


Ref = Item | Alias


class Fault(NamedTuple):
    line: int
    column: int
    message: str
    hint: str = ""


def target(ref: Ref) -> Item:
    return ref.target if isinstance(ref, Alias) else ref


class _Stop(Exception):
    """Composition cannot go on past this fault."""


class Composer:
    """Composes one text; `faults` holds what was wrong with it, at most `max_faults` and a
    stop (reading on would only spend memory on faults nobody sees)."""

    def __init__(self, max_faults: int) -> None:
        self.max_faults = max_faults
        self.faults: list[Fault] = []
        self.anchors: dict[str, Item] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.resolver = Resolver()
        self.constructor = SafeConstructor()
        # Plain (unquoted, untagged) values already read, by their text: (value, merge). Keys
        # and repeated values (`tcp`, `5m`, `true`) are read once. Only values that read
        # without a fault are kept, so a hit needs no checks.
        self._plain: dict[str, tuple[Any, bool]] = {}

    def fault(self, line: int, column: int, message: str, hint: str = "") -> None:
        self.faults.append(Fault(line, column, message, hint))
        if len(self.faults) > self.max_faults:
            raise _Stop()

    def stop(self, line: int, column: int, message: str, hint: str = "") -> _Stop:
        self.fault(line, column, message, hint)
        return _Stop()

    def compose(self, text: str) -> Item | None:
        try:
            return self._read(text)
        except _Stop:
            return None

    def _read(self, text: str) -> Item | None:
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
        parser = _Loader(text)
        try:
            return self._compose(parser)
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
        finally:
            parser.dispose()
        return None

    def _compose(self, parser: Any) -> Item | None:
        root: Item | None = None
        documents = 0
        # The collections being composed, innermost last, with their anchors; `values` is the
        # innermost one's list (a mapping's keys and values alternate in it until its end).
        stack: list[tuple[Item, str | None]] = []
        values: list[Ref] = []
        next_event = parser.get_event
        scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
        starts = {yaml.MappingStartEvent: MAPPING, yaml.SequenceStartEvent: SEQUENCE}
        ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
        plain, max_nodes, max_depth = self._plain, MAX_NODES, MAX_DEPTH
        while (event := next_event()) is not None:
            kind = type(event)
            ref: Ref
            if kind is scalar_event:
                mark = event.start_mark
                line, column = mark.line + 1, mark.column + 1
                self.nodes += 1
                if self.nodes > max_nodes or len(stack) >= max_depth:
                    self._count(line, column, 0, len(stack) + 1)
                text = event.value
                # Inline, the two common cases: an untagged value quoted (text) or plain and
                # read before. `_scalar` reads the rest.
                if event.tag is not None or len(text) > MAX_SCALAR_CHARS:
                    ref = self._scalar(event, line, column)
                elif not event.implicit[0]:
                    ref = Item(SCALAR, text, line, column)
                elif (known := plain.get(text)) is not None:
                    ref = Item(SCALAR, known[0], line, column, 1, 1, known[1])
                else:
                    ref = self._scalar(event, line, column)
                if event.anchor is not None:
                    self._define(event.anchor, ref)
            elif kind in ends:
                done, anchor = stack.pop()
                if done.kind == MAPPING:
                    self._finish_mapping(done)
                if anchor is not None:
                    self.open_anchors.discard(anchor)
                    self._define(anchor, done)
                # It joined its parent (or became the root) when it started.
                values = stack[-1][0].value if stack else []
                continue
            elif kind in starts:
                item = self._start(event, starts[kind], len(stack) + 1)
                if stack:
                    values.append(item)
                else:
                    root = item
                stack.append((item, event.anchor))
                values = item.value
                continue
            elif kind is alias_event:
                mark = event.start_mark
                ref = self._alias(event.anchor, mark.line + 1, mark.column + 1, len(stack))
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    mark = event.start_mark
                    raise self.stop(
                        mark.line + 1,
                        mark.column + 1,
                        "a second YAML document starts here",
                        "an inventory is one document: remove this '---' and what follows, "
                        "or merge it into the first",
                    )
                continue
            else:  # the stream's and the document's own start and end
                continue
            if stack:
                values.append(ref)
            else:
                root = target(ref)
        return root

    def _start(self, event: yaml.CollectionStartEvent, kind: str, depth: int) -> Item:
        """A list or mapping begins: counted, its tag checked, its anchor open."""
        mark = event.start_mark
        assert mark is not None  # both of PyYAML's parsers mark every event they make
        line, column = mark.line + 1, mark.column + 1
        self._count(line, column, 1, depth)
        self._collection_tag(event.tag, kind, line, column)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        return Item(kind, [], line, column, size=0)

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

    def _define(self, anchor: str, item: Item) -> None:
        if anchor in self.anchors:
            first = self.anchors[anchor]
            self.fault(
                item.line,
                item.column,
                f"anchor &{anchor} is defined a second time",
                f"the first is at line {first.line}; give each anchor its own name",
            )
            return
        _measure(item)
        self.anchors[anchor] = item

    def _alias(self, anchor: str, line: int, column: int, depth: int) -> Ref:
        anchored = self.anchors.get(anchor)
        if anchored is None:
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
            return Item(SCALAR, None, line, column, faulty=True)
        self._count(line, column, anchored.size, depth + anchored.height, alias=True)
        return Alias(anchored, anchor, line, column)

    def _collection_tag(self, tag: str | None, kind: str, line: int, column: int) -> None:
        expected = _MAP if kind == MAPPING else _SEQ
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

    def _scalar(self, event: yaml.ScalarEvent, line: int, column: int) -> Item:
        """A scalar's item; a plain untagged one read without a fault is remembered."""
        text = event.value
        if event.tag is None and event.implicit[0]:
            known = self._plain.get(text)
            if known is not None:
                return Item(SCALAR, known[0], line, column, 1, 1, known[1])
        item = self._read_scalar(event, text, line, column)
        if event.tag is None and event.implicit[0] and not item.faulty:
            self._plain[text] = (item.value, item.merge)
        return item

    def _read_scalar(self, event: yaml.ScalarEvent, text: str, line: int, column: int) -> Item:
        plain = (
            _STR
            if event.tag is None and not event.implicit[0]
            # types-PyYAML leaves Resolver.resolve unannotated; it returns the tag, a str.
            else self.resolver.resolve(yaml.ScalarNode, text, _UNTAGGED_PLAIN)  # type: ignore[no-untyped-call]
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
            return Item(SCALAR, text[:MAX_NUMBER_CHARS], line, column, faulty=True)
        if len(text) > MAX_SCALAR_CHARS:
            return self._too_long(text, line, column)
        if tag == event.tag:
            expected = _SCALAR_TAGS.get(tag, ())
            if expected == ():
                self._unsupported_tag(tag, line, column)
                return Item(SCALAR, text, line, column, faulty=True)
            if expected is not None and plain not in expected:
                self.fault(line, column, f"{text!r} is not a !!{tag[len(_YAML) :]} value")
                return Item(SCALAR, text, line, column, faulty=True)
        if tag == _STR or tag not in _SCALAR_TAGS:
            # `=` (YAML 1.1's "value") and `<<` read as text, except that `<<` as a key merges.
            return Item(SCALAR, text, line, column, merge=tag == _MERGE)
        construct = self.constructor.yaml_constructors[tag]
        try:
            value = construct(self.constructor, yaml.ScalarNode(tag, text))
        except (ValueError, OverflowError, KeyError, yaml.YAMLError) as exc:
            # e.g. 2026-02-30 or 0000-01-01 read as dates that do not exist.
            self.fault(line, column, f"{text!r} cannot be read as !!{tag[len(_YAML) :]}: {exc}")
            return Item(SCALAR, text, line, column, faulty=True)
        if isinstance(value, float) and not math.isfinite(value):
            # No key means "forever" or "undefined": an interval of .inf or a threshold of .nan
            # would pass every range check (comparisons with NaN are all false).
            self.fault(
                line, column, f"{text!r} is not a finite number", "write a number such as 30 or 7.5"
            )
            return Item(SCALAR, text, line, column, faulty=True)
        return Item(SCALAR, value, line, column)

    def _too_long(self, text: str, line: int, column: int) -> Item:
        self.fault(
            line,
            column,
            f"a value of {len(text):,} characters is longer than the {MAX_SCALAR_CHARS:,} allowed",
            "keep long data in a file the inventory names",
        )
        return Item(SCALAR, "", line, column, faulty=True)

    def _finish_mapping(self, done: Item) -> None:
        """Pair keys with values; refuse repeated and unusable keys; fill in merged entries the
        mapping lacks."""
        flat = done.value
        entries: list[tuple[Ref, Ref]] = []
        merges: list[Ref] = []
        seen: dict[Any, Item] = {}
        for key, value in zip(flat[0::2], flat[1::2], strict=True):
            key_item = target(key)
            if key_item.merge and type(key) is Item:
                merges.append(value)
                continue
            if key_item.faulty:
                continue
            if key_item.kind != SCALAR:
                self.fault(
                    key_item.line,
                    key_item.column,
                    "a key must be a single value, not a list or mapping",
                    "keys are plain words",
                )
                continue
            identity = _identity(key_item.value)
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
        if not merges:
            done.value = entries
            return
        merged: list[tuple[Ref, Ref]] = []
        for source in self._merge_sources(merges):
            for key, value in source.target.value:
                key_item = target(key)
                identity = _identity(key_item.value)
                if identity not in seen:
                    # Earlier sources and the mapping's own keys win, as YAML's merge says.
                    seen[identity] = key_item
                    merged.append((_via(key, source), _via(value, source)))
        done.value = merged + entries

    def _merge_sources(self, merges: list[Ref]) -> Iterator[Alias]:
        """Each mapping a `<<` key names, as an alias (an inline mapping as an alias without
        an anchor: its entries keep their own place)."""
        if len(merges) > 1:
            second = merges[1]
            self.fault(
                second.line,
                second.column,
                "'<<' appears twice in this mapping",
                "merge several anchors with one list: <<: [*first, *second]",
            )
        for ref in merges[:1]:
            named = target(ref)
            for source in named.value if named.kind == SEQUENCE else [ref]:
                if target(source).faulty:
                    continue
                if target(source).kind != MAPPING:
                    self.fault(
                        source.line,
                        source.column,
                        "'<<' merges mappings only",
                        "name an anchored mapping, <<: *defaults, or a list of them",
                    )
                elif isinstance(source, Alias):
                    yield source
                else:
                    yield Alias(source, "", source.line, source.column)


def _identity(key: Any) -> Any:
    """What makes two keys the same key: their value and type (1, 1.0 and true are three keys,
    though Python's dict would take them for one). Text, the common case, is itself."""
    return key if type(key) is str else (type(key), key)


def _measure(item: Item) -> None:
    """The size and height of an anchored item, aliases expanded: what each use of it adds.
    Measured once, when the anchor is defined (a collection's size is 0 until then)."""
    if item.size:
        return
    refs = item.value if item.kind == SEQUENCE else [ref for pair in item.value for ref in pair]
    size, height = 1, 0
    for ref in refs:
        child = target(ref)
        _measure(child)
        size += child.size
        height = max(height, child.height)
    item.size, item.height = size, height + 1


def _via(ref: Ref, source: Alias) -> Ref:
    """`ref`, reached through the merge of `source`. An inline merged mapping (anchor "") is
    not a detour: its entries stay where they are written."""
    if not source.anchor:
        return ref
    return Alias(target(ref), source.anchor, source.line, source.column)
