"""The inventory's resilience sections: redundancy groups, dependencies, maintenance windows and
flap detection, validated at load time like everything else (references that lead nowhere and
dependency cycles are faults with a place and a hint)."""

from __future__ import annotations

import collections
import difflib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.config import maintenance as mw
from monitor.config.alerts import AlertsConfig, parse_alerts
from monitor.config.inventory import FlapPolicy, Group, HistoryConfig
from monitor.config.reader import Fields, Reader
from monitor.core.options import OptionError, duration, each, integer, number, path, text
from monitor.core.yamlnodes import Location, Node


@dataclass(frozen=True)
class _Reference:
    owner: str  # what refers
    targets: tuple[str, ...]
    node: Node
    allowed: str  # "subject" (link or check), "link", or "any" (site, link or check)


class ResilienceReader(Reader):
    def __init__(self, file: str) -> None:
        super().__init__(file)
        self._references: list[_Reference] = []
        # Every subject id written (site, site/link, site/link/check), loaded or not: a
        # reference to one that failed to load is its fault's echo, not a second fault. Under
        # an opaque scope (a site, a link; "" for all) an entry could not be read for its id,
        # so no reference into it can be judged.
        self.declared: set[str] = set()
        self.opaque: set[str] = set()

    def declare(self, written: str | None, *scope: str) -> str:
        """Remember the subject id `written` under `scope` (its site, link), or that `scope`
        holds an entry without one; returns the written id, or "?"."""
        if written is None:
            self.opaque.add("/".join(scope))
            return "?"
        self.declared.add("/".join((*scope, written)))
        return written

    def unverifiable(self, target: str) -> bool:
        """Whether `target` could be a subject that failed to load."""
        return (
            target in self.declared
            or "" in self.opaque
            or any(target.startswith(scope + "/") for scope in self.opaque)
        )

    def ids(self, fields: Fields, key: str, owner: str, allowed: str) -> tuple[str, ...]:
        """A list of ids, remembered for checking once the whole inventory is known."""
        values = self.plain(fields, key, each(text), ())
        if values:
            self._references.append(_Reference(owner, values, fields[key][1], allowed))
        return values

    def min_up(self, fields: Fields, link_count: int) -> int:
        value = self.plain(fields, "min_up", integer(1, 100), 1)
        if link_count and value > link_count:
            self.fail(
                fields["min_up"][1].error(
                    f"min_up {value} is more than the {link_count} links there are",
                    "min_up counts links that must be up; at most the number of links",
                )
            )
        return value

    def groups(self, fields: Fields, sites: Mapping[str, Location]) -> tuple[Group, ...]:
        """Named groups; `sites` (where each site id is written) are groups already."""
        if "groups" not in fields:
            return ()
        groups, seen = [], dict(sites)
        for node in self.items(fields["groups"][1], "groups"):
            inner = self.fields(node, "a group", ("id", "name", "links", "min_up"), ("id", "links"))
            owner = f"group {self.written_id(inner) or '?'}"
            group_id = self.ident(inner, "group (or site)", seen)
            links = self.ids(inner, "links", owner, "link")
            twice = [link for link, n in collections.Counter(links).items() if n > 1]
            if twice:
                self.fail(
                    inner["links"][1].error(
                        f"{owner} lists '{twice[0]}' more than once",
                        "a link is one path however often it is listed: list each link once",
                    )
                )
            up = self.min_up(inner, len(set(links)))
            if group_id is not None:
                name = self.plain(inner, "name", text, group_id)
                groups.append(Group(id=group_id, name=name, site_id="", link_ids=links, min_up=up))
        return tuple(groups)

    def flapping(self, fields: Fields) -> FlapPolicy:
        if "flapping" not in fields:
            return FlapPolicy()
        inner = self.fields(fields["flapping"][1], "flapping", ("window", "high", "low"))
        default = FlapPolicy()
        policy = FlapPolicy(
            window=self.plain(inner, "window", integer(5, 100), default.window),
            high=self.plain(inner, "high", number(1, 100), default.high),
            low=self.plain(inner, "low", _low_share, default.low),
        )
        if policy.low >= policy.high:
            self.fail(
                fields["flapping"][1].error(
                    f"flapping low {policy.low:g}% is not below high {policy.high:g}%",
                    "a check starts flapping above high and settles below low: make low < high",
                )
            )
        return policy

    def history(self, fields: Fields) -> HistoryConfig:
        if "history" not in fields:
            return HistoryConfig()
        inner = self.fields(
            fields["history"][1], "history", ("path", "retention", "downsample_after")
        )
        default = HistoryConfig()
        return HistoryConfig(
            path=Path(self.plain(inner, "path", path, str(default.path))),
            retention=self.plain(inner, "retention", duration, default.retention),
            downsample_after=self.plain(
                inner, "downsample_after", duration, default.downsample_after
            ),
        )

    def alerts(self, fields: Fields) -> AlertsConfig:
        if "alerts" not in fields:
            return AlertsConfig()
        node = fields["alerts"][1]
        try:
            return parse_alerts(node.value())
        except OptionError as exc:
            place = _locate(node, exc.key or "")
            self.fail(place.error(f"alerts: {exc.message}", exc.hint))
            return AlertsConfig()

    def maintenance(self, fields: Fields) -> tuple[mw.Window, ...]:
        if "maintenance" not in fields:
            return ()
        windows: list[mw.Window] = []
        seen: dict[str, Location] = {}
        keys = ("id", "applies_to", "timezone", "start", "end", "days", "at", "duration", "reason")
        for node in self.items(fields["maintenance"][1], "maintenance"):
            inner = self.fields(node, "a maintenance window", keys, ("id", "applies_to"))
            owner = f"maintenance {self.written_id(inner) or '?'}"
            window_id = self.ident(inner, "maintenance window", seen)
            applies = self.ids(inner, "applies_to", owner, "any")
            zone = self.plain(inner, "timezone", mw.zone, "UTC")
            window = self._window(node, inner, window_id or "", applies, zone)
            if window is not None and window_id is not None:
                windows.append(window)
        return tuple(windows)

    def _window(
        self, node: Node, inner: Fields, window_id: str, applies: tuple[str, ...], zone: str
    ) -> mw.Window | None:
        one_off, weekly = {"start", "end"} & set(inner), {"days", "at", "duration"} & set(inner)
        if (
            bool(one_off) == bool(weekly)
            or (one_off and len(one_off) < 2)
            or (weekly and len(weekly) < 3)
        ):
            self.fail(
                node.error(
                    "a maintenance window needs either start and end, or days, at and duration",
                    "one-off: start: 2026-12-01T02:00, end: 2026-12-01T04:00; weekly: "
                    "days: [tue], at: '02:00', duration: 2h",
                )
            )
            return None
        if one_off:
            start = self.plain(inner, "start", lambda v: mw.local_time(v, zone), None)
            end = self.plain(inner, "end", lambda v: mw.local_time(v, zone), None)
            if start is not None and end is not None and end <= start:
                self.fail(
                    inner["end"][1].error(
                        "the window ends before it starts", "make end later than start"
                    )
                )
                return None
            return mw.Window(window_id, applies, zone, start=start, end=end)
        return mw.Window(
            window_id,
            applies,
            zone,
            days=self.plain(inner, "days", mw.weekdays, ()),
            at=self.plain(inner, "at", lambda v: mw.clock_time(v), None),
            length=self.plain(inner, "duration", mw.window_length, 0.0),
        )

    def check_references(
        self, sites: Iterable[str], links: Iterable[str], checks: Mapping[str, str]
    ) -> None:
        """Every id referred to exists; dependencies form no cycle. `checks` maps each check id
        to its link id (a check sits behind its link, so that edge counts too)."""
        site_ids, link_ids, check_ids = set(sites), set(links), set(checks)
        pools = {
            "link": link_ids,
            "subject": link_ids | check_ids,
            "any": link_ids | check_ids | site_ids,
        }
        # Every reference may name a link; some may not name a site or a check.
        kinds = {**dict.fromkeys(site_ids, "a site"), **dict.fromkeys(check_ids, "a check")}
        edges: dict[str, dict[str, Node | None]] = {c: {link: None} for c, link in checks.items()}
        for ref in self._references:
            pool = pools[ref.allowed]
            for target in ref.targets:
                if target not in pool and target in kinds:
                    # Loaded, but not what belongs here: a group of sites would never be
                    # judged, a dependency on a site never hold anything back.
                    wanted, hint = _WANTED[ref.allowed]
                    self.fail(
                        ref.node.error(
                            f"{ref.owner} refers to '{target}', {kinds[target]}, where {wanted}"
                            " belongs",
                            hint,
                        )
                    )
                elif target not in pool and not self.unverifiable(target):
                    close = difflib.get_close_matches(target, sorted(pool), n=1)
                    hint = (
                        f"did you mean '{close[0]}'?"
                        if close
                        else "use a full id: site, site/link or site/link/check"
                    )
                    self.fail(ref.node.error(f"{ref.owner} refers to unknown '{target}'", hint))
                elif ref.allowed == "subject" and target in pool:
                    edges.setdefault(ref.owner, {})[target] = ref.node
        self._reject_cycles(edges)

    def _reject_cycles(self, edges: Mapping[str, Mapping[str, Node | None]]) -> None:
        done: set[str] = set()

        def visit(path: list[str]) -> None:
            subject = path[-1]
            if subject in done:
                return
            for parent in edges.get(subject, {}):
                if parent in path:
                    cycle = [*path[path.index(parent) :], parent]
                    # Report at a depends_on the user wrote (a check's own link is implied).
                    written = [edges[a][b] for a, b in itertools.pairwise(cycle)]
                    node = next(n for n in written if n is not None)
                    self.fail(
                        node.error(
                            f"dependency cycle: {' -> '.join(cycle)}",
                            "a subject cannot depend, even indirectly, on itself",
                        )
                    )
                else:
                    visit([*path, parent])
            done.add(subject)

        for subject in list(edges):
            visit([subject])


# What a reference of each kind may name, and the hint when it names something else.
_WANTED: Mapping[str, tuple[str, str]] = {
    "link": ("a link", "name a link: site/link"),
    "subject": ("a link or check", "name a link (site/link) or a check (site/link/check)"),
}


def _locate(node: Node, key_path: str) -> Node:
    """The node a key path such as `notifiers[1].url` names, as far as it can be followed."""
    for part in key_path.replace("]", "").replace("[", ".").split("."):
        if not part:
            continue
        if part.isdigit() and node.is_sequence:
            items = list(node.sequence("list"))
            if int(part) >= len(items):
                return node
            node = items[int(part)]
        elif node.is_mapping:
            found = {key: value for key, _, value in node.mapping("mapping")}
            if part not in found:
                return node
            node = found[part]
        else:
            return node
    return node


def _low_share(value: object) -> float:
    """The share of changes below which a flapping check settles: above 0, or it never would."""
    low = number(0, 100)(value)
    if low == 0:
        raise OptionError(
            "flapping low 0% can never be reached",
            "a check settles when its share of changes drops below low: "
            "use a share above 0, e.g. 1",
        )
    return low
