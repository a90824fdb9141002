"""The snmp probe's UPS-MIB (RFC 1628) check against net-snmp's real snmpd, which answers the
UPS-MIB by `pass` from a file the test rewrites between polls: on battery, bypass, battery
low, minutes and charge against their bounds, no UPS-MIB, and an agent that lies."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.core.options import OptionError
from monitor.engine.runner import run_check
from probes.base import SharedResources
from probes.snmp import PROBE
from probes.support.snmp_ups import NO_UPS_MIB
from tests.conftest import REPO
from tests.peers.snmp_peers import COMMUNITY, SnmpAgent, UpsValues, running_agent

V2C = {"version": "2c", "community_env": "CW_COMMUNITY"}
# A healthy UPS on mains: 75 minutes, fully charged, no alarm.
ON_MAINS: dict[str, tuple[str, str | int]] = {
    "4.1.0": ("integer", 3),  # upsOutputSource normal
    "2.1.0": ("integer", 2),  # upsBatteryStatus batteryNormal
    "2.2.0": ("integer", 0),  # upsSecondsOnBattery
    "2.3.0": ("integer", 75),  # upsEstimatedMinutesRemaining
    "2.4.0": ("integer", 100),  # upsEstimatedChargeRemaining
    "6.1.0": ("gauge", 0),  # upsAlarmsPresent
}


@pytest.fixture(autouse=True)
def community(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_COMMUNITY", COMMUNITY)


@pytest.fixture(scope="module")
def ups_values(tmp_path_factory: pytest.TempPathFactory) -> UpsValues:
    return UpsValues(tmp_path_factory.mktemp("ups") / "ups.values")


@pytest.fixture(scope="module")
def ups_agent(
    tmp_path_factory: pytest.TempPathFactory, ups_values: UpsValues
) -> Iterator[SnmpAgent]:
    ups_values.set(ON_MAINS)
    with running_agent(tmp_path_factory.mktemp("snmpd"), ups_values=str(ups_values.path)) as agent:
        yield agent


@pytest.fixture
def ups(ups_values: UpsValues) -> Iterator[UpsValues]:
    """The agent's UPS, back on mains after each test."""
    yield ups_values
    ups_values.set(ON_MAINS)


async def poll(shared: SharedResources, agent: SnmpAgent, **values: Any) -> ProbeResult:
    check = adhoc_check(
        "snmp", {"target": agent.target, "timeout": "3s", "ups": True, **V2C, **values}
    )
    return await run_check(check, shared, None)


def verdict(result: ProbeResult, condition: str) -> Any:
    return next(v for v in result.verdicts if v.condition == condition)


def severities(result: ProbeResult) -> dict[str, Severity]:
    return {v.condition: v.severity for v in result.verdicts if v.condition.startswith("ups.")}


async def test_on_mains_is_ok_and_every_value_is_observed(
    ups_agent: SnmpAgent, ups: UpsValues, shared: SharedResources
) -> None:
    result = await poll(shared, ups_agent)

    assert result.severity is Severity.OK, result.summary()
    assert {k: v for k, v in result.observations.items() if k.startswith("ups.")} == {
        "ups.output_source": "normal",
        "ups.battery_status": "normal",
        "ups.seconds_on_battery": 0,
        "ups.battery_minutes": 75,
        "ups.battery_charge_pct": 100,
        "ups.alarms": 0,
    }
    assert PROBE.headline(result, 0).facts[0] == "UPS on mains 75 min 100%"


async def test_on_battery_is_crit_and_back_on_mains_is_ok_between_polls(
    ups_agent: SnmpAgent, ups: UpsValues, shared: SharedResources
) -> None:
    ups.set({**ON_MAINS, "4.1.0": ("integer", 5), "2.2.0": ("integer", 420), "6.1.0": ("gauge", 1)})
    on_battery = await poll(shared, ups_agent)

    assert on_battery.severity is Severity.CRIT
    source = verdict(on_battery, "ups.output_source")
    assert (source.severity, source.reason) == (Severity.CRIT, "on battery")
    assert source.finding == "on battery for 7m00s"
    assert verdict(on_battery, "ups.alarms").severity is Severity.WARN
    headline = PROBE.headline(on_battery, 0)
    assert headline.facts[0] == "on battery 75 min 100%"
    assert "ups.output_source" in headline.tells

    ups.set(ON_MAINS)
    back = await poll(shared, ups_agent)
    assert back.severity is Severity.OK, back.summary()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"2.3.0": ("integer", 25)}, {"ups.battery_minutes": Severity.WARN}),
        ({"2.3.0": ("integer", 8)}, {"ups.battery_minutes": Severity.CRIT}),
        ({"2.4.0": ("integer", 40)}, {"ups.battery_charge_pct": Severity.WARN}),
        ({"2.4.0": ("integer", 20)}, {"ups.battery_charge_pct": Severity.CRIT}),
        ({"4.1.0": ("integer", 4)}, {"ups.output_source": Severity.WARN}),  # bypass
        ({"4.1.0": ("integer", 2)}, {"ups.output_source": Severity.CRIT}),  # output off
        ({"4.1.0": ("integer", 6)}, {}),  # booster: the load still protected
        ({"2.1.0": ("integer", 3)}, {"ups.battery_status": Severity.CRIT}),  # low
        ({"2.1.0": ("integer", 4)}, {"ups.battery_status": Severity.CRIT}),  # depleted
        ({"2.1.0": ("integer", 1)}, {"ups.battery_status": Severity.WARN}),  # unknown
    ],
    ids=[
        "minutes-warn",
        "minutes-crit",
        "charge-warn",
        "charge-crit",
        "bypass",
        "output-off",
        "booster",
        "battery-low",
        "battery-depleted",
        "battery-unknown",
    ],
)
async def test_each_value_is_judged_by_its_default_bounds(
    ups_agent: SnmpAgent,
    ups: UpsValues,
    shared: SharedResources,
    changes: dict[str, tuple[str, int]],
    expected: dict[str, Severity],
) -> None:
    ups.set({**ON_MAINS, **changes})
    result = await poll(shared, ups_agent)

    judged = severities(result)
    assert {k: v for k, v in judged.items() if v is not Severity.OK} == expected, result.summary()


