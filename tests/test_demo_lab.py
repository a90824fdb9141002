"""The demo lab: every peer it promises, judged by real sweeps, its SNMP agent read by pysnmp and
net-snmp, and `commwatch demo` as a user runs it (headless, lab only, a taken port).

In-process labs shift their ports by an offset so they never meet a demo someone has running;
the `--lab-only` + shipped inventory test needs the fixed ports, as a user does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    get_cmd,
    usmAesCfb128Protocol,
    usmHMAC192SHA256AuthProtocol,
)

from monitor.cli.probe_flags import flag_name
from monitor.config.checks import adhoc_check
from monitor.config.loader import load_inventory
from monitor.core.events import GroupStatus
from monitor.core.model import ProbeResult, Severity
from monitor.engine.scheduler import Scheduler
from monitor.engine.views import group_summaries, sweep_state
from monitor.lab import snmp_agent
from monitor.lab.demo_inventory import demo_inventory, write_demo_inventory
from monitor.lab.lab import SNMP_ENV, Lab, env_file_path, secrets_env_file
from monitor.lab.layout import SERVICES, Behaviour, PortTaken, service
from monitor.lab.pki import Issued, make_ca
from monitor.lab.snmp_agent import RADIO_MODULATION, RADIO_RSL_DBM, Cycles, DeviceClock
from monitor.lab.tls_peers import LAB_CA_FILE, lab_ca_key
from monitor.store.renewals import CertificateWatch
from probes.registry import REGISTRY
from tests.conftest import REPO
from tests.test_import_graph import import_graph

# Tests' lab ports: 38080, 38443, 35300, 32222, 31161, 31123, 35060 in the first test process,
# 1000 more in each next one (pytest-xdist's gw0, gw1, ...), so that labs in two processes never
# meet; the lab's ports differ modulo 1000, so no two offsets make the same port.
OFFSET = 30000 + 1000 * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
RADIO = service("ridge-radio-snmp")
IF_OPER_RF0 = "1.3.6.1.2.1.2.2.1.8.2"
IF_HC_IN_RF0 = "1.3.6.1.2.1.31.1.1.1.6.2"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
RSL = ".".join(map(str, RADIO_RSL_DBM))
MODULATION = ".".join(map(str, RADIO_MODULATION))
# The lab's one service slow on purpose: every other latency must stay under its warn.
DELIBERATELY_SLOW = {"cad-api-via-lte"}


def latency_warnings(results: Iterable[dict]) -> set[str]:
    """Checks whose latency verdict is not OK, from result records (JSON)."""
    return {
        r["check_id"].rsplit("/", 1)[-1]
        for r in results
        for v in r["verdicts"]
        if v["condition"] == "latency" and v["severity"] != "OK"
    }


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def lab(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    async with Lab(port_offset=OFFSET) as running:
        secrets: dict[str, str] = {}
        running.export_secrets(secrets)  # as `commwatch demo` does, into this test's environment
        for name, value in secrets.items():
            monkeypatch.setenv(name, value)
        yield running


async def sweep(checks) -> dict[str, ProbeResult]:
    results: list[ProbeResult] = []
    inventory_concurrency = load_inventory(REPO / "inventory.yaml").concurrency
    await Scheduler(checks, inventory_concurrency, results.append).sweep()
    return {r.check.check_id.rsplit("/", 1)[-1]: r for r in results}


async def test_a_sweep_of_the_lab_shows_every_condition_it_promises(lab, tmp_path):
    assert lab.started_in is not None and lab.started_in < 2.0
    inventory = load_inventory(write_demo_inventory(tmp_path, OFFSET))
    results = await sweep(inventory.checks)
    severity = {check_id: r.severity for check_id, r in results.items() if r.check.kind != "snmp"}
    assert severity == {
        "edge-router": Severity.OK,
        "cad-api": Severity.OK,
        "cad-api-tls": Severity.OK,
        "resolver": Severity.OK,
        "lte-router": Severity.OK,
        "cad-api-via-lte": Severity.WARN,  # slow
        "lte-router-webui": Severity.CRIT,  # untrusted root
        "paging-gateway": Severity.OK,  # first of three requests
        "paging-gateway-tls": Severity.WARN,  # expires in 20 days
        "dns-srv-sip": Severity.OK,
        "master-clock": Severity.OK,  # the lab's stratum 1 serves this host's own time
        "sip-trunk": Severity.OK,
        "ce-router": Severity.CRIT,  # closed port
        "carrier-portal": Severity.CRIT,  # hangs
        "sip-trunk-b": Severity.WARN,  # 503, in maintenance
        "site-router": Severity.OK,
        "site-router-ping": Severity.OK,  # the kernel answers, 1400 bytes with DF on loopback
        "rfss-console": Severity.CRIT,  # expired
        "vsat-modem": Severity.OK,
        "vsat-modem-tls": Severity.CRIT,  # wrong host
    }
    assert results["ce-router"].summary().startswith("refused")
    # The lab's SNMP agents answer v3 authPriv and v2c alike; the radio has a port in maintenance.
    snmp = {check_id: r for check_id, r in results.items() if r.check.kind == "snmp"}
    assert {check_id: r.severity for check_id, r in snmp.items()} == {
        "psap-edge-router-snmp-v3": Severity.OK,
        "psap-edge-router-snmp-v2c": Severity.OK,
        "ridge-radio-snmp-v3": Severity.WARN,
        "ridge-radio-snmp-v2c": Severity.WARN,
        "site-ups": Severity.OK,  # on mains: its outage comes later in its cycle
    }
    assert snmp["site-ups"].observations["ups.output_source"] == "normal"
    assert "if.eth1.admin_status down" in snmp["ridge-radio-snmp-v3"].summary()
    assert snmp["psap-edge-router-snmp-v3"].observations["if.ge-0/0/0.state"] == "up"
    assert results["carrier-portal"].summary().startswith("timeout")
    assert results["lte-router-webui"].summary().startswith("untrusted root: ")
    assert results["rfss-console"].summary().startswith("cert expired 3.0d ago")
    # Its renewal, due at two thirds of its 90 days, failed 10 days ago: an engine says so.
    paging = next(c for c in inventory.checks if c.ref.check_id.endswith("/paging-gateway-tls"))
    judged = CertificateWatch().judge(paging, results["paging-gateway-tls"])
    assert "renewal overdue: should have renewed by" in judged.summary()
    assert results["vsat-modem-tls"].summary().startswith("name mismatch: ")
    assert results["resolver"].observations["answers"] == 1
    clock = results["master-clock"].observations
    assert (clock["stratum"], clock["reference_id"], clock["leap"]) == (1, "GPS", "none")
    assert abs(clock["offset_s"]) < 0.05
    ping = results["site-router-ping"].observations
    assert (ping["address"], ping["sent"], ping["received"]) == ("127.0.30.1", 5, 5)
    assert results["sip-trunk"].observations["transport"] == "udp"
    assert results["sip-trunk-b"].observations["transport"] == "tcp"
    assert results["sip-trunk-b"].summary().startswith("in maintenance: SIP 503, Retry-After 300s")


async def test_the_lab_psap_is_at_risk_with_both_links_up_through_one_central_office(lab, tmp_path):
    """Two "redundant" links, fibre and LTE, whose backhauls meet in one central office: the
    lab's site that looks resilient and is not."""
    inventory = load_inventory(write_demo_inventory(tmp_path, OFFSET))
    results: list[ProbeResult] = []
    await Scheduler(inventory.checks, inventory.concurrency, results.append).sweep()
    topology, state = sweep_state(inventory, inventory.checks, results)
    groups = {g.group_id: g for g in group_summaries(inventory, topology, state)}
    north = groups["psap-north"]
    assert (north.status, north.up, north.total) == (GroupStatus.AT_RISK, 2, 2)
    assert north.describe() == (
        "2 of 2 links up (needs 1), but fibre-primary and lte-backup both ride co:downtown "
        "(losing it leaves 0)"
    )
    # Two carriers, one conduit: by design, whatever the lab's carrier B is doing now.
    assert [e.risks for e in groups["dispatch-central"].risks.exposed_by_design] == [
        ("conduit:5th-ave",)
    ]
    assert groups["radio-ridge"].risks.exposed_by_design == ()


