"""Notifications the receiver must refuse, and floods it must survive: wrong communities,
unknown users, wrong passphrases, strangers, requests and garbage sent to the trap port, each
counted by reason and logged once per source and interval with no secret in the line; and
thousands of traps, from the watched device and from a thousand forged loopback addresses,
that neither starve the checks nor grow anything without bound.

Everything is sent to 127.0.0.1 only (from addresses of 127.0.0.0/8, all of it loopback)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from monitor.core.model import ProbeResult
from monitor.engine import traps
from probes.support.snmp_traps import Buckets
from tests.conftest import REPO
from tests.peers.snmp_peers import COMMUNITY, free_udp_port
from tests.peers.tcp_peers import accepting_listener
from tests.traps_support import (
    LINK_DOWN,
    SECRETS,
    TRAP_AUTH,
    TRAP_COMMUNITY,
    TRAP_PRIV,
    is_trap_event,
    link,
    one_device,
    reasons,
    received,
    running,
    send,
    tool,
    v2c,
    v3,
)

WRONG = ("cw-wrong-community-77aa", "cw-wrong-passphrase-5b5b")


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SECRETS, "CW_COMMUNITY": COMMUNITY}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def router() -> AsyncIterator[int]:
    """A TCP service on 127.0.0.1: the watched device the traps claim to come from."""
    async with accepting_listener() as port:
        yield port


def tcp_device(port: int, interval: str = "1h", traps: str | None = None) -> str:
    check = (
        f'{{id: router, kind: tcp, target: "127.0.0.1:{port}", interval: {interval},'
        " timeout: 150ms}"
    )
    return one_device(check) if traps is None else one_device(check, traps=traps)


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == traps.__name__]


async def test_refusals_are_counted_by_reason_and_logged_once_per_source(
    tmp_path: Path, router: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    trap = link(LINK_DOWN, 2, oper=2)
    async with running(tmp_path, tcp_device(router)) as run:
        port = run.port
        for _ in range(3):
            assert (await send("snmptrap", *v2c(port, WRONG[0]), *trap))[0] == 0
        status, _ = await send("snmpinform", "-t", "0.5", "-r", "0", *v2c(port, WRONG[0]), *trap)
        assert status != 0  # not acknowledged
        for user in ("cwnobody", "cwnobody2"):
            assert (await send("snmptrap", *v3(port, user=user), *trap))[0] == 0
        wrong_auth = v3(port, auth=WRONG[1], source="127.0.0.4")
        assert (await send("snmptrap", *wrong_auth, *trap))[0] == 0
        wrong_priv = v3(port, priv=WRONG[1], source="127.0.0.5")
        assert (await send("snmptrap", *wrong_priv, *trap))[0] == 0
        stranger = v2c(port, source="127.0.0.3")  # right community, no check of it
        assert (await send("snmptrap", *stranger, *trap))[0] == 0
        get = [tool("snmpget"), "-t", "0.5", "-r", "0", "-v", "2c", "-c", TRAP_COMMUNITY]
        process = await asyncio.create_subprocess_exec(
            *get, f"127.0.0.1:{port}", "1.3.6.1.2.1.1.3.0", stdout=asyncio.subprocess.DEVNULL
        )
        assert await process.wait() != 0  # a trap receiver answers no GET
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as garbage:
            garbage.bind(("127.0.0.6", 0))
            garbage.sendto(b"\x30\x82\xff\xff not BER at all", ("127.0.0.1", port))
        expected = {
            "community": 4,
            "user": 2,
            "auth": 1,
            "priv": 1,
            "unknown_source": 1,
            "not_notification": 1,
            "malformed": 1,
        }
        await run.until(lambda: reasons(run) == expected)
        state = dict(run.monitor.state.checks)

    assert received(run) == {}
    assert not run.seen(is_trap_event)
    assert dict(run.monitor.state.checks) == state
    lines = refusals(caplog)
    by_source = {line.split(" from ", 1)[1].split(":", 1)[0]: line for line in lines}
    # One line per source: 127.0.0.1 refused nine times, logged once.
    assert sorted(by_source) == [f"127.0.0.{n}" for n in (1, 3, 4, 5, 6)]
    assert len(lines) == 5, lines
    assert "a community the traps: section does not list" in by_source["127.0.0.1"]
    assert "wrong authentication passphrase" in by_source["127.0.0.4"]
    assert "wrong privacy passphrase" in by_source["127.0.0.5"]
    assert "no check of the inventory watches" in by_source["127.0.0.3"]
    assert "not an SNMP message" in by_source["127.0.0.6"]
    logged = caplog.text
    for secret in (*WRONG, TRAP_COMMUNITY, TRAP_AUTH, TRAP_PRIV):
        assert secret not in logged
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def captured(args: list[str]) -> bytes:
    """The datagram net-snmp's snmptrap sends for `args` (its target replaced by ours)."""
    import subprocess

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as capture:
        capture.bind(("127.0.0.1", 0))
        capture.settimeout(10)
        port = capture.getsockname()[1]
        target = next(i for i, a in enumerate(args) if a.startswith("127.0.0.1:"))
        args = [*args[:target], f"127.0.0.1:{port}", *args[target + 1 :]]
        subprocess.run([tool("snmptrap"), *args], env={"MIBS": ""}, check=True, timeout=30)
        return capture.recv(65536)


