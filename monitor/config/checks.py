"""One check from raw (YAML-typed) values: its kind's options, its schedule and its reference.
The inventory loader and `commwatch probe` (`adhoc_check`) build checks through the same code."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from monitor.config.cluster import vantage_name
from monitor.config.inventory import Check, Schedule
from monitor.core.model import CheckRef
from monitor.core.options import (
    OptionError,
    OptionSpec,
    Parser,
    build_options,
    duration,
    each,
    integer,
    option_specs,
)
from monitor.core.secrets import SecretRef
from monitor.core.yamlnodes import Location
from probes.base import ProbeKind
from probes.registry import REGISTRY

SCHEDULE_PARSERS: Mapping[str, Parser] = {
    "interval": duration,
    "timeout": duration,
    "retries": integer(0, 10),
    "retry_interval": duration,
    # Where it runs (agents or pools of agents) and how many of them must see it down.
    "vantage": each(vantage_name),
    "quorum": integer(1, 64),
}


class ParseMemo:
    """Values already parsed in one load, by parser and raw value.

    An inventory says the same thing many times: an inherited `interval: 5m` reaches every
    check below it, and `kind`-wide values repeat from check to check. Each distinct plain value
    (text, a number, true/false) is parsed once per parser; a fault is not kept, so it is raised
    (and placed) wherever the value is written. One load only: relative paths start from its
    inventory's folder, and the files and variables that secrets name are checked at its time.
    """

    _PLAIN = frozenset({str, int, float, bool})

    def __init__(self) -> None:
        self._values: dict[tuple[Parser, type, Any], Any] = {}
        self._schedules: dict[tuple[tuple[str, type, Any], ...], Schedule] = {}

    def parse(self, parser: Parser, raw: Any) -> Any:
        """`checked_value(parser, raw)`, once per distinct plain value."""
        kind = type(raw)
        if kind not in self._PLAIN:
            return checked_value(parser, raw)
        # The type is in the key: True == 1 == 1.0 as keys of a dict, not as inventory values.
        key = (parser, kind, raw)
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = checked_value(parser, raw)
            return value

    def schedule(self, values: Mapping[str, Any]) -> Schedule:
        """`parse_schedule(values)`, once per distinct set of plain values."""
        key = tuple((name, type(raw), raw) for name, raw in values.items())
        try:
            return self._schedules[key]
        except KeyError:
            schedule = self._schedules[key] = parse_schedule(values)
            return schedule
        except TypeError:  # a list or mapping where a schedule key wants a plain value
            return parse_schedule(values)


def checked_value(parser: Parser, raw: Any) -> Any:
    """`parser(raw)`, with every secret it refers to found readable now (OptionError if not)."""
    value = parser(raw)
    if isinstance(value, _MAY_HOLD_SECRETS):
        check_secrets(value)
    return value


@functools.cache
def _specs(options_class: type) -> tuple[dict[str, OptionSpec], tuple[str, ...]]:
    """A kind's options by name, and the names of those it requires."""
    specs = {spec.name: spec for spec in option_specs(options_class)}
    return specs, tuple(name for name, spec in specs.items() if spec.required)


def parse_options(
    probe: ProbeKind, values: Mapping[str, Any], memo: ParseMemo | None = None
) -> tuple[Any, list[tuple[str, OptionError]]]:
    """Parse raw option values for `probe`. Returns the options (None on any fault) and the
    faults as (key, error) so the caller can place each one."""
    parsed: dict[str, Any] = {}
    faults: list[tuple[str, OptionError]] = []
    specs, required = _specs(probe.options)
    parse = checked_value if memo is None else memo.parse
    for key, raw in values.items():
        try:
            parsed[key] = parse(specs[key].parse, raw)
        except OptionError as exc:
            faults.append((key, exc))
    for name in required:
        if name not in values:
            faults.append(
                (
                    name,
                    OptionError(f"'{name}' is required for {probe.kind} checks", specs[name].help),
                )
            )
    if faults:
        return None, faults
    try:
        return build_options(probe.options, parsed), []
    except OptionError as exc:
        return None, [(exc.key or "target", exc)]


