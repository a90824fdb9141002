"""The path probe inside routed network namespaces made by the test (tests/peers/path_topology.py):
`commwatch probe path` runs in the "site" namespace, as a plugin would, and traces to targets
behind forwarding routers, IPv4 and IPv6, over UDP and ICMP (a raw socket as root, a datagram
socket where the group may, UNKNOWN naming the sysctl where neither), through diverse paths,
paths converging at one router, routers that say unreachable and hops that stay silent.
Nothing leaves the namespaces: every address is theirs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.peers.path_topology import TARGETS, Network, left, right

# The routed network and its fixtures (`routed`, `net`).
pytest_plugins = ("tests.peers.path_fixtures",)

COMMWATCH = str(Path(sys.executable).with_name("commwatch"))
V4, V6 = 0, 1
NOBODY = 65534


def trace(
    net: Network, state: Path, target: str, *flags: str, user: int | None = None
) -> dict[str, Any]:
    """`commwatch probe path TARGET --format json` in the site namespace; the result."""
    command = [COMMWATCH, "probe", "path", target, "--format", "json", "--timeout", "5s", *flags]
    command += ["--state-dir", str(state)]  # the test's: no other run's hop count
    if user is not None:  # a process without privilege: no raw socket, and its group is nobody's
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    done = subprocess.run(net.probe(*command), capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["exit_code"] == done.returncode
    return result


def path_of(result: dict[str, Any]) -> list[str]:
    return str(result["observations"]["path"]).split()


@pytest.mark.parametrize("family", [V4, V6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("method", ["udp", "icmp"])
def test_diverse_paths_hop_by_hop(net: Network, tmp_path: Path, method: str, family: int) -> None:
    v6 = family == V6
    a = trace(net, tmp_path, TARGETS["a"][family], "--method", method)
    b = trace(net, tmp_path, TARGETS["b"][family], "--method", method)
    assert a["severity"] == b["severity"] == "OK", (a["summary"], b["summary"])
    assert path_of(a) == [left(1, v6), right(3, v6), TARGETS["a"][family]]
    assert path_of(b) == [left(2, v6), right(4, v6), TARGETS["b"][family]]
    observed = a["observations"]
    assert observed["destination_reached"] is True and observed["hops"] == 3
    assert observed["socket"] == ("udp" if method == "udp" else "raw")  # root, in a netns
    assert observed["probes_sent"] == observed["probes_answered"] == 9
    for hop in (1, 2, 3):
        assert 0 <= observed[f"hop_{hop}_ms"] < 1000
    assert observed["rtt_ms"] == observed["hop_3_ms"]


def test_paths_converging_at_one_router(net: Network, tmp_path: Path) -> None:
    net.converge()
    for target, edge in (("a", left(1)), ("b", left(2))):
        result = trace(net, tmp_path, TARGETS[target][V4], "--method", "icmp")
        assert path_of(result)[0] == edge
        assert path_of(result)[2:] == [right(7), TARGETS[target][V4]]
        assert result["observations"]["hop_3"] == right(7)


def test_probes_per_hop_and_max_hops(net: Network, tmp_path: Path) -> None:
    result = trace(net, tmp_path, TARGETS["a"][V4], "--probes-per-hop", "1", "--max-hops", "2")
    observed = result["observations"]
    assert result["severity"] == "CRIT"
    assert observed["probes_sent"] == 2 and observed["hops"] == 2
    assert observed["destination_reached"] is False
    assert observed["unreached_because"] == (
        f"no answer from {TARGETS['a'][V4]} within 2 hops; the last answer from {right(3)} at hop 2"
    )
    assert "hop_3" not in observed


@pytest.mark.parametrize(
    ("route", "said"),
    [
        ("unreachable", "destination host unreachable"),
        ("prohibit", "communication administratively prohibited (filtered)"),
    ],
)
def test_a_router_that_says_unreachable_ends_the_trace(
    net: Network, tmp_path: Path, route: str, said: str
) -> None:
    net.ns["ma"].ip("route", "replace", route, TARGETS["a"][V4])
    # One probe a hop: the unreachables of a route are rate-limited (path_topology.py).
    result = trace(net, tmp_path, TARGETS["a"][V4], "--probes-per-hop", "1")
    assert result["severity"] == "CRIT"
    assert result["observations"]["unreached_because"] == f"{said} from {right(3)} at hop 2"
    assert path_of(result) == [left(1), right(3)]
    assert "not reached" in result["summary"]


def test_ipv6_unreachable_named(net: Network, tmp_path: Path) -> None:
    net.ns["ma"].ip("-6", "route", "replace", "prohibit", TARGETS["a"][V6])
    result = trace(net, tmp_path, TARGETS["a"][V6], "--method", "icmp")
    assert result["observations"]["unreached_because"] == (
        "destination unreachable: communication administratively prohibited from "
        f"{right(3, True)} at hop 2"
    )


def test_silent_hops_cost_wait_and_the_timeout_bounds_the_trace(
    net: Network, tmp_path: Path
) -> None:
    # The destination host does not forward: what goes beyond it dies there without a word.
    beyond = "10.90.101.1"
    for role, via in (("site", left(1)), ("ea", right(3)), ("ma", right(5))):
        net.ns[role].ip("route", "replace", beyond, "via", via)
    try:
        started = time.monotonic()
        result = trace(net, tmp_path, beyond, "--wait", "200ms", "--max-hops", "6")
        took = time.monotonic() - started
        observed = result["observations"]
        assert result["severity"] == "CRIT"
        assert path_of(result) == [left(1), right(3), "*", "*", "*", "*"]
        assert observed["silent_hops"] == 4
        assert observed["unreached_because"] == (
            f"no answer from {beyond} within 6 hops; the last answer from {right(3)} at hop 2"
        )
        assert took < 10  # four silent hops of 200ms, and a process start
        started = time.monotonic()
        bounded = trace(net, tmp_path, beyond, "--wait", "1s", "--timeout", "2s")
        assert time.monotonic() - started < 10
        assert bounded["observations"]["unreached_because"].startswith(
            f"no answer from {beyond} within the timeout"
        )
        assert bounded["observations"]["hops"] < 30
    finally:
        for role in ("site", "ea", "ma"):
            net.ns[role].ip("route", "del", beyond)


def test_hop_count_change_since_the_previous_poll(net: Network, tmp_path: Path) -> None:
    flags = ("--hop-change-warn", "0", "--hop-change-crit", "2")
    first = trace(net, tmp_path, TARGETS["a"][V4], *flags)
    assert first["severity"] == "OK" and "hop_change" not in first["observations"]
    net.converge()  # A now goes ea, ma, x: one hop more
    second = trace(net, tmp_path, TARGETS["a"][V4], *flags)
    assert second["observations"]["hop_change"] == 1
    assert second["severity"] == "WARN"
    third = trace(net, tmp_path, TARGETS["a"][V4], *flags)
    assert third["observations"]["hop_change"] == 0 and third["severity"] == "OK"


def test_unprivileged_udp_works_and_icmp_says_which_sysctl(net: Network, tmp_path: Path) -> None:
    udp = trace(net, tmp_path, TARGETS["a"][V4], user=NOBODY)
    assert udp["severity"] == "OK" and len(path_of(udp)) == 3
    icmp = trace(net, tmp_path, TARGETS["a"][V4], "--method", "icmp", user=NOBODY)
    assert icmp["severity"] == "UNKNOWN"
    assert "net.ipv4.ping_group_range" in icmp["error"]["message"]
    assert "method: udp" in icmp["error"]["message"]


def test_icmp_datagram_socket_where_the_group_may(net: Network, tmp_path: Path) -> None:
    site = net.ns["site"]
    site.sysctl("net.ipv4.ping_group_range", "0 2147483647")
    try:
        for family in (V4, V6):
            result = trace(net, tmp_path, TARGETS["b"][family], "--method", "icmp", user=NOBODY)
            assert result["severity"] == "OK", result["summary"]
            assert result["observations"]["socket"] == "datagram"
            assert path_of(result) == [left(2, bool(family)), right(4, bool(family)),
                                       TARGETS["b"][family]]  # fmt: skip
    finally:
        site.sysctl("net.ipv4.ping_group_range", "1 0")


def test_plugin_line_names_the_hops(net: Network, tmp_path: Path) -> None:
    command = [COMMWATCH, "probe", "path", "--nagios", "--state-dir", str(tmp_path),
               TARGETS["a"][V4]]  # fmt: skip
    done = subprocess.run(net.probe(*command), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("PATH OK")
    assert "hops=3" in done.stdout
