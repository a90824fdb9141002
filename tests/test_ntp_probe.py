"""The ntp probe against Debian's chronyd on loopback (IPv4 and IPv6), and scripted servers for
what a healthy chronyd never says: a clock an hour off, a slow reply among fast ones, a pending
leap second, a root distance beyond RFC 5905's limit. Everything goes through `adhoc_check` +
`run_check`, as the CLI does, and `commwatch probe ntp` itself as a plugin.

The chronyd here is started by tests/peers/ntp_peers.py with a configuration of `port`,
`bindaddress`, `allow` (loopback only), `local stratum 8`, `cmdport 0`, `bindcmdaddress /`, a
drift file and a pid file, and nothing else: no `server`, `pool` or `peer` line, so it has no
source to ask and sends nothing of its own; `chronyd -p` (chronyd's own reading of the file) is
checked to name only those directives before it starts, and `-x` keeps it off the system clock.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config.checks import adhoc_check
from monitor.config.loader import load_inventory
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.core.options import OptionError
from monitor.core.yamlnodes import InventoryErrors
from monitor.engine.runner import run_check
from monitor.lab.ntp_peer import ServerClock
from probes.base import SharedResources
from tests.conftest import REPO
from tests.peers.ntp_peers import (
    LOCALHOST,
    LOCALHOST6,
    one_by_one,
    running_chronyd,
    scripted_server,
    serving,
)

# One host, one clock: chronyd serves the very clock the probe reads, so the offset is the
# measurement's own error (the event loop's latency), far below a millisecond when idle. The
# bound is generous for a loaded machine and still a thousandth of the default warning.
SAME_CLOCK = 0.02
ROLLOVER = 2**32 - 2_208_988_800  # 2036-02-07T06:28:16Z in POSIX seconds: NTP era 1 begins


@pytest.fixture(scope="module")
def chronyd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a chronyd serving its local clock at stratum 8."""
    with running_chronyd(tmp_path_factory.mktemp("chronyd")) as port:
        yield port


async def probe(target: str, **values: Any) -> ProbeResult:
    values.setdefault("timeout", "2s")
    return await run_check(adhoc_check("ntp", {"target": target, **values}), SharedResources())


def verdict(result: ProbeResult, condition: str):
    return next(v for v in result.verdicts if v.condition == condition)


# --- chronyd -------------------------------------------------------------------------------


@pytest.mark.parametrize("address", [LOCALHOST, LOCALHOST6])
async def test_chronyd_serves_its_local_stratum_and_this_hosts_own_time(chronyd, address):
    target = f"[{address}]:{chronyd}" if ":" in address else f"{address}:{chronyd}"
    result = await probe(target)
    assert result.error is None, result.summary()
    assert result.severity is Severity.OK, result.summary()
    seen = result.observations
    assert seen["address"] == address
    # chronyd serves its `local stratum` as it is: 8, not 8 + 1 (it has no server of its own).
    assert seen["stratum"] == 8
    # ntpd's convention for the local clock, which chronyd keeps: 127.127.1.1.
    assert seen["reference_id"] == "127.127.1.1"
    assert (seen["leap"], seen["synchronised"], seen["version"]) == ("none", True, 4)
    assert abs(seen["offset_s"]) < SAME_CLOCK
    assert 0 < seen["delay_ms"] < 1000 * SAME_CLOCK
    assert seen["root_distance_s"] == pytest.approx(seen["delay_ms"] / 2000, abs=1e-5)
    assert (seen["samples_sent"], seen["samples_answered"], seen["ignored_datagrams"]) == (1, 1, 0)
    assert seen["kiss_code"] == "none" and seen["rate_limited"] is False
    assert result.summary().startswith("offset ") and result.summary().endswith(", stratum 8")


