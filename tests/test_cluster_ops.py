"""Operating the distributed parts against a real nats-server: an agent's /healthz and
/metrics (`commwatch agent --listen`, by the API's TLS and token rules) through a NATS outage,
the central's own families on the engine's /metrics with its lease's, every family
documented and passing `promtool check metrics`; the stream's replicas and several NATS
servers in the inventory, and what a replica count NATS cannot have, or one that differs from
an existing stream's, looks like."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.aio.client import Client
from nats.js.api import DiscardPolicy, StreamConfig
from prometheus_client.parser import text_string_to_metric_families

from monitor.api.server import ApiServer, Listener
from monitor.cluster import buckets
from monitor.cluster.agent import Agent
from monitor.cluster.agent_api import agent_app
from monitor.cluster.central import Rejection, ResultConsumer, connect
from monitor.cluster.connection import inbox_prefix, trouble
from monitor.cluster.lease import LeaseFigures, Role
from monitor.cluster.membership import Heartbeat, Member
from monitor.cluster.metrics import CentralMetrics
from monitor.cluster.spool import Spool
from monitor.cluster.stream import SUBJECTS, StreamError, ensure_stream, outgoing
from monitor.config.api import ApiConfig, Listen
from monitor.config.cluster import (
    DEFAULT_HEARTBEAT_TTL,
    ClusterConfig,
    NatsConfig,
    NatsCredentials,
    nats_url,
)
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.model import Severity
from monitor.core.options import OptionError
from monitor.core.secrets import SecretRef
from monitor.engine.pipeline import Monitor
from tests.central_support import (
    AGENT,
    BASE,
    STREAM,
    TOKENS,
    VIEWER,
    VIEWER_ENV,
    Seen,
    publish,
    running_central,
)
from tests.central_support import jetstream as jetstream_context
from tests.conftest import REPO
from tests.peers.nats_peers import NatsServer, running_nats
from tests.peers.pki import make_ca, make_leaf
from tests.peers.prometheus_peers import free_port, poll
from tests.peers.tcp_peers import closed_port
from tests.test_api_config import faults, load
from tests.test_central import forged_variants, result
from tests.test_central import inventory as central_inventory
from tests.test_cluster_agent import inventory_text, start_agent, stream_messages, tcp_peers
from tests.test_metrics import CLUSTER_SECTION, OPENMETRICS, documented, exported, section

AGENT_TOKEN = "agent-viewer-token-6b1d0e2f9a"
# The scheduler's families, which an agent exports as the engine names them, and a central
# (no scheduler) does not.
SCHEDULER = {
    "commwatch_checks_in_flight",
    "commwatch_checks_queued",
    "commwatch_checks_paused",
    "commwatch_scheduler_lag_seconds",
    "commwatch_scheduler_start_lag_seconds",
}
PROCESS = {name for name in documented() if name.startswith("process_")}

# --- the configuration ---------------------------------------------------------------------------


def test_replicas_and_several_servers_load(tmp_path):
    cluster = load(
        tmp_path,
        """\
        cluster:
          nats: {url: [nats://127.0.0.1:4222, 'nats://[::1]:4223', nats://127.0.0.1:4224]}
          replicas: 3
        """,
    ).cluster
    assert cluster is not None and cluster.replicas == 3
    assert cluster.nats.url == "nats://127.0.0.1:4222,nats://[::1]:4223,nats://127.0.0.1:4224"
    assert cluster.nats.servers == [
        "nats://127.0.0.1:4222",
        "nats://[::1]:4223",
        "nats://127.0.0.1:4224",
    ]
    assert load(tmp_path, "cluster: {}\n").cluster.replicas == 1  # type: ignore[union-attr]


def test_a_comma_separated_url_is_several_servers():
    assert nats_url(" tls://127.0.0.11:4222 , tls://127.0.0.12:4222") == (
        "tls://127.0.0.11:4222,tls://127.0.0.12:4222"
    )
    assert NatsConfig(url="nats://127.0.0.1:4222").servers == ["nats://127.0.0.1:4222"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nats://127.0.0.1:4222,", "a NATS URL is empty"),
        ("nats://127.0.0.1:4222,tls://127.0.0.1:4223", "the NATS URLs mix nats:// and tls://"),
        ("nats://127.0.0.1:4222,nats://127.0.0.1:4222", "a NATS URL is given twice"),
        ("nats://127.0.0.1:4222,nats://u:hunter2@127.0.0.1:4223", "holds credentials (not shown)"),
        ([], "no NATS URL is given"),
    ],
)
def test_a_bad_list_of_servers_is_refused(value, expected):
    with pytest.raises(OptionError) as refused:
        nats_url(value)
    assert expected in refused.value.message
    assert "hunter2" not in str(refused.value) + refused.value.hint


@pytest.mark.parametrize(
    ("replicas", "shown"), [("2", "2"), ("7", "7"), ("three", "'three'"), ("true", "True")]
)
def test_a_replica_count_jetstream_does_not_take_is_placed(tmp_path, replicas, shown):
    (found,) = faults(tmp_path, f"cluster: {{replicas: {replicas}}}\n")
    assert found == (
        f"{tmp_path / 'inventory.yaml'}:8:21: 'replicas': {shown} is not a replica count "
        "JetStream takes (write 1 for one server, or 3 or 5 for a NATS cluster of at least "
        "that many nodes; a majority of the replicas must be up to store results)"
    )


def test_the_command_line_takes_several_servers(tmp_path):
    from monitor.cli.parser import build_parser

    args = build_parser().parse_args(
        ["agent", "--name", "a", "--nats", "nats://127.0.0.1:1,nats://127.0.0.1:2"]
    )
    assert args.nats == "nats://127.0.0.1:1,nats://127.0.0.1:2"


async def test_given_several_servers_the_central_and_the_agent_reach_the_one_that_runs(tmp_path):
    async with running_nats(tmp_path / "nats") as server:
        dead = [f"nats://127.0.0.1:{closed_port()}" for _ in range(2)]
        config = NatsConfig(url=",".join([*dead, server.url]))
        for _ in range(3):  # nats-py tries the servers in an order of its own each time
            client = await connect(config)
            try:
                assert client.connected_url is not None
                assert client.connected_url.port == server.port
            finally:
                await client.close()
        path = tmp_path / "inventory.yaml"
        path.write_text(inventory_text([closed_port()]))
        inventory = load_inventory(path)
        spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=1024**2)
        cluster = ClusterConfig(nats=config)
        agent = Agent("north-1", inventory.checks, inventory.concurrency, cluster, spool)
        running = asyncio.create_task(agent.run())
        try:

            async def published() -> bool | None:
                return True if agent.figures().published >= 2 else None

            await poll("the agent publishing through the live server", published, timeout=30)
        finally:
            agent.stop()
            await asyncio.wait_for(running, 30)
            spool.close()


# --- NATS permissions per agent ------------------------------------------------------------------

DISTRIBUTED = REPO / "docs" / "distributed.md"
PASSWORDS = {
    "CENTRAL_PASSWORD": "central-nats-pw-4e1f9c",
    "PSAP_NORTH_PASSWORD": "north-nats-pw-7a2b5d",
    "PSAP_SOUTH_PASSWORD": "south-nats-pw-0c8e3a",
}


def documented_authorization() -> str:
    """The `authorization` block docs/distributed.md gives, the passwords put in."""
    text = section("### NATS permissions per agent", DISTRIBUTED.read_text(encoding="utf-8"))
    block = text.split("```conf\n", 1)[1].split("```", 1)[0]
    for placeholder, password in PASSWORDS.items():
        assert placeholder in block
        block = block.replace(placeholder, password)
    return block


async def test_a_heartbeat_that_did_not_go_is_tried_again_within_seconds(tmp_path, caplog):
    """An agent's heartbeat refused (here: the bucket not made yet, and the documented
    permissions let only the central make it) is put again a second later, not a heartbeat
    (here 30 s) later: a few missed in a row would move the agent's checks away."""
    async with running_nats(tmp_path / "nats", config=documented_authorization()) as server:
        north = await nats.connect(
            server.url,
            user="psap-north",
            password=PASSWORDS["PSAP_NORTH_PASSWORD"],
            inbox_prefix=inbox_prefix("psap-north"),
        )
        member = Member("psap-north", frozenset({"default"}), time.time(), 1)
        beating = asyncio.create_task(Heartbeat(member, 30.0, 90.0).beat(north))
        central = await nats.connect(
            server.url, user="central", password=PASSWORDS["CENTRAL_PASSWORD"]
        )
        try:

            async def refused() -> bool | None:
                return "cannot put this agent's heartbeat" in caplog.text or None

            await poll("the refused heartbeat said", refused, timeout=30)
            kv = await buckets.key_value(central.jetstream(), buckets.AGENTS, 90.0)

            async def put() -> bool | None:
                with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                    return (await kv.get("psap-north")) is not None
                return None

            started = time.monotonic()
            await poll("the heartbeat put once the bucket is there", put, timeout=25)
            assert time.monotonic() - started < 5
        finally:
            await north.close()
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            await central.close()


async def test_an_agent_may_publish_only_as_itself(tmp_path):
    """nats-server with the documented permissions. psap-south's own results flow to the
    central (which makes the stream the agents may not). Its user running an agent named
    psap-north is refused at once (the replies of psap-north's inbox), says so once, keeps its
    results in its spool and stores none; and a client with its password publishing in
    psap-north's name is refused by the server, in the words commwatch tells."""
    for name, placeholder in (("central", "CENTRAL"), ("south", "PSAP_SOUTH")):
        (tmp_path / f"{name}.password").write_text(PASSWORDS[f"{placeholder}_PASSWORD"] + "\n")
    config = documented_authorization()
    async with tcp_peers(3) as ports, running_nats(tmp_path / "nats", config=config) as server:
        path = tmp_path / "inventory.yaml"
        credentials = f"{{user: psap-south, password_file: {tmp_path / 'south.password'}}}"
        path.write_text(
            f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
            + inventory_text(ports, f"cluster: {{nats: {{credentials: {credentials}}}}}")
        )
        inventory = load_inventory(path)
        common = (str(path), "--nats", server.url)
        south = start_agent(
            tmp_path / "south", *common, "--name", "psap-south", "--spool", str(tmp_path / "s")
        )
        impostor = start_agent(
            tmp_path / "impostor", *common, "--name", "psap-north", "--spool", str(tmp_path / "i")
        )
        try:
            # No stream yet, and an agent's user may not make it.
            await south.wait_for(
                "not let this agent publish to $js.api.stream.create.commwatch_results", "refused"
            )
            password = SecretRef("file", str(tmp_path / "central.password"))
            credentials = NatsCredentials(user="central", password=password)
            cluster = ClusterConfig(nats=NatsConfig(url=server.url, credentials=credentials))
            async with running_central(cluster, inventory) as central:
                # The heartbeats' bucket, made by the central too (as `commwatch central` does).
                js = central.client.jetstream()
                agents = await buckets.key_value(js, buckets.AGENTS, DEFAULT_HEARTBEAT_TTL)

                async def heartbeating() -> bool | None:
                    try:
                        return True if await agents.get("psap-south") else None
                    except nats.js.errors.KeyNotFoundError:
                        return None

                await poll("psap-south's heartbeat in its bucket", heartbeating, timeout=60)
                await central.until(lambda: len(central.shown) >= 9, "psap-south's results")
                refusal = "does not let this agent subscribe to _inbox_psap-north."
                await impostor.wait_for(refusal, "the impostor told")
                told = await forged_publish(server, inventory)
                await central.until(lambda: len(central.shown) >= 18, "more of psap-south's")
                assert impostor.process.poll() is None  # it keeps probing, and spooling
                assert sorted(await agents.keys()) == ["psap-south"]
        finally:
            south_code, impostor_code = south.stop(), impostor.stop()
        assert (south_code, impostor_code) == (0, 0), south.stderr() + impostor.stderr()
        central_auth = {"user": "central", "password": PASSWORDS["CENTRAL_PASSWORD"]}
        messages = await stream_messages(server.url, **central_auth)
    assert {message.subject for message in messages} == {"commwatch.results.north.psap-south"}
    assert impostor.stderr().count(refusal) == 1
    # psap-south was refused only what the central makes (the stream, the bucket) before it had.
    refused = [line for line in south.stderr().splitlines() if "does not let this agent" in line]
    assert refused and all("to $js.api.stream.create." in line for line in refused), refused
    kept = impostor.stderr().rsplit("stopped; ", 1)[1]
    assert kept.startswith("0 results published, ") and " 0 in the spool" not in kept
    assert told == (
        f"NATS at {server.url} does not let this agent publish to "
        "commwatch.results.north.psap-north: its NATS user's permissions forbid it"
    )
    for process in (south, impostor):
        printed = process.printed()
        assert not any(password in printed for password in PASSWORDS.values())


async def forged_publish(server: NatsServer, inventory: Inventory) -> str:
    """psap-south's user publishing a result in psap-north's name, with its own inbox: the
    server refuses it (no acknowledgement comes), and says why; what commwatch makes of it."""
    said: list[Exception] = []

    async def error(exc: Exception) -> None:
        said.append(exc)

    client = await nats.connect(
        server.url,
        user="psap-south",
        password=PASSWORDS["PSAP_SOUTH_PASSWORD"],
        inbox_prefix=inbox_prefix("psap-south"),
        error_cb=error,
    )
    try:
        entry = outgoing("psap-north", result(inventory, Severity.OK, BASE))
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await client.jetstream().publish(
                entry.subject, entry.data, headers=entry.headers, timeout=2
            )
    finally:
        await client.close()
    (refused,) = said
    return trouble(refused, server.url, "agent")


# --- a stream that refuses results ---------------------------------------------------------------


async def test_results_the_stream_refuses_go_to_the_spool_not_memory(tmp_path, caplog):
    """A stream its operator made to refuse what exceeds its limits (discard new): from the
    first refusal on, the results are in the spool, where a crash of the agent keeps them;
    the log says what the stream said."""
    caplog.set_level(logging.WARNING, logger="commwatch.agent")
    async with running_nats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        try:
            config = StreamConfig(
                name=STREAM, subjects=[SUBJECTS], max_msgs=3, discard=DiscardPolicy.NEW
            )
            await nc.jetstream().add_stream(config)
        finally:
            await nc.close()
        path = tmp_path / "inventory.yaml"
        path.write_text(inventory_text([closed_port() for _ in range(3)]))
        inventory = load_inventory(path)
        spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=1024**2)
        cluster = ClusterConfig(nats=NatsConfig(url=server.url), stream=STREAM)
        agent = Agent("north-1", inventory.checks, inventory.concurrency, cluster, spool)
        running = asyncio.create_task(agent.run())
        try:

            async def spooled() -> bool | None:
                figures = agent.figures()
                return True if figures.connected and spool.depth >= 6 else None

            await poll("the refused results spooled", spooled, timeout=60)
            assert agent.figures().published == 3
        finally:
            agent.stop()
            await asyncio.wait_for(running, 30)
            spool.close()
    said = [record.getMessage() for record in caplog.records]
    assert (
        "NATS did not take a result (the stream refused it: maximum messages exceeded); spooling"
        in said
    ), said


