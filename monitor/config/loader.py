"""Loading an inventory file: every fault reported as `file:line:column: message (hint)`, all
faults at once where they are independent, and nothing half-loaded ever returned. Defaults
inherit top level -> site -> link -> check; a `defaults` block may hold any key of any probe
kind, and a check takes only the keys its kind knows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.config.checks import (
    SCHEDULE_PARSERS,
    ParseMemo,
    check_ref,
    checked_value,
    parse_options,
)
from monitor.config.inventory import (
    Check,
    Concurrency,
    Group,
    Inventory,
    Link,
    Resilience,
    Schedule,
    Site,
)
from monitor.config.reader import ID, ID_HINT, Fields
from monitor.config.resilience import ResilienceReader
from monitor.core.options import (
    OptionError,
    Parser,
    choice,
    each,
    integer,
    option_specs,
    relative_to,
    text,
)
from monitor.core.yamlnodes import InventoryError, InventoryErrors, Location, Node, load, read
from probes.base import ProbeKind
from probes.registry import REGISTRY

SCHEMA_VERSION = 1
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
ROLES = ("primary", "secondary", "backup")
_ROLE = choice(*ROLES, why="the role tells redundancy analysis how this link counts")
_TOP_KEYS = (
    "version",
    "credentials",
    "defaults",
    "concurrency",
    "sites",
    "groups",
    "maintenance",
    "flapping",
    "history",
    "alerts",
)
_SITE_KEYS = ("id", "name", "tags", "defaults", "min_up", "links")
_LINK_KEYS = (
    "id",
    "name",
    "role",
    "medium",
    "tags",
    "defaults",
    "depends_on",
    "availability_from",
    "checks",
)
_CHECK_KEYS = ("id", "kind", "description", "tags", "depends_on")
_TEXTS = each(text)
# Keys any defaults block may hold whatever kinds the inventory uses.
_COMMON_DEFAULT_KEYS = frozenset(SCHEDULE_PARSERS) | {"credentials"}

# A key's raw value and the node it is written at, for keys passed down to checks.
Raw = dict[str, tuple[Any, Node]]


@dataclass(frozen=True)
class _KindKeys:
    """The keys a check of one kind may write (`kind` None: a kind not known, whose check is
    still read for its other faults, and may write any key of any kind)."""

    options: frozenset[str]  # its options, and `credentials` where it takes every credential key
    taken: frozenset[str]  # what it takes from defaults: options and schedule keys
    allowed: frozenset[str]


# What every kind's options are is known by importing every probe module (a TLS or SNMP
# stack among them): the tables below are made when first needed, which a valid inventory of
# one kind never does.


@functools.cache
def _all_option_keys() -> frozenset[str]:
    """The option keys of every kind but `target` (which no defaults block can share)."""
    return frozenset(
        spec.name for probe in REGISTRY.values() for spec in option_specs(probe.options)
    ) - {"target"}


@functools.cache
def _default_keys() -> frozenset[str]:
    return _COMMON_DEFAULT_KEYS | _all_option_keys()


@functools.cache
def _credential_parsers() -> dict[str, Parser]:
    return {
        spec.name: spec.parse
        for probe in REGISTRY.values()
        for spec in option_specs(probe.options)
        if spec.name in CREDENTIAL_KEYS
    }


@functools.cache
def _kind_keys(kind: str | None) -> _KindKeys:
    options = set()
    if kind is not None:
        options = {spec.name for spec in option_specs(REGISTRY[kind].options)}
        if options >= set(CREDENTIAL_KEYS):
            options.add("credentials")
    allowed = set(_CHECK_KEYS) | set(SCHEDULE_PARSERS) | options
    if kind is None:
        allowed |= _all_option_keys() | {"target"}
    return _KindKeys(
        options=frozenset(options),
        taken=frozenset(options | set(SCHEDULE_PARSERS)),
        allowed=frozenset(allowed),
    )


# --- the loader ----------------------------------------------------------------------------


class _Loader(ResilienceReader):
    def __init__(self, file: str) -> None:
        super().__init__(file)
        # name -> {key: (raw value, value node)}, validated where defined.
        self.credential_sets: dict[str, Raw | None] = {}
        self.credentials_broken = False
        self.memo = ParseMemo()
        self.option_defaults: list[tuple[str, Node]] = []  # (key, key node), judged at the end
        self.kinds: set[str] = set()  # the kinds the checks read so far are of

    def load(self, root: Node) -> Inventory | None:
        # `x-` keys are the user's, as in Compose files: anchors for shared values live there.
        fields = self.fields(root, "the inventory", _TOP_KEYS, ("sites",), free_prefix="x-")
        self.version(fields)
        concurrency = self.concurrency(fields)
        if "credentials" in fields:
            self.credentials(fields["credentials"][1])
        seen: dict[str, Location] = {}
        sites = self.sites(fields, self.defaults(fields, {}), seen)
        self.default_keys()
        resilience = self.resilience(fields, sites, seen)
        links = [link for site in sites for link in site.links]
        self.check_references(
            (site.id for site in sites),
            (link.full_id for link in links),
            {check.ref.check_id: link.full_id for link in links for check in link.checks},
        )
        if self.errors:
            return None
        return Inventory(
            path=self.file, sites=tuple(sites), concurrency=concurrency, resilience=resilience
        )

    def version(self, fields: Fields) -> None:
        if "version" not in fields:
            return
        node = fields["version"][1]
        version = node.value()
        if type(version) is not int or version != SCHEMA_VERSION:
            self.fail(
                node.error(
                    f"inventory version {version!r} is not supported",
                    f"this commwatch reads version {SCHEMA_VERSION}",
                )
            )

    def defaults(self, fields: Fields, inherited: Raw) -> Raw:
        """Merge a `defaults:` block over the inherited one; values stay raw until a check
        of a kind that knows the key takes them, so they are parsed with that kind's parser."""
        merged = dict(inherited)
        if "defaults" not in fields:
            return merged
        for key, key_node, value_node in self.entries(fields["defaults"][1], "defaults"):
            merged[key] = (value_node.value(), value_node)
            if key not in _COMMON_DEFAULT_KEYS:
                # Judged once every check is read (`default_keys`): a kind in use that knows
                # it settles the question without importing every other kind.
                self.option_defaults.append((key, key_node))
        return merged

    def default_keys(self) -> None:
        """Each option key a defaults block holds belongs to some kind (a check takes only the
        keys its kind knows, so one no kind knows would be lost without a word)."""
        in_use = set().union(*(_kind_keys(kind).options for kind in self.kinds))
        for key, key_node in self.option_defaults:
            if key not in in_use and key not in _default_keys():
                self.unknown_key(key, key_node, _default_keys(), "defaults")

    def resilience(
        self, fields: Fields, sites: list[Site], seen: dict[str, Location]
    ) -> Resilience:
        """The resilience sections; every site is a redundancy group of its links."""
        site_groups = tuple(
            Group(
                id=site.id,
                name=site.name,
                site_id=site.id,
                link_ids=tuple(link.full_id for link in site.links),
                min_up=site.min_up,
            )
            for site in sites
        )
        return Resilience(
            groups=site_groups + self.groups(fields, seen),
            maintenance=self.maintenance(fields),
            flapping=self.flapping(fields),
            history=self.history(fields),
            alerts=self.alerts(fields),
        )

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
                    checked_value(_credential_parsers()[key], value_node.value())
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

    def concurrency(self, fields: Fields) -> Concurrency:
        if "concurrency" not in fields:
            return Concurrency()
        inner = self.fields(fields["concurrency"][1], "concurrency", ("global", "per_host"))
        default = Concurrency()
        return Concurrency(
            global_limit=self.plain(inner, "global", integer(1, 20000), default.global_limit),
            per_host=self.plain(inner, "per_host", integer(1, 1000), default.per_host),
        )

    # --- sites, links and checks ------------------------------------------------------------

    def sites(self, fields: Fields, inherited: Raw, seen: dict[str, Location]) -> list[Site]:
        if "sites" not in fields:
            return []
        node = fields["sites"][1]
        if not node.is_sequence:
            self.declare(None)
        sites = [
            site
            for site_node in self.items(node, "sites")
            if (site := self.site(site_node, inherited, seen)) is not None
        ]
        if not sites and not self.errors:
            self.fail(
                node.error(
                    "the inventory has no sites", "add at least one site with links and checks"
                )
            )
        return sites

    def site(self, node: Node, inherited: Raw, seen: dict[str, Location]) -> Site | None:
        fields = self.fields(node, "a site", _SITE_KEYS, ("id", "links"))
        written = self.declare(self.written_id(fields))
        site_id = self.ident(fields, "site", seen)
        name = self.plain(fields, "name", text, site_id or "")
        tags = self.plain(fields, "tags", _TEXTS, ())
        defaults = self.defaults(fields, inherited)
        links, written_links = [], 0
        if "links" in fields:
            # Read even under a faulty site id: the links' own faults are news too.
            link_ids: dict[str, Location] = {}
            if not fields["links"][1].is_sequence:
                self.declare(None, written)
            for link_node in self.items(fields["links"][1], f"links of site {written}"):
                written_links += 1
                link = self.link(link_node, written, tags, defaults, link_ids)
                if link is not None:
                    links.append(link)
        if site_id is None:
            return None
        # min_up counts the links written, loaded or not: one at fault is not a second fault.
        return Site(
            id=site_id,
            name=name,
            tags=tags,
            links=tuple(links),
            min_up=self.min_up(fields, written_links),
        )

    def link(
        self,
        node: Node,
        site_id: str,
        site_tags: tuple[str, ...],
        inherited: Raw,
        seen: dict[str, Location],
    ) -> Link | None:
        fields = self.fields(node, "a link", _LINK_KEYS, ("id", "checks"))
        written = self.declare(self.written_id(fields), site_id)
        link_id = self.ident(fields, "link", seen)
        # Read even under a faulty link id (as `written`): the checks' own faults are news too.
        link = Link(
            id=link_id or written,
            site_id=site_id,
            name=self.plain(fields, "name", text, link_id or ""),
            role=self.plain(fields, "role", _ROLE, "primary"),
            medium=self.plain(fields, "medium", text, ""),
            tags=site_tags + self.plain(fields, "tags", _TEXTS, ()),
            checks=(),
        )
        checks = self.checks(fields, link, self.defaults(fields, inherited))
        if link_id is None:
            return None
        return dataclasses.replace(
            link,
            checks=checks,
            availability_from=self.availability_from(fields, link.full_id),
            depends_on=self.ids(fields, "depends_on", link.full_id, "subject"),
        )

    def availability_from(self, fields: Fields, link_id: str) -> tuple[str, ...]:
        """The full ids of the checks deciding whether link `link_id` is up; its own only."""
        deciding = self.plain(fields, "availability_from", _TEXTS, ())
        # A check of this link that failed to load is written, and its fault reported.
        unknown = [c for c in deciding if not self.unverifiable(f"{link_id}/{c}")]
        if unknown:
            self.fail(
                fields["availability_from"][1].error(
                    f"availability_from names '{unknown[0]}', which is not a check of this link",
                    "list ids of this link's own checks",
                )
            )
        return tuple(f"{link_id}/{c}" for c in deciding)

    def checks(self, fields: Fields, link: Link, inherited: Raw) -> tuple[Check, ...]:
        if "checks" not in fields:
            return ()
        node = fields["checks"][1]
        seen: dict[str, Location] = {}
        if not node.is_sequence:
            self.declare(None, link.site_id, link.id)
        # What a check of each kind takes from the defaults, worked out once per kind.
        taken: dict[str | None, Raw] = {}
        return tuple(
            check
            for check_node in self.items(node, f"checks of link {link.id}")
            if (check := self.check(check_node, link, inherited, taken, seen)) is not None
        )

    def check(
        self,
        node: Node,
        link: Link,
        inherited: Raw,
        taken: dict[str | None, Raw],
        seen: dict[str, Location],
    ) -> Check | None:
        if not node.is_mapping:
            self.declare(None, link.site_id, link.id)
            self.fail(
                node.error(
                    "a check must be a mapping with id, kind and target",
                    "write '- id: ...' then 'kind:' and 'target:' under it",
                )
            )
            return None
        # The kind decides which keys the check may have, so it is read first.
        entries, whole = self.read_mapping(node, "a check")
        probe = self.kind(node, entries)
        kind = None if probe is None else probe.kind
        keys = _kind_keys(kind)
        fields = self.select(node, "a check", entries, whole, keys.allowed, ("id",))
        self.declare(self.written_id(fields), link.site_id, link.id)
        check_id = self.ident(fields, "check", seen)
        tags = link.tags + self.plain(fields, "tags", _TEXTS, ())
        description = self.plain(fields, "description", text, "")
        if probe is None or check_id is None:
            return None
        if kind not in taken:
            taken[kind] = {k: v for k, v in inherited.items() if k in keys.taken}
        parsed = self.check_values(node, fields, taken[kind], probe, keys)
        if parsed is None:
            return None
        options, schedule = parsed
        full_id = f"{link.full_id}/{check_id}"
        return Check(
            ref=check_ref(
                probe, options, check_id=full_id, site_id=link.site_id, link_id=link.id, tags=tags
            ),
            probe=probe,
            options=options,
            interval=schedule.interval,
            timeout=schedule.timeout,
            retries=schedule.retries,
            description=description,
            location=node.location,
            retry_interval=schedule.retry_interval,
            depends_on=self.ids(fields, "depends_on", full_id, "subject"),
        )

    def kind(self, node: Node, entries: list[tuple[str, Node, Node]]) -> ProbeKind | None:
        """The probe kind a check names, or None with the fault reported."""
        written = None
        for key, _, value in entries:
            if key == "kind":
                written = value
                break
        if written is None:
            self.fail(
                node.error(
                    "a check has no 'kind'", "add 'kind:' with one of: " + ", ".join(REGISTRY)
                )
            )
            return None
        kind = written.value()
        if not isinstance(kind, str) or kind not in REGISTRY:
            self.fail(
                written.error(f"unknown check kind {kind!r}", "use one of: " + ", ".join(REGISTRY))
            )
            return None
        self.kinds.add(kind)
        return REGISTRY[kind]

    def check_values(
        self, node: Node, fields: Fields, inherited: Raw, probe: ProbeKind, keys: _KindKeys
    ) -> tuple[Any, Schedule] | None:
        """A check's options and schedule, from its defaults, the credentials it names and its
        own keys (in that precedence); None with every fault placed. `inherited` holds only
        what a check of its kind takes."""
        merged = dict(inherited)
        own = {k: (v.value(), v) for k, (_, v) in fields.items() if k not in _CHECK_KEYS}
        named = own.get("credentials") or merged.get("credentials")
        if named is not None:
            credential_values = self.credential_values(named[1])
            if credential_values is None:
                return None
            merged.update(credential_values)
        merged.update(own)
        merged.pop("credentials", None)
        option_values, schedule_values = {}, {}
        for key, (raw, _) in merged.items():
            if key in SCHEDULE_PARSERS:
                schedule_values[key] = raw
            elif key in keys.options:
                option_values[key] = raw
        options, faults = parse_options(probe, option_values, self.memo)
        for key, exc in faults:
            # A fault between keys that came from named credentials is placed at the reference.
            place = merged[key][1] if key in merged else named[1] if named is not None else node
            self.fail(place.error(f"'{key}': {exc.message}", exc.hint))
        try:
            schedule = self.memo.schedule(schedule_values)
        except OptionError as exc:
            place = merged[exc.key][1] if exc.key in merged else node
            self.fail(place.error(f"'{exc.key}': {exc.message}", exc.hint))
            return None
        if options is None:
            return None
        return options, schedule


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file. Raises InventoryErrors listing every fault found:
    those of the YAML itself first, alone (its values cannot be trusted to mean anything yet),
    then those of its content."""
    file = str(path)
    with _no_cycle_collection():
        root = load(read(path), file)
        if root is None:
            raise InventoryErrors(
                [
                    InventoryError(
                        Location(file, 1, 1),
                        "the inventory is empty",
                        "start from the example inventory.yaml",
                    )
                ]
            )
        loader = _Loader(file)
        try:
            with relative_to(Path(path).resolve().parent):
                inventory = loader.load(root)
        except InventoryError as exc:
            loader.errors.append(exc)
            inventory = None
    if inventory is None:
        raise InventoryErrors(loader.errors)
    return inventory


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Loading makes a few hundred thousand small objects that form no cycles (10,000 checks:
    about 0.1 s of the cycle collector walking a growing heap for nothing); they are kept or
    freed by reference counts alone. Collection resumes, as it was, after the load."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
