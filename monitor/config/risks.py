"""The `risks:` key of sites and links: what a link depends on, physically and commercially,
each written `kind:name` (carrier:att, conduit:main-st, co:downtown, entry:north, power:grid-a).

The kinds are the user's own; the shape is checked, so that a typo does not become a risk no
other link shares: a kind is a lower-case word, a name printable text. A site's risks hold for
every link of it, the link adds its own (`Link.risks` holds both, each once).
`monitor.config.diversity` says what they mean for a redundancy group.
"""

from __future__ import annotations

import re
from typing import Any

from monitor.config.reader import Fields, Reader
from monitor.core.options import OptionError, type_name
from monitor.core.text import printable
from monitor.core.yamlnodes import Node

KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_NAME_CHARS = 100
EXAMPLES = "carrier:att, conduit:main-st, co:downtown, entry:north, power:grid-a"
_SHAPE_HINT = f"write kind:name, e.g. {EXAMPLES}"


def parse_risk(value: Any) -> str:
    """One risk as written, checked: `kind:name`."""
    if isinstance(value, dict) and len(value) == 1:
        # YAML reads `carrier: att` (a space after the colon) as a mapping of one key.
        ((kind, name),) = value.items()
        written = f"{kind}:{'NAME' if name is None else name}"
        shown = f"{kind}: {'' if name is None else name}".rstrip()
        raise OptionError(
            f"risk '{shown}' is read by YAML as a mapping, not as one risk",
            f"write {written}, without a space after the colon",
        )
    if not isinstance(value, str):
        raise OptionError(
            f"a risk is kind:name text, not {type_name(value)} {value!r}", _SHAPE_HINT
        )
    kind, colon, name = value.partition(":")
    if not colon:
        raise OptionError(f"risk {value!r} has no kind", _SHAPE_HINT)
    if not KIND.fullmatch(kind):
        hint = (
            f"write {kind.lower()}:{name}"
            if KIND.fullmatch(kind.lower())
            else "a kind is a lower-case word (letters, digits, '-', '_', starting with a "
            "letter): carrier, conduit, co, entry, power"
        )
        raise OptionError(f"risk kind {kind!r} is not a lower-case word", hint)
    if not name.strip():
        raise OptionError(
            f"risk {value!r} has no name", f"write the name after the colon: {kind}:name"
        )
    if name != name.strip():
        raise OptionError(
            f"risk name {name!r} starts or ends with a space",
            f"write {kind}:{name.strip()}: names are compared exactly",
        )
    if printable(name) != name:
        raise OptionError(
            f"risk name {name!r} holds a character that is not printable",
            "names are printable text: letters, digits, spaces, punctuation",
        )
    if len(name) > MAX_NAME_CHARS:
        raise OptionError(
            f"risk name of {len(name)} characters is too long",
            f"at most {MAX_NAME_CHARS}: name the carrier, conduit or building, not describe it",
        )
    return value


class RiskReader(Reader):
    def risks(self, fields: Fields, inherited: tuple[str, ...] = ()) -> tuple[str, ...]:
        """`inherited` and then the risks written under `risks:`, each once; each fault at the
        item it is about. A single risk may stand without a list."""
        if "risks" not in fields:
            return inherited
        node = fields["risks"][1]
        items: list[Node] = list(self.items(node, "risks")) if node.is_sequence else [node]
        if not items:
            self.fail(
                node.error(
                    "'risks' is an empty list",
                    f"list what the links ride ({EXAMPLES}) or leave it out",
                )
            )
        found = list(inherited)
        for item in items:
            try:
                risk = parse_risk(item.value())
            except OptionError as exc:
                self.fail(item.error(f"'risks': {exc.message}", exc.hint))
                continue
            if risk not in found:
                found.append(risk)
        return tuple(found)
