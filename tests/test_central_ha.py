"""Several centrals at once, one leader: real `commwatch central` processes on a real nats-server
with JetStream, results published into the stream as agents publish them, a webhook receiver of
the test honouring Idempotency-Key. The leader SIGKILLed in a burst of state changes: the
follower takes over within 2 lease TTLs and the receiver gets every notification once by key,
the same set a central that never failed made from the same results. A stale leader (SIGSTOP
past its TTL, then SIGCONT) sends nothing after the takeover: its fencing token is the lower.
And a central that starts late, catching up on the stream, makes the same messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from monitor.cli.commands.central import central_name
from monitor.cluster.central import ResultConsumer
from monitor.cluster.lease import KEY, Lease, open_lease_bucket
from monitor.cluster.notified import LeaderGate, open_notified_bucket
from monitor.cluster.stream import VANTAGE_HEADER
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.model import ProbeResult, Severity
from monitor.engine.pipeline import Monitor
from tests.central_support import BASE, VIEWER_ENV, jetstream, publish
from tests.central_support import VIEWER as CENTRAL_VIEWER
from tests.central_support import central as in_process_central
from tests.conftest import REPO
from tests.peers.nats_peers import NatsServer, running_nats
from tests.peers.webhook_peers import Received, WebhookReceiver

TTL = 2.0  # the lease's, short for the test: a takeover is due within 2 of them
SITES = 4
STEP = 0.25  # seconds between two rounds of results, each a result for every check
FENCING = "Commwatch-Fencing-Token"
VIEWER = "viewer-token-of-the-ha-tests"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    async with running_nats(tmp_path / "nats") as running:
        yield running


@pytest.fixture
async def js(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    async with jetstream(server.url) as context:
        yield context


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


def inventory_file(
    tmp_path: Path, name: str, receiver: WebhookReceiver, *, api: bool = False
) -> Path:
    """The inventory every central of the test reads: the same but for its history (and so
    its outbox), which is each central's own. `api`: with a viewer's token for the API."""
    folder = tmp_path / name
    folder.mkdir()
    sites = "".join(
        f"  - id: s{site}\n    links:\n"
        + "".join(
            f"      - id: {link}\n        checks: [{{id: tcp, kind: tcp, target: '127.0.0.1:9'}}]\n"
            for link in ("fibre", "lte")
        )
        for site in range(SITES)
    )
    path = folder / "inventory.yaml"
    path.write_text(
        f"history: {{path: {folder / 'history.sqlite3'}}}\n"
        f"cluster: {{lease_ttl: {TTL}s}}\n"
        + ("api: {tokens: [{role: viewer, token_env: CW_HA_VIEWER}]}\n" if api else "")
        + "alerts:\n"
        "  group_window: 500ms\n"
        "  retry_base: 100ms\n"
        "  retry_cap: 12s\n"
        f"  notifiers: [{{id: noc, kind: webhook, url: '{receiver.base_url}/noc'}}]\n"
        "defaults: {retries: 1}\n"
        "sites:\n" + sites
    )
    return path


def crit(site: int, link: str, step: int) -> bool:
    """The script of the burst: each site's fibre fails and comes back, and at every other
    site the lte fails meanwhile too (the site DOWN), at staggered times."""
    if link == "fibre":
        return 4 + 3 * site <= step < 14 + 3 * site
    return site % 2 == 0 and 8 + 2 * site <= step < 11 + 2 * site


def round_of(inv: Inventory, step: int) -> list[ProbeResult]:
    return [
        ProbeResult(
            check=check.ref,
            started_at=BASE + step * STEP,
            duration_ms=1.0,
            severity=Severity.CRIT
            if crit(int(check.ref.site_id[1:]), check.ref.link_id, step)
            else Severity.OK,
        )
        for check in inv.checks
    ]


async def publish_rounds(js: JetStreamContext, inv: Inventory, steps: range) -> None:
    """Round after round, STEP apart in real time as well: the stream's stored times, which
    the group windows go by, spread as an agent's results would."""
    for step in steps:
        await publish(js, *round_of(inv, step))
        await asyncio.sleep(STEP)


@dataclass
class Central:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    def said(self, text: str) -> bool:
        return text in self.log.read_text()

    async def until_said(self, text: str, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not self.said(text):
                assert self.process.returncode is None, self.log.read_text()
                await asyncio.sleep(0.05)
        assert self.process.returncode is None, self.log.read_text()

    async def api_url(self) -> str:
        """Where its API listens (`--listen 127.0.0.1:0`), as it printed it."""
        marker = "serving the engine on "
        await self.until_said(marker)
        return self.log.read_text().split(marker, 1)[1].split()[0]

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 30)