async def central_stderr_until(process: asyncio.subprocess.Process, text: str) -> None:
    assert process.stderr is not None
    async with asyncio.timeout(60):
        while text.encode() not in (line := await process.stderr.readline()):
            assert line, "commwatch central ended early"


@pytest.mark.parametrize("signalled", [True, False])
async def test_a_central_waits_for_jetstream_to_answer(tmp_path, signalled):
    """NATS up without JetStream (as a cluster electing its leaders answers no JetStream
    request): the central says so and waits, no traceback; a signal ends the wait (exit 3);
    JetStream back, it makes the stream and judges what comes."""
    server = NatsServer(tmp_path / "nats", free_port(), jetstream=False)
    await server.start()
    try:
        inv_path = tmp_path / "inventory.yaml"
        central_inventory(tmp_path)  # writes the inventory file
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "monitor.cli", "central", str(inv_path), "--no-alerts"),
            *("--nats", server.url),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await central_stderr_until(
            process, "JetStream does not answer about stream COMMWATCH_RESULTS"
        )
        if not signalled:
            server.stop()
            server.jetstream = True
            await server.start()
            inv = load_inventory(inv_path)
            async with jetstream_context(server.url) as js:
                await publish(js, result(inv, Severity.OK, BASE))
            assert process.stdout is not None
            async with asyncio.timeout(60):
                line = json.loads(await process.stdout.readline())
            assert (line["type"], line["check_id"]) == ("result", "north/wan/c")
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        server.stop()
    assert "Traceback" not in err.decode()
    if signalled:
        assert process.returncode == 3
        assert err.decode().splitlines()[-1] == (
            "commwatch central: stopped before JetStream answered"
        )
    else:
        assert process.returncode == 0, err.decode()