def flood(datagram: bytes, port: int, sources: list[str], per_source: int) -> int:
    """Send `datagram` `per_source` times from each of `sources`, as fast as the socket goes;
    how many were sent."""
    sent = 0
    for source in sources:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.bind((source, 0))
            for _ in range(per_source):
                sender.sendto(datagram, ("127.0.0.1", port))
                sent += 1
                if sent % 200 == 0:
                    time.sleep(0.005)  # paced a little, so the receiver reads rather than drops
    return sent


async def test_a_flood_is_dropped_cheaply_and_starves_no_check(
    tmp_path: Path, router: int, caplog: pytest.LogCaptureFixture
) -> None:
    """4,000 traps from the device itself, then 4,000 from a thousand forged addresses, while
    a check runs every 200 ms: its results keep coming, the device's traps taken are within
    its rate, the strangers' are mostly dropped undecoded, and the log has a few lines."""
    caplog.set_level(logging.WARNING)
    section = (
        one_device()
        .split("sites:")[0]
        .replace("  users:", "  per_source_rate: 20\n  total_rate: 200\n  users:")
    )
    inventory = tcp_device(router, interval="200ms", traps=section)
    good = captured([*v2c(0), *link(LINK_DOWN, 2, oper=2)])
    forged = [f"127.9.{n // 250}.{n % 250 + 1}" for n in range(1000)]
    async with running(tmp_path, inventory) as run:
        await run.wait_for(lambda item: isinstance(item, ProbeResult))
        started, flood_began = time.monotonic(), time.time()
        sent = await asyncio.to_thread(flood, good, run.port, ["127.0.0.1"], 4000)
        sent += await asyncio.to_thread(flood, good, run.port, forged, 4)
        elapsed = time.monotonic() - started

        def counted() -> int:
            figures = run.monitor.figures().traps
            assert figures is not None
            return sum(figures.received.values()) + sum(figures.rejected.values())

        # What the kernel kept is read to the end (it may have dropped some: it is bounded).
        await settled(counted)
        # The buckets refill while the receiver reads, which may go on after the sending.
        reading = time.monotonic() - started
        taken = received(run).get("linkDown", 0)
        refused = reasons(run)
        results = [at for at, item in run.items if isinstance(item, ProbeResult)]

    assert counted() <= sent
    # The device's own: within its rate (one second's worth at once, then 20 a second).
    assert 0 < taken <= 20 + 20 * reading
    assert len(run.seen(is_trap_event)) == taken
    assert refused.get("rate", 0) > 3000
    # The strangers' beyond 200 a second are dropped before pysnmp decodes them.
    assert refused.get("unknown_source", 0) <= 200 + 200 * reading
    assert refused.get("overload", 0) + refused.get("rate", 0) > 0
    # The check ran throughout: no gap in its results much beyond its 200 ms interval.
    during = [at for at in results if flood_began <= at <= flood_began + elapsed + 1]
    gaps = [b - a for a, b in itertools.pairwise([flood_began, *during])]
    assert gaps and max(gaps) < 2.0, gaps
    # A line per source and interval, and at most 10 sources an interval.
    assert len(refusals(caplog)) <= traps.MAX_SOURCES_LOGGED


async def settled(read: Callable[[], int], quiet: float = 0.5, timeout: float = 60) -> int:
    """`read()` once it has not changed for `quiet` seconds: the receiver has read what the
    kernel kept of a flood."""
    async with asyncio.timeout(timeout):
        last, since = read(), time.monotonic()
        while time.monotonic() - since < quiet:
            await asyncio.sleep(0.05)
            if (now := read()) != last:
                last, since = now, time.monotonic()
    return last


