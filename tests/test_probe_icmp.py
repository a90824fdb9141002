"""The icmp probe against the kernel's own echo replies: on loopback (127.0.0.0/8 and ::1), in
the process as the engine runs it, many checks at once on one engine, with sizes up to the
largest an IP packet carries and with don't-fragment; through a router whose far side has an
MTU of 1280 (network namespaces of the test, tests/peers/icmp_peers.py); and as the user
nobody in a namespace of its own, where net.ipv4.ping_group_range decides whether a datagram
ICMP socket may be had. Echoes the test's responder answers late, twice, from elsewhere or
not at all are in tests/hostile/test_icmp_hostile.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.config.checks import adhoc_check
from monitor.config.loader import load_inventory
from monitor.core.errors import ConfigFailure
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.core.options import OptionError
from monitor.core.yamlnodes import InventoryErrors
from monitor.engine.runner import run_check
from probes.base import SharedResources
from probes.support import icmp_packet, icmp_socket, icmp_stats
from tests.conftest import REPO
from tests.peers.icmp_peers import (
    ALLOW_EVERY_GROUP,
    NO_GROUP,
    ROUTER_NEAR_V4,
    ROUTER_NEAR_V6,
    IcmpPath,
    icmp_path,
    probe_in,
)
from tests.peers.netns import Namespace, listed, namespaces

FAMILIES = [socket.AF_INET, socket.AF_INET6]
FAST = {"echo_interval": "20ms", "reply_timeout": "1s"}  # root may go below ping's 200ms


async def probe(target: str, shared: SharedResources | None = None, **values: Any) -> ProbeResult:
    values.setdefault("timeout", "5s")
    check = adhoc_check("icmp", {"target": target, **FAST, **values})
    if shared is not None:
        return await run_check(check, shared)
    own = SharedResources()
    try:
        return await run_check(check, own)
    finally:
        await own.aclose()


def expected_socket() -> str:
    """What this process is allowed: a datagram socket when one of its groups is in
    net.ipv4.ping_group_range, else (as root here) a raw one."""
    with open("/proc/sys/net/ipv4/ping_group_range", encoding="ascii") as allowed:
        low, high = (int(word) for word in allowed.read().split())
    groups = {os.getegid(), *os.getgroups()}
    return "datagram" if any(low <= group <= high for group in groups) else "raw"


# --- loopback --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
async def test_loopback_answers_every_echo_and_the_round_trips_add_up(target):
    result = await probe(target, count=5)
    assert result.error is None, result.summary()
    assert result.severity is Severity.OK, result.summary()
    seen = result.observations
    assert seen["address"] == target
    assert seen["socket"] == expected_socket()
    assert (seen["sent"], seen["received"], seen["loss_pct"]) == (5, 5, 0.0)
    untrusted = ("late", "duplicates", "wrong_source", "corrupted", "strays", "icmp_errors")
    assert [seen[key] for key in untrusted] == [0] * len(untrusted)
    assert 0 < seen["rtt_min_ms"] <= seen["rtt_avg_ms"] <= seen["rtt_max_ms"] < 200
    assert 0 <= seen["rtt_mdev_ms"] <= seen["rtt_max_ms"] - seen["rtt_min_ms"]
    assert 0 <= seen["jitter_ms"] <= seen["rtt_max_ms"] - seen["rtt_min_ms"]
    assert (
        seen["rtt"]
        == "/".join(
            f"{seen[key]:.3f}" for key in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "rtt_mdev_ms")
        )
        + " ms"
    )
    assert result.summary().startswith("loss 0% (5 of 5 answered), rtt min/avg/max/mdev ")
    # The main latency (the history's column, the dashboard's trend) is the average.
    assert result.check.kind == "icmp"
    from probes.registry import main_latency

    assert main_latency(result) == seen["rtt_avg_ms"]


# Loopback's MTU is 65536: every IPv4 packet fits (65535 at most); an IPv6 one of 40 bytes of
# header, 8 of ICMPv6 and 65488 of payload fills it, one byte more needs fragments.
LOOPBACK_V6_LARGEST_UNFRAGMENTED = 65536 - 40 - 8


async def test_the_dashboard_shows_the_round_trip_and_the_loss_when_all_is_well():
    from tui.present import info_text

    result = await probe("127.0.0.1", count=2)
    assert re.fullmatch(r"rtt \d+(\.\d+)?ms · loss 0%", info_text(result, time.time()))


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("size", [8, 1400, 9000, "largest"])
@pytest.mark.parametrize("dont_fragment", [True, False])
async def test_any_size_the_path_carries_comes_back_whole(target, size, dont_fragment):
    """Each reply's payload is the request's byte for byte (a single byte off would count it
    corrupted, not received), fragmented on the way or not."""
    if size == "largest":
        unfragmented = dont_fragment and target == "::1"
        size = LOOPBACK_V6_LARGEST_UNFRAGMENTED if unfragmented else icmp_packet.MAX_PAYLOAD
    result = await probe(target, count=2, size=size, dont_fragment=dont_fragment)
    assert result.severity is Severity.OK, result.summary()
    assert (result.observations["received"], result.observations["corrupted"]) == (2, 0)


async def test_dont_fragment_beyond_the_mtu_is_refused_by_this_host_naming_it():
    result = await probe(
        "::1", count=2, size=LOOPBACK_V6_LARGEST_UNFRAGMENTED + 1, dont_fragment=True
    )
    assert result.severity is Severity.CRIT
    assert result.error is not None and result.error.error_class is ErrorClass.UNREACHABLE
    assert result.error.message == (
        "no echo replies (2 sent): message too long: 65537-byte packets with don't-fragment "
        "exceed the path MTU 65536 known here"
    )
    assert (result.observations["unsent"], result.observations["loss_pct"]) == (2, 100.0)
    fragmented = await probe("::1", count=2, size=LOOPBACK_V6_LARGEST_UNFRAGMENTED + 1)
    assert fragmented.severity is Severity.OK, fragmented.summary()


async def test_many_checks_on_one_engine_each_get_their_own_replies_and_no_others():
    """Two hundred checks at once on one engine's shared resources (one raw socket per family
    as root, a datagram socket each otherwise): every reply reaches its own check alone."""
    shared = SharedResources()
    targets = [f"127.0.{n // 200}.{n % 200 + 1}" for n in range(150)] + ["::1"] * 50
    try:
        results = await asyncio.gather(
            *(probe(t, shared, count=5, echo_interval="50ms") for t in targets)
        )
    finally:
        await shared.aclose()
    for target, result in zip(targets, results, strict=True):
        seen = result.observations
        assert result.severity is Severity.OK, (target, result.summary())
        assert seen["address"] == target
        assert (seen["received"], seen["strays"], seen["wrong_source"]) == (5, 0, 0), seen
        assert seen["duplicates"] == 0


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
async def test_the_shared_raw_socket_queues_replies_through_a_stall_of_the_event_loop(family):
    """The one raw socket of an engine hears every check's replies: its kernel queue is deep
    enough (4 MiB, the kernel reporting twice what was asked) that a stall of the event loop
    does not drop replies that would be reported as loss; checked as root, as the tests run
    (a datagram socket, each check's own, is not shared)."""
    channel = icmp_socket._RawChannel(family, None, False)
    try:
        queue = channel.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        channel.close()
    assert queue >= 2 * 4 * 1024 * 1024


async def test_a_source_address_of_this_host_is_used_and_another_is_unknown():
    fine = await probe("127.0.0.2", count=2, source="127.0.0.9")
    assert fine.severity is Severity.OK, fine.summary()
    # Binding fails at once: 192.0.2.1 is no address of this host, and nothing is sent.
    wrong = await probe("127.0.0.2", count=2, source="192.0.2.1")
    assert wrong.severity is Severity.UNKNOWN
    assert wrong.error is not None and wrong.error.error_class is ErrorClass.CONFIG
    assert wrong.error.message.startswith("source 192.0.2.1 is not an address of this host")


@pytest.mark.parametrize(("target", "source"), [("127.0.0.1", "::1"), ("::1", "127.0.0.1")])
def test_a_source_of_the_other_family_is_refused_at_load(target, source):
    with pytest.raises(OptionError) as caught:
        adhoc_check("icmp", {"target": target, "source": source})
    assert caught.value.key == "source"
    assert str(caught.value).startswith(f"source {source} cannot send to {target}")


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_source_of_the_other_family_met_at_run_time_is_unknown(family):
    """A name resolved to the other family than its source's: said, not a DNS failure."""
    source = "127.0.0.1" if family == socket.AF_INET6 else "::1"
    shared = SharedResources()
    try:
        with pytest.raises(ConfigFailure) as caught:
            await icmp_socket.open_endpoint(family, source, False, lambda _: None, shared)
    finally:
        await shared.aclose()
    assert str(caught.value).startswith(f"source {source} is not an address of this host")


async def test_a_link_local_target_on_no_such_interface_is_unknown():
    result = await probe("fe80::1%cwnosuch0", count=1)
    assert result.severity is Severity.UNKNOWN
    assert result.error is not None and result.error.message == (
        "fe80::1%cwnosuch0 names no interface of this host (cwnosuch0)"
    )


async def test_echoes_that_cannot_fit_the_timeout_are_not_sent_and_say_what_to_change():
    started = time.monotonic()
    result = await probe("127.0.0.1", count=10, echo_interval="1s", timeout="3s")
    assert time.monotonic() - started < 1  # refused before any echo
    assert result.severity is Severity.UNKNOWN
    assert result.error is not None and result.error.error_class is ErrorClass.CONFIG
    assert result.error.message == (
        "10 echo requests 1s apart and 1s for the last reply take 10s, more than the timeout "
        "(3s) leaves: lengthen timeout, or lower count, echo_interval or reply_timeout"
    )


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"size": 7}, "7 is out of range (at least 8"),
        ({"size": 65508}, "at most 65507"),
        ({"count": 0}, "0 is out of range"),
        ({"count": 1001}, "at most 1000"),
        ({"loss_warn": 101}, "at most 100"),
        ({"loss_warn": 70}, "loss_warn is above loss_crit"),
        ({"jitter_warn": "30ms", "jitter_crit": "10ms"}, "jitter_warn is above jitter_crit"),
        ({"jitter_warn": "30ms", "count": 1}, "jitter needs two replies, and count is 1"),
        ({"jitter_warn": 31}, "31 as a bare number is 31 seconds"),
        ({"source": "gw.example.net"}, "'gw.example.net' is not an IP address"),
        ({"dont_fragment": "yes"}, "expected true or false"),
        ({"echo_interval": 0}, "duration must be greater than zero"),
    ],
)
def test_bad_options_are_refused_with_what_to_write(values, words):
    with pytest.raises(OptionError) as caught:
        adhoc_check("icmp", {"target": "127.0.0.1", **values})
    assert words in str(caught.value)