# --- the stream's replicas on a real server ------------------------------------------------------


async def test_more_replicas_than_a_lone_server_has_is_a_clear_refusal(tmp_path):
    async with running_nats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        try:
            with pytest.raises(StreamError) as refused:
                await ensure_stream(nc.jetstream(), "RESULTS_R3", 3)
        finally:
            await nc.close()
    assert str(refused.value) == (
        "NATS refused to make stream RESULTS_R3 (replicas > 1 not supported in non-clustered "
        "mode); 3 replicas need a NATS cluster of at least 3 nodes with JetStream, or write "
        "cluster: replicas: 1"
    )


async def test_an_existing_stream_with_other_replicas_is_left_and_told(tmp_path):
    async with running_nats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            assert await ensure_stream(js, "RESULTS", 1) is None  # made
            assert await ensure_stream(js, "RESULTS", 1) is None  # as configured
            differs = await ensure_stream(js, "RESULTS", 3)
            info = await js.stream_info("RESULTS")
        finally:
            await nc.close()
    assert differs == (
        "stream RESULTS has 1 replica but cluster: replicas: says 3; a stream that exists is "
        "left as it is: change it on the NATS side (nats stream edit RESULTS --replicas 3), "
        "or write replicas: 1"
    )
    assert info.config.num_replicas == 1


