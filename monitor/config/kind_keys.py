"""Which keys a check of each kind may write, and which a `defaults:` block may hold.

Every kind's options are known by importing every probe module (a TLS or SNMP stack among
them): the tables here are made when first needed, which a valid inventory of one kind never
does, so `commwatch check` of a tcp inventory loads tcp alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from monitor.config.checks import SCHEDULE_PARSERS
from monitor.config.credentials import CREDENTIAL_KEYS
from monitor.core.options import option_specs
from probes.registry import REGISTRY

# A check's own keys, whatever its kind.
CHECK_KEYS = ("id", "kind", "description", "tags", "depends_on")
# Keys any defaults block may hold whatever kinds the inventory uses.
COMMON_DEFAULT_KEYS = frozenset(SCHEDULE_PARSERS) | {"credentials"}


@dataclass(frozen=True)
class KindKeys:
    """The keys a check of one kind may write (`kind` None: a kind not known, whose check is
    still read for its other faults, and may write any key of any kind)."""

    options: frozenset[str]  # its options, and `credentials` where it takes every credential key
    taken: frozenset[str]  # what it takes from defaults: options and schedule keys
    allowed: frozenset[str]


@functools.cache
def all_option_keys() -> frozenset[str]:
    """The option keys of every kind but `target` (which no defaults block can share)."""
    return frozenset(
        spec.name for probe in REGISTRY.values() for spec in option_specs(probe.options)
    ) - {"target"}


@functools.cache
def defaults_block_keys() -> frozenset[str]:
    """Every key a `defaults:` block may hold: schedule keys, `credentials`, any kind's option."""
    return COMMON_DEFAULT_KEYS | all_option_keys()


@functools.cache
def kind_keys(kind: str | None) -> KindKeys:
    options = set()
    if kind is not None:
        options = {spec.name for spec in option_specs(REGISTRY[kind].options)}
        if options >= set(CREDENTIAL_KEYS):
            options.add("credentials")
    allowed = set(CHECK_KEYS) | set(SCHEDULE_PARSERS) | options
    if kind is None:
        allowed |= all_option_keys() | {"target"}
    return KindKeys(
        options=frozenset(options),
        taken=frozenset(options | set(SCHEDULE_PARSERS)),
        allowed=frozenset(allowed),
    )