async def test_the_dashboard_shows_the_offset_when_well_and_the_stratum_always(chronyd):
    from tui.present import info_text

    fine = await probe(f"{LOCALHOST}:{chronyd}")
    assert re.fullmatch(r"offset [+-]\d+\.\d{3}ms · stratum 8", info_text(fine, time.time()))
    warned = await probe(f"{LOCALHOST}:{chronyd}", stratum_warn=5)
    # The fact says the failing verdict too: once.
    assert info_text(warned, time.time()).count("stratum 8") == 1
    async with scripted_server(serving(ServerClock(offset=-3600.0))) as (target, _):
        off = await probe(target)
    assert re.fullmatch(r"offset -3600\.0\d\ds · stratum 1", info_text(off, time.time()))


async def test_stratum_thresholds_warn_and_crit_on_chronyd(chronyd):
    warned = await probe(f"{LOCALHOST}:{chronyd}", stratum_warn=5)
    assert warned.severity is Severity.WARN
    assert verdict(warned, "stratum").describe() == "stratum 8 (warn > 5): WARN"
    failed = await probe(f"{LOCALHOST}:{chronyd}", stratum_warn=5, stratum_crit=7)
    assert failed.severity is Severity.CRIT
    assert verdict(failed, "stratum").severity is Severity.CRIT
    fine = await probe(f"{LOCALHOST}:{chronyd}", stratum_warn=8)
    assert fine.severity is Severity.OK  # "above": stratum 8 is not above 8


async def test_the_delay_is_the_latency_judged(chronyd):
    result = await probe(f"{LOCALHOST}:{chronyd}", latency_warn="0.001ms")
    assert result.severity is Severity.WARN
    assert verdict(result, "latency").observation == "delay_ms"


async def test_several_samples_are_sent_apart_and_all_answered(chronyd):
    result = await probe(f"{LOCALHOST}:{chronyd}", samples=3, sample_interval="100ms")
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["samples_sent"] == 3
    assert result.observations["samples_answered"] == 3
    assert result.duration_ms >= 200  # the third query went 200 ms after the first


async def test_an_unsynchronised_chronyd_is_crit_with_the_reason(tmp_path):
    """Without `local`, chronyd has no time it trusts: it answers with leap indicator 3."""
    with running_chronyd(tmp_path, local_stratum=None) as port:
        result = await probe(f"[{LOCALHOST6}]:{port}")
    assert result.severity is Severity.CRIT
    assert result.observations["synchronised"] is False
    assert verdict(result, "synchronised").finding == "unsynchronised: leap indicator 3 (alarm)"
    assert result.summary().startswith("unsynchronised: leap indicator 3 (alarm)")


def test_chronyd_is_configured_with_loopback_and_its_own_clock_only(tmp_path):
    """The guard itself: the fixture's configuration, as chronyd reads it, names no source."""
    from tests.peers.ntp_peers import CHRONY_DIRECTIVES, chrony_config

    text = chrony_config(tmp_path, 12345, 8)
    directives = {line.split()[0] for line in text.splitlines()}
    assert directives <= CHRONY_DIRECTIVES
    assert not directives & {"server", "pool", "peer", "refclock", "sourcedir", "initstepslew"}
    assert {line for line in text.splitlines() if line.startswith(("allow", "bindaddress"))} == {
        "allow 127.0.0.1",
        "allow ::1",
        "bindaddress 127.0.0.1",
        "bindaddress ::1",
    }


# --- what chronyd never says ---------------------------------------------------------------


async def test_a_server_past_the_2036_rollover_is_measured_across_it():
    """On 2036-02-07 the NTP seconds field wraps to 0 (era 1). A server an hour into era 1,
    asked from era 0, is an hour and years ahead, not 136 years behind: timestamps are only
    ever subtracted modulo 2**64 (RFC 5905 §6)."""
    ahead = ROLLOVER + 3600 - time.time()
    async with scripted_server(serving(ServerClock(offset=ahead))) as (target, _):
        result = await probe(target)
    assert result.observations["offset_s"] == pytest.approx(ahead, abs=SAME_CLOCK)
    assert verdict(result, "offset").severity is Severity.CRIT


