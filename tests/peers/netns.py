"""Network namespaces and veth pairs a test makes and removes, even when it fails.

Everything a test sends beyond loopback goes into these: their addresses (10.0.0.0/8 and
fd00::/8, private ranges) exist only inside them, so nothing can leave the machine, and
deleting a namespace deletes its end of every veth pair, which takes the other end with it.
Names carry the test process's id, so two runs on one machine never meet. Needs root (or
CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tests.peers.binaries import installed

_MADE = itertools.count()


def _ip() -> str:
    return installed("ip", "tests build their networks in namespaces", "iproute2")


def run(*args: str) -> str:
    """Runs a command, raising with its own error output when it fails."""
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass(frozen=True)
class Namespace:
    name: str

    def command(self, *args: str) -> list[str]:
        """`args` as a command to run inside the namespace."""
        return [_ip(), "netns", "exec", self.name, *args]

    def run(self, *args: str) -> str:
        return run(*self.command(*args))

    def ip(self, *args: str) -> str:
        return run(_ip(), "-n", self.name, *args)

    def sysctl(self, key: str, value: str) -> None:
        """Sets a sysctl of this namespace's network stack (net.* is per namespace)."""
        self.run("sysctl", "-qw", f"{key}={value}")

    def address(self, interface: str, *cidrs: str) -> None:
        for cidr in cidrs:
            # nodad: an IPv6 address usable at once, not after a second of duplicate detection
            extra = ["nodad"] if ":" in cidr else []
            self.ip("address", "add", cidr, "dev", interface, *extra)

    def route(self, destination: str, via: str) -> None:
        self.ip("-6" if ":" in via else "-4", "route", "add", destination, "via", via)


@contextlib.contextmanager
def namespaces(*roles: str) -> Iterator[dict[str, Namespace]]:
    """One fresh namespace per role, loopback up, IPv6 without duplicate address detection
    (set before any interface moves in, so theirs start without it too); all deleted after."""
    made: list[Namespace] = []
    serial = next(_MADE)
    try:
        for role in roles:
            namespace = Namespace(f"cwi{os.getpid()}-{serial}{role}")
            subprocess.run([_ip(), "netns", "del", namespace.name], capture_output=True)
            run(_ip(), "netns", "add", namespace.name)
            made.append(namespace)
            namespace.sysctl("net.ipv6.conf.all.accept_dad", "0")
            namespace.sysctl("net.ipv6.conf.default.accept_dad", "0")
            namespace.ip("link", "set", "lo", "up")
        yield {role: namespace for role, namespace in zip(roles, made, strict=True)}
    finally:
        for namespace in made:
            subprocess.run([_ip(), "netns", "del", namespace.name], capture_output=True)


def veth(
    left: Namespace, left_name: str, right: Namespace, right_name: str, mtu: int | None = None
) -> None:
    """A veth pair from `left` to `right`, both ends up (with `mtu`, if given)."""
    run(_ip(), "link", "add", left_name, "netns", left.name, "type", "veth", "peer", "name",
        right_name, "netns", right.name)  # fmt: skip
    for namespace, name in ((left, left_name), (right, right_name)):
        if mtu is not None:
            namespace.ip("link", "set", name, "mtu", str(mtu))
        namespace.ip("link", "set", name, "up")


def listed() -> set[str]:
    """The names of the network namespaces there are now."""
    return {line.split()[0] for line in run(_ip(), "netns", "list").splitlines() if line.strip()}