def test_an_inventory_fault_is_placed_and_interval_stays_the_schedules(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\n"
        "sites:\n"
        "  - id: s\n"
        "    links:\n"
        "      - id: l\n"
        "        checks:\n"
        "          - {id: ping, kind: icmp, target: 127.0.0.1, interval: 30s,\n"
        "             echo_interval: 200ms}\n"
        "          - {id: big, kind: icmp, target: 127.0.0.1, size: 70000}\n",
        encoding="utf-8",
    )
    with pytest.raises(InventoryErrors) as caught:
        load_inventory(path)
    shown = str(caught.value)
    assert "inventory.yaml:9:" in shown and "size" in shown and "at most 65507" in shown
    assert "inventory.yaml:7:" not in shown
    path.write_text(path.read_text().replace("size: 70000", "size: 1400"), encoding="utf-8")
    checks = {c.ref.check_id.rsplit("/", 1)[-1]: c for c in load_inventory(path).checks}
    assert checks["ping"].interval == 30.0 and checks["ping"].options.echo_interval == 0.2
    assert checks["big"].options.size == 1400


def test_every_key_is_a_flag_of_commwatch_probe_icmp():
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "probe", "icmp", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 3
    flags = (
        "--count N",
        "--echo-interval DURATION",
        "--size BYTES",
        "--dont-fragment, --no-dont-fragment",
        "--reply-timeout DURATION",
        "--source ADDRESS",
        "--loss-warn PERCENT",
        "--loss-crit PERCENT",
        "--latency-warn DURATION",
        "--latency-crit DURATION",
        "--jitter-warn DURATION",
        "--jitter-crit DURATION",
    )
    for flag in flags:
        assert flag in done.stdout, flag
    assert "(default 5)" in done.stdout and "(default 1s)" in done.stdout