def test_the_rate_buckets_forget_the_oldest_source_beyond_their_bound() -> None:
    buckets = Buckets(rate=2, max_keys=100)
    now = 1000.0
    for n in range(10_000):  # forged sources, each new
        assert buckets.take(f"10.0.{n // 256}.{n % 256}", now)
        assert len(buckets) <= 100
    assert buckets.take("device", now) and buckets.take("device", now)
    assert not buckets.take("device", now)  # two a second, and no more
    assert buckets.take("device", now + 0.5)  # refilled at the rate
    assert not buckets.take("device", now + 0.5)


async def test_a_taken_port_is_one_clear_line_and_nothing_runs(tmp_path: Path, router: int):
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        (tmp_path / "inventory.yaml").write_text(tcp_device(router).replace("{port}", str(port)))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor.cli",
            "run",
            "--no-history",
            str(tmp_path / "inventory.yaml"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 3
    assert stdout == b""  # no check ran
    assert stderr.decode().strip().splitlines()[-1] == (
        f"commwatch: cannot listen for SNMP traps on 127.0.0.1:{port}: Address already in use"
        " (another trap receiver, snmptrapd or a second commwatch, has it)"
    )


def test_a_pysnmp_without_the_counters_fails_loudly_naming_them() -> None:
    """The refusals are read from pysnmp's internal statistics (probes/support/pysnmp_compat):
    one it lacks is a PysnmpChanged naming it at start, never a silently uncounted refusal."""
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

    from probes.support import pysnmp_compat

    engine = SnmpEngine()
    [counter] = pysnmp_compat.statistics(engine, "__SNMPv2-MIB", ("snmpInBadCommunityNames",), "x")
    assert int(counter.syntax) == 0
    with pytest.raises(pysnmp_compat.PysnmpChanged, match="usmStatsNoSuchThing"):
        pysnmp_compat.statistics(
            engine, "__SNMP-USER-BASED-SM-MIB", ("usmStatsNoSuchThing",), "tell why"
        )


async def test_over_ipv6_a_device_is_matched_by_its_address(tmp_path: Path) -> None:
    """The listener on [::1], the device a tcp check of [::1]: a v2c coldStart from ::1 is
    its event (and its re-poll); nothing about it needs IPv4."""
    from tests.traps_support import COLD_START, notification

    async with accepting_listener("::1") as device:
        check = f'{{id: router, kind: tcp, target: "[::1]:{device}", interval: 1h}}'
        section = one_device().split("sites:")[0].replace('"127.0.0.1:{port}"', '"[::1]:{port}"')
        async with running(tmp_path, one_device(check, traps=section)) as run:
            await run.wait_for(lambda item: isinstance(item, ProbeResult))
            args = ["-v", "2c", "-c", TRAP_COMMUNITY, f"udp6:[::1]:{run.port}"]
            assert (await send("snmptrap", *args, *notification(COLD_START)))[0] == 0
            event = await run.wait_for(is_trap_event)
            await run.wait_for(lambda item: isinstance(item, ProbeResult), count=2)  # re-poll
    assert event.cause == "coldStart from ::1 (v2c trap)"
    assert run.monitor.traps is not None and run.monitor.traps.address.startswith("[::1]:")


async def test_an_snmpv3_user_is_taken_only_at_the_level_it_was_given(
    tmp_path: Path, router: int
) -> None:
    """A user name is no secret: a trap claiming an authPriv user without its keys
    (noAuthNoPriv, or signed but not encrypted) is anyone's, and refused; a user configured
    without keys is taken at noAuthNoPriv, as configured."""
    from tests.traps_support import SENDER_ENGINE_ID, TRAP_USER, notification

    section = one_device().split("sites:")[0] + (
        f'    - {{user: cwopen, engine_id: "0x{SENDER_ENGINE_ID}"}}\n'
    )
    claimed = ["-v", "3", "-e", f"0x{SENDER_ENGINE_ID}"]
    trap = notification(LINK_DOWN)
    async with running(tmp_path, tcp_device(router, traps=section)) as run:
        target = f"127.0.0.1:{run.port}"
        bare = [*claimed, "-u", TRAP_USER, "-l", "noAuthNoPriv", target]
        signed = [*claimed, "-u", TRAP_USER, "-l", "authNoPriv", "-a", "SHA-256", "-A", TRAP_AUTH]
        for args in (bare, [*signed, target]):
            assert (await send("snmptrap", *args, *trap))[0] == 0
        await run.until(lambda: reasons(run) == {"auth": 2})
        open_user = [*claimed, "-u", "cwopen", "-l", "noAuthNoPriv", target]
        assert (await send("snmptrap", *open_user, *trap))[0] == 0
        event = await run.wait_for(is_trap_event)
    assert event.cause == "linkDown ifIndex ? from 127.0.0.1 (v3 user cwopen trap)"
    assert received(run) == {"linkDown": 1}