async def test_the_paging_gateway_fails_intermittently_on_a_fixed_schedule(lab):
    check = adhoc_check(
        "http", {"target": f"http://{service('paging-gateway').endpoint(OFFSET)}/status"}
    )
    seen = []
    for _ in range(6):
        seen.append((await sweep([check]))["http"].severity)
    assert seen == [Severity.OK, Severity.OK, Severity.CRIT] * 2


async def test_the_dns_responder_answers_over_udp_and_tcp_and_knows_what_it_does_not_hold(lab):
    server = service("dispatch-resolver").endpoint(OFFSET)
    checks = [
        adhoc_check(
            "dns",
            {"target": "paging.dispatch.example.net", "server": server, "expect": ["127.0.20.1"]},
        ),
        adhoc_check(
            "dns",
            {"target": "dispatch.example.net", "server": server, "type": "TXT", "tcp": True},
        ),
        adhoc_check(
            "dns",
            {"target": "gone.dispatch.example.net", "server": server, "expect_rcode": "NXDOMAIN"},
        ),
        adhoc_check("dns", {"target": "example.org", "server": server, "expect_rcode": "REFUSED"}),
    ]
    for check in checks:
        result = (await sweep([check]))["dns"]
        assert result.severity is Severity.OK, result.summary()


def test_the_lab_imports_core_alone():
    """The lab stands beside the probes it is probed by, on core: the `demo` command (in
    monitor/cli) is what joins it to the engine."""
    graph = import_graph()
    reached = {
        (module, imported)
        for module, imports in graph.items()
        if module.startswith("monitor.lab")
        for imported in imports
        if not imported.startswith(("monitor.lab", "monitor.core")) and imported != "monitor"
    }
    assert reached == set()
    assert any(imported.startswith("monitor.core") for imported in graph["monitor.lab.lab"])