# --- what is documented --------------------------------------------------------------------------


def agent_documented() -> dict[str, tuple[str, frozenset[str]]]:
    """What an agent exports: its section's rows, and the engine's rows it shares."""
    engine = documented()
    shared = {"commwatch_build_info", *SCHEDULER, *PROCESS}
    rows = documented(section("### An agent", section(CLUSTER_SECTION)))
    return {**rows, **{name: engine[name] for name in shared}}


def central_documented() -> dict[str, tuple[str, frozenset[str]]]:
    return documented(section("### A central", section(CLUSTER_SECTION)))


def test_the_cluster_sections_are_read_apart_from_the_engine():
    agent, central = agent_documented(), central_documented()
    assert agent["commwatch_agent_spool_dropped_total"] == ("counter", frozenset({"reason"}))
    assert agent["commwatch_checks_queued"] == ("gauge", frozenset())
    assert central["commwatch_central_rejected_total"] == ("counter", frozenset({"reason"}))
    assert "commwatch_central_leader" in central and "commwatch_check_severity" not in central
    assert not any(
        name.startswith(("commwatch_agent", "commwatch_central")) for name in documented()
    )


def promtool_check(text: str) -> None:
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[name, frozenset(labels.items())]


# --- an agent's /healthz and /metrics ------------------------------------------------------------


