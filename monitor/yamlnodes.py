"""YAML read as located nodes, so every complaint about the inventory can name file:line:column."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

# libyaml's parser, where PyYAML was built with it, reads large inventories about 5x faster;
# it reports the same marks.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        super().__init__(message)
        self.location = location
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.location}: {self.message}{hint}"


class Node:
    """A YAML node with its location; mappings reject duplicate keys as they are read."""

    def __init__(self, node: yaml.Node, file: str, constructor: SafeConstructor) -> None:
        self._node = node
        self._file = file
        self._constructor = constructor

    @property
    def location(self) -> Location:
        mark = self._node.start_mark
        return Location(self._file, mark.line + 1, mark.column + 1)

    def error(self, message: str, hint: str = "") -> InventoryError:
        return InventoryError(self.location, message, hint)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self._node, yaml.MappingNode)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self._node, yaml.SequenceNode)

    def value(self) -> Any:
        """The plain Python value (YAML 1.1 safe types) of this node and everything below it."""
        return self._constructor.construct_object(self._node, deep=True)

    def mapping(self, what: str) -> Iterator[tuple[str, Node, Node]]:
        """(key, key node, value node) for each entry; raises on non-mappings and repeats."""
        if not self.is_mapping:
            raise self.error(
                f"{what} must be a mapping of keys to values",
                "indent its keys under it as key: value lines",
            )
        seen: dict[str, Location] = {}
        for key_node, value_node in self._node.value:
            key = self._child(key_node)
            name = key.value()
            if not isinstance(name, str):
                raise key.error(f"key {name!r} in {what} is not text", "keys are plain words")
            if name in seen:
                raise key.error(
                    f"key '{name}' appears twice in {what}",
                    f"the first is at line {seen[name].line}; keep one",
                )
            seen[name] = key.location
            yield name, key, self._child(value_node)

    def sequence(self, what: str) -> Iterator[Node]:
        if not self.is_sequence:
            raise self.error(f"{what} must be a list", "write each entry on a line starting '- '")
        for item in self._node.value:
            yield self._child(item)

    def _child(self, node: yaml.Node) -> Node:
        return Node(node, self._file, self._constructor)


def load(text: str, file: str) -> Node | None:
    """The document's root node, or None for an empty document."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise InventoryError(
            location,
            f"YAML syntax error: {problem}",
            "check indentation, colons and quotes around this point",
        ) from None
    except yaml.YAMLError as exc:
        raise InventoryError(Location(file, 1, 1), f"YAML error: {exc}") from None
    return None if root is None else Node(root, file, SafeConstructor())
