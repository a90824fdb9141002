"""The leader lease (monitor.cluster.lease) against a real nats-server's key-value store: won by
create, the fencing token the revision it was won at, renewed by compare-and-set, lost to
another writer, to expiry and to a stalled clock, handed over at once on release."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from monitor.cluster.buckets import LEADER
from monitor.cluster.lease import KEY, Lease, LeaseError, Role, open_lease_bucket
from tests.peers.nats_peers import NatsServer, running_nats

TTL = 1.0  # the shortest the configuration allows: every test here waits a few of them


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    async with running_nats(tmp_path / "nats") as running:
        yield running


async def connected(server: NatsServer) -> Client:
    async def quiet(_exc: Exception) -> None:
        pass  # nats-py's default prints every failed reconnection

    return await nats.connect(
        server.url,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        connect_timeout=2,
        error_cb=quiet,
    )


@pytest.fixture
async def js(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    client = await connected(server)
    yield client.jetstream()
    await client.close()


@pytest.fixture
async def kv(js: JetStreamContext) -> KeyValue:
    bucket, ttl = await open_lease_bucket(js, TTL)
    assert ttl == TTL
    return bucket


@contextlib.asynccontextmanager
async def running(lease: Lease) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(lease.run())
    try:
        yield task
    finally:
        lease.stop()
        await asyncio.gather(task, return_exceptions=True)


async def until(condition: Callable[[], bool], timeout: float = 10 * TTL) -> float:
    """Seconds it took for `condition` to hold (fails after `timeout`)."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
    return time.monotonic() - started


async def stored(kv: KeyValue) -> dict[str, object]:
    entry = await kv.get(KEY)
    return json.loads(entry.value or b"")


async def test_the_first_central_wins_and_its_token_is_the_revision_it_won_at(
    kv: KeyValue,
) -> None:
    north, south = Lease(kv, "north", TTL), Lease(kv, "south", TTL)
    async with running(north):
        await until(lambda: north.token() is not None)
        token = north.token()
        value = await stored(kv)
        assert value["central"] == "north" and value["token"] == token
        assert isinstance(value["expires_at"], float) and value["expires_at"] > time.time()
        async with running(south):
            await until(lambda: south.figures().holder == "north")
            figures = south.figures()
            assert (figures.role, figures.leader, figures.token) == (Role.FOLLOWER, False, token)
            assert south.token() is None
        figures = north.figures()
        assert (figures.role, figures.leader, figures.holder) == (Role.LEADER, True, "north")


async def test_renewals_keep_the_lease_for_many_ttls(kv: KeyValue) -> None:
    north, south = Lease(kv, "north", TTL), Lease(kv, "south", TTL)
    async with running(north):
        await until(lambda: north.token() is not None)
        token = north.token()
        first = (await kv.get(KEY)).revision
        async with running(south):
            await asyncio.sleep(4 * TTL)
            assert north.token() == token and south.token() is None
        assert (await kv.get(KEY)).revision > first + 4  # renewed every third of the TTL