async def test_a_server_an_hour_behind_is_crit_with_the_sign_of_its_offset():
    async with scripted_server(serving(ServerClock(offset=-3600.0))) as (target, _):
        result = await probe(target)
    assert result.severity is Severity.CRIT
    offset = verdict(result, "offset")
    assert offset.severity is Severity.CRIT
    assert offset.value == pytest.approx(-3600.0, abs=SAME_CLOCK)
    assert offset.finding.startswith("offset -3600.0") and offset.finding.endswith("s")
    assert "(warn > ±0.1s, crit > ±1s)" in offset.sentence()


@pytest.mark.parametrize(("ahead", "severity"), [(0.3, Severity.WARN), (-0.3, Severity.WARN)])
async def test_an_offset_is_as_wrong_ahead_as_behind(ahead, severity):
    async with scripted_server(serving(ServerClock(offset=ahead))) as (target, _):
        result = await probe(target)
    assert result.severity is severity, result.summary()
    assert result.summary().startswith("offset +" if ahead > 0 else "offset -")
    assert abs(result.observations["offset_s"] - ahead) < SAME_CLOCK


async def test_offset_thresholds_are_configurable():
    async with scripted_server(serving(ServerClock(offset=0.3))) as (target, _):
        result = await probe(target, offset_warn="500ms", offset_crit="2s")
        tight = await probe(target, offset_warn="50ms", offset_crit="200ms")
    assert result.severity is Severity.OK
    assert tight.severity is Severity.CRIT


async def test_the_least_delayed_of_several_samples_is_judged():
    """The slow reply is 400 ms late and its server's clock 0.5 s ahead; the fast one tells the
    truth. Judging any but the least delayed would WARN."""
    slow = serving(ServerClock(offset=0.5), delay=0.4)
    async with scripted_server(one_by_one(slow, serving())) as (target, server):
        result = await probe(target, samples=2, sample_interval="50ms")
    assert len(server.queries) == 2
    assert result.severity is Severity.OK, result.summary()
    assert abs(result.observations["offset_s"]) < SAME_CLOCK
    assert result.observations["samples_answered"] == 2


async def test_a_synchronised_sample_is_preferred_to_a_faster_unsynchronised_one():
    unsynchronised = serving(ServerClock(leap=3, offset=0.7))
    synchronised = serving(ServerClock(), delay=0.05)
    async with scripted_server(one_by_one(unsynchronised, synchronised)) as (target, _):
        result = await probe(target, samples=2, sample_interval="50ms")
    assert result.observations["synchronised"] is True
    assert result.severity is Severity.OK, result.summary()


async def test_a_root_distance_beyond_maxdist_is_crit():
    clock = ServerClock(stratum=3, reference_id=bytes([127, 0, 0, 9]), root_dispersion=1.6)
    async with scripted_server(serving(clock)) as (target, _):
        result = await probe(target)
        relaxed = await probe(target, root_distance_crit="2s", root_distance_warn="1s")
    assert result.severity is Severity.CRIT
    assert verdict(result, "root_distance").finding.startswith("root distance 1.6")
    assert result.observations["reference_id"] == "127.0.0.9"
    assert relaxed.severity is Severity.WARN


async def test_a_pending_leap_second_is_told_not_alarmed():
    async with scripted_server(serving(ServerClock(leap=1))) as (target, _):
        result = await probe(target)
    assert result.severity is Severity.OK
    assert result.observations["leap"] == "insert"


async def test_a_stratum_1_reference_is_its_text():
    async with scripted_server(serving(ServerClock(reference_id=b"PPS\0"))) as (target, _):
        result = await probe(target)
    assert (result.observations["stratum"], result.observations["reference_id"]) == (1, "PPS")