class Served:
    """An HTTPS listener's client: /healthz without a token, /metrics with the viewer's."""

    def __init__(self, url: str, ca: Path) -> None:
        self.url = url
        self.context = ssl.create_default_context(cafile=str(ca))

    async def get(self, path: str, token: str | None = None, accept: str = "") -> tuple[int, str]:
        headers = {"Accept": accept}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + path, headers=headers, ssl=self.context) as response,
        ):
            return response.status, await response.text()

    async def health(self) -> dict[str, Any]:
        status, body = await self.get("/healthz")
        assert status == 200, body
        return json.loads(body)

    async def metrics(self) -> dict[Any, float]:
        status, body = await self.get("/metrics", AGENT_TOKEN)
        assert status == 200, body
        return values(body)


def served_inventory(tmp_path: Path, ports: list[int]) -> Path:
    now = dt.datetime.now(dt.UTC)
    ca = make_ca("agent API test CA", not_after=now + dt.timedelta(days=30))
    cert, key = make_leaf(ca, ["127.0.0.1"], not_after=now + dt.timedelta(days=10)).write(
        tmp_path, "agent-api"
    )
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "viewer.token").write_text(AGENT_TOKEN + "\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(
        inventory_text(
            ports,
            f"""\
            cluster: {{spool: {{path: {tmp_path / "spool.sqlite3"}}}}}
            api:
              listen: 127.0.0.1:{closed_port()}
              tls: {{cert_file: {cert}, key_file: {key}}}
              tokens: [{{role: viewer, token_file: {tmp_path / "viewer.token"}}}]
            """,
        )
    )
    return path


