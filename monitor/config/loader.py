"""Loading an inventory file: every fault reported as `file:line:column: message (hint)`, all
faults at once where they are independent, and nothing half-loaded ever returned. Defaults
inherit top level -> site -> link -> check; a `defaults` block may hold any key of any probe
kind, and a check takes only the keys its kind knows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from monitor.config.api import ApiReader
from monitor.config.checks import (
    SCHEDULE_PARSERS,
    ParseMemo,
    check_ref,
    parse_options,
)
from monitor.config.cluster import ClusterReader
from monitor.config.credentials import CredentialReader, Raw
from monitor.config.inventory import (
    Check,
    Concurrency,
    Inventory,
    Link,
    Resilience,
    Schedule,
    Site,
    site_group,
)
from monitor.config.kind_keys import (
    CHECK_KEYS,
    COMMON_DEFAULT_KEYS,
    KindKeys,
    defaults_block_keys,
    kind_keys,
)
from monitor.config.reader import Fields
from monitor.config.resilience import ResilienceReader
from monitor.config.risks import RiskReader
from monitor.config.traps import TrapsReader
from monitor.core.options import (
    OptionError,
    choice,
    each,
    integer,
    relative_to,
    text,
)
from monitor.core.yamlnodes import InventoryError, InventoryErrors, Location, Node, load, read
from probes.base import ProbeKind
from probes.registry import REGISTRY

SCHEMA_VERSION = 1
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
    "api",
    "cluster",
    "traps",
)
# Written on a site or a link, these hold for every check below it, as in its defaults.
_PLACEMENT_KEYS = ("vantage", "quorum")
_SITE_KEYS = ("id", "name", "tags", "defaults", "min_up", "risks", "links", *_PLACEMENT_KEYS)
_LINK_KEYS = (
    "id",
    "name",
    "role",
    "medium",
    "edge_hops",
    "tags",
    "defaults",
    "depends_on",
    "availability_from",
    "risks",
    "checks",
    *_PLACEMENT_KEYS,
)
_TEXTS = each(text)
_EDGE_HOPS = integer(0, 255)


# --- the loader ----------------------------------------------------------------------------


class _Loader(
    CredentialReader, ResilienceReader, RiskReader, ApiReader, ClusterReader, TrapsReader
):
    def __init__(self, file: str) -> None:
        super().__init__(file)
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
        api = self.api(fields)
        cluster = self.cluster(fields)
        traps = self.traps(fields)
        links = [link for site in sites for link in site.links]
        self.check_references(
            (site.id for site in sites),
            (link.full_id for link in links),
            {check.ref.check_id: link.full_id for link in links for check in link.checks},
        )
        if self.errors:
            return None
        return Inventory(
            path=self.file,
            sites=tuple(sites),
            concurrency=concurrency,
            resilience=resilience,
            api=api,
            cluster=cluster,
            traps=traps,
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
        """Merge a `defaults:` block, and the placement keys written beside it, over the
        inherited values; they stay raw until a check of a kind that knows the key takes them,
        so they are parsed with that kind's parser."""
        merged = dict(inherited)
        if "defaults" in fields:
            for key, key_node, value_node in self.entries(fields["defaults"][1], "defaults"):
                merged[key] = (value_node.value(), value_node)
                if key not in COMMON_DEFAULT_KEYS:
                    # Judged once every check is read (`default_keys`): a kind in use that
                    # knows it settles the question without importing every other kind.
                    self.option_defaults.append((key, key_node))
        for key in _PLACEMENT_KEYS:
            if key in fields:
                merged[key] = (fields[key][1].value(), fields[key][1])
        return merged

    def default_keys(self) -> None:
        """Each option key a defaults block holds belongs to some kind (a check takes only the
        keys its kind knows, so one no kind knows would be lost without a word)."""
        in_use = set().union(*(kind_keys(kind).options for kind in self.kinds))
        for key, key_node in self.option_defaults:
            if key not in in_use and key not in defaults_block_keys():
                self.unknown_key(key, key_node, defaults_block_keys(), "defaults")

    def resilience(
        self, fields: Fields, sites: list[Site], seen: dict[str, Location]
    ) -> Resilience:
        """The resilience sections; every site is a redundancy group of its links."""
        site_groups = tuple(site_group(site) for site in sites)
        return Resilience(
            groups=site_groups + self.groups(fields, seen),
            maintenance=self.maintenance(fields),
            flapping=self.flapping(fields),
            history=self.history(fields),
            alerts=self.alerts(fields),
        )

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
        risks = self.risks(fields)
        defaults = self.defaults(fields, inherited)
        links, written_links = [], 0
        if "links" in fields:
            # Read even under a faulty site id: the links' own faults are news too.
            link_ids: dict[str, Location] = {}
            if not fields["links"][1].is_sequence:
                self.declare(None, written)
            for link_node in self.items(fields["links"][1], f"links of site {written}"):
                written_links += 1
                link = self.link(link_node, written, tags, risks, defaults, link_ids)
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
            risks=risks,
        )

    def link(
        self,
        node: Node,
        site_id: str,
        site_tags: tuple[str, ...],
        site_risks: tuple[str, ...],
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
            edge_hops=self.plain(fields, "edge_hops", _EDGE_HOPS, 0),
            tags=site_tags + self.plain(fields, "tags", _TEXTS, ()),
            checks=(),
            risks=self.risks(fields, site_risks),
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
        keys = kind_keys(kind)
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
            vantage=schedule.vantage,
            quorum=schedule.quorum,
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
        self, node: Node, fields: Fields, inherited: Raw, probe: ProbeKind, keys: KindKeys
    ) -> tuple[Any, Schedule] | None:
        """A check's options and schedule, from its defaults, the credentials it names and its
        own keys (in that precedence); None with every fault placed. `inherited` holds only
        what a check of its kind takes."""
        merged = dict(inherited)
        own = {k: (v.value(), v) for k, (_, v) in fields.items() if k not in CHECK_KEYS}
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