async def test_a_closed_port_is_refused_at_once():
    async with scripted_server(serving()) as (target, _):
        pass  # closed again: nothing listens there now
    result = await probe(target, timeout="5s")
    assert result.error is not None and result.error.error_class is ErrorClass.REFUSED
    assert result.duration_ms < 2500


# --- options ----------------------------------------------------------------------------------


def test_the_port_is_123_unless_given():
    assert adhoc_check("ntp", {"target": "127.0.0.1"}).options.target == ("127.0.0.1", 123)
    assert adhoc_check("ntp", {"target": "[::1]:1123"}).ref.target == "[::1]:1123"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"offset_warn": "2s", "offset_crit": "1s"}, "offset_warn"),
        ({"stratum_warn": 9, "stratum_crit": 4}, "stratum_warn"),
        ({"stratum_crit": 16}, "stratum_crit"),
        ({"root_distance_warn": "2s"}, "root_distance_warn"),
        ({"samples": 0}, "samples"),
        ({"samples": 9}, "samples"),
        ({"offset_warn": "-1s"}, "offset_warn"),
    ],
)
def test_options_out_of_order_or_range_are_refused_by_name(values, key):
    with pytest.raises(OptionError) as caught:
        adhoc_check("ntp", {"target": "127.0.0.1", **values})
    assert caught.value.key == key


def test_an_inventory_fault_in_an_ntp_check_names_its_place(tmp_path: Path):
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\n"
        "sites:\n"
        "  - id: s\n"
        "    links:\n"
        "      - id: l\n"
        "        checks:\n"
        "          - {id: clock, kind: ntp, target: 127.0.0.1, offset_warn: 2s, offset_crit: 1s}\n",
        encoding="utf-8",
    )
    with pytest.raises(InventoryErrors) as caught:
        load_inventory(path)
    shown = str(caught.value)
    assert "inventory.yaml:7:" in shown and "offset_warn is above offset_crit" in shown


# --- the plugin ---------------------------------------------------------------------------------


async def commwatch(*args: str) -> tuple[int, str, str]:
    """`commwatch ARGS` in its own process, without blocking the loop the peers run in."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_probe_ntp_as_a_plugin_against_chronyd(chronyd):
    code, out, err = await commwatch(
        "probe", "ntp", f"{LOCALHOST}:{chronyd}", "--stratum-warn", "5", "--nagios", "-t", "3"
    )
    assert code == 1, out + err
    line, _, perfdata = out.strip().partition(" | ")
    assert line.startswith(f"NTP WARNING - {LOCALHOST}:{chronyd}: stratum 8 (warn above 5)")
    assert "offset_s=" in perfdata and "s;0.1;1 " in perfdata
    assert "stratum=8;5 " in perfdata and "delay_ms=" in perfdata


async def test_every_option_is_a_flag_of_probe_ntp():
    code, out, _ = await commwatch("probe", "ntp", "--help")
    assert code == 3
    for flag in (
        "--samples N",
        "--sample-interval DURATION",
        "--offset-warn DURATION",
        "--offset-crit DURATION",
        "--stratum-warn STRATUM",
        "--stratum-crit STRATUM",
        "--root-distance-warn DURATION",
        "--root-distance-crit DURATION",
        "--latency-warn DURATION",
        "--latency-crit DURATION",
    ):
        assert flag in out, flag


def test_probe_ntp_loads_no_library_beyond_its_own(tmp_path):
    from tests.test_cli_startup import HEAVY, loaded_by, offenders

    done, loaded = loaded_by(tmp_path, "probe", "ntp", "127.0.0.1:9", "-t", "1s", "--nagios")
    assert done.returncode == 2, done.stdout + done.stderr  # nothing listens on port 9
    assert done.stdout.startswith("NTP CRITICAL - 127.0.0.1:9: refused: ")
    assert "probes.ntp" in loaded
    others = ("probes.tcp", "probes.http", "probes.tls", "probes.dns", "probes.snmp")
    assert offenders(loaded, (*HEAVY, *others, "monitor.lab")) == []
