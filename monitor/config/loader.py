"""Loading an inventory file: every fault reported as `file:line:column: message (hint)`, all
faults at once where they are independent, and nothing half-loaded ever returned. Defaults
inherit top level -> site -> link -> check; a `defaults` block may hold any key of any probe
kind, and a check takes only the keys its kind knows.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.config.checks import (
    SCHEDULE_PARSERS,
    ParseMemo,
    check_ref,
    parse_options,
    parse_schedule,
    secrets_in,
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
from monitor.core.options import OptionError, choice, each, integer, option_specs, relative_to, text
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
_CREDENTIAL_PARSERS = {
    spec.name: spec.parse
    for probe in REGISTRY.values()
    for spec in option_specs(probe.options)
    if spec.name in CREDENTIAL_KEYS
}
_ALL_OPTION_KEYS = frozenset(
    spec.name for probe in REGISTRY.values() for spec in option_specs(probe.options)
) - {"target"}
_DEFAULT_KEYS = frozenset(SCHEDULE_PARSERS) | _ALL_OPTION_KEYS | {"credentials"}

# A key's raw value and the node it is written at, for keys passed down to checks.
Raw = dict[str, tuple[Any, Node]]


@dataclass(frozen=True)
class _KindKeys:
    """The keys a check of one kind may write (`kind` None: a kind not known, whose check is
    still read for its other faults, and may write any key of any kind)."""

    options: frozenset[str]  # its options, and `credentials` where it takes every credential key
    taken: frozenset[str]  # what it takes from defaults: options and schedule keys
    allowed: frozenset[str]


@functools.cache
def _kind_keys(kind: str | None) -> _KindKeys:
    options = set()
    if kind is not None:
        options = {spec.name for spec in option_specs(REGISTRY[kind].options)}
        if options >= set(CREDENTIAL_KEYS):
            options.add("credentials")
    allowed = set(_CHECK_KEYS) | set(SCHEDULE_PARSERS) | options
    if kind is None:
        allowed |= _ALL_OPTION_KEYS | {"target"}
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

    def load(self, root: Node) -> Inventory | None:
        # `x-` keys are the user's, as in Compose files: anchors for shared values live there.
        fields = self.fields(root, "the inventory", _TOP_KEYS, ("sites",), free_prefix="x-")
        self.version(fields)
        concurrency = self.concurrency(fields)
        if "credentials" in fields:
            self.credentials(fields["credentials"][1])
        seen: dict[str, Location] = {}
        sites = self.sites(fields, self.defaults(fields, {}), seen)
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
            if key not in _DEFAULT_KEYS:
                self.unknown_key(key, key_node, _DEFAULT_KEYS, "defaults")
            else:
                merged[key] = (value_node.value(), value_node)
        return merged

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
                    parsed = _CREDENTIAL_PARSERS[key](value_node.value())
                    for secret in secrets_in(parsed):
                        secret.check_available()
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
        return tuple(
            check
            for check_node in self.items(node, f"checks of link {link.id}")
            if (check := self.check(check_node, link, inherited, seen)) is not None
        )

    def check(
        self, node: Node, link: Link, inherited: Raw, seen: dict[str, Location]
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
        keys = _kind_keys(None if probe is None else probe.kind)
        fields = self.select(node, "a check", entries, whole, keys.allowed, ("id",))
        self.declare(self.written_id(fields), link.site_id, link.id)
        check_id = self.ident(fields, "check", seen)
        tags = link.tags + self.plain(fields, "tags", _TEXTS, ())
        description = self.plain(fields, "description", text, "")
        if probe is None or check_id is None:
            return None
        parsed = self.check_values(node, fields, inherited, probe, keys)
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
        written = next((value for key, _, value in entries if key == "kind"), None)
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
        return REGISTRY[kind]

    def check_values(
        self, node: Node, fields: Fields, inherited: Raw, probe: ProbeKind, keys: _KindKeys
    ) -> tuple[Any, Schedule] | None:
        """A check's options and schedule, from its defaults, the credentials it names and its
        own keys (in that precedence); None with every fault placed."""
        merged = {k: v for k, v in inherited.items() if k in keys.taken}
        own = {k: (v.value(), v) for k, (_, v) in fields.items() if k not in _CHECK_KEYS}
        named = own.get("credentials") or merged.get("credentials")
        if named is not None:
            credential_values = self.credential_values(named[1])
            if credential_values is None:
                return None
            merged.update(credential_values)
        merged.update(own)
        merged.pop("credentials", None)
        where = {k: n for k, (_, n) in merged.items()}
        options, faults = parse_options(
            probe, {k: v for k, (v, _) in merged.items() if k in keys.options}, self.memo
        )
        for key, exc in faults:
            # A fault between keys that came from named credentials is placed at the reference.
            place = where.get(key) or (named[1] if named is not None else node)
            self.fail(place.error(f"'{key}': {exc.message}", exc.hint))
        try:
            schedule = parse_schedule(
                {k: v for k, (v, _) in merged.items() if k in SCHEDULE_PARSERS}, self.memo
            )
        except OptionError as exc:
            self.fail(where.get(exc.key or "", node).error(f"'{exc.key}': {exc.message}", exc.hint))
            return None
        if options is None:
            return None
        return options, schedule


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file. Raises InventoryErrors listing every fault found:
    those of the YAML itself first, alone (its values cannot be trusted to mean anything yet),
    then those of its content."""
    file = str(path)
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
