"""Reading located YAML sections: known keys, ids, parsed values, and every fault kept with its
place. The inventory loader and its resilience sections both read through this."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from monitor.core.options import OptionError
from monitor.core.secrets import SecretRef, secret_env, secret_file
from monitor.core.yamlnodes import InventoryError, Location, Node

ID = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,62})")
ID_HINT = "ids are lower-case letters, digits, '-' and '_', starting with a letter or digit"

Fields = dict[str, tuple[Node, Node]]
T = TypeVar("T")
D = TypeVar("D")


class Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[InventoryError] = []

    def fail(self, error: InventoryError) -> None:
        self.errors.append(error)

    def entries(self, node: Node, what: str) -> Iterator[tuple[str, Node, Node]]:
        """`node.mapping(what)`, its fault (not a mapping, a key not text) reported; the
        entries after such a key are not read."""
        try:
            yield from node.mapping(what)
        except InventoryError as exc:
            self.fail(exc)

    def items(self, node: Node, what: str) -> Iterator[Node]:
        """`node.sequence(what)`, or nothing with the fault reported."""
        try:
            yield from node.sequence(what)
        except InventoryError as exc:
            self.fail(exc)

    def unknown_key(self, key: str, key_node: Node, allowed: Iterable[str], what: str) -> None:
        close = difflib.get_close_matches(key, list(allowed), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(sorted(allowed))
        self.fail(key_node.error(f"unknown key '{key}' in {what}", hint))

    def fields(
        self,
        node: Node,
        what: str,
        allowed: Iterable[str],
        required: Iterable[str] = (),
        free_prefix: str | None = None,
    ) -> Fields:
        """The known keys of a mapping; keys starting with `free_prefix` are the user's own
        (a place to define anchors) and not read."""
        entries, whole = self.read_mapping(node, what)
        return self.select(node, what, entries, whole, allowed, required, free_prefix)

    def read_mapping(self, node: Node, what: str) -> tuple[list[tuple[str, Node, Node]], bool]:
        """The entries of a mapping with text keys, and whether it could be read whole (else
        its fault is reported: not a mapping, or a key that is not text)."""
        entries, fault = node.entries(what)
        if fault is not None:
            self.fail(fault)
        return entries, fault is None

    def select(
        self,
        node: Node,
        what: str,
        entries: Iterable[tuple[str, Node, Node]],
        whole: bool,
        allowed: Iterable[str],
        required: Iterable[str] = (),
        free_prefix: str | None = None,
    ) -> Fields:
        """`fields` of entries already read."""
        allowed = allowed if isinstance(allowed, (set, frozenset)) else set(allowed)
        found: Fields = {}
        for key, key_node, value_node in entries:
            if free_prefix is not None and key.startswith(free_prefix):
                continue
            if key in allowed:
                found[key] = (key_node, value_node)
            else:
                self.unknown_key(key, key_node, allowed, what)
        if not whole:
            return found  # the keys it lacks would only echo its fault
        for key in required:
            if key not in found:
                self.fail(node.error(f"{what} has no '{key}'", f"add a '{key}:' line to it"))
        return found

    @staticmethod
    def written_id(fields: Fields) -> str | None:
        """The id as written, valid or not: what references to this entry will say."""
        if "id" not in fields:
            return None
        value = fields["id"][1].value()
        return value if isinstance(value, str) else None

    def ident(self, fields: Fields, what: str, seen: dict[str, Location]) -> str | None:
        if "id" not in fields:
            return None
        node = fields["id"][1]
        value = node.value()
        if not isinstance(value, str) or not ID.fullmatch(value):
            self.fail(node.error(f"{what} id {value!r} is not valid", ID_HINT))
            return None
        if value in seen:
            self.fail(
                node.error(
                    f"duplicate {what} id '{value}'",
                    f"already used at line {seen[value].line}; ids must be unique",
                )
            )
            return None
        seen[value] = node.location
        return value

    def plain(self, fields: Fields, key: str, parse: Callable[[Any], T], default: D) -> T | D:
        """The value of `key` as `parse` reads it; `default` when it is absent or at fault
        (the fault reported at the value)."""
        if key not in fields:
            return default
        node = fields[key][1]
        try:
            return parse(node.value())
        except OptionError as exc:
            self.fail(node.error(f"'{key}': {exc.message}", exc.hint))
            return default

    def secret_ref(self, fields: Fields, key: str) -> SecretRef | None:
        """The secret that `key` (`*_env` or `*_file`) refers to, checked to be there now (never
        read); None with the fault reported at the value."""
        parse = secret_env if key.endswith("_env") else secret_file
        secret = self.plain(fields, key, parse, None)
        if secret is None:
            return None
        try:
            secret.check_available()
        except OptionError as exc:
            self.fail(fields[key][1].error(f"'{key}': {exc.message}", exc.hint))
            return None
        return secret