def test_the_plugin_line_says_loss_and_round_trips_with_perfdata():
    done = subprocess.run(
        [
            *(sys.executable, "-m", "monitor.cli", "probe", "icmp", "127.0.0.1", "--nagios"),
            *("--count", "3", "--echo-interval", "200ms", "--latency-warn", "200ms"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = done.stdout.strip()
    assert line.startswith("ICMP OK - 127.0.0.1: loss 0% (3 of 3 answered), rtt min/avg/max/mdev ")
    perfdata = line.split(" | ", 1)[1].split()
    assert "loss_pct=0%;20;60;0;100" in perfdata
    assert any(item.startswith("rtt_avg_ms=") and item.endswith("ms;200") for item in perfdata)
    assert {"sent=3", "received=3", "duplicates=0", "late=0"} <= set(perfdata)


# --- what the numbers mean -------------------------------------------------------------------


def test_mdev_is_pings_and_jitter_is_rfc_3550s():
    summary = icmp_stats.round_trips([10.0, 30.0, 10.0, 30.0])
    assert summary is not None
    assert (summary.minimum, summary.average, summary.maximum) == (10.0, 20.0, 30.0)
    assert summary.mdev == 10.0  # sqrt(mean(x²) - mean(x)²) = sqrt(500 - 400)
    # J = 0 -> 20/16 = 1.25 -> 1.25 + (20 - 1.25)/16 = 2.421875 -> + (20 - 2.421875)/16
    assert summary.jitter == pytest.approx(3.52051, abs=1e-5)
    lone = icmp_stats.round_trips([4.0])
    assert lone is not None and lone.jitter is None and lone.mdev == 0.0
    assert icmp_stats.round_trips([]) is None


@pytest.mark.parametrize("family", FAMILIES)
def test_no_bytes_from_a_peer_make_the_reader_fail(family):
    """Every length of every prefix of real messages, and noise: a message or None."""
    echo = icmp_packet.echo_request(family, 7, 1, bytes(range(64)))
    reply = bytes([icmp_packet.ECHO_REPLY[family]]) + echo[1:]
    samples = [echo, reply, os.urandom(700), bytes(1000), b"\xff" * 90]
    for sample in samples:
        for with_ip_header in (True, False):
            for end in range(len(sample) + 1):
                icmp_packet.parse(family, sample[:end], with_ip_header)
    parsed = icmp_packet.parse(family, reply, with_ip_header=False)
    assert parsed == icmp_packet.EchoReply(7, 1, bytes(range(64)))


# --- an MTU of 1280 on the far side of a router ----------------------------------------------


@pytest.fixture(scope="module")
def narrow() -> Iterator[IcmpPath]:
    with icmp_path(far_mtu=1280) as path:
        path.far.sysctl("net.ipv4.icmp_echo_ignore_all", "0")  # the far kernel answers
        path.far.sysctl("net.ipv6.icmp.echo_ignore_all", "0")
        yield path


def _forget_path_mtu(path: IcmpPath) -> None:
    """The router's report is remembered by the probe's kernel: forget it, so each test sees
    the first request meet the narrow link."""
    path.probe.ip("-4", "route", "flush", "cache")
    path.probe.ip("-6", "route", "flush", "cache")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("groups", [ALLOW_EVERY_GROUP, NO_GROUP], ids=["datagram", "raw"])
def test_dont_fragment_through_a_1280_mtu_is_crit_naming_the_mtu(narrow, family, groups):
    narrow.probe.sysctl("net.ipv4.ping_group_range", groups)
    _forget_path_mtu(narrow)
    target = narrow.target(family)
    status, record = probe_in(
        narrow.probe, target, "--size", "1400", "--dont-fragment", "--count", "3", *_fast()
    )
    seen = record["observations"]
    assert status == 2 and record["severity"] == "CRIT", record["summary"]
    assert seen["socket"] == ("datagram" if groups == ALLOW_EVERY_GROUP else "raw")
    assert (seen["sent"], seen["received"], seen["loss_pct"]) == (3, 0, 100.0)
    error = record["error"]
    assert error["class"] == "unreachable"
    if family == socket.AF_INET:
        told = f"fragmentation needed, next-hop MTU 1280, reported by {ROUTER_NEAR_V4} (1 of 3)"
        packet = 1428
    else:
        told = f"packet too big, MTU 1280, reported by {ROUTER_NEAR_V6} (1 of 3)"
        packet = 1448
    # The router's report for the first request; the kernel then knows the MTU and refuses
    # the next two itself.
    refused = (
        f"message too long: {packet}-byte packets with don't-fragment exceed the path MTU 1280 "
        "known here (2 of 3)"
    )
    assert error["message"] == f"no echo replies (3 sent): {told}; {refused}"
    assert (seen["icmp_errors"], seen["unsent"]) == (1, 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_what_fits_the_mtu_passes_with_dont_fragment(narrow, family):
    _forget_path_mtu(narrow)
    status, record = probe_in(
        narrow.probe, narrow.target(family), "--size", "1200", "--dont-fragment", *_fast()
    )
    assert status == 0 and record["observations"]["received"] == 5, record["summary"]


def test_without_dont_fragment_the_router_fragments_ipv4_and_nothing_is_lost(narrow):
    """The black hole shows only with don't-fragment: without it a router fragments what
    the narrow link cannot carry (IPv4; IPv6 leaves that to the sender)."""
    _forget_path_mtu(narrow)
    status, record = probe_in(narrow.probe, narrow.target(socket.AF_INET), "--size", "1400")
    assert status == 0 and record["observations"]["received"] == 5, record["summary"]


def _fast() -> tuple[str, ...]:
    return ("--echo-interval", "100ms", "--reply-timeout", "1s")


# --- unprivileged: net.ipv4.ping_group_range ---------------------------------------------


@pytest.fixture(scope="module")
def alone() -> Iterator[Namespace]:
    """A namespace with loopback alone: its ping_group_range is its own to set."""
    with namespaces("u") as made:
        yield made["u"]


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
def test_nobody_pings_through_a_datagram_socket_when_its_group_is_allowed(alone, target):
    alone.sysctl("net.ipv4.ping_group_range", "65534 65534")
    status, record = probe_in(
        alone, target, "--count", "3", "--echo-interval", "200ms", as_nobody=True
    )
    assert status == 0, record["summary"]
    assert record["observations"]["socket"] == "datagram"
    assert record["observations"]["received"] == 3


@pytest.mark.parametrize("groups", [NO_GROUP, "0 65533"])
def test_nobody_outside_the_range_is_unknown_naming_the_sysctl(alone, groups):
    alone.sysctl("net.ipv4.ping_group_range", groups)
    status, record = probe_in(alone, "127.0.0.1", "--count", "1", as_nobody=True)
    assert status == 3 and record["severity"] == "UNKNOWN"
    assert record["error"]["class"] == "config"
    assert record["error"]["message"] == (
        f"cannot open an ICMP socket: group 65534 is outside net.ipv4.ping_group_range "
        f"({groups}), which datagram ICMP sockets need, and raw ones need root or "
        "CAP_NET_RAW; allow the group with sysctl -w net.ipv4.ping_group_range='65534 65534' "
        "('0 2147483647': every group), or run as root"
    )


def test_nobody_may_not_go_below_pings_200ms(alone):
    alone.sysctl("net.ipv4.ping_group_range", "65534 65534")
    status, record = probe_in(
        alone, "127.0.0.1", "--count", "2", "--echo-interval", "100ms", as_nobody=True
    )
    assert status == 3
    assert record["error"]["message"] == (
        "echo_interval 100ms is below 200ms, the least ping allows a user other than root: "
        "lengthen echo_interval or run as root"
    )
    # Root may: the same echoes as root in the same namespace.
    status, record = probe_in(alone, "127.0.0.1", "--count", "2", "--echo-interval", "100ms")
    assert status == 0, record["summary"]


def test_the_namespaces_and_their_links_are_removed_even_when_a_test_fails():
    made: list[str] = []
    with pytest.raises(RuntimeError, match="a failing test"), icmp_path() as path:
        made = [path.probe.name, path.router.name, path.far.name]
        assert set(made) <= listed()
        raise RuntimeError("a failing test")
    assert made and not set(made) & listed()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "cwp0" not in links and "cwr1" not in links  # nothing was left in this namespace


def test_no_route_is_crit_unreachable_and_nothing_leaves(alone):
    """The namespace has loopback alone: the kernel refuses to send to 10.213.9.9 at all."""
    status, record = probe_in(alone, "10.213.9.9", "--count", "2", *_fast())
    assert status == 2
    assert record["error"] == {
        "class": "unreachable",
        "message": "no echo replies (2 sent): network is unreachable",
    }
    assert record["observations"]["unsent"] == 2