async def test_thresholds_are_the_checks_own(
    ups_agent: SnmpAgent, ups: UpsValues, shared: SharedResources
) -> None:
    ups.set({**ON_MAINS, "2.3.0": ("integer", 45), "2.4.0": ("integer", 60)})
    strict = await poll(
        shared, ups_agent, battery_minutes_warn=60, battery_minutes_crit=50, battery_charge_warn=70
    )
    assert severities(strict)["ups.battery_minutes"] is Severity.CRIT
    assert severities(strict)["ups.battery_charge_pct"] is Severity.WARN
    assert "ups.battery_minutes 45 min (warn < 60 min, crit < 50 min)" in strict.summary()


async def test_a_device_without_the_ups_mib_is_unknown_saying_so(
    tmp_path: Path, shared: SharedResources
) -> None:
    with running_agent(tmp_path / "snmpd") as plain:
        result = await poll(shared, plain)

    assert result.severity is Severity.UNKNOWN
    source = verdict(result, "ups.output_source")
    assert (source.severity, source.value, source.finding) == (
        Severity.UNKNOWN,
        NO_UPS_MIB,
        NO_UPS_MIB,
    )
    assert result.observations["system.uptime_s"] > 0  # the rest of the poll still counts
    assert PROBE.headline(result, 0).facts[0] == "no UPS-MIB"


@pytest.mark.parametrize(
    ("changes", "observation", "recorded"),
    [
        ({"2.4.0": ("integer", 150)}, "ups.battery_charge_pct", "invalid(150)"),
        ({"2.3.0": ("integer", -3)}, "ups.battery_minutes", "invalid(-3)"),
        ({"4.1.0": ("integer", 99)}, "ups.output_source", "invalid(99)"),
        ({"2.1.0": ("integer", -2147483648)}, "ups.battery_status", "invalid(-2147483648)"),
    ],
    ids=["charge-over-100", "negative-minutes", "unknown-source", "hostile-status"],
)
async def test_values_outside_the_mib_are_not_believed(
    ups_agent: SnmpAgent,
    ups: UpsValues,
    shared: SharedResources,
    changes: dict[str, tuple[str, int]],
    observation: str,
    recorded: str,
) -> None:
    ups.set({**ON_MAINS, **changes})
    result = await poll(shared, ups_agent)

    assert result.observations[observation] == recorded
    assert severities(result)[observation] is Severity.UNKNOWN, result.summary()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"4.1.0": ("string", "battery")}, "upsOutputSource"),
        ({"2.3.0": ("counter", 7)}, "upsEstimatedMinutesRemaining"),
    ],
    ids=["source-as-text", "minutes-as-counter"],
)
async def test_a_wrong_type_is_a_protocol_failure_naming_the_object(
    ups_agent: SnmpAgent,
    ups: UpsValues,
    shared: SharedResources,
    changes: dict[str, tuple[str, str | int]],
    named: str,
) -> None:
    ups.set({**ON_MAINS, **changes})
    result = await poll(shared, ups_agent)

    assert result.error is not None, result.summary()
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert named in result.error.message and "the MIB defines" in result.error.message


def test_the_plugin_takes_every_ups_key_as_a_flag(ups_agent: SnmpAgent, ups: UpsValues) -> None:
    ups.set({**ON_MAINS, "4.1.0": ("integer", 5), "2.3.0": ("integer", 20)})
    args = [
        sys.executable, "-m", "monitor.cli", "probe", "snmp", ups_agent.target,
        "--snmp-version", "2c", "--community-env", "CW_COMMUNITY", "--no-system",
        "--ups", "--battery-minutes-warn", "15", "--battery-minutes-crit", "5",
        "--battery-charge-warn", "90", "--battery-charge-crit", "80", "--nagios",
    ]  # fmt: skip
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1", "CW_COMMUNITY": COMMUNITY},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr  # Nagios CRITICAL: on battery
    assert "on battery" in done.stdout
    assert "ups.battery_minutes=20;15:;5:" in done.stdout  # below 15 warns: Nagios' "15:" range
    assert COMMUNITY not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"battery_minutes_warn": 5, "battery_minutes_crit": 10}, "battery_minutes_warn", "beyond"),
        ({"battery_charge_warn": 20, "battery_charge_crit": 30}, "battery_charge_warn", "beyond"),
        ({"battery_charge_warn": 120}, "battery_charge_warn", ""),
        ({"battery_minutes_crit": -1}, "battery_minutes_crit", ""),
        ({"ups": "sometimes"}, "ups", ""),
    ],
)
def test_bad_ups_options_are_rejected_with_the_key(
    values: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(OptionError) as caught:
        adhoc_check("snmp", {"target": "192.0.2.1", "ups": True, **V2C, **values})
    assert caught.value.key == key
    assert message in str(caught.value)


def test_the_ups_alone_is_something_to_read() -> None:
    built = adhoc_check("snmp", {"target": "192.0.2.1", "system": False, "ups": True, **V2C})
    assert built.options.ups and not built.options.system
    assert (built.options.battery_minutes_warn, built.options.battery_minutes_crit) == (30, 10)
    assert (built.options.battery_charge_warn, built.options.battery_charge_crit) == (50, 25)
