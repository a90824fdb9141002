"""The durable outbox and its delivery loop, against a real local webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest

from monitor.alerts.delivery import deliver, retry_after_seconds
from monitor.alerts.dispatcher import Dispatcher
from monitor.alerts.outbox import NewRow, Outbox, Problem, RowStatus
from monitor.config.alerts import NotifierConfig, NotifierKind, RetryPolicy
from monitor.core.events import Event, EventKind, Subject
from tests.peers.webhook_peers import WebhookReceiver

FAST = RetryPolicy(backoff_base=0.02, backoff_cap=0.1, give_up_after=60.0)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    peer = WebhookReceiver()
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "commwatch.db"


def notifier(url: str, **kwargs: object) -> NotifierConfig:
    values: dict[str, object] = {"id": "ops", "kind": NotifierKind.WEBHOOK, "timeout": 0.5}
    return NotifierConfig(url=url, **(values | kwargs))  # type: ignore[arg-type]


def rows(count: int, notifier_id: str = "ops", prefix: str = "k") -> list[NewRow]:
    return [
        NewRow(
            notifier_id=notifier_id,
            key=f"{prefix}{i:031d}",
            kind="alert",
            site_id="psap-north",
            content_type="application/json",
            body=b"{}",
        )
        for i in range(count)
    ]


def event(at: float, after: str = "CRIT") -> Event:
    return Event(
        at, Subject.LINK, "psap-north/fibre", "psap-north", EventKind.HARD, "OK", after, "x"
    )


@contextlib.asynccontextmanager
async def dispatching(
    db: Path, notifiers: Sequence[NotifierConfig], policy: RetryPolicy = FAST
) -> AsyncIterator[tuple[Outbox, Dispatcher]]:
    outbox = await Outbox(db).open()
    by_id = {n.id: n for n in notifiers}
    async with aiohttp.ClientSession() as session:
        dispatcher = Dispatcher(
            outbox,
            lambda row, token: deliver(session, by_id[row.notifier_id], row, time.time(), token),
            {n.id: n.concurrency for n in notifiers},
            policy,
            jitter=lambda: 0.5,
        )
        dispatcher.start()
        try:
            yield outbox, dispatcher
        finally:
            await dispatcher.aclose()
            await outbox.close()


async def wait_rows(outbox: Outbox, predicate, timeout: float = 5.0) -> list:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        current = await outbox.rows()
        if predicate(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox never reached the expected state: {current}")
        await asyncio.sleep(0.02)


async def enqueue(outbox: Outbox, dispatcher: Dispatcher, new: list[NewRow]) -> int:
    added = await outbox.commit(new, {}, [], time.time())
    dispatcher.wake()
    return added


# --- storage -------------------------------------------------------------------------------


async def test_an_event_is_accepted_once_and_waits_until_flushed(db: Path) -> None:
    outbox = await Outbox(db).open()
    try:
        first, second = event(1.0), event(2.0)
        assert await outbox.accept([first, second], 10.0) == [first, second]
        assert await outbox.accept([second, first], 11.0) == []
        assert [e for _, e in await outbox.waiting()] == [first, second]
        await outbox.commit([], {}, [first.event_id], 12.0)
        assert [e for _, e in await outbox.waiting()] == [second]
    finally:
        await outbox.close()


async def test_a_message_is_enqueued_once_per_notifier_and_key(db: Path) -> None:
    outbox = await Outbox(db).open()
    try:
        assert await outbox.commit(rows(2), {}, [], 1.0) == 2
        assert await outbox.commit(rows(3), {}, [], 2.0) == 1
        assert await outbox.commit(rows(1, notifier_id="pager"), {}, [], 3.0) == 1
        stored = await outbox.rows()
        assert [(r.notifier_id, r.key, r.created_at) for r in stored] == [
            ("ops", rows(1)[0].key, 1.0),
            ("ops", rows(2)[1].key, 1.0),
            ("ops", rows(3)[2].key, 2.0),
            ("pager", rows(1)[0].key, 3.0),
        ]
        for row in stored:
            assert (row.kind, row.site_id, row.content_type, row.body) == (
                "alert",
                "psap-north",
                "application/json",
                b"{}",
            )
            assert (row.status, row.attempts, row.last_error) == (RowStatus.PENDING, 0, None)
            assert row.next_attempt_at == row.created_at  # due at once
        assert await outbox.pending("pager", 10) == stored[3:]
    finally:
        await outbox.close()


async def test_problems_survive_a_reopen_and_close_with_none(db: Path) -> None:
    problem = Problem("ops", event(1.0), last_sent=5.0, renotified=2)
    outbox = await Outbox(db).open()
    await outbox.commit([], {("ops", problem.subject_key): problem}, [], 5.0)
    await outbox.close()
    outbox = await Outbox(db).open()
    try:
        assert await outbox.problems() == {("ops", "link:psap-north/fibre"): problem}
        await outbox.commit([], {("ops", problem.subject_key): None}, [], 6.0)
        assert await outbox.problems() == {}
    finally:
        await outbox.close()


async def test_shares_the_database_with_other_writers_without_holding_the_loop(db: Path) -> None:
    # Another connection (the history store) uses the same file in WAL mode and holds the
    # write lock for a while: storing alerts waits for it, the event loop does not.
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, at REAL)")
    outbox = await Outbox(db).open()
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO results (at) VALUES (1)")
        locked.set()
        release.wait(5)
        other.execute("COMMIT")

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(5)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        storing = asyncio.create_task(outbox.accept([event(1.0)], 1.0))
        await asyncio.sleep(0.3)
        assert not storing.done()
        assert ticks >= 10  # the loop kept running while the write waited for the lock
        release.set()
        assert len(await asyncio.wait_for(storing, 5)) == 1
        ticking.cancel()
        assert other.execute("SELECT count(*) FROM results").fetchone() == (1,)
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        release.set()
        holder.join()
        other.close()
        await outbox.close()


async def test_orphaned_and_old_rows(db: Path) -> None:
    outbox = await Outbox(db).open()
    try:
        problem = Problem("gone", event(1.0), last_sent=1.0)
        await outbox.commit(
            rows(1, "gone") + rows(1, "ops"), {("gone", problem.subject_key): problem}, [], 1.0
        )
        assert await outbox.fail_orphans(["ops"], 2.0) == 1
        assert await outbox.problems() == {}
        by_notifier = {r.notifier_id: r for r in await outbox.rows()}
        assert by_notifier["gone"].status is RowStatus.FAILED
        assert by_notifier["gone"].last_error == "notifier no longer configured"
        assert by_notifier["ops"].status is RowStatus.PENDING
        await outbox.prune(before=3.0)
        # Finished rows go, pending ones stay however old.
        assert [r.notifier_id for r in await outbox.rows()] == ["ops"]
    finally:
        await outbox.close()


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff_base=2.0, backoff_cap=600.0)
    assert policy.delay(1, 0.0) == 1.0
    assert policy.delay(1, 0.999) == pytest.approx(2.0, abs=0.01)
    assert policy.delay(4, 0.0) == 8.0
    assert policy.delay(50, 0.0) == 300.0
    assert policy.delay(10_000, 0.999) <= 600.0


# --- delivery ------------------------------------------------------------------------------


async def test_retries_server_errors_then_delivers_exactly_once(
    db: Path, receiver: WebhookReceiver
) -> None:
    receiver.fail("500", 3)
    async with dispatching(db, [notifier(receiver.base_url + "/ops")]) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(1))
        (row,) = await wait_rows(outbox, lambda r: r[0].status is RowStatus.DELIVERED)
    assert row.attempts == 4
    # A delivered row keeps its last failure: how it got through is worth knowing.
    assert row.last_error == "receiver answered HTTP 500 Internal Server Error"
    assert [r.status for r in receiver.requests] == [500, 500, 500, 200]
    assert len(receiver.accepted) == 1 and receiver.duplicates == []
    assert {r.key for r in receiver.requests} == {row.key}  # the same key on every attempt
    # Every attempt sends the stored body as is, with its key and type.
    for request in receiver.requests:
        assert (request.path, request.body) == ("/ops", row.body)
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == "commwatch/0.1.0"
        assert "X-Commwatch-Signature" not in request.headers  # no secret: not signed


async def test_a_hanging_receiver_times_out_and_is_retried(
    db: Path, receiver: WebhookReceiver
) -> None:
    receiver.fail("hang", 2)
    started = time.monotonic()
    ops = notifier(receiver.base_url + "/ops", timeout=0.2)
    async with dispatching(db, [ops]) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(1))
        (row,) = await wait_rows(outbox, lambda r: r[0].status is RowStatus.DELIVERED)
    assert row.attempts == 3
    assert row.last_error == "no answer within 0.2s"
    assert 0.4 <= time.monotonic() - started < 3
    assert len(receiver.accepted) == 1 and receiver.duplicates == []


async def test_a_receiver_that_is_down_gets_the_backlog_when_it_returns(
    db: Path, receiver: WebhookReceiver
) -> None:
    await receiver.stop()
    async with dispatching(db, [notifier(receiver.base_url + "/ops")]) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(3))
        stored = await wait_rows(outbox, lambda r: all(row.attempts >= 2 for row in r))
        for row in stored:
            assert row.status is RowStatus.PENDING
            assert (row.last_error or "").startswith("cannot connect: ")
            assert "/ops" not in (row.last_error or "")  # the path of a webhook is its key
        await receiver.start()
        await wait_rows(outbox, lambda r: all(row.status is RowStatus.DELIVERED for row in r))
    assert len(receiver.accepted) == 3 and receiver.duplicates == []


@pytest.mark.parametrize("status", [400, 404, 410])
async def test_a_rejected_message_fails_permanently(
    db: Path, receiver: WebhookReceiver, status: int
) -> None:
    receiver.fail(str(status), 100)
    async with dispatching(db, [notifier(receiver.base_url + "/ops")]) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(1))
        (row,) = await wait_rows(outbox, lambda r: r[0].status is RowStatus.FAILED)
        await asyncio.sleep(0.3)  # several backoffs: nothing more is sent
    assert row.attempts == 1
    reason = {400: "Bad Request", 404: "Not Found", 410: "Gone"}[status]
    assert row.last_error == f"receiver rejected the message: HTTP {status} {reason}"
    assert len(receiver.requests) == 1


async def test_a_redirect_is_not_followed(db: Path, receiver: WebhookReceiver) -> None:
    # Followed, the message would reach /elsewhere and be accepted there.
    receiver.fail("307", 1, location=receiver.base_url + "/elsewhere")
    async with dispatching(db, [notifier(receiver.base_url + "/ops")]) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(1))
        (row,) = await wait_rows(outbox, lambda r: r[0].status is RowStatus.FAILED)
        await asyncio.sleep(0.2)  # several backoffs: nothing more is sent
    assert row.last_error == (
        "receiver redirected (HTTP 307 Temporary Redirect): configure the final URL instead"
    )
    assert row.attempts == 1
    assert [r.path for r in receiver.requests] == ["/ops"]
    assert receiver.accepted == {}


@pytest.mark.parametrize("status", [408, 429, 503])
async def test_throttling_and_timeouts_are_retried(
    db: Path, receiver: WebhookReceiver, status: int
) -> None:
    receiver.fail(str(status), 2)
    async with dispatching(db, [notifier(receiver.base_url + "/ops")]) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(1))
        (row,) = await wait_rows(outbox, lambda r: r[0].status is RowStatus.DELIVERED)
    assert row.attempts == 3
    reason = {408: "Request Timeout", 429: "Too Many Requests", 503: "Service Unavailable"}
    assert row.last_error == f"receiver answered HTTP {status} {reason[status]}"
    assert [r.status for r in receiver.requests] == [status, status, 200]
    assert len(receiver.accepted) == 1 and receiver.duplicates == []


async def test_retry_after_is_honoured_within_the_cap(db: Path, receiver: WebhookReceiver) -> None:
    receiver.fail("429", 1, retry_after="1")
    policy = RetryPolicy(backoff_base=0.01, backoff_cap=2.0)
    ops = notifier(receiver.base_url + "/ops")
    async with dispatching(db, [ops], policy) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(1))
        await receiver.wait_for(lambda r: len(r.accepted) == 1, timeout=5)
    first, second = receiver.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95  # not the 10 ms backoff alone


async def test_concurrency_per_notifier_is_bounded(db: Path, receiver: WebhookReceiver) -> None:
    receiver.delay = 0.1
    ops = notifier(receiver.base_url + "/ops", concurrency=2)
    async with dispatching(db, [ops]) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(6))
        await wait_rows(outbox, lambda r: all(row.status is RowStatus.DELIVERED for row in r))
    assert receiver.max_in_flight == 2
    assert len(receiver.accepted) == 6


async def test_a_stale_message_is_given_up(db: Path, receiver: WebhookReceiver) -> None:
    receiver.fail("500", 1000)
    policy = RetryPolicy(backoff_base=0.02, backoff_cap=0.05, give_up_after=0.3)
    async with dispatching(db, [notifier(receiver.base_url + "/ops")], policy) as (ob, disp):
        await enqueue(ob, disp, rows(1))
        (row,) = await wait_rows(ob, lambda r: r[0].status is RowStatus.FAILED)
    assert row.attempts > 2
    assert row.last_error == (
        f"receiver answered HTTP 500 Internal Server Error; gave up after {row.attempts} attempts"
    )
    assert len(receiver.requests) == row.attempts


async def test_pending_rows_resume_after_restart_and_delivered_ones_are_not_resent(
    db: Path, receiver: WebhookReceiver
) -> None:
    ops = notifier(receiver.base_url + "/ops")
    async with dispatching(db, [ops]) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(2, prefix="a"))
        await wait_rows(outbox, lambda r: all(row.status is RowStatus.DELIVERED for row in r))
    await receiver.stop()
    async with dispatching(db, [ops]) as (outbox, dispatcher):
        await enqueue(outbox, dispatcher, rows(2, prefix="b"))
        await wait_rows(outbox, lambda r: sum(row.attempts for row in r) >= 4)
    await receiver.start()
    async with dispatching(db, [ops]) as (outbox, dispatcher):
        await wait_rows(outbox, lambda r: all(row.status is RowStatus.DELIVERED for row in r))
        # The same messages again (a replay): nothing new to send.
        assert await enqueue(outbox, dispatcher, rows(2, prefix="a") + rows(2, prefix="b")) == 0
        await asyncio.sleep(0.2)
    assert sorted(key for _, key in receiver.accepted) == sorted(
        r.key for r in rows(2, prefix="a") + rows(2, prefix="b")
    )
    assert receiver.duplicates == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),  # an HTTP-date, 10 s after `now`
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("²", None),  # str.isdigit() says yes; float() says no
        ("٨٠", None),
        ("9" * 5000, None),
        ("1.5", None),
        ("-1", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:10", None),  # no zone: not an HTTP-date
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_delay_seconds_and_http_dates_only(
    header: str | None, seconds: float | None
) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after_seconds(header, now=now) == seconds


async def test_a_retry_after_no_parser_reads_is_an_ordinary_retry(
    db: Path, receiver: WebhookReceiver
) -> None:
    receiver.fail("503", 1, retry_after="²")
    policy = RetryPolicy(backoff_base=0.01, backoff_cap=2.0)
    async with dispatching(db, [notifier(receiver.base_url + "/ops")], policy) as (outbox, disp):
        await enqueue(outbox, disp, rows(1))
        (row,) = await wait_rows(outbox, lambda r: r[0].status is RowStatus.DELIVERED)
    assert row.attempts == 2
    assert row.last_error == "receiver answered HTTP 503 Service Unavailable"


async def test_the_outbox_makes_its_folder_when_it_is_the_first_to_write(tmp_path: Path) -> None:
    # `commwatch run --no-history` on a fresh machine: nothing else made the state folder.
    path = tmp_path / "state" / "commwatch" / "outbox.sqlite3"
    outbox = await Outbox(path).open()
    await outbox.close()
    assert path.is_file()
