"""The top-level `credentials:` section: named sets of SNMP credential keys that a check (or a
defaults block) takes whole with `credentials: NAME`, its own keys still winning. Each value is
checked where the set is defined, by the parser of the key it fills; a set that cannot be used
is reported there once, not again by every check that names it.
"""

from __future__ import annotations

import functools
from typing import Any

from monitor.config.checks import checked_value
from monitor.config.reader import ID, ID_HINT, Reader
from monitor.core.options import OptionError, Parser, option_specs
from monitor.core.yamlnodes import Node
from probes.registry import REGISTRY

# Keys a named entry of the top-level `credentials:` mapping may hold; a check (or a defaults
# block) says `credentials: NAME` to take them all, its own keys still winning.
CREDENTIAL_KEYS = (
    "version",
    "community_env",
    "community_file",
    "user",
    "auth_protocol",
    "auth_passphrase_env",
    "auth_passphrase_file",
    "priv_protocol",
    "priv_passphrase_env",
    "priv_passphrase_file",
)

# A key's raw value and the node it is written at, for keys passed down to checks.
Raw = dict[str, tuple[Any, Node]]


@functools.cache
def credential_parsers() -> dict[str, Parser]:
    return {
        spec.name: spec.parse
        for probe in REGISTRY.values()
        for spec in option_specs(probe.options)
        if spec.name in CREDENTIAL_KEYS
    }


class CredentialReader(Reader):
    def __init__(self, file: str) -> None:
        super().__init__(file)
        # name -> {key: (raw value, value node)}, validated where defined.
        self.credential_sets: dict[str, Raw | None] = {}
        self.credentials_broken = False

    def credentials(self, node: Node) -> None:
        """Named credential sets, each value checked by the parser of the key it fills. A set
        that cannot be used is None: its fault is reported here, not again by each check."""
        if not node.is_mapping:
            self.credentials_broken = True
        for name, name_node, body in self.entries(node, "credentials"):
            self.credential_sets[name] = None
            if not ID.fullmatch(name):
                self.fail(name_node.error(f"credentials name {name!r} is not valid", ID_HINT))
                continue
            values: Raw = {}
            faults = len(self.errors)
            for key, key_node, value_node in self.entries(body, f"credentials {name}"):
                if key not in CREDENTIAL_KEYS:
                    self.unknown_key(key, key_node, CREDENTIAL_KEYS, f"credentials {name}")
                    continue
                try:
                    checked_value(credential_parsers()[key], value_node.value())
                except OptionError as exc:
                    self.fail(value_node.error(f"'{key}': {exc.message}", exc.hint))
                    continue
                values[key] = (value_node.value(), value_node)
            if len(self.errors) == faults:
                self.credential_sets[name] = values

    def credential_values(self, node: Node) -> Raw | None:
        """The keys of the credentials `node` names; None (fault reported) if unusable."""
        name = node.value()
        if isinstance(name, str) and name in self.credential_sets:
            return self.credential_sets[name]
        if self.credentials_broken:
            return None  # the credentials block itself is at fault, and reported
        known = ", ".join(sorted(n for n in self.credential_sets if ID.fullmatch(n)))
        self.fail(
            node.error(
                f"unknown credentials {name!r}",
                f"defined: {known}" if known else "define it under a top-level 'credentials:'",
            )
        )
        return None
