"""The UPS of a site, read from its UPS-MIB (RFC 1628): where the output comes from (mains,
bypass, battery), the battery's status, its estimated minutes and charge remaining, how long it
has been on battery, and how many alarms it has.

Radio sites ride out mains failures on batteries: the output on battery is CRIT ("on battery")
whatever the minutes left, because someone must act (a generator, a technician) before they run
out; the minutes and the charge are judged against lower bounds as well, on mains too (a battery
that gives 8 minutes on mains has aged). Every value is checked against the range the MIB gives
it: an agent that answers a charge of 150 % or -3 minutes is not believed, and the value is
recorded as "invalid(N)", which its threshold judges UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.core.conditions import Condition, Expectation, Finding, Threshold
from monitor.core.model import ObservationValue, Severity
from monitor.core.text import duration_text
from probes.base import Observations
from probes.support.snmp_values import (
    ABSENT,
    UPS_ALARMS_PRESENT,
    UPS_BATTERY_STATUS,
    UPS_CHARGE_REMAINING,
    UPS_MINUTES_REMAINING,
    UPS_OUTPUT_SOURCE,
    UPS_SECONDS_ON_BATTERY,
)

OIDS = (
    UPS_OUTPUT_SOURCE,
    UPS_BATTERY_STATUS,
    UPS_SECONDS_ON_BATTERY,
    UPS_MINUTES_REMAINING,
    UPS_CHARGE_REMAINING,
    UPS_ALARMS_PRESENT,
)
NO_UPS_MIB = "no UPS-MIB (upsOutputSource not found)"
OUTPUT_SOURCE, BATTERY_STATUS = "ups.output_source", "ups.battery_status"
MINUTES, CHARGE = "ups.battery_minutes", "ups.battery_charge_pct"
ON_BATTERY_S, ALARMS = "ups.seconds_on_battery", "ups.alarms"

# upsOutputSource, with how bad each is: the load unprotected (bypass) or an unknown source is
# WARN; booster and reducer are the UPS correcting the mains voltage, the load still protected.
_SOURCES: dict[int, tuple[str, Severity]] = {
    1: ("other", Severity.WARN),
    2: ("none (output off)", Severity.CRIT),
    3: ("normal", Severity.OK),
    4: ("bypass", Severity.WARN),
    5: ("battery", Severity.CRIT),
    6: ("booster", Severity.OK),
    7: ("reducer", Severity.OK),
}
_SOURCE_SEVERITY = {word: severity for word, severity in _SOURCES.values()}
_BATTERY: dict[int, tuple[str, Severity]] = {
    1: ("unknown", Severity.WARN),
    2: ("normal", Severity.OK),
    3: ("low", Severity.CRIT),
    4: ("depleted", Severity.CRIT),
}
_BATTERY_SEVERITY = {word: severity for word, severity in _BATTERY.values()}
# The ranges RFC 1628 gives the numbers (SYNTAX NonNegativeInteger, PositiveInteger, 0..100).
_RANGES = {
    UPS_SECONDS_ON_BATTERY: (0, 2**31 - 1),
    UPS_MINUTES_REMAINING: (0, 2**31 - 1),  # PositiveInteger, but 0 is what an empty one says
    UPS_CHARGE_REMAINING: (0, 100),
    UPS_ALARMS_PRESENT: (0, 2**32 - 1),
}


def _enumerated(value: Any, words: dict[int, tuple[str, Severity]]) -> ObservationValue:
    if isinstance(value, str) and value in ABSENT:
        return value
    if isinstance(value, int) and value in words:
        return words[value][0]
    return f"invalid({value})"


def _bounded(oid: str, value: Any) -> ObservationValue:
    low, high = _RANGES[oid]
    if isinstance(value, int) and low <= value <= high:
        return value
    if isinstance(value, str) and value in ABSENT:
        return value
    return f"invalid({value})"


def observe(values: dict[str, Any], obs: Observations) -> None:
    """The UPS's observations from a poll's answers; only the output source when the agent has
    no UPS-MIB, so its one UNKNOWN says why."""
    source = values.get(UPS_OUTPUT_SOURCE)
    if source is None or source in ABSENT:
        obs[OUTPUT_SOURCE] = NO_UPS_MIB
        return
    obs[OUTPUT_SOURCE] = _enumerated(source, _SOURCES)
    obs[BATTERY_STATUS] = _enumerated(values.get(UPS_BATTERY_STATUS), _BATTERY)
    for key, oid in (
        (ON_BATTERY_S, UPS_SECONDS_ON_BATTERY),
        (MINUTES, UPS_MINUTES_REMAINING),
        (CHARGE, UPS_CHARGE_REMAINING),
        (ALARMS, UPS_ALARMS_PRESENT),
    ):
        obs[key] = _bounded(oid, values.get(oid))


# What a failing output source or battery status means, in the words of the field.
_SOURCE_WORDS = {
    "battery": "on battery",
    "bypass": "on bypass (load unprotected)",
    "none (output off)": "output off (load unpowered)",
    "other": "output source other",
}
_BATTERY_WORDS = {
    "low": "battery low",
    "depleted": "battery depleted",
    "unknown": "battery status unknown",
}


def _source_finding(value: ObservationValue, seconds: str) -> Finding:
    reason = _SOURCE_WORDS.get(str(value), f"output source {value}")
    if value == NO_UPS_MIB:
        reason = NO_UPS_MIB
    elif value == "battery" and seconds.isdigit() and int(seconds) > 0:
        return Finding(reason, f"{reason} for {duration_text(int(seconds))}")
    return Finding(reason)


def _battery_finding(value: ObservationValue, _about: str) -> Finding:
    return Finding(_BATTERY_WORDS.get(str(value), f"battery status {value}"))


def _grade(severities: dict[str, Severity]) -> Any:
    return lambda value: severities.get(str(value), Severity.UNKNOWN)


def conditions(
    minutes: tuple[float | None, float | None], charge: tuple[float | None, float | None]
) -> list[Condition]:
    """The UPS's conditions; `minutes` and `charge` are (warn, crit) lower bounds."""
    judged: list[Condition] = [
        Expectation(
            condition=OUTPUT_SOURCE,
            observation=OUTPUT_SOURCE,
            accepts=lambda value: _SOURCE_SEVERITY.get(str(value)) is Severity.OK,
            expected="normal (mains), booster or reducer; battery is CRIT, bypass WARN",
            grade=_grade(_SOURCE_SEVERITY),
            about=ON_BATTERY_S,
            failed=_source_finding,
            headline=True,
        ),
        Expectation(
            condition=BATTERY_STATUS,
            observation=BATTERY_STATUS,
            accepts=lambda value: value == "normal",
            expected="normal; low and depleted are CRIT",
            grade=_grade(_BATTERY_SEVERITY),
            failed=_battery_finding,
            headline=True,
        ),
        Threshold(condition=ALARMS, observation=ALARMS, warn=0, crit=None, unit=""),
    ]
    for key, (warn, crit), unit in ((MINUTES, minutes, " min"), (CHARGE, charge, "%")):
        if warn is not None or crit is not None:
            judged.append(
                Threshold(
                    condition=key,
                    observation=key,
                    warn=warn,
                    crit=crit,
                    unit=unit,
                    higher_is_worse=False,
                )
            )
    return judged


def facts(obs: Mapping[str, ObservationValue]) -> tuple[list[str], frozenset[str]]:
    """The dashboard's words for the UPS ("on battery 42 min 80%", "UPS on mains 100%"), and
    the observations they tell."""
    source = obs.get(OUTPUT_SOURCE)
    if source is None:
        return [], frozenset()
    if source == NO_UPS_MIB:
        return ["no UPS-MIB"], frozenset({OUTPUT_SOURCE})
    minutes, charge = obs.get(MINUTES), obs.get(CHARGE)
    words = {"normal": "UPS on mains", "battery": "on battery"}.get(str(source), f"UPS {source}")
    if isinstance(minutes, int):
        words += f" {minutes} min"
    if isinstance(charge, int):
        words += f" {charge}%"
    return [words], frozenset({OUTPUT_SOURCE})