_MAY_HOLD_SECRETS = (SecretRef, tuple)


def check_secrets(value: Any) -> None:
    """Every secret a parsed option value refers to (a header list holds some) can be read
    now; raises OptionError naming the first that cannot."""
    if isinstance(value, SecretRef):
        value.check_available()
    elif isinstance(value, tuple):
        for item in value:
            if isinstance(item, _MAY_HOLD_SECRETS):
                check_secrets(item)


def parse_schedule(values: Mapping[str, Any]) -> Schedule:
    """Schedule keys from raw values; raises OptionError with `key` set."""
    parsed = {}
    for key, raw in values.items():
        try:
            parsed[key] = SCHEDULE_PARSERS[key](raw)
        except OptionError as exc:
            exc.key = key
            raise
    if "retry_interval" not in parsed:
        parsed["retry_interval"] = min(Schedule.retry_interval, parsed.get("interval", 60.0))
    schedule = Schedule(**parsed)
    if schedule.retry_interval > schedule.interval:
        raise OptionError(
            f"retry_interval {schedule.retry_interval:g}s is longer than interval "
            f"{schedule.interval:g}s",
            "re-checks of an unconfirmed change should come sooner than regular ones",
            key="retry_interval",
        )
    if schedule.timeout > schedule.interval:
        raise OptionError(
            f"timeout {schedule.timeout:g}s is longer than interval {schedule.interval:g}s",
            "a check must finish before it is due again: shorten timeout or lengthen interval",
            key="timeout" if "timeout" in values else "interval",
        )
    if schedule.quorum > max(len(schedule.vantage), 1):
        raise OptionError(
            f"quorum {schedule.quorum} needs as many vantage points, "
            f"the check has {len(schedule.vantage)}",
            "name at least that many agents or pools in 'vantage', or lower quorum",
            key="quorum",
        )
    if len(set(schedule.vantage)) < len(schedule.vantage):
        raise OptionError(
            "a vantage point is named twice",
            "name each agent or pool once",
            key="vantage",
        )
    return schedule


def check_ref(
    probe: ProbeKind,
    options: Any,
    *,
    check_id: str,
    site_id: str,
    link_id: str,
    tags: tuple[str, ...],
) -> CheckRef:
    return CheckRef(
        check_id=check_id,
        site_id=site_id,
        link_id=link_id,
        kind=probe.kind,
        target=probe.target(options),
        host=probe.host(options),
        tags=tags,
    )


def adhoc_check(kind: str, values: Mapping[str, Any]) -> Check:
    """A check built from raw values outside any inventory, for `commwatch probe` and tests.

    `values` holds option and schedule keys (YAML-typed, as the inventory would give them);
    raises OptionError naming the key at fault.
    """
    probe = REGISTRY[kind]
    schedule_values = {k: v for k, v in values.items() if k in SCHEDULE_PARSERS}
    if "interval" not in schedule_values:
        # A one-off probe has no interval; only its timeout matters.
        schedule_values["interval"] = max(duration(values.get("timeout", 10.0)), 60.0)
    schedule = parse_schedule(schedule_values)
    options, faults = parse_options(
        probe, {k: v for k, v in values.items() if k not in SCHEDULE_PARSERS}
    )
    if faults:
        key, exc = faults[0]
        exc.key = key
        raise exc
    ref = check_ref(
        probe, options, check_id=f"adhoc/{kind}", site_id="adhoc", link_id=kind, tags=()
    )
    return Check(
        ref=ref,
        probe=probe,
        options=options,
        interval=schedule.interval,
        timeout=schedule.timeout,
        retries=schedule.retries,
        vantage=schedule.vantage,
        quorum=schedule.quorum,
        description="",
        location=Location("<command line>", 0, 0),
    )
