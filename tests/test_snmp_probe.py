"""The snmp probe against net-snmp's real snmpd on 127.0.0.1, and against UDP peers that stay
silent or answer garbage, driven the way the engine and CLI drive it."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config.checks import adhoc_check
from monitor.config.loader import load_inventory
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.core.options import OptionError
from monitor.engine.runner import run_check
from monitor.lab.lab import SNMP_ENV
from monitor.output.records import result_to_dict
from probes.base import SharedResources
from probes.support.snmp_engine import MAX_IN_FLIGHT
from probes.support.snmp_poll import ADMIN_DOWN, NOT_FOUND
from probes.support.snmp_values import counter_rate, uptime_went_back
from tests.conftest import REPO
from tests.peers.snmp_peers import (
    AES256_USER,
    AUTH_ONLY_PASSPHRASE,
    AUTH_PASSPHRASE,
    AUTH_PRIV,
    AUTH_USER,
    COMMUNITY,
    LOCALHOST,
    PRIV_PASSPHRASE,
    VETH_DOWN,
    VETH_UP,
    SnmpAgent,
    running_agent,
    udp_peer,
    veth_pair,
)

SECRETS = {
    "CW_COMMUNITY": COMMUNITY,
    "CW_AUTH": AUTH_PASSPHRASE,
    "CW_PRIV": PRIV_PASSPHRASE,
    "CW_AUTH_ONLY": AUTH_ONLY_PASSPHRASE,
    "CW_WRONG": "not-the-passphrase-0000",
}
V2C = {"version": "2c", "community_env": "CW_COMMUNITY"}
AUTH_NO_PRIV = {
    "version": 3,
    "user": AUTH_USER,
    "auth_protocol": "sha256",
    "auth_passphrase_env": "CW_AUTH_ONLY",
}


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def veth() -> Iterator[str | None]:
    with veth_pair() as failure:
        yield failure


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, veth: str | None) -> Iterator[SnmpAgent]:
    # Made after the veth pair, so the agent's interface table lists it from the start.
    with running_agent(tmp_path_factory.mktemp("snmpd")) as running:
        yield running


def check(target: str, **values: Any) -> Any:
    return adhoc_check("snmp", {"target": target, "timeout": "3s", **values})


async def probe(
    shared: SharedResources, target: str, memory: dict[str, Any] | None = None, **values: Any
) -> ProbeResult:
    return await run_check(check(target, **values), shared, memory)


def verdict(result: ProbeResult, condition: str) -> Any:
    return next(v for v in result.verdicts if v.condition == condition)


def assert_no_secret(result: ProbeResult) -> None:
    text = json.dumps(result_to_dict(result)) + result.summary()
    for secret in SECRETS.values():
        assert secret not in text


# --- values read ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials", [AUTH_PRIV, AUTH_NO_PRIV, V2C], ids=["authPriv", "authNoPriv", "v2c"]
)
async def test_system_group_and_loopback_are_read(
    agent: SnmpAgent, shared: SharedResources, credentials: dict[str, Any]
) -> None:
    result = await probe(shared, agent.target, interfaces="lo", **credentials)

    assert result.severity is Severity.OK, result.summary()
    obs = result.observations
    assert obs["system.name"] == socket.gethostname()
    assert "Linux" in obs["system.descr"]
    assert 0 < obs["system.uptime_s"] < 3600
    assert obs["system.rebooted_at"] == "none"
    assert (obs["if.lo.index"], obs["if.lo.state"], obs["if.lo.oper_status"]) == (1, "up", "up")
    assert ("snmp.engine_id" in obs) is (credentials is not V2C)
    # Rates need two polls: absent on the first, and that is OK rather than UNKNOWN.
    rate = verdict(result, "if.lo.in_errors")
    assert (rate.value, rate.severity) == (None, Severity.OK)
    assert_no_secret(result)


async def test_interfaces_by_index_and_by_description(
    agent: SnmpAgent, shared: SharedResources
) -> None:
    result = await probe(shared, agent.target, interfaces=[1, "lo", "no-such-if0"], **V2C)

    obs = result.observations
    assert obs["if.1.state"] == obs["if.lo.state"] == "up"
    assert obs["if.no-such-if0.state"] == NOT_FOUND
    assert result.severity is Severity.CRIT
    assert "if.no-such-if0.state not found" in result.summary()


async def test_oids_with_expectations_thresholds_and_absent_objects(
    agent: SnmpAgent, shared: SharedResources
) -> None:
    result = await probe(
        shared,
        agent.target,
        system=False,
        oids=[
            {"oid": "1.3.6.1.2.1.1.5.0", "name": "sysname", "expect": socket.gethostname()},
            {"oid": "1.3.6.1.2.1.1.3.0", "name": "uptime", "warn": 1, "crit": 2},
            "1.3.6.1.2.1.1.99.0 name=missing warn=1",
            "1.3.6.1.2.1.2.2.1.2.99999 name=noinstance expect=eth9",
        ],
        **AUTH_PRIV,
    )

    obs = result.observations
    assert verdict(result, "oid.sysname").severity is Severity.OK
    assert verdict(result, "oid.uptime").severity is Severity.CRIT  # centiseconds > 2
    assert obs["oid.missing"] == "noSuchObject"
    assert verdict(result, "oid.missing").severity is Severity.UNKNOWN
    assert obs["oid.noinstance"] == "noSuchInstance"
    assert verdict(result, "oid.noinstance").severity is Severity.CRIT
    assert result.error is None


async def test_a_bad_value_is_crit_with_the_value(
    agent: SnmpAgent, shared: SharedResources
) -> None:
    result = await probe(
        shared, agent.target, oids=["1.3.6.1.2.1.1.5.0 name=sysname expect=core-rtr-1"], **V2C
    )

    assert result.severity is Severity.CRIT
    assert result.summary() == (f"oid.sysname {socket.gethostname()} (expected core-rtr-1): CRIT")


@pytest.mark.parametrize(("protocol", "answers"), [("aes256", True), ("aes256c", False)])
async def test_aes256_extends_keys_as_net_snmp_does(
    agent: SnmpAgent, shared: SharedResources, protocol: str, answers: bool
) -> None:
    values = {**AUTH_PRIV, "user": AES256_USER, "auth_protocol": "sha", "priv_protocol": protocol}
    result = await probe(shared, agent.target, **values)

    assert (result.error is None) is answers, result.summary()
    if not answers:  # the Cisco key extension: net-snmp cannot decrypt it, and drops it
        assert result.error.error_class is ErrorClass.AUTH
        assert "wrong privacy passphrase or protocol?" in result.error.message


# --- interfaces down, rates ----------------------------------------------------------------------


async def test_admin_up_but_oper_down_is_crit_and_admin_down_is_maintenance(
    agent: SnmpAgent, shared: SharedResources, veth: str | None
) -> None:
    if veth is not None:
        pytest.fail(f"cannot create the veth pair this test needs: {veth}", pytrace=False)
    result = await probe(shared, agent.target, interfaces=[VETH_UP, VETH_DOWN], **AUTH_PRIV)

    obs = result.observations
    assert obs[f"if.{VETH_UP}.admin_status"] == "up"
    assert obs[f"if.{VETH_UP}.oper_status"] in ("down", "lowerLayerDown")
    assert verdict(result, f"if.{VETH_UP}.state").severity is Severity.CRIT
    assert obs[f"if.{VETH_DOWN}.state"] == ADMIN_DOWN
    assert verdict(result, f"if.{VETH_DOWN}.state").severity is Severity.OK
    assert verdict(result, f"if.{VETH_DOWN}.admin_status").severity is Severity.WARN
    assert result.severity is Severity.CRIT
    assert result.summary().startswith(f"if.{VETH_UP}.state {obs[f'if.{VETH_UP}.oper_status']}")

    relaxed = await probe(
        shared, agent.target, interfaces=[VETH_DOWN], admin_down="ok", **AUTH_PRIV
    )
    assert relaxed.severity is Severity.OK, relaxed.summary()


async def test_counter_rates_over_two_polls(agent: SnmpAgent, shared: SharedResources) -> None:
    memory: dict[str, Any] = {}
    first = await probe(shared, agent.target, memory, interfaces="lo", **V2C)
    assert "if.lo.in_utilisation_pct" not in first.observations

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind((LOCALHOST, 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as source:
            for _ in range(200):
                source.sendto(b"x" * 1400, sink.getsockname())
    # snmpd refreshes its interface counters from the kernel every few seconds.
    await asyncio.sleep(3.2)
    second = await probe(shared, agent.target, memory, interfaces="lo", **V2C)

    obs = second.observations
    assert obs["if.lo.in_errors_per_s"] == 0.0
    assert obs["if.lo.in_discards_per_s"] == 0.0
    # lo reports 10 Mbit/s; 200 datagrams of ~1.4 kB over ~3.5 s is a few percent of that.
    assert 0 < obs["if.lo.in_utilisation_pct"] < 100
    assert verdict(second, "if.lo.in_utilisation").threshold == "warn > 80%, crit > 95%"


# What earlier polls left, as a state file of another version or a damaged one may hold it.
DAMAGED_MEMORY: list[dict[str, Any]] = [
    {"uptime": [1, 2, 3], "rebooted_at": "yesterday"},
    {"uptime": "1234", "rebooted_at": [1]},
    {"counters": ["lo"], "counters_at": "noon"},
    {"counters": {"lo@1.in_errors": "many"}, "counters_at": None},
    {"if_index": {"lo": [1]}, "if_resolved_at": "later"},
    {"if_index": {"lo": "1"}},
    {"if_index": ["lo"]},
]


@pytest.mark.parametrize("memory", DAMAGED_MEMORY)
async def test_a_memory_not_as_written_is_dropped_and_rewritten(
    agent: SnmpAgent, shared: SharedResources, memory: dict[str, Any]
) -> None:
    """Each entry of another shape starts that part afresh: no poll fails for it, and the next
    poll has what this one wrote (the counters of a rate)."""
    first = await probe(shared, agent.target, memory, interfaces="lo", **V2C)
    assert first.error is None, first.summary()
    assert first.severity is Severity.OK, first.summary()
    assert first.observations["system.rebooted_at"] == "none"
    second = await probe(shared, agent.target, memory, interfaces="lo", **V2C)
    assert second.error is None, second.summary()
    assert second.observations["if.lo.index"] == 1
    assert second.observations["if.lo.in_errors_per_s"] == 0.0


@pytest.mark.parametrize(
    ("previous", "current", "bits", "expected"),
    [
        (100, 300, 32, 100.0),
        (2**32 - 100, 100, 32, 100.0),  # a wrap
        (5_000, 10, 32, None),  # a reset (e.g. counters cleared): no rate, no spike
        (2**64 - 1000, 1000, 64, 1000.0),
        (10**12, 5, 64, None),
        (None, 5, 64, None),
    ],
)
def test_counter_wraps_and_resets(
    previous: int | None, current: int, bits: int, expected: float | None
) -> None:
    assert counter_rate(previous, current, bits, 2.0) == expected


@pytest.mark.parametrize(
    ("last_ticks", "ticks", "elapsed", "restarted"),
    [
        (50_000, 56_000, 60, False),
        (50_000, 1_000, 60, True),  # the agent came back 10 s ago
        (2**32 - 3_000, 3_000, 60, False),  # sysUpTime wrapped after 497 days
        (2**32 - 3_000, 200_000, 60, True),  # ...but not that far past the wrap
    ],
)
def test_uptime_wraps_are_not_reboots(
    last_ticks: int, ticks: int, elapsed: float, restarted: bool
) -> None:
    assert uptime_went_back(last_ticks, 1000.0, ticks, 1000.0 + elapsed) is restarted


# --- restarts and engine ids --------------------------------------------------------------------


async def test_reboot_is_detected_after_an_agent_restart(
    tmp_path: Path, shared: SharedResources
) -> None:
    memory: dict[str, Any] = {}
    with running_agent(tmp_path) as own:
        await asyncio.sleep(1.5)  # an uptime the restarted agent will not have reached
        before = await probe(shared, own.target, memory, interfaces="lo", **AUTH_PRIV)
        assert before.severity is Severity.OK, before.summary()
        own.restart()
        after = await probe(shared, own.target, memory, interfaces="lo", **AUTH_PRIV)

    reboot = verdict(after, "system.reboot")
    assert reboot.severity is Severity.WARN
    assert after.severity is Severity.WARN
    assert reboot.value.startswith("20") and reboot.value.endswith("+00:00")
    assert after.summary().startswith(f"system.reboot {reboot.value}")
    # Counters restarted with the agent: no rate this poll rather than a spike.
    assert "if.lo.in_utilisation_pct" not in after.observations


async def test_a_new_engine_id_is_recovered_within_one_poll(
    tmp_path: Path, shared: SharedResources
) -> None:
    memory: dict[str, Any] = {}
    with running_agent(tmp_path, engine_id="cw-image-1") as own:
        before = await probe(shared, own.target, memory, **AUTH_PRIV)
        own.restart(engine_id="cw-image-2")  # the device was re-imaged
        after = await probe(shared, own.target, memory, **AUTH_PRIV)

    # net-snmp makes a text engineID into an id ending in that text.
    assert before.observations["snmp.engine_id"].endswith(b"cw-image-1".hex())
    assert before.observations["snmp.engine_id_changed"] is False
    assert after.severity is Severity.OK, after.summary()
    assert after.observations["snmp.engine_id"].endswith(b"cw-image-2".hex())
    assert after.observations["snmp.engine_id_changed"] is True


async def test_devices_sharing_a_user_name_keep_their_own_passphrases(
    agent: SnmpAgent, tmp_path: Path, shared: SharedResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CW_OTHER_AUTH", "another-site-passphrase")
    other = {**AUTH_PRIV, "auth_passphrase_env": "CW_OTHER_AUTH"}
    with running_agent(tmp_path, auth_passphrase="another-site-passphrase") as second:
        results = await asyncio.gather(
            *(
                probe(shared, target, **credentials)
                for _ in range(3)
                for target, credentials in ((agent.target, AUTH_PRIV), (second.target, other))
            )
        )
    assert [r.severity for r in results] == [Severity.OK] * 6, [r.summary() for r in results]


# --- failures, classified ------------------------------------------------------------------------


async def test_wrong_community_is_a_timeout_that_says_so(
    agent: SnmpAgent, shared: SharedResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CW_COMMUNITY", "wrong-community-1234")
    result = await probe(shared, agent.target, timeout="500ms", **V2C)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert result.severity is Severity.CRIT
    assert "wrong community or agent down" in result.error.message
    assert "wrong-community-1234" not in json.dumps(result_to_dict(result))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"auth_passphrase_env": "CW_WRONG"}, "wrong authentication passphrase"),
        ({"priv_passphrase_env": "CW_WRONG"}, "wrong privacy passphrase"),
        ({"user": "nobody"}, "unknown user 'nobody' (usmStatsUnknownUserNames)"),
        (
            {**AUTH_NO_PRIV, "priv_protocol": "aes", "priv_passphrase_env": "CW_PRIV"},
            f"user '{AUTH_USER}' may not use security level authPriv",
        ),
    ],
    ids=["auth-passphrase", "priv-passphrase", "unknown-user", "security-level"],
)
async def test_v3_credentials_rejected_are_auth_failures(
    agent: SnmpAgent, shared: SharedResources, values: dict[str, str], expected: str
) -> None:
    result = await probe(shared, agent.target, **{**AUTH_PRIV, **values})

    assert result.error is not None, result.summary()
    assert result.error.error_class is ErrorClass.AUTH
    assert result.severity is Severity.UNKNOWN
    assert expected in result.error.message
    assert_no_secret(result)


@pytest.mark.parametrize("credentials", [AUTH_PRIV, V2C], ids=["v3", "v2c"])
async def test_an_agent_that_never_answers_times_out(
    shared: SharedResources, credentials: dict[str, Any]
) -> None:
    async with udp_peer(answer_garbage=False) as port:
        result = await probe(shared, f"{LOCALHOST}:{port}", timeout="500ms", **credentials)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert result.error.message.startswith(f"no response from {LOCALHOST}:{port}")
    assert result.duration_ms < 700


@pytest.mark.parametrize("credentials", [AUTH_PRIV, V2C], ids=["v3", "v2c"])
async def test_garbage_answers_are_a_protocol_failure(
    shared: SharedResources, credentials: dict[str, Any]
) -> None:
    async with udp_peer(answer_garbage=True) as port:
        result = await probe(shared, f"{LOCALHOST}:{port}", timeout="1500ms", **credentials)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert "datagrams that are not SNMP" in result.error.message


# --- options --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"version": "2c"}, "version", "SNMPv2c needs a community"),
        ({"version": 3}, "version", "SNMPv3 needs a user"),
        ({**V2C, "user": "x"}, "version", "SNMPv3 keys are set but version is 2c"),
        ({**AUTH_PRIV, "auth_protocol": None}, "auth_protocol", "go together"),
        ({**AUTH_PRIV, "version": 1}, "version", "not an SNMP version"),
        ({**V2C, "target": "router.example.net"}, "target", "not an IP address"),
        ({**V2C, "system": False}, "system", "nothing to read"),
        ({**V2C, "oids": ["1.3.6.x"]}, "oids", "not a numeric OID"),
        ({**V2C, "oids": [{"oid": "1.3.6.1", "color": 1}]}, "oids", "unknown key 'color'"),
        ({**V2C, "oids": ["1.3.6.1 warn=5 crit=2"]}, "oids", "warning bound is beyond"),
        ({**V2C, "oids": ["1.3.6.1 warn=[1"]}, "oids", "expected a number, got text '[1'"),
        ({**V2C, "oids": [{"oid": "1.3.6.1", "expect": {"a": 1}}]}, "oids", "not mappings"),
        ({**V2C, "errors_warn": 5, "errors_crit": 1}, "errors_warn", "beyond"),
    ],
)
def test_bad_options_are_rejected_with_the_key(
    values: dict[str, Any], key: str, message: str
) -> None:
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(OptionError) as caught:
        adhoc_check("snmp", {"target": "192.0.2.1", **values})
    assert caught.value.key == key
    assert message in str(caught.value)


def test_the_default_port_is_161_and_v3_is_the_default() -> None:
    built = adhoc_check(
        "snmp", {"target": "192.0.2.1", **{k: v for k, v in AUTH_PRIV.items() if k != "version"}}
    )
    assert built.options.target == ("192.0.2.1", 161)
    assert built.options.version == "3"
    assert built.ref.target == "192.0.2.1:161"
    assert "CW_AUTH" in repr(built.options) and AUTH_PASSPHRASE not in repr(built.options)


def test_the_example_inventory_snmp_lines_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (SNMP_ENV.auth_passphrase, SNMP_ENV.priv_passphrase, SNMP_ENV.community):
        monkeypatch.setenv(name, "example")  # what the demo lab's env file provides
    text = (REPO / "inventory.yaml").read_text()
    assert text.index("\n  core-v3:") < text.index("\n  radio-v2c:")  # v3 authPriv leads
    assert "#~" not in text  # real checks, not hidden behind comment markers

    snmp = {
        c.ref.check_id: c
        for c in load_inventory(REPO / "inventory.yaml").checks
        if c.kind == "snmp"
    }
    router = snmp["psap-north/fibre-primary/edge-router-snmp"]
    assert router.options.credentials().level == "authPriv"
    radio = snmp["radio-ridge/microwave/microwave-radio"]
    assert radio.options.version == "2c"
    assert [entry.name for entry in radio.options.oids] == ["rsl-dbm", "modulation"]


async def test_local_overload_is_not_blamed_on_the_agent(shared: SharedResources) -> None:
    async with udp_peer(answer_garbage=False) as port:
        target = f"{LOCALHOST}:{port}"
        holders = [
            asyncio.create_task(probe(shared, target, timeout="1500ms", **V2C))
            for _ in range(MAX_IN_FLIGHT)
        ]
        await asyncio.sleep(0.1)  # every slot taken by an exchange that waits 1.35 s
        late = await probe(shared, target, timeout="500ms", **V2C)
        held = await asyncio.gather(*holders)

    assert late.error is not None and late.error.error_class is ErrorClass.TIMEOUT
    assert late.error.message.startswith(f"not sent to {target}: this commwatch had")
    assert all(r.error.message.startswith(f"no response from {target}") for r in held)
