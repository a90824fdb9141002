"""The inventory as loaded: sites contain links, links contain checks, and the resilience settings
(redundancy groups, maintenance, flap detection, history, alerts) that the engine, the store and
alerting act on. Frozen values only; `monitor.config.loader` reads a file into them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config.alerts import AlertsConfig
from monitor.config.api import ApiConfig
from monitor.config.cluster import ClusterConfig
from monitor.config.maintenance import Window
from monitor.config.traps import TrapsConfig
from monitor.core.model import CheckRef
from monitor.core.paths import state_dir
from monitor.core.yamlnodes import InventoryErrors, Location
from probes.base import ProbeKind

# Whoever loads an inventory catches its faults; they are the model's to name.
__all__ = [
    "Check",
    "Concurrency",
    "FlapPolicy",
    "Group",
    "HistoryConfig",
    "Inventory",
    "InventoryErrors",
    "Link",
    "Resilience",
    "Schedule",
    "Site",
    "default_path",
]

DAY = 86400.0


@dataclass(frozen=True)
class Schedule:
    """The keys every check has, whatever its kind, with the field-tested defaults."""

    interval: float = 60.0
    timeout: float = 10.0
    retries: int = 3  # agreeing results before a change of state is confirmed
    retry_interval: float = 30.0  # how soon to look again while a change is unconfirmed
    # Agents or pools of agents that run it (monitor.cluster); none: the pool "default".
    vantage: tuple[str, ...] = ()
    quorum: int = 1  # vantage points that must see it CRIT before it is CRIT


@dataclass(frozen=True)
class Concurrency:
    """How many probes run at once in all, and against any one host (gentle on old gear)."""

    global_limit: int = 200
    per_host: int = 4


@dataclass(frozen=True, kw_only=True)
class Check:
    ref: CheckRef
    probe: ProbeKind
    options: Any  # the probe kind's own options dataclass
    interval: float
    timeout: float
    retries: int
    description: str
    location: Location
    retry_interval: float = Schedule.retry_interval
    depends_on: tuple[str, ...] = ()  # link or check ids
    vantage: tuple[str, ...] = ()  # agents or pools that run it; see Schedule
    quorum: int = 1

    @property
    def kind(self) -> str:
        return self.probe.kind


@dataclass(frozen=True, kw_only=True)
class Link:
    id: str
    site_id: str
    name: str
    role: str
    medium: str
    tags: tuple[str, ...]
    checks: tuple[Check, ...]
    # The first hops of its path checks' routes that are the link's own (its router, the
    # carrier's first hop): shared or not, they are no convergence (monitor.engine.paths).
    edge_hops: int = 0
    depends_on: tuple[str, ...] = ()
    availability_from: tuple[str, ...] = ()  # check ids deciding up/down; empty: all its checks
    # What it rides (`kind:name`, monitor.config.risks): its site's, then its own, each once.
    risks: tuple[str, ...] = ()

    @property
    def full_id(self) -> str:
        return f"{self.site_id}/{self.id}"


@dataclass(frozen=True, kw_only=True)
class Site:
    id: str
    name: str
    tags: tuple[str, ...]
    links: tuple[Link, ...]
    min_up: int = 1
    risks: tuple[str, ...] = ()  # the site's own; every link of it rides them too


# --- resilience ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Group:
    """Links that back each other up; `min_up` of them must be up. Every site is one."""

    id: str
    name: str
    site_id: str  # "" for a named group across sites
    link_ids: tuple[str, ...]
    min_up: int


def site_group(site: Site) -> Group:
    """Every site is a redundancy group of its links, `min_up` of them to be up."""
    return Group(
        id=site.id,
        name=site.name,
        site_id=site.id,
        link_ids=tuple(link.full_id for link in site.links),
        min_up=site.min_up,
    )


@dataclass(frozen=True)
class FlapPolicy:
    """Nagios-style flap detection: the weighted share of state changes over the last `window`
    results; flapping starts above `high` percent and ends below `low` percent."""

    window: int = 21
    high: float = 50.0
    low: float = 25.0


def default_path() -> Path:
    """$XDG_STATE_HOME/commwatch/history.sqlite3, else ~/.local/state/commwatch/..."""
    return state_dir() / "history.sqlite3"


@dataclass(frozen=True)
class HistoryConfig:
    """The inventory's `history:` block: where the store lives and how long it keeps what."""

    path: Path = field(default_factory=default_path)
    retention: float = 90 * DAY  # everything older is deleted
    downsample_after: float = 7 * DAY  # raw results older than this become hourly rows

    def __post_init__(self) -> None:
        if self.retention <= 0 or self.downsample_after <= 0:
            raise ValueError("history retention and downsample_after must be positive")


@dataclass(frozen=True)
class Resilience:
    groups: tuple[Group, ...] = ()
    maintenance: tuple[Window, ...] = ()
    flapping: FlapPolicy = FlapPolicy()
    history: HistoryConfig = field(default_factory=HistoryConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)


@dataclass(frozen=True, kw_only=True)
class Inventory:
    path: str
    sites: tuple[Site, ...]
    concurrency: Concurrency
    resilience: Resilience = Resilience()
    api: ApiConfig | None = None  # the `api:` section; None: not served unless --listen
    cluster: ClusterConfig | None = None  # the `cluster:` section (agents and a central)
    traps: TrapsConfig | None = None  # the `traps:` section; None: no listening unless --traps

    @property
    def links(self) -> tuple[Link, ...]:
        return tuple(link for site in self.sites for link in site.links)

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(check for link in self.links for check in link.checks)