async def test_a_compare_and_set_that_fails_loses_the_lease(
    kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    north = Lease(kv, "north", TTL)
    async with running(north):
        await until(lambda: north.token() is not None)
        entry = await kv.get(KEY)
        # Another central wrote the key (as after a partition): the next renewal finds out.
        await kv.update(KEY, b'{"central":"south","token":null}', last=entry.revision)
        took = await until(lambda: north.token() is None)
        assert took < TTL  # at the next renewal, not at the end of the TTL
        await until(lambda: north.figures().holder == "south")
    lines = [r.getMessage() for r in caplog.records if r.name == "commwatch.lease"]
    lost = "central north no longer leads (another central took it over: central south holds"
    assert any(line.startswith(lost) for line in lines), lines
    follows = "central north follows central south (fencing token"
    assert any(line.startswith(follows) for line in lines), lines


async def test_a_dead_holder_is_replaced_within_two_ttls_by_a_higher_token(
    kv: KeyValue,
) -> None:
    north, south = Lease(kv, "north", TTL), Lease(kv, "south", TTL)
    task = asyncio.create_task(north.run())
    await until(lambda: north.token() is not None)
    old = north.token()
    assert old is not None
    async with running(south):
        await until(lambda: south.figures().holder == "north")
        task.cancel()  # as if killed: no release, no more renewals
        await asyncio.gather(task, return_exceptions=True)
        took = await until(lambda: south.token() is not None)
        assert took < 2 * TTL
        new = south.token()
        assert new is not None and new > old
        assert (await stored(kv))["central"] == "south"


async def test_a_holder_whose_own_clock_ran_past_the_ttl_stops_at_once(kv: KeyValue) -> None:
    """A process stopped (SIGSTOP) or starved past its TTL acts on nothing when it runs again,
    before any answer from NATS: its own monotonic clock says the lease is over."""
    now = [0.0]
    north = Lease(kv, "north", TTL, clock=lambda: now[0] + time.monotonic())
    async with running(north):
        await until(lambda: north.token() is not None)
        now[0] += TTL
        assert north.token() is None
        assert north.figures().leader is False


async def test_release_hands_the_lease_over_at_once(kv: KeyValue) -> None:
    north, south = Lease(kv, "north", TTL * 5), Lease(kv, "south", TTL * 5)
    task = asyncio.create_task(north.run())
    await until(lambda: north.token() is not None)
    async with running(south):
        await until(lambda: south.figures().holder == "north")
        north.stop()
        await task
        await north.release()
        assert north.token() is None
        # Well before the 5 s the key would take to expire: at south's next try.
        took = await until(lambda: south.token() is not None)
        assert took < 5 * TTL * 0.5


async def test_its_own_win_whose_answer_was_lost_is_claimed_not_waited_out(
    kv: KeyValue,
) -> None:
    # The key holds this process's value from a create whose answer never came back.
    value = b'{"central":"north","instance":"0123abcd","token":null,"expires_at":0}'
    revision = await kv.create(KEY, value)
    north = Lease(kv, "north", TTL * 5, instance="0123abcd")
    async with running(north):
        took = await until(lambda: north.token() is not None)
        assert north.token() == revision
        assert took < TTL  # not after the 5 s TTL


async def test_a_central_restarted_under_its_name_waits_for_its_predecessors_lease(
    kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    """The dead process's lease is not taken for its own by the next process of that name
    (nor by a second central given the same name by mistake): it expires first."""
    before = Lease(kv, "north", TTL)
    task = asyncio.create_task(before.run())
    await until(lambda: before.token() is not None)
    old = before.token()
    assert old is not None
    task.cancel()  # killed
    await asyncio.gather(task, return_exceptions=True)
    after = Lease(kv, "north", TTL)
    started = time.monotonic()
    async with running(after):
        await until(lambda: after.figures().holder == "north")
        assert after.token() is None
        await until(lambda: after.token() is not None)
        assert time.monotonic() - started > TTL / 2  # waited for the old key to expire
        token = after.token()
        assert token is not None and token > old
    assert "central north finds the lease held by another process of its name" in caplog.text


async def test_a_central_without_alerting_watches_and_never_takes_the_lease(
    kv: KeyValue,
) -> None:
    observer = Lease(kv, "noc", TTL, compete=False)
    async with running(observer):
        await asyncio.sleep(2 * TTL)
        assert observer.figures().role is Role.OBSERVER and observer.token() is None
        with pytest.raises(Exception, match="key not found"):
            await kv.get(KEY)
        north = Lease(kv, "north", TTL)
        async with running(north):
            await until(lambda: observer.figures().holder == "north")


async def test_a_holder_cut_off_from_nats_stops_within_its_ttl(
    server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await connected(server)
    kv, _ = await open_lease_bucket(client.jetstream(), TTL)
    north = Lease(kv, "north", TTL)
    async with running(north):
        await until(lambda: north.token() is not None)
        server.stop()
        took = await until(lambda: north.token() is None)
        assert took < TTL
    with contextlib.suppress(OSError):  # the server is gone: nothing to flush to
        await client.close()
    assert any(
        "central north no longer leads (not renewed within its TTL" in r.getMessage()
        for r in caplog.records
    )


async def test_a_bucket_without_ttl_is_refused_and_another_ttl_is_the_buckets(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    await js.create_key_value(KeyValueConfig(bucket=LEADER, history=1))
    with pytest.raises(LeaseError, match="has no TTL, so a dead leader would keep the lease"):
        await open_lease_bucket(js, TTL)
    await js.delete_key_value(LEADER)
    await js.create_key_value(KeyValueConfig(bucket=LEADER, history=1, ttl=3.0))
    with caplog.at_level(logging.WARNING):
        _, ttl = await open_lease_bucket(js, TTL)
    assert ttl == 3.0
    assert "was made with a TTL of 3s, not the 1s of cluster: lease_ttl:" in caplog.text


async def test_a_bucket_that_cannot_be_opened_says_so_without_a_traceback(
    server: NatsServer,
) -> None:
    client = await connected(server)
    js = client.jetstream()
    await client.close()
    with pytest.raises(LeaseError) as raised:
        await open_lease_bucket(js, TTL)
    assert str(raised.value) == (
        "cannot open the key-value bucket commwatch_leader (ConnectionClosedError): the central "
        "needs JetStream's key-value store, and its NATS user the right to use it"
    )