async def test_an_agent_serves_health_and_metrics_through_an_outage(tmp_path):
    async with tcp_peers(3) as ports, running_nats(tmp_path / "nats") as server:
        path = served_inventory(tmp_path, ports)
        args = (str(path), "--nats", server.url, "--name", "north-1", "--listen", "127.0.0.1:0")
        agent = start_agent(tmp_path / "agent", *args)
        try:
            await agent.wait_for("serving /healthz and /metrics on https://", "the listener")
            url = agent.stderr().split("serving /healthz and /metrics on ", 1)[1].split()[0]
            served = Served(url, tmp_path / "ca.pem")

            async def health_says(nats_state: str, spooled: bool) -> dict[str, Any] | None:
                health = await served.health()
                done = health["nats"] == nats_state and (health["spooled"] > 0) == spooled
                return health if done else None

            health = await poll("connected", lambda: health_says("connected", False), timeout=60)
            assert health == {
                "status": "ok",
                "agent": "north-1",
                "nats": "connected",
                "spooled": 0,
                "dropped": 0,
            }
            assert (await served.get("/metrics"))[0] == 401
            assert (await served.get("/metrics", "not-the-" + AGENT_TOKEN))[0] == 401
            status, text = await served.get("/metrics", AGENT_TOKEN, OPENMETRICS)
            assert status == 200
            assert exported(text) == agent_documented()
            status, text = await served.get("/metrics", AGENT_TOKEN)
            promtool_check(text)
            found = values(text)
            assert value(found, "commwatch_agent_connected") == 1
            assert value(found, "commwatch_agent_published_total") >= 1
            assert value(found, "commwatch_agent_spool_limit_bytes") == 100 * 1024**2

            server.stop()
            health = await poll("spooling", lambda: health_says("spooling", True), timeout=60)
            assert health["status"] == "ok"  # probing goes on: the agent is healthy

            async def lagging() -> dict[Any, float] | None:
                found = await served.metrics()
                return found if value(found, "commwatch_agent_publish_lag_seconds") > 1 else None

            found = await poll("the publish lag growing", lagging, timeout=60)
            assert value(found, "commwatch_agent_connected") == 0
            assert value(found, "commwatch_agent_spool_results") > 0
            assert value(found, "commwatch_agent_spool_bytes") > 0

            await server.start()
            await poll("replayed", lambda: health_says("connected", False), timeout=60)
            found = await served.metrics()
            assert value(found, "commwatch_agent_replayed_total") > 0
            assert value(found, "commwatch_agent_publish_lag_seconds") < 1
            assert value(found, "commwatch_agent_spool_dropped_total", reason="age") == 0
        finally:
            code = agent.stop()
        assert code == 0, agent.stderr()
        assert AGENT_TOKEN not in agent.printed()


def test_an_agent_refuses_to_listen_beyond_loopback_without_tls_and_tokens(tmp_path):
    spool = tmp_path / "spool.sqlite3"
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_text([closed_port()], f"cluster: {{spool: {{path: {spool}}}}}"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "agent",
            str(path),
            "--nats",
            f"nats://127.0.0.1:{closed_port()}",
            "--name",
            "north-1",
            "--listen",
            "0.0.0.0:0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "commwatch agent: refusing to listen on 0.0.0.0:0, beyond loopback, without TLS and "
        "tokens (configure api: tls: and tokens:, listen on 127.0.0.1, or allow it explicitly "
        "(allow_insecure_remote: true, --allow-insecure-remote)); nothing was run"
    )
    kept = Spool(spool, max_age=3600, max_bytes=1024**2)
    assert kept.depth == 0  # no probe ran (NATS is down: a result would be spooled)
    kept.close()


