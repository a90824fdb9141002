"""Loading an inventory file: every fault reported as `file:line:column: message (hint)`, all
faults at once where they are independent, and nothing half-loaded ever returned. Defaults
inherit top level -> site -> link -> check; a `defaults` block may hold any key of any probe
kind, and a check takes only the keys its kind knows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from monitor.config.checks import (
    SCHEDULE_PARSERS,
    check_ref,
    parse_options,
    parse_schedule,
    secrets_in,
)
from monitor.config.inventory import Check, Concurrency, Group, Inventory, Link, Resilience, Site
from monitor.config.reader import ID, ID_HINT
from monitor.config.resilience import ResilienceReader
from monitor.core.options import OptionError, choice, each, integer, option_specs, relative_to, text
from monitor.core.yamlnodes import InventoryError, InventoryErrors, Location, Node, load, read
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
_CHECK_KEYS = ("id", "kind", "description", "tags", "depends_on")
_CREDENTIAL_PARSERS = {
    spec.name: spec.parse
    for probe in REGISTRY.values()
    for spec in option_specs(probe.options)
    if spec.name in CREDENTIAL_KEYS
}
_ALL_OPTION_KEYS = frozenset(
    spec.name for probe in REGISTRY.values() for spec in option_specs(probe.options)
) - {"target"}


# --- the loader ----------------------------------------------------------------------------


class _Loader(ResilienceReader):
    def __init__(self, file: str) -> None:
        super().__init__(file)
        # name -> {key: (raw value, value node)}, validated where defined.
        self.credential_sets: dict[str, dict[str, tuple[Any, Node]] | None] = {}
        self.credentials_broken = False

    def defaults(
        self, fields: dict[str, tuple[Node, Node]], inherited: dict[str, tuple[Any, Node]]
    ) -> dict[str, tuple[Any, Node]]:
        """Merge a `defaults:` block over the inherited one; values stay raw until a check
        of a kind that knows the key takes them, so they are parsed with that kind's parser."""
        merged = dict(inherited)
        if "defaults" not in fields:
            return merged
        allowed = set(SCHEDULE_PARSERS) | _ALL_OPTION_KEYS | {"credentials"}
        for key, key_node, value_node in self.entries(fields["defaults"][1], "defaults"):
            if key not in allowed:
                self.unknown_key(key, key_node, allowed, "defaults")
            else:
                merged[key] = (value_node.value(), value_node)
        return merged

    def load(self, root: Node) -> Inventory | None:
        fields = self.fields(
            root,
            "the inventory",
            (
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
            ),
            ("sites",),
            # `x-` keys are the user's, as in Compose files: anchors for shared values live there.
            free_prefix="x-",
        )
        if "version" in fields:
            node = fields["version"][1]
            version = node.value()
            if type(version) is not int or version != SCHEMA_VERSION:
                self.fail(
                    node.error(
                        f"inventory version {version!r} is not supported",
                        f"this commwatch reads version {SCHEMA_VERSION}",
                    )
                )
        concurrency = self.concurrency(fields)
        if "credentials" in fields:
            self.credentials(fields["credentials"][1])
        inherited = self.defaults(fields, {})
        sites = []
        seen: dict[str, Location] = {}
        if "sites" in fields:
            if not fields["sites"][1].is_sequence:
                self.declare(None)
            for site_node in self.items(fields["sites"][1], "sites"):
                site = self.site(site_node, inherited, seen)
                if site is not None:
                    sites.append(site)
            if not sites and not self.errors:
                self.fail(
                    fields["sites"][1].error(
                        "the inventory has no sites", "add at least one site with links and checks"
                    )
                )
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
        resilience = Resilience(
            groups=site_groups + self.groups(fields, seen),
            maintenance=self.maintenance(fields),
            flapping=self.flapping(fields),
            history=self.history(fields),
            alerts=self.alerts(fields),
        )
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
            values: dict[str, tuple[Any, Node]] = {}
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

    def credential_values(self, node: Node) -> dict[str, tuple[Any, Node]] | None:
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

    def concurrency(self, fields: dict[str, tuple[Node, Node]]) -> Concurrency:
        if "concurrency" not in fields:
            return Concurrency()
        inner = self.fields(fields["concurrency"][1], "concurrency", ("global", "per_host"))
        default = Concurrency()
        return Concurrency(
            global_limit=self.plain(inner, "global", integer(1, 20000), default.global_limit),
            per_host=self.plain(inner, "per_host", integer(1, 1000), default.per_host),
        )

    def site(
        self, node: Node, inherited: dict[str, tuple[Any, Node]], seen: dict[str, Location]
    ) -> Site | None:
        fields = self.fields(
            node, "a site", ("id", "name", "tags", "defaults", "min_up", "links"), ("id", "links")
        )
        written = self.declare(self.written_id(fields))
        site_id = self.ident(fields, "site", seen)
        name = self.plain(fields, "name", text, site_id or "")
        tags = self.plain(fields, "tags", each(text), ())
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
        inherited: dict[str, tuple[Any, Node]],
        seen: dict[str, Location],
    ) -> Link | None:
        fields = self.fields(
            node,
            "a link",
            (
                "id",
                "name",
                "role",
                "medium",
                "tags",
                "defaults",
                "depends_on",
                "availability_from",
                "checks",
            ),
            ("id", "checks"),
        )
        written = self.declare(self.written_id(fields), site_id)
        link_id = self.ident(fields, "link", seen)
        tags = site_tags + self.plain(fields, "tags", each(text), ())
        link = Link(
            id=link_id or written,
            site_id=site_id,
            name=self.plain(fields, "name", text, link_id or ""),
            role=self.plain(fields, "role", _ROLE, "primary"),
            medium=self.plain(fields, "medium", text, ""),
            tags=tags,
            checks=(),
        )
        defaults = self.defaults(fields, inherited)
        checks = []
        if "checks" in fields:
            check_ids: dict[str, Location] = {}
            if not fields["checks"][1].is_sequence:
                self.declare(None, site_id, written)
            for check_node in self.items(fields["checks"][1], f"checks of link {written}"):
                check = self.check(check_node, link, defaults, check_ids)
                if check is not None:
                    checks.append(check)
        if link_id is None:
            return None
        full_id = f"{site_id}/{link_id}"
        deciding = self.plain(fields, "availability_from", each(text), ())
        # A check of this link that failed to load is written, and its fault reported.
        unknown = [c for c in deciding if not self.unverifiable(f"{full_id}/{c}")]
        if unknown:
            self.fail(
                fields["availability_from"][1].error(
                    f"availability_from names '{unknown[0]}', which is not a check of this link",
                    "list ids of this link's own checks",
                )
            )
        return dataclasses.replace(
            link,
            checks=tuple(checks),
            depends_on=self.ids(fields, "depends_on", full_id, "subject"),
            availability_from=tuple(f"{full_id}/{c}" for c in deciding),
        )

    def check(
        self,
        node: Node,
        link: Link,
        inherited: dict[str, tuple[Any, Node]],
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
        raw_kind = {k: v for k, _, v in self.entries(node, "a check")}.get("kind")
        probe = None
        if raw_kind is None:
            self.fail(
                node.error(
                    "a check has no 'kind'", "add 'kind:' with one of: " + ", ".join(REGISTRY)
                )
            )
        elif not isinstance(raw_kind.value(), str) or raw_kind.value() not in REGISTRY:
            self.fail(
                raw_kind.error(
                    f"unknown check kind {raw_kind.value()!r}", "use one of: " + ", ".join(REGISTRY)
                )
            )
        else:
            probe = REGISTRY[raw_kind.value()]
        option_keys = {spec.name for spec in option_specs(probe.options)} if probe else set()
        if option_keys >= set(CREDENTIAL_KEYS):
            option_keys.add("credentials")
        allowed = set(_CHECK_KEYS) | set(SCHEDULE_PARSERS) | option_keys
        if probe is None:
            allowed |= _ALL_OPTION_KEYS | {"target"}
        fields = self.fields(node, "a check", allowed, ("id",))
        self.declare(self.written_id(fields), link.site_id, link.id)
        check_id = self.ident(fields, "check", seen)
        tags = link.tags + self.plain(fields, "tags", each(text), ())
        description = self.plain(fields, "description", text, "")
        if probe is None or check_id is None:
            return None

        merged = {k: v for k, v in inherited.items() if k in option_keys | set(SCHEDULE_PARSERS)}
        own = {k: (v.value(), v) for k, (_, v) in fields.items() if k not in _CHECK_KEYS}
        # Precedence: inherited defaults, then the named credentials, then the check's own keys.
        named = own.get("credentials") or merged.get("credentials")
        if named is not None:
            credential_values = self.credential_values(named[1])
            if credential_values is None:
                return None
            merged.update(credential_values)
        merged.update(own)
        merged.pop("credentials", None)
        where = {k: n for k, (_, n) in merged.items()}
        option_values = {k: v for k, (v, _) in merged.items() if k in option_keys}
        schedule_values = {k: v for k, (v, _) in merged.items() if k in SCHEDULE_PARSERS}

        options, faults = parse_options(probe, option_values)
        for key, exc in faults:
            # A fault between keys that came from named credentials is placed at the reference.
            place = where.get(key) or (named[1] if named is not None else node)
            self.fail(place.error(f"'{key}': {exc.message}", exc.hint))
        try:
            schedule = parse_schedule(schedule_values)
        except OptionError as exc:
            self.fail(where.get(exc.key or "", node).error(f"'{exc.key}': {exc.message}", exc.hint))
            return None
        if options is None:
            return None
        ref = check_ref(
            probe,
            options,
            check_id=f"{link.site_id}/{link.id}/{check_id}",
            site_id=link.site_id,
            link_id=link.id,
            tags=tags,
        )
        return Check(
            ref=ref,
            probe=probe,
            options=options,
            interval=schedule.interval,
            timeout=schedule.timeout,
            retries=schedule.retries,
            description=description,
            location=node.location,
            retry_interval=schedule.retry_interval,
            depends_on=self.ids(fields, "depends_on", ref.check_id, "subject"),
        )


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