def test_snmp_checks_are_in_the_demo_inventory_exactly_when_the_probe_is_registered():
    kinds = {
        check["kind"]
        for site in demo_inventory()["sites"]
        for link in site["links"]
        for check in link["checks"]
    }
    assert ("snmp" in kinds) == ("snmp" in REGISTRY)


def test_the_shipped_inventory_targets_the_lab_on_loopback(tmp_path, monkeypatch):
    for name in (SNMP_ENV.community, SNMP_ENV.auth_passphrase, SNMP_ENV.priv_passphrase):
        monkeypatch.setenv(name, "made-up-for-loading")  # the demo's SNMP checks reference them
    shipped = load_inventory(REPO / "inventory.yaml")
    generated = load_inventory(write_demo_inventory(tmp_path))
    endpoints = {s.endpoint() for s in SERVICES}
    for check in shipped.checks:
        assert ipaddress.ip_address(check.ref.host).is_loopback, check.ref.check_id
        if check.kind == "dns":
            served = "{}:{}".format(*check.options.server)
        elif "://" in check.ref.target:
            served = check.ref.target.split("/")[2]
        elif check.kind == "sip":
            served = check.ref.target.removesuffix("/" + check.options.transport)
        elif check.kind == "icmp":  # no port: the kernel answers for a lab service's address
            served = next((s.endpoint() for s in SERVICES if s.address == check.ref.target), "")
        else:
            served = check.ref.target
        assert served in endpoints, check.ref.check_id
    # The same checks as the demo runs, so what one shows the other shows too; the SNMP ones
    # (named for the field, with named credentials) read the same agents.
    same = {c.ref.check_id: c.ref.target for c in generated.checks if c.kind != "snmp"}
    assert {c.ref.check_id: c.ref.target for c in shipped.checks if c.kind != "snmp"} == same
    agents = {c.ref.target for c in generated.checks if c.kind == "snmp"}
    assert {c.ref.target for c in shipped.checks if c.kind == "snmp"} == agents
    # What each link rides too: the demo's shared risks are the shipped file's.
    assert {link.full_id: link.risks for link in shipped.links} == {
        link.full_id: link.risks for link in generated.links
    }
    command = [sys.executable, "-m", "monitor.cli", "check", str(REPO / "inventory.yaml")]
    # From another folder: the CA path resolves against the inventory's folder, not the cwd.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    checked = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30
    )
    assert checked.returncode == 0, checked.stderr


def make_lab_ca() -> Issued:
    """The certificate `monitor/lab/lab-ca.pem` holds, made afresh: to renew the file, write
    this one's `cert_pem` over it."""
    return make_ca(
        "commwatch demo lab CA (public key: trust it nowhere else)",
        datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        datetime.datetime(2125, 1, 1, tzinfo=datetime.UTC),
        key=lab_ca_key(),
        extensions=[
            x509.NameConstraints(
                permitted_subtrees=[
                    x509.DNSName("example.net"),
                    x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
                ],
                excluded_subtrees=None,
            )
        ],
    )