async def test_an_agent_that_stopped_probing_is_unhealthy(tmp_path, monkeypatch):
    monkeypatch.setenv(VIEWER_ENV, VIEWER)
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_text([closed_port()]))
    inventory = load_inventory(path)
    cluster = ClusterConfig(nats=NatsConfig(url=f"nats://127.0.0.1:{closed_port()}"))
    spool = Spool(tmp_path / "spool.sqlite3", max_age=3600, max_bytes=1024**2)
    agent = Agent("north-1", inventory.checks, inventory.concurrency, cluster, spool)
    config = ApiConfig(listen=Listen("127.0.0.1", 0), tokens=TOKENS)
    listener = Listener(config, lambda tokens: agent_app(agent, config, tokens))
    await listener.start()
    try:

        async def health() -> tuple[int, dict[str, Any]]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(listener.url + "/healthz") as response,
            ):
                return response.status, await response.json()

        assert (await health())[0] == 503  # not probing yet
        running = asyncio.create_task(agent.run())

        async def probing() -> bool | None:
            status, body = await health()
            return True if status == 200 and body["spooled"] > 0 else None

        await poll("probing and spooling", probing, timeout=30)
        assert (await health())[1]["nats"] == "spooling"
        agent.stop()
        await asyncio.wait_for(running, 30)
        status, body = await health()
    finally:
        await listener.stop()
        spool.close()
    assert status == 503 and body["status"] == "stopping"


# --- the central's duplicates --------------------------------------------------------------------


async def test_a_second_message_of_a_run_in_flight_is_acknowledged_at_once(tmp_path, monkeypatch):
    """The same run published twice under two message ids (beyond the duplicate window, or by
    a replay whose id was rewritten), both fetched at once: the second is dropped and
    acknowledged then, not left to come back after the ack wait and be counted again."""
    monkeypatch.setenv(VIEWER_ENV, VIEWER)
    inv = central_inventory(tmp_path)
    async with running_nats(tmp_path / "nats") as server, nats_client(server) as client:
        js = client.jetstream()
        first = outgoing(AGENT, result(inv, Severity.OK, BASE))
        await js.publish(first.subject, first.data, headers=first.headers)
        second = {**first.headers, "Nats-Msg-Id": first.msg_id + "-again"}
        await js.publish(first.subject, first.data, headers=second)
        await publish(js, result(inv, Severity.OK, BASE + 1))
        async with central_api(client, inv, lease(leader=True, token=0)) as (api, seen):
            await seen.until(lambda: len(seen.results) == 2)

            async def acknowledged() -> bool | None:
                info = await js.consumer_info(STREAM, "central")
                return True if info.num_ack_pending == 0 else None

            # Well within the ack wait (10 s): nothing waits for a redelivery.
            await poll("every message acknowledged", acknowledged, timeout=5)
            info = await js.consumer_info(STREAM, "central")
            found = values(await scrape(api))
        assert (info.num_redelivered, info.num_pending) == (0, 0)
        assert value(found, "commwatch_central_results_total") == 2
        assert value(found, "commwatch_central_duplicates_total") == 1


# --- a central's families on the engine's /metrics -----------------------------------------------


