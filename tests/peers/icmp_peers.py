"""Peers of the icmp tests: a path of three network namespaces (the probe's, a router's, a
responder's) and an echo responder of the test's own that answers each request as its plan
says: on time, late, twice, not at all, from another address, corrupted, or with an ICMP error.

    probe  10.213.0.1/24  fd00:213::1/64    (veth, MTU 1500)
    router 10.213.0.2/24  fd00:213::2/64    forwards
           10.213.1.1/24  fd00:213:1::1/64  (veth, MTU `far_mtu`: 1500, or 1280 for an MTU test)
    far    10.213.1.2/24  fd00:213:1::2/64  the target; the kernel's echo replies are off here
           10.213.1.3/24  fd00:213:1::3/64  the wrong source

The responder (`python -m tests.peers.icmp_peers PLAN`, started inside the far namespace by
`responding`) reads echo requests on raw sockets and answers them from raw sockets bound to
the target's address or, for a wrong-source reply, to the other one. Its plan is a JSON list
of steps, one per request in the order they arrive; requests beyond it are answered at once.
A step: {"do": "answer" | "drop" | "wrong_source" | "corrupt" | "stray" | "unreachable",
"delay": seconds before the reply, "copies": how many replies}.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.conftest import REPO
from tests.peers.netns import Namespace, namespaces, veth

PROBE_V4, PROBE_V6 = "10.213.0.1", "fd00:213::1"
TARGET_V4, TARGET_V6 = "10.213.1.2", "fd00:213:1::2"
WRONG_V4, WRONG_V6 = "10.213.1.3", "fd00:213:1::3"
ROUTER_NEAR_V4, ROUTER_NEAR_V6 = "10.213.0.2", "fd00:213::2"
ALLOW_EVERY_GROUP = "0 2147483647"
NO_GROUP = "1 0"  # the kernel's default: no group may open ICMP datagram sockets

Step = dict[str, Any]


@dataclass(frozen=True)
class IcmpPath:
    probe: Namespace
    router: Namespace
    far: Namespace

    def target(self, family: int) -> str:
        return TARGET_V6 if family == socket.AF_INET6 else TARGET_V4


@contextlib.contextmanager
def icmp_path(far_mtu: int = 1500) -> Iterator[IcmpPath]:
    with namespaces("p", "r", "f") as made:
        probe, router, far = made["p"], made["r"], made["f"]
        veth(probe, "cwp0", router, "cwr0")
        veth(router, "cwr1", far, "cwf0", mtu=far_mtu)
        probe.address("cwp0", f"{PROBE_V4}/24", f"{PROBE_V6}/64")
        router.address("cwr0", f"{ROUTER_NEAR_V4}/24", f"{ROUTER_NEAR_V6}/64")
        router.address("cwr1", "10.213.1.1/24", "fd00:213:1::1/64")
        far.address("cwf0", f"{TARGET_V4}/24", f"{TARGET_V6}/64")
        far.address("cwf0", f"{WRONG_V4}/24", f"{WRONG_V6}/64")
        probe.route("default", ROUTER_NEAR_V4)
        probe.route("default", ROUTER_NEAR_V6)
        far.route("default", "10.213.1.1")
        far.route("default", "fd00:213:1::1")
        router.sysctl("net.ipv4.ip_forward", "1")
        router.sysctl("net.ipv6.conf.all.forwarding", "1")
        far.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
        far.sysctl("net.ipv6.icmp.echo_ignore_all", "1")
        yield IcmpPath(probe, router, far)


def probe_in(
    namespace: Namespace, target: str, *flags: str, as_nobody: bool = False
) -> tuple[int, dict[str, Any]]:
    """`commwatch probe icmp TARGET --format json FLAGS` run inside `namespace` (as nobody,
    uid and gid 65534 and no other group, if asked): its exit code and its result record."""
    command = [sys.executable, "-m", "monitor.cli", "probe", "icmp", target, "--format", "json"]
    with tempfile.TemporaryDirectory() as state:
        if as_nobody:
            os.chmod(state, 0o777)  # a state folder nobody may use (the test's own is root's)
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        command += ["--state-dir", state, *flags]
        done = subprocess.run(
            namespace.command(*command), capture_output=True, text=True, cwd=REPO, timeout=60
        )
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"no result record: {done.stdout!r} {done.stderr!r}") from None


@contextlib.contextmanager
def responding(path: IcmpPath, plan: list[Step]) -> Iterator[None]:
    """The responder running in the far namespace with `plan`, stopped after."""
    command = path.far.command(sys.executable, "-m", "tests.peers.icmp_peers", json.dumps(plan))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().strip()
        if ready != "ready":
            process.kill()
            raise RuntimeError(f"the responder did not start: {process.communicate()[1]}")
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the responder, run inside the far namespace ---------------------------------------------

_ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
_ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
_UNREACHABLE = {socket.AF_INET: 3, socket.AF_INET6: 1}
_PROTOCOL = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
_ICMP6_FILTER = 1


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _message(family: int, kind: int, code: int, rest: bytes) -> bytes:
    message = struct.pack("!BBH", kind, code, 0) + rest
    if family == socket.AF_INET6:
        return message  # the kernel makes the ICMPv6 checksum
    return message[:2] + struct.pack("!H", _checksum(message)) + message[4:]


def _raw(family: int, bound: str | None, receive: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_RAW, _PROTOCOL[family])
    if bound is not None:
        sock.bind((bound, 0))
    if family == socket.AF_INET6:
        words = [0xFFFFFFFF] * 8
        if receive:
            words[128 >> 5] &= ~(1 << (128 & 31)) & 0xFFFFFFFF
        sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *words))
    elif not receive:
        sock.setsockopt(255, 1, struct.pack("=I", 0xFFFFFFFF))  # ICMP_FILTER: block all
    return sock


class _Responder:
    def __init__(self, plan: list[Step]) -> None:
        self.plan = plan
        self.count = 0
        self.due: list[tuple[float, int, socket.socket, bytes, str]] = []
        self.listeners = {family: _raw(family, None, receive=True) for family in _PROTOCOL}
        self.senders = {
            (socket.AF_INET, False): _raw(socket.AF_INET, TARGET_V4, receive=False),
            (socket.AF_INET, True): _raw(socket.AF_INET, WRONG_V4, receive=False),
            (socket.AF_INET6, False): _raw(socket.AF_INET6, TARGET_V6, receive=False),
            (socket.AF_INET6, True): _raw(socket.AF_INET6, WRONG_V6, receive=False),
        }

    def serve(self) -> None:
        print("ready", flush=True)
        by_fd = {sock.fileno(): family for family, sock in self.listeners.items()}
        while True:
            wait = max(0.0, self.due[0][0] - time.monotonic()) if self.due else None
            readable, _, _ = select.select(list(self.listeners.values()), [], [], wait)
            for sock in readable:
                data, address = sock.recvfrom(65536)
                self._request(by_fd[sock.fileno()], data, str(address[0]))
            while self.due and self.due[0][0] <= time.monotonic():
                _, _, sender, packet, to = heapq.heappop(self.due)
                sender.sendto(packet, (to, 0))

    def _request(self, family: int, data: bytes, requester: str) -> None:
        quoted = data
        if family == socket.AF_INET:
            data = data[(data[0] & 0x0F) * 4 :]
        else:  # a raw ICMPv6 socket gives no IPv6 header: make the one the error quotes
            quoted = _ipv6_header(requester, TARGET_V6, len(data)) + data
        if len(data) < 8 or data[0] != _ECHO_REQUEST[family]:
            return
        step = self.plan[self.count] if self.count < len(self.plan) else {"do": "answer"}
        self.count += 1
        action = step.get("do", "answer")
        if action == "drop":
            return
        body = data[4:]  # identifier, sequence, payload
        if action == "corrupt":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        elif action == "stray":
            body = body[:4] + bytes([body[4] ^ 0xFF]) + body[5:]
        reply = _message(family, _ECHO_REPLY[family], 0, body)
        if action == "unreachable":
            code = int(step.get("code", 1 if family == socket.AF_INET else 3))
            reply = _message(family, _UNREACHABLE[family], code, bytes(4) + quoted[:548])
        sender = self.senders[(family, action == "wrong_source")]
        at = time.monotonic() + float(step.get("delay", 0.0))
        for copy in range(int(step.get("copies", 1))):
            heapq.heappush(self.due, (at, self.count * 100 + copy, sender, reply, requester))


def _ipv6_header(source: str, destination: str, length: int) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, length, socket.IPPROTO_ICMPV6, 64)
        + socket.inet_pton(socket.AF_INET6, source)
        + socket.inet_pton(socket.AF_INET6, destination)
    )


if __name__ == "__main__":
    _Responder(json.loads(sys.argv[1])).serve()