def test_the_shipped_lab_ca_is_the_one_the_lab_signs_with_and_is_name_constrained():
    shipped = x509.load_pem_x509_certificate(LAB_CA_FILE.read_bytes())
    made = make_lab_ca().certificate

    def spki(key) -> bytes:
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    assert spki(shipped.public_key()) == spki(lab_ca_key().public_key())
    # Everything but the serial and the signature, which are drawn afresh each time.
    assert shipped.subject == made.subject
    assert shipped.issuer == shipped.subject  # self-signed
    assert shipped.not_valid_before_utc == made.not_valid_before_utc
    assert shipped.not_valid_after_utc == made.not_valid_after_utc
    assert list(shipped.extensions) == list(made.extensions)
    shipped.verify_directly_issued_by(shipped)
    constraints = shipped.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [
        x509.DNSName("example.net"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
    ]
    assert constraints.value.excluded_subtrees is None


async def test_a_second_lab_on_the_same_ports_is_refused_by_name(lab):
    with pytest.raises(PortTaken) as caught:
        await Lab(port_offset=OFFSET).start()
    assert caught.value.endpoint == SERVICES[0].endpoint(OFFSET)
    assert "in use" in str(caught.value)
    result = (await sweep([adhoc_check("tcp", {"target": SERVICES[0].endpoint(OFFSET)})]))["tcp"]
    assert result.severity is Severity.OK  # the first lab is untouched


# --- SNMP --------------------------------------------------------------------------------------


async def snmp_get(lab: Lab, auth, *oids: str):
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(
            (RADIO.address, RADIO.port(OFFSET)), timeout=1, retries=0
        )
        error, status, _, var_binds = await get_cmd(
            engine,
            auth,
            target,
            ContextData(),
            *(ObjectType(ObjectIdentity(oid)) for oid in oids),
            lookupMib=False,
        )
    finally:
        engine.close_dispatcher()
    return error, status, {str(name): value for name, value in var_binds}


def v3(lab: Lab) -> UsmUserData:
    secrets = lab.snmp_secrets
    return UsmUserData(
        secrets.user,
        secrets.auth_passphrase,
        secrets.priv_passphrase,
        authProtocol=usmHMAC192SHA256AuthProtocol,
        privProtocol=usmAesCfb128Protocol,
    )


async def test_the_snmp_agent_answers_v2c_and_v3_authpriv_and_refuses_strangers(lab):
    error, status, values = await snmp_get(
        lab, CommunityData(lab.snmp_secrets.community, mpModel=1), "1.3.6.1.2.1.1.5.0", IF_OPER_RF0
    )
    assert error is None and int(status) == 0
    assert str(values["1.3.6.1.2.1.1.5.0"]) == "ridge-mw-radio-1"
    error, status, values = await snmp_get(
        lab, v3(lab), "1.3.6.1.2.1.31.1.1.1.1.2", "1.3.6.1.2.1.31.1.1.1.15.2", "1.3.6.1.2.1.1.9.0"
    )
    assert error is None and int(status) == 0
    assert str(values["1.3.6.1.2.1.31.1.1.1.1.2"]) == "rf0"  # ifName
    assert int(values["1.3.6.1.2.1.31.1.1.1.15.2"]) == 400  # ifHighSpeed
    assert values["1.3.6.1.2.1.1.9.0"].prettyPrint().startswith("No Such Object")
    error, _, _ = await snmp_get(lab, CommunityData("not-the-community", mpModel=1), SYS_UPTIME)
    assert "No SNMP response" in str(error)


def net_snmp(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(
            f"{tool} is not installed: this test reads the lab agent with net-snmp "
            "(Debian/Ubuntu: apt-get install snmp)",
            pytrace=False,
        )
    return found


async def test_net_snmp_reads_the_agent_over_v3_and_walks_it_with_getbulk(lab):
    secrets = lab.snmp_secrets
    agent = f"{RADIO.address}:{RADIO.port(OFFSET)}"
    common = ["-On", "-t", "1", "-r", "0"]
    v3_flags = ["-v3", "-l", "authPriv", "-u", secrets.user, "-a", "SHA-256"]
    v3_flags += ["-A", secrets.auth_passphrase, "-x", "AES", "-X", secrets.priv_passphrase]
    get = await asyncio.to_thread(
        subprocess.run,
        [net_snmp("snmpget"), *common, *v3_flags, agent, "1.3.6.1.2.1.1.1.0", IF_HC_IN_RF0],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert get.returncode == 0, get.stderr
    assert "microwave radio" in get.stdout and "Counter64" in get.stdout
    walk = await asyncio.to_thread(
        subprocess.run,
        [net_snmp("snmpbulkwalk"), *common, "-v2c", "-c", secrets.community, agent, "1.3.6.1"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert walk.returncode == 0, walk.stderr
    lines = walk.stdout.splitlines()
    # The system group, 13 columns of 3 interfaces, the radio's two vendor values, and
    # net-snmp's one end-of-MIB line.
    assert len(lines) == 3 + 3 * 13 + 2 + 1
    assert "No more variables" in lines[-1]
    assert ".1.3.6.1.2.1.2.2.1.7.3 = INTEGER: 2" in lines  # eth1 admin down (maintenance)
    assert f".{RSL} = INTEGER: -58" in lines


async def test_the_radio_link_goes_down_and_comes_back_on_its_cycle():
    clock = DeviceClock(Cycles(flap_period=0.6, flap_down=0.3, reboot_period=60))
    async with Lab(port_offset=OFFSET, clock=clock) as lab:
        states = set()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and states != {1, 2}:
            _, _, values = await snmp_get(lab, v3(lab), IF_OPER_RF0)
            states.add(int(values[IF_OPER_RF0]))
            await asyncio.sleep(0.05)
    assert states == {1, 2}  # up, then down (or the other way round)


@contextlib.asynccontextmanager
async def lab_on_fake_time() -> AsyncIterator[tuple[Lab, FakeTime]]:
    """A lab whose devices' clock the test sets: flapping 60 s up, 40 s down; a reboot at
    1000 s."""
    fake = FakeTime()
    clock = DeviceClock(Cycles(flap_period=100, flap_down=40, reboot_period=1000), 0.0, fake)
    async with Lab(port_offset=OFFSET, clock=clock) as lab:
        yield lab, fake


async def read_integers(lab: Lab, *oids: str) -> tuple[int, ...]:
    _, _, values = await snmp_get(lab, v3(lab), *oids)
    return tuple(int(values[oid]) for oid in oids)


async def test_counters_rise_stand_still_while_down_and_restart_after_a_reboot():
    async with lab_on_fake_time() as (lab, fake):
        oids = (SYS_UPTIME, IF_OPER_RF0, IF_HC_IN_RF0)
        fake.now = 10.0
        uptime, oper, octets = await read_integers(lab, *oids)
        assert (uptime, oper) == (1000, 1)
        fake.now = 50.0
        assert (await read_integers(lab, *oids))[2] > octets  # rising while up
        fake.now = 70.0
        down = await read_integers(lab, *oids)
        assert down[1] == 2
        fake.now = 90.0
        assert (await read_integers(lab, *oids))[2] == down[2]  # standing still, never backwards
        fake.now = 1005.0
        rebooted = await read_integers(lab, *oids)
        assert rebooted[0] == 500 and rebooted[2] < down[2]  # sysUpTime and counters restart


async def test_the_radio_reports_its_signal_level_and_modulation_falling_in_a_fade():
    async with lab_on_fake_time() as (lab, fake):
        fake.now = 10.0
        assert await read_integers(lab, IF_OPER_RF0, RSL, MODULATION) == (1, -58, 7)
        fake.now = 70.0  # the RF link is down: a fade, as the radio sees it
        assert await read_integers(lab, IF_OPER_RF0, RSL, MODULATION) == (2, -81, 2)


async def test_the_radio_site_ups_goes_on_battery_and_drains_on_its_cycle(tmp_path, monkeypatch):
    async with lab_on_fake_time() as (lab, fake):
        secrets: dict[str, str] = {}
        lab.export_secrets(secrets)
        for name, value in secrets.items():
            monkeypatch.setenv(name, value)
        inventory = load_inventory(write_demo_inventory(tmp_path, OFFSET))
        [ups] = [c for c in inventory.checks if c.ref.check_id.endswith("/site-ups")]
        seen = {}
        # Mains fail for the last 90 s of every 300 s; the battery drains 0.8 min, 0.6 % a second.
        for at in (10.0, 260.0, 295.0):
            fake.now = at
            result = (await sweep([ups]))["site-ups"]
            obs = result.observations
            seen[at] = (
                result.severity,
                obs["ups.output_source"],
                obs["ups.battery_minutes"],
                obs["ups.battery_charge_pct"],
            )
    assert seen == {
        10.0: (Severity.OK, "normal", 95, 100),
        260.0: (Severity.CRIT, "battery", 55, 70),
        295.0: (Severity.CRIT, "battery", 27, 49),
    }
    assert result.summary().startswith("on battery for 1m25s")
    assert {v.condition: v.severity for v in result.verdicts if v.severity is not Severity.OK} == {
        "ups.output_source": Severity.CRIT,
        "ups.alarms": Severity.WARN,
        "ups.battery_minutes": Severity.WARN,
        "ups.battery_charge_pct": Severity.WARN,
    }


def test_snmp_secrets_stay_out_of_reprs():
    lab = Lab(port_offset=OFFSET)
    environ: dict[str, str] = {}
    lab.export_secrets(environ)
    assert set(environ) == {SNMP_ENV.community, SNMP_ENV.auth_passphrase, SNMP_ENV.priv_passphrase}
    assert not any(secret in repr(lab.snmp_secrets) for secret in environ.values())
    assert len(set(environ.values())) == 3


def read_env_file(path: Path) -> dict[str, str]:
    """What a shell gets from `set -a; . FILE; set +a`, read by a real sh."""
    names = (SNMP_ENV.community, SNMP_ENV.auth_passphrase, SNMP_ENV.priv_passphrase)
    script = f'set -a; . "$1"; set +a; printf "%s\\n" {" ".join(f"${n}" for n in names)}'
    shown = subprocess.run(
        ["sh", "-c", script, "sh", str(path)], capture_output=True, text=True, timeout=10
    )
    assert shown.returncode == 0, shown.stderr
    return dict(zip(names, shown.stdout.splitlines(), strict=True))


def test_the_env_file_holds_the_secrets_for_a_shell_readable_by_its_owner_only(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    lab = Lab(port_offset=OFFSET)
    expected: dict[str, str] = {}
    lab.export_secrets(expected)
    path = env_file_path(OFFSET)
    assert path == tmp_path / "state" / "commwatch" / f"demo-lab-{OFFSET}.env"
    previous = os.umask(0)  # even a permissive umask must not open it to others
    try:
        with secrets_env_file(lab, path) as written:
            assert written == path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            assert read_env_file(path) == expected
            assert list(path.parent.iterdir()) == [path]  # no partial file left beside it
    finally:
        os.umask(previous)
    assert not path.exists()  # gone when the lab stops
    # A lab started later has replaced it: the first one to stop leaves the newer file alone.
    other = Lab(port_offset=OFFSET)
    theirs: dict[str, str] = {}
    other.export_secrets(theirs)
    with contextlib.ExitStack() as first, contextlib.ExitStack() as second:
        first.enter_context(secrets_env_file(lab, path))
        second.enter_context(secrets_env_file(other, path))
        first.close()
        assert read_env_file(path) == theirs
    assert not path.exists()


# --- the command ---------------------------------------------------------------------------------


def user_env(state: Path) -> dict[str, str]:
    """A user's environment: no lab secrets of the test's own, commwatch's state in `state`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMWATCH_LAB_")}
    return env | {"XDG_STATE_HOME": str(state)}


def commwatch(*args: str, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=user_env(state),
    )


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = process.stdout.readline()
    assert line and time.monotonic() < deadline, process.stderr.read() if process.stderr else ""
    return line


def demo_check_ids(offset: int) -> set[str]:
    return {
        f"{site['id']}/{link['id']}/{check['id']}"
        for site in demo_inventory(offset)["sites"]
        for link in site["links"]
        for check in link["checks"]
    }


def test_demo_headless_first_sweep_shows_no_latency_warning_but_the_slow_service(tmp_path):
    offset = OFFSET + 1
    process = commwatch("demo", "--headless", "--port-offset", str(offset), state=tmp_path)
    env_file = tmp_path / "commwatch" / f"demo-lab-{offset}.env"
    lines: list[str] = []
    first: dict[str, dict] = {}
    try:
        while len(first) < len(demo_check_ids(offset)):
            lines.append(read_line(process, 30))
            record = json.loads(lines[-1])
            if record["type"] == "result":
                first.setdefault(record["check_id"], record)
        secrets = read_env_file(env_file)
        process.send_signal(signal.SIGTERM)
        rest, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert set(first) == demo_check_ids(offset)
    assert {r["severity"] for r in first.values()} >= {"OK", "WARN", "CRIT"}
    # Staggered: no loopback check of the first sweep waits behind a burst of others.
    assert latency_warnings(first.values()) == DELIBERATELY_SLOW
    assert "commwatch demo lab" in stderr and str(env_file) in stderr
    assert not env_file.exists()
    shown = "".join(lines) + rest + stderr
    assert not any(secret in shown for secret in secrets.values())


def test_demo_lab_only_serves_the_shipped_inventory_with_its_secrets_and_refuses_a_second_lab(
    tmp_path,
):
    lab = commwatch("demo", "--lab-only", state=tmp_path)
    env_file = tmp_path / "commwatch" / "demo-lab.env"
    user = user_env(tmp_path)

    def run(*command: str, loaded: bool = True) -> subprocess.CompletedProcess[str]:
        """`command` from another terminal, the lab's env file loaded as the lab says to."""
        script = 'set -a; . "$1"; set +a; shift; exec "$@"' if loaded else 'shift; exec "$@"'
        return subprocess.run(
            [
                "sh",
                "-c",
                script,
                "sh",
                str(env_file),
                sys.executable,
                "-m",
                "monitor.cli",
                *command,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env=user,
        )

    try:
        banner = [read_line(lab, 20)]
        while "Ctrl-C stops the lab" not in banner[-1]:
            banner.append(read_line(lab, 20))
        assert "demo lab is up" in banner[0]
        assert f"set -a; . {env_file}; set +a" in "".join(banner)
        assert f"probe snmp {service('ridge-radio-snmp').endpoint()} --snmp-version 2c" in "".join(
            banner
        )
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        secrets = read_env_file(env_file)
        second = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "demo", "--lab-only"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            env=user,
        )
        without = run("run", "--once", "inventory.yaml", loaded=False)
        sweep = run("run", "--once", "inventory.yaml")
        radio = service("ridge-radio-snmp").endpoint()
        probe = run(
            "probe", "snmp", radio, flag_name("snmp", "version"), "2c",
            flag_name("snmp", "community_env"), SNMP_ENV.community,
            "--interfaces", "rf0", "--format", "json",
        )  # fmt: skip
        lab.send_signal(signal.SIGINT)
        rest, stderr = lab.communicate(timeout=20)
    finally:
        lab.kill()
    assert lab.returncode == 0, stderr
    assert not env_file.exists()  # the secrets go with the lab
    assert second.returncode == 3
    assert "in use" in second.stderr and "another `commwatch demo`" in second.stderr
    # Without the lab's secrets: every variable named, at its place in the file, nothing run.
    assert without.returncode == 3 and without.stdout == ""
    problems = without.stderr.splitlines()
    assert problems[-1] == "inventory.yaml: 3 problem(s); nothing was run", without.stderr
    for name in (SNMP_ENV.community, SNMP_ENV.auth_passphrase, SNMP_ENV.priv_passphrase):
        assert any(
            line.startswith("inventory.yaml:") and f"environment variable {name} is not set" in line
            for line in problems
        ), without.stderr
    # With them, the shipped inventory's SNMP checks are real checks of the lab's agents.
    assert sweep.returncode == Severity.CRIT.value, sweep.stderr
    document = json.loads(sweep.stdout)
    by_id = {r["check_id"].rsplit("/", 1)[-1]: r["severity"] for r in document["results"]}
    assert by_id["cad-api-tls"] == "OK" and by_id["paging-gateway-tls"] == "WARN"
    assert by_id["ce-router"] == "CRIT" and by_id["rfss-console"] == "CRIT"
    assert by_id["edge-router-snmp"] == "OK"
    assert by_id["microwave-radio"] == "OK"  # RF up, signal level and modulation as expected
    assert list(by_id.values()).count("OK") >= 10
    assert latency_warnings(document["results"]) == DELIBERATELY_SLOW
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout)["observations"]["if.rf0.state"] == "up"
    shown = [*banner, rest, stderr, second.stderr, without.stderr, sweep.stdout, sweep.stderr]
    shown += [probe.stdout, probe.stderr]
    assert not any(secret in text for secret in secrets.values() for text in shown)


def test_every_behaviour_is_served_and_agent_values_are_sorted_for_getnext():
    assert {s.behaviour for s in SERVICES} == set(Behaviour)
    device = snmp_agent.lab_device("ridge-radio-snmp", RADIO.address)
    table = snmp_agent.snapshot(device, DeviceClock(Cycles()))
    assert [oid for oid, _ in table] == sorted(oid for oid, _ in table)