@contextlib.asynccontextmanager
async def nats_client(server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(server.url)
    await ensure_stream(client.jetstream(), STREAM)
    try:
        yield client
    finally:
        await client.close()


def lease(*, leader: bool, token: int, changes: int = 0) -> LeaseFigures:
    """A central's lease as its figures say: leading, or following the one that does."""
    return LeaseFigures(
        central="noc-1",
        role=Role.LEADER if leader else Role.FOLLOWER,
        leader=leader,
        token=token,
        holder="noc-1" if leader else "noc-2",
        changes=changes,
        ttl=10.0,
    )


@contextlib.asynccontextmanager
async def central_api(
    client: Client, inv: Inventory, leadership: LeaseFigures, *, run: bool = True
) -> AsyncIterator[tuple[ApiServer, Seen]]:
    """An engine fed by a consumer, served with the central's families; `run`: the engine
    running (else only served, its consumer taking nothing)."""
    js = client.jetstream()
    consumer = ResultConsumer(js, inv.checks, stream=STREAM, history=inv.resilience.history.path)
    monitor = Monitor(
        inv, inv.checks, on_result=lambda _: None, on_event=lambda _: None, alerts=False,
        source=consumer,
    )  # fmt: skip
    seen = Seen("north/wan/c")
    monitor.watch(seen)
    metrics = CentralMetrics(consumer, client, leadership=lambda: leadership)
    api = ApiServer(
        monitor, ApiConfig(listen=Listen("127.0.0.1", 0), tokens=TOKENS), metric_sources=(metrics,)
    )
    await api.start()
    running = asyncio.create_task(monitor.run()) if run else None
    try:
        yield api, seen
    finally:
        monitor.stop()
        if running is not None:
            await asyncio.wait_for(running, 20)
        await consumer.aclose()
        await api.stop()


async def scrape(api: ApiServer, accept: str = "") -> str:
    headers = {"Authorization": f"Bearer {VIEWER}", "Accept": accept}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(api.url + "/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_a_central_exports_its_consumer_and_leadership(tmp_path, monkeypatch):
    monkeypatch.setenv(VIEWER_ENV, VIEWER)
    inv = central_inventory(tmp_path)
    variants = forged_variants(inv)
    async with running_nats(tmp_path / "nats") as server, nats_client(server) as client:
        js = client.jetstream()
        follower = lease(leader=False, token=7, changes=2)
        async with central_api(client, inv, follower) as (api, seen):
            await publish(js, *(result(inv, Severity.OK, BASE + n) for n in range(3)))
            # Published again under another id: not newer than the last of its check.
            again = outgoing(AGENT, result(inv, Severity.OK, BASE + 1))
            headers = {**again.headers, "Nats-Msg-Id": again.msg_id + "-again"}
            await js.publish(again.subject, again.data, headers=headers)
            for index, (_kind, subject, data, headers) in enumerate(variants):
                msg_id = headers.get("Nats-Msg-Id", "")
                await js.publish(
                    subject, data, headers={**headers, "Nats-Msg-Id": f"{msg_id}{index}"}
                )
            await seen.until(lambda: len(seen.results) == 3)

            async def settled() -> str | None:
                text = await scrape(api)
                found = values(text)
                total = sum(
                    value(found, "commwatch_central_rejected_total", reason=str(r))
                    for r in Rejection
                )
                done = total == len(variants) and (
                    value(found, "commwatch_central_consumer_unacknowledged") == 0
                )
                return text if done else None

            text = await poll("every message settled", settled, timeout=30)
            openmetrics = await scrape(api, OPENMETRICS)
        promtool_check(text)
        found = values(text)
        assert value(found, "commwatch_central_results_total") == 3
        assert value(found, "commwatch_central_duplicates_total") == 1
        for reason in Rejection:
            expected = sum(1 for kind, *_ in variants if kind is reason)
            assert value(found, "commwatch_central_rejected_total", reason=str(reason)) == expected
        assert value(found, "commwatch_central_consumer_pending") == 0
        assert value(found, "commwatch_central_connected") == 1
        assert value(found, "commwatch_central_leader") == 0  # the hook's answer
        assert value(found, "commwatch_central_lease_token") == 7
        assert value(found, "commwatch_central_leadership_changes_total") == 2
        families = exported(openmetrics)
        central = {n: f for n, f in families.items() if n.startswith("commwatch_central_")}
        assert central == central_documented()
        engine = documented()
        # The rest are the engine's, as documented (a family with no series shows no labels).
        for name, (kind, labels) in families.items():
            if name not in central:
                assert engine[name][0] == kind
                assert labels <= engine[name][1], name
        assert "commwatch_results_total" in families and "commwatch_engine_ready" in families
        assert SCHEDULER.isdisjoint(families)  # a central runs no scheduler

        # Published while no central consumes: the server holds them for the consumer.
        await publish(js, *(result(inv, Severity.OK, BASE + 10 + n) for n in range(4)))
        sole = lease(leader=True, token=0)
        async with central_api(client, inv, sole, run=False) as (api, _):
            found = values(await scrape(api))
            assert value(found, "commwatch_central_consumer_pending") == 4
            assert value(found, "commwatch_central_leader") == 1
            server.stop()

            async def disconnected() -> dict[Any, float] | None:
                found = values(await scrape(api))
                return found if value(found, "commwatch_central_connected") == 0 else None

            found = await poll("the central disconnected", disconnected, timeout=30)
            assert ("commwatch_central_consumer_pending", frozenset()) not in found
            await server.start()
