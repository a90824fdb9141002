"""A real NATS server with JetStream (Debian's `nats-server` package) on 127.0.0.1, with a store
folder of the test's own. It can be stopped and started again on the same port with the same
store, as an outage and a recovery look to its clients.

`running_nats_cluster` starts three of them as one NATS cluster (`--cluster_name`, routes
between them on ports of their own, distinct stores, each with a server name and its HTTP
monitoring port), ready once JetStream's meta group has a leader; each node can be SIGKILLed
and restarted, and the cluster says which node leads a stream and which node a client is
connected to (from the nodes' monitoring endpoints).

`running_hub_and_leaf` starts a hub with JetStream in a domain, and a site's leaf node that
connects to it (`leafnodes`), as a site behind a WAN sees NATS: without JetStream, or with
JetStream of its own in a domain of the site's; the link in the clear, or with TLS and a user
and password (`LeafLink`). The hub can be stopped and started again, the leaf reconnecting to
it by itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from yarl import URL

from tests.peers.binaries import installed
from tests.peers.prometheus_peers import LOOPBACK, free_port, poll
from tests.peers.proxy import CuttingProxy

CLUSTER_NAME = "commwatch-test"


def nats_binary() -> str:
    return installed(
        "nats-server", "the cluster tests run a real NATS with JetStream", "nats-server"
    )


class PortTaken(Exception):
    """Something else bound the free port first (another test's server, between our look and
    nats-server's bind)."""


@dataclass
class NatsServer:
    folder: Path
    port: int
    user: str | None = None
    password: str | None = None
    token: str | None = None
    # Written as it is into the configuration (an `authorization` block with users and their
    # permissions, say), in place of user/password/token.
    config: str = ""
    jetstream: bool = True  # off: a NATS without JetStream, as a misconfigured one or a leaf is
    domain: str | None = None  # JetStream's domain (`jetstream { domain: ... }`)
    # A node of a cluster: its server name, its route port, the other nodes' route ports, and
    # its HTTP monitoring port.
    name: str | None = None
    cluster_port: int | None = None
    routes: Sequence[int] = ()
    monitor_port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_start: int = field(default=0, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "nats-server.log"

    def _config(self) -> Path:
        # A file, not flags: a password on the command line is in every `ps` listing.
        lines = [f"listen: {LOOPBACK}:{self.port}"]
        if self.jetstream:
            domain = "" if self.domain is None else f", domain: {self.domain}"
            store = json.dumps(str(self.folder / "store"))
            lines.append(f"jetstream {{ store_dir: {store}{domain} }}")
        if self.name is not None:
            lines.append(f"server_name: {self.name}")
        if self.monitor_port is not None:
            lines.append(f"http: {LOOPBACK}:{self.monitor_port}")
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://{LOOPBACK}:{port}" for port in self.routes)
            lines.append(
                f"cluster {{ name: {CLUSTER_NAME}, listen: {LOOPBACK}:{self.cluster_port}, "
                f"routes: [{routes}] }}"
            )
        if self.config:
            lines.append(self.config)
        elif self.user is not None:
            lines.append(
                f"authorization {{ user: {json.dumps(self.user)}, "
                f"password: {json.dumps(self.password)} }}"
            )
        elif self.token is not None:
            lines.append(f"authorization {{ token: {json.dumps(self.token)} }}")
        config = self.folder / "nats-server.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    async def start(self) -> None:
        """Start it (again: same port, same store) and return once it serves (JetStream,
        unless turned off)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self._config()
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [nats_binary(), "-c", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await poll("nats-server ready", self._ready, timeout=30)

    async def _ready(self) -> bool | None:
        process = self.process
        assert process is not None
        if process.poll() is not None:
            said = self.log.read_text()[self._log_start :]
            if "address already in use" in said:
                raise PortTaken(said)
            pytest.fail(f"nats-server exited {process.returncode}: {said[-2000:]}", pytrace=False)
        # The server's first line is INFO {json}; JetStream is on once it says so.
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, self.port)
        except OSError:
            return None
        try:
            async with asyncio.timeout(2):
                line = await reader.readline()
        except TimeoutError:
            return None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if not line.startswith(b"INFO "):
            return None
        info = json.loads(line[5:])
        return True if info.get("jetstream") or not self.jetstream else None

    async def monitoring(self, endpoint: str) -> Any:
        """A monitoring endpoint's JSON (`jsz`, `connz`, `routez`), from this node's HTTP port
        (aiohttp: no proxy from the environment is ever asked)."""
        url = f"http://{LOOPBACK}:{self.monitor_port}/{endpoint}"
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            return await response.json()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s; or SIGKILL at once) and wait for it."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _started(make: Callable[[], list[NatsServer]]) -> list[NatsServer]:
    """The servers `make` gives (on free ports of its choosing), started in turn; made again on
    other ports when something else took one of them first, three times at most."""
    for attempt in range(3):
        servers = make()
        try:
            for server in servers:
                await server.start()
            return servers
        except PortTaken:
            for server in servers:
                server.stop()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def running_nats(
    folder: Path,
    *,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    config: str = "",
) -> AsyncIterator[NatsServer]:
    """nats-server with JetStream on a free loopback port, authenticating clients by user and
    password or by token when given, or as `config` (an `authorization` block) says; stopped
    at the end."""
    (server,) = await _started(
        lambda: [
            NatsServer(
                folder, free_port(), user=user, password=password, token=token, config=config
            )
        ]
    )
    try:
        yield server
    finally:
        server.stop()


HUB_DOMAIN = "hub"


@dataclass(frozen=True)
class LeafLink:
    """A leaf link secured as across a WAN: the hub's leafnode port takes TLS alone, with a
    certificate for 127.0.0.1 from `ca_file`, and the leaf's user and password."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    user: str
    password: str

    def hub_side(self) -> str:
        return (
            f"tls {{ cert_file: {json.dumps(str(self.cert_file))}, "
            f"key_file: {json.dumps(str(self.key_file))} }}, "
            f"authorization {{ user: {json.dumps(self.user)}, "
            f"password: {json.dumps(self.password)} }}"
        )

    def remote(self, port: int) -> str:
        url = f"nats-leaf://{self.user}:{self.password}@{LOOPBACK}:{port}"
        return f"url: {json.dumps(url)}, tls {{ ca_file: {json.dumps(str(self.ca_file))} }}"


@contextlib.asynccontextmanager
async def running_hub_and_leaf(
    folder: Path,
    leaf_domain: str | None = None,
    link: LeafLink | None = None,
    wan: CuttingProxy | None = None,
    leaf_config: str = "",
    leaf_client: dict[str, str] | None = None,
) -> AsyncIterator[tuple[NatsServer, NatsServer]]:
    """A hub with JetStream in the domain HUB_DOMAIN that takes leaf nodes, and a leaf node
    connected to it (a site's NATS), on free loopback ports: without JetStream, or with its own
    in `leaf_domain`; over `link`, or in the clear without credentials; through `wan` (a proxy
    the test can cut, in front of the hub's leaf node port), or straight; `leaf_config` added
    to the leaf's configuration (an `authorization` block: then the hub is waited for as the
    user `leaf_client` names, nats-py's user and password). Returned once the hub's JetStream
    answers through the leaf. Both stopped at the end."""

    def make() -> list[NatsServer]:
        port = free_port()
        secured = "" if link is None else f", {link.hub_side()}"
        if wan is not None:
            wan.upstream = URL(f"nats://{LOOPBACK}:{port}")
            # The WAN's end is what the hub tells its leaf nodes to use (they would go round a
            # cut WAN to its own port otherwise), as a hub behind NAT does.
            secured += f", advertise: {json.dumps(f'{LOOPBACK}:{wan.port}')}"
        leaf_to = port if wan is None else wan.port
        remote = (
            f'url: "nats-leaf://{LOOPBACK}:{leaf_to}"' if link is None else link.remote(leaf_to)
        )
        hub = NatsServer(
            folder / "hub",
            free_port(),
            name="hub",
            domain=HUB_DOMAIN,
            config=f"leafnodes {{ listen: {LOOPBACK}:{port}{secured} }}",
        )
        leaf = NatsServer(
            folder / "leaf",
            free_port(),
            name="leaf",
            jetstream=leaf_domain is not None,
            domain=leaf_domain,
            config=f"leafnodes {{ remotes: [{{{remote}}}] }}\n{leaf_config}",
        )
        return [hub, leaf]

    if wan is not None:
        await wan.mend()
    hub, leaf = await _started(make)
    try:
        await hub_through(leaf, **(leaf_client or {}))
        yield hub, leaf
    finally:
        leaf.stop()
        hub.stop()
        if wan is not None:
            await wan.cut()


async def hub_through(leaf: NatsServer, **auth: str) -> None:
    """Return once the hub's JetStream answers a client of `leaf` (the leaf's link is up);
    `auth`: the client's user and password."""
    client = await nats.connect(leaf.url, **auth)
    try:
        js = client.jetstream(domain=HUB_DOMAIN, timeout=2)

        async def answers() -> bool | None:
            try:
                await js.account_info()
            except (nats.errors.Error, TimeoutError):
                return None
            return True

        await poll("the hub's JetStream through the leaf node", answers, timeout=30)
    finally:
        await client.close()


@dataclass
class NatsCluster:
    """Three nats-server nodes routed to each other as one cluster with JetStream."""

    nodes: list[NatsServer]
    leaf_ports: list[int] = field(default_factory=list)  # each node's, where it takes leaf nodes

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated, as `--nats` and `cluster: nats: url:` take them."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> NatsServer:
        (found,) = [node for node in self.nodes if node.name == name]
        return found

    async def start(self) -> None:
        await asyncio.gather(*(node.start() for node in self.nodes if not node.running))
        await self.ready()

    async def ready(self) -> None:
        """Every running node routed to the others that run, and JetStream's meta group with a
        leader that each of them knows."""
        running = [node for node in self.nodes if node.running]

        async def formed() -> bool | None:
            for node in running:
                try:
                    routes = await node.monitoring("routez")
                    meta = (await node.monitoring("jsz")).get("meta_cluster")
                except (aiohttp.ClientError, TimeoutError):
                    return None
                if routes["num_routes"] < len(running) - 1 or not (meta or {}).get("leader"):
                    return None
            return True

        await poll("the NATS cluster formed", formed, timeout=60)

    async def stream_leader(self, stream: str) -> NatsServer:
        """The node that leads `stream` now, as JetStream's stream info says (asked of any
        running node)."""

        async def leader() -> NatsServer | None:
            for node in self.nodes:
                if not node.running:
                    continue
                try:
                    client = await nats.connect(node.url, allow_reconnect=False, connect_timeout=2)
                except (OSError, nats.errors.Error):
                    continue
                try:
                    info = await client.jetstream(timeout=2).stream_info(stream)
                except (nats.errors.Error, TimeoutError):
                    continue
                finally:
                    await client.close()
                name = None if info.cluster is None else info.cluster.leader
                # A node just killed is named until the others elect another.
                if name is not None and self.node(name).running:
                    return self.node(name)
            return None

        return await poll(f"a leader of stream {stream}", leader, timeout=60)

    async def client_node(self, client_name: str) -> NatsServer:
        """The node a client (by the name it gave at CONNECT) is connected to now."""

        async def found() -> NatsServer | None:
            for node in self.nodes:
                if not node.running:
                    continue
                try:
                    connections = await node.monitoring("connz")
                except (aiohttp.ClientError, TimeoutError):
                    continue
                if any(c.get("name") == client_name for c in connections["connections"]):
                    return node
            return None

        return await poll(f"the node of {client_name}", found, timeout=60)

    async def step_down(self, stream: str) -> NatsServer:
        """Ask the leader of `stream` to hand the leadership to another node; the new leader."""
        before = await self.stream_leader(stream)
        client = await nats.connect(before.url, allow_reconnect=False)
        try:
            await client.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"", timeout=10)
        finally:
            await client.close()

        async def another() -> NatsServer | None:
            leader = await self.stream_leader(stream)
            return leader if leader is not before else None

        return await poll(f"another leader of stream {stream}", another, timeout=60)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.asynccontextmanager
async def running_nats_cluster(
    folder: Path, domain: str | None = None, *, leaf_nodes: bool = False
) -> AsyncIterator[NatsCluster]:
    """Three nats-server nodes (n1, n2, n3) with JetStream (in `domain`), routed as one cluster
    on loopback, each with its own store under `folder` and, with `leaf_nodes`, a port that
    takes leaf nodes; stopped at the end."""
    for attempt in range(3):
        cluster_ports = [free_port() for _ in range(3)]
        leaf_ports = [free_port() for _ in range(3)] if leaf_nodes else []
        nodes = [
            NatsServer(
                folder / f"n{index + 1}",
                free_port(),
                name=f"n{index + 1}",
                domain=domain,
                cluster_port=port,
                routes=[other for other in cluster_ports if other != port],
                monitor_port=free_port(),
                config=f"leafnodes {{ listen: {LOOPBACK}:{leaf_ports[index]} }}"
                if leaf_nodes
                else "",
            )
            for index, port in enumerate(cluster_ports)
        ]
        cluster = NatsCluster(nodes, leaf_ports)
        try:
            await cluster.start()
            break
        except PortTaken:
            cluster.stop()
            if attempt == 2:
                raise
    try:
        yield cluster
    finally:
        cluster.stop()


@contextlib.asynccontextmanager
async def running_hub_cluster_and_leaf(
    folder: Path, leaf_domain: str
) -> AsyncIterator[tuple[NatsCluster, NatsServer]]:
    """A hub of three nodes (`running_nats_cluster`, JetStream in HUB_DOMAIN) and a leaf node
    with JetStream of its own in `leaf_domain`, linked to every node (it moves to another when
    its node goes); returned once the hub's JetStream answers through the leaf."""
    async with running_nats_cluster(folder, HUB_DOMAIN, leaf_nodes=True) as hub:
        urls = ", ".join(f'"nats-leaf://{LOOPBACK}:{port}"' for port in hub.leaf_ports)

        def make() -> list[NatsServer]:
            config = f"leafnodes {{ remotes: [{{urls: [{urls}]}}] }}"
            return [
                NatsServer(
                    folder / "leaf", free_port(), name="leaf", domain=leaf_domain, config=config
                )
            ]

        (leaf,) = await _started(make)
        try:
            await hub_through(leaf)
            yield hub, leaf
        finally:
            leaf.stop()