async def start_central(inventory: Path, server: NatsServer, name: str, *flags: str) -> Central:
    log = inventory.parent / "central.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "monitor.cli", "central", str(inventory)),
            *("--nats", server.url, "--name", name, *flags),
            cwd=REPO,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "NO_COLOR": "1"},
        )
    return Central(name, process, log)


@contextlib.asynccontextmanager
async def leader_and_follower(
    tmp_path: Path, server: NatsServer, receiver: WebhookReceiver, kv: KeyValue
) -> AsyncIterator[tuple[Central, Central]]:
    """Central a, once it leads, and central b once it follows a; both stopped at the end."""
    started: list[Central] = []
    try:
        a = await start_central(inventory_file(tmp_path, "a", receiver), server, "a")
        started.append(a)
        await until_holder(kv, "a")
        b = await start_central(inventory_file(tmp_path, "b", receiver), server, "b")
        started.append(b)
        await b.until_said("central b follows central a (fencing token")
        yield a, b
    finally:
        for central in started:
            await central.stop()


async def holder(kv: KeyValue) -> str | None:
    from nats.js.errors import KeyNotFoundError

    try:
        entry = await kv.get(KEY)
    except KeyNotFoundError:
        return None
    return json.loads(entry.value or b"{}").get("central")


async def until(condition: Callable[[], object], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def until_holder(kv: KeyValue, name: str, timeout: float = 30) -> float:
    """Seconds until the lease's value names `name`."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while await holder(kv) != name:
            await asyncio.sleep(0.02)
    return time.monotonic() - started


class Reference:
    """A central of the test's own, in this process, on the same stream, that never delivers
    (it only watches the lease): what it puts in its outbox is what one central that never
    failed makes of the results."""

    def __init__(self, monitor: Monitor, task: asyncio.Task[None], history: Path) -> None:
        self.monitor = monitor
        self.task = task
        self.history = history

    def keys(self) -> set[str]:
        with closing(sqlite3.connect(self.history)) as db:
            return {key for (key,) in db.execute("SELECT key FROM outbox WHERE notifier = 'noc'")}

    def waiting(self) -> int:
        """Events still in a group window."""
        with closing(sqlite3.connect(self.history)) as db:
            query = "SELECT count(*) FROM alert_inbox WHERE flushed_at IS NULL"
            return db.execute(query).fetchone()[0]


@contextlib.asynccontextmanager
async def reference(
    js: JetStreamContext, inventory: Path, name: str = "reference"
) -> AsyncIterator[Reference]:
    inv = load_inventory(inventory)
    leader_kv, ttl = await open_lease_bucket(js, TTL)
    notified = await open_notified_bucket(js, inv.resilience.alerts.retention)
    gate = LeaderGate(Lease(leader_kv, name, ttl, compete=False), notified)
    consumer = ResultConsumer(
        js, inv.checks, stream="COMMWATCH_RESULTS", history=None, durable=f"central-{name}"
    )
    monitor = Monitor(
        inv,
        inv.checks,
        on_result=lambda _result: None,
        on_event=lambda _event: None,
        history=False,
        source=consumer,
        arrivals=consumer.arrivals,
        alert_gate=gate,
    )
    task = asyncio.create_task(monitor.run())
    await asyncio.wait_for(monitor.ready.wait(), 30)
    try:
        yield Reference(monitor, task, inv.resilience.history.path)
    finally:
        monitor.stop()
        await asyncio.wait_for(task, 30)
        await consumer.aclose()


def tokens(requests: list[Received]) -> list[int]:
    return [int(r.headers[FENCING]) for r in requests]


async def until_all_notified(
    receiver: WebhookReceiver, ref: Reference, timeout: float = 60
) -> set[str]:
    """Waits until the reference has flushed every window and the receiver has accepted every
    message it made (or anything else); returns the reference's keys."""

    def done() -> bool:
        expected = ref.keys()
        got = {key for _, key in receiver.accepted}
        return ref.waiting() == 0 and bool(expected) and expected <= got

    try:
        await until(done, timeout)
    except TimeoutError:
        got = {key for _, key in receiver.accepted}
        pytest.fail(f"missing {ref.keys() - got}, unexpected {got - ref.keys()}", pytrace=False)
    await asyncio.sleep(1.5)  # anything more would come within a follower's look or two
    return ref.keys()


async def test_the_leader_killed_in_a_burst_every_notification_arrives_once(
    tmp_path: Path, server: NatsServer, js: JetStreamContext, receiver: WebhookReceiver
) -> None:
    kv, _ = await open_lease_bucket(js, TTL)
    inventory = inventory_file(tmp_path, "ref", receiver)
    inv = load_inventory(inventory)
    async with leader_and_follower(tmp_path, server, receiver, kv) as (a, b):
        async with reference(js, inventory) as ref:
            await publish_rounds(js, inv, range(16))
            assert receiver.accepted, "the leader delivered nothing before it was killed"
            a.process.kill()  # SIGKILL in the middle of the burst
            killed = time.monotonic()
            publishing = asyncio.create_task(publish_rounds(js, inv, range(16, 40)))
            await until_holder(kv, "b")
            takeover = time.monotonic() - killed
            await publishing
            expected = await until_all_notified(receiver, ref)
        assert b.said("central b leads now (fencing token")
    assert takeover < 2 * TTL, f"the follower took {takeover:.2f}s to take over"
    got = {key for _, key in receiver.accepted}
    assert got == expected, (expected - got, got - expected)
    assert len(expected) >= 10  # a burst of many messages, before and after the kill
    # A message the killed leader had sent but not yet recorded may come again, under the
    # same key: at most the one it had in flight (the notifier's concurrency is 1).
    assert len(receiver.duplicates) <= 1
    assert all(("/noc", r.key) in receiver.accepted for r in receiver.duplicates)
    old, new = tokens(receiver.requests)[0], tokens(receiver.requests)[-1]
    assert set(tokens(receiver.requests)) == {old, new} and new > old
    assert all(r.at > killed for r in receiver.requests if int(r.headers[FENCING]) == new)
    assert any(r.at < killed for r in receiver.requests)


async def test_a_stale_leader_sends_nothing_after_the_takeover(
    tmp_path: Path, server: NatsServer, js: JetStreamContext, receiver: WebhookReceiver
) -> None:
    """SIGSTOP the leader past its TTL with a message it has yet to deliver, due again when it
    runs again and not delivered by anyone meanwhile; SIGCONT it after the follower took over:
    it sends nothing more (by its own clock its lease is over; its renewal fails on the
    revision), and its fencing token is the lower."""
    kv, _ = await open_lease_bucket(js, TTL)
    inventory = inventory_file(tmp_path, "ref", receiver)
    inv = load_inventory(inventory)
    async with (
        leader_and_follower(tmp_path, server, receiver, kv) as (a, _b),
        reference(js, inventory) as ref,
    ):
        # The first message fails for the leader, to be retried 4 s later, and again for the
        # new leader, to be retried 12 s later: when the old one runs again, its retry is due
        # and nobody has delivered the message.
        receiver.fail("503", 1, retry_after="4")
        receiver.fail("503", 1, retry_after="12")
        await publish_rounds(js, inv, range(6))  # s0's fibre fails at round 4
        await a.until_said("attempt 1 failed: receiver answered HTTP 503")
        a.process.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        await until_holder(kv, "b")
        await receiver.wait_for(lambda r: len(r.requests) == 2, timeout=15)
        await asyncio.sleep(max(0.0, stopped + 6 - time.monotonic()))
        assert receiver.accepted == {}  # still undelivered
        a.process.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        await a.until_said("central a no longer leads (")
        await a.until_said("central a follows central b (fencing token")
        await publish_rounds(js, inv, range(6, 40))
        expected = await until_all_notified(receiver, ref)
    first, second = receiver.requests[:2]
    assert (first.status, second.status, first.key) == (503, 503, second.key)
    stale, fresh = tokens([first, second])
    assert fresh > stale
    assert all(int(r.headers[FENCING]) == fresh for r in receiver.requests[1:])
    assert not any(r.at > resumed and int(r.headers[FENCING]) == stale for r in receiver.requests)
    assert {key for _, key in receiver.accepted} == expected
    assert receiver.duplicates == []


async def test_a_central_catching_up_on_the_stream_makes_the_same_messages(
    tmp_path: Path, js: JetStreamContext, receiver: WebhookReceiver
) -> None:
    """One central judges the burst as it comes; another starts once it is over and takes it
    all from the stream at once. Their group windows go by the stream's times, not their own:
    the same messages under the same keys, so a follower that was behind would skip exactly
    what the leader delivered."""
    live_inventory = inventory_file(tmp_path, "live", receiver)
    inv = load_inventory(live_inventory)
    async with reference(js, live_inventory, "live") as live:
        await publish_rounds(js, inv, range(40))
        async with reference(js, inventory_file(tmp_path, "late", receiver), "late") as late:
            # Results go on coming, as agents keep probing: past the last window of the burst.
            await publish_rounds(js, inv, range(40, 48))
            await until(lambda: late.waiting() == 0 and live.waiting() == 0 and late.keys())
            assert late.keys() == live.keys()
    assert len(live.keys()) >= 10
    assert receiver.requests == []  # neither delivers: they only watch the lease


async def test_leadership_is_in_the_api_and_the_health_bodies(
    tmp_path: Path,
    server: NatsServer,
    js: JetStreamContext,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CW_HA_VIEWER", VIEWER)  # the inventory's api: token, by reference
    kv, _ = await open_lease_bucket(js, TTL)
    listen = ("--listen", "127.0.0.1:0")
    a = await start_central(inventory_file(tmp_path, "a", receiver, api=True), server, "a", *listen)
    b = None
    try:
        await until_holder(kv, "a")
        b = await start_central(
            inventory_file(tmp_path, "b", receiver, api=True), server, "b", *listen
        )
        await b.until_said("central b follows central a")
        headers = {"Authorization": f"Bearer {VIEWER}"}
        async with aiohttp.ClientSession(headers=headers) as session:

            async def get(central: Central, path: str) -> dict[str, object]:
                async with session.get(await central.api_url() + path) as response:
                    return await response.json()

            async with asyncio.timeout(30):
                while (ready := await get(b, "/readyz"))["status"] != "ready":
                    await asyncio.sleep(0.1)
            led, followed = await get(a, "/api/v1/cluster"), await get(b, "/api/v1/cluster")
            alive = await get(a, "/healthz")
        # A clean stop gives the lease up: the follower takes it at its next try, well
        # within the TTL it would otherwise wait for.
        await a.stop()
        handover = await until_holder(kv, "b")
    finally:
        for central in (a, b):
            if central is not None:
                await central.stop()
    assert "fencing_token" in led, led
    token = led["fencing_token"]
    assert isinstance(token, int) and token > 0
    assert led == {
        "central": "a",
        "consumer": "central-a",
        "role": "leader",
        "leader": "a",
        "fencing_token": token,
        "lease_ttl": TTL,
        "changes": 1,
    }
    assert followed == {**led, "central": "b", "consumer": "central-b", "role": "follower"}
    assert ready == {"status": "ready", "cluster": followed}
    assert alive == {"status": "ok", "cluster": led}
    assert handover < TTL
    assert a.said("central a no longer leads (this central is stopping)")


async def test_a_quorum_is_judged_alike_by_a_central_keeping_up_and_one_catching_up(
    tmp_path: Path, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vantage point's result counts for 2 intervals + timeout (2.5 s here). An agent whose
    clock is ahead (its result starts 30 s from now) must not make a central that reads the
    stream late judge the other vantage point stale where one keeping up judged it fresh:
    both judge as of when each result reached the stream, or their events (and the message
    keys made of them) would differ."""
    monkeypatch.setenv(VIEWER_ENV, CENTRAL_VIEWER)

    def inventory(name: str) -> Inventory:  # each central with a history of its own
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"history: {{path: {tmp_path / name}.sqlite3}}\n"
            "defaults: {retries: 1, interval: 1s, timeout: 500ms}\n"
            "sites:\n  - id: north\n    links:\n      - id: wan\n        checks:\n"
            "          - {id: c, kind: tcp, target: '127.0.0.1:9', vantage: [noc, psap],"
            " quorum: 2}\n"
        )
        return load_inventory(path)

    inv = inventory("live")
    (check,) = inv.checks
    now = time.time()

    def down(at: float) -> ProbeResult:
        return ProbeResult(check=check.ref, started_at=at, duration_ms=1.0, severity=Severity.CRIT)

    async with in_process_central(js, inv, durable="central-live", watched="north/wan/c") as live:
        await publish(js, down(now), agent="noc", headers={VANTAGE_HEADER: "noc"})
        await publish(js, down(now + 30), agent="psap", headers={VANTAGE_HEADER: "psap"})
        await live.seen.until(lambda: len(live.seen.results) == 2)
        await asyncio.sleep(max(0.0, now + 4 - time.time()))  # noc's result is old by now
        async with in_process_central(
            js, inventory("late"), durable="central-late", watched="north/wan/c"
        ) as late:
            await late.seen.until(lambda: len(late.seen.results) == 2)
    judged = [[r.severity for r in c.seen.results] for c in (live, late)]
    assert judged == [[Severity.WARN, Severity.CRIT]] * 2


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("NOC-A.example.net", "noc-a"),
        ("noc_east", "noc_east"),
        ("Leitstelle Süd", "leitstelle-s-d"),
        ("-x-", "x-"),
        ("", "central"),
        ("ä.example", "central"),
        ("a" * 80, "a" * 63),
    ],
)
def test_a_central_is_named_after_its_host_by_default(host: str, name: str) -> None:
    assert central_name(host) == name
