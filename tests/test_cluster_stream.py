"""The results stream on a real nats-server with JetStream: made with the duplicate window, the
subject and headers of a result, and a result published twice stored once."""

from __future__ import annotations

import json
import time

import nats
import pytest
from nats.js.api import StorageType, StreamConfig

from monitor.cluster.stream import (
    DUPLICATE_WINDOW,
    SUBJECTS,
    StreamError,
    ensure_stream,
    outgoing,
)
from monitor.config.cluster import vantage_name
from monitor.core.model import CheckRef, ProbeResult, Severity
from monitor.core.options import OptionError
from monitor.output import records
from tests.peers.nats_peers import running_nats

STREAM = "COMMWATCH_RESULTS"


def result(started_at: float, check_id: str = "north/fibre/tcp-sip") -> ProbeResult:
    site, link, _ = check_id.split("/")
    ref = CheckRef(
        check_id=check_id,
        site_id=site,
        link_id=f"{site}/{link}",
        kind="tcp",
        target="127.0.0.1:5060",
        host="127.0.0.1",
        tags=(),
    )
    return ProbeResult(
        check=ref,
        started_at=started_at,
        duration_ms=2.0,
        severity=Severity.OK,
        observations={"connect_ms": 1.5},
    )


async def stored(js, stream: str) -> list:
    sub = await js.pull_subscribe(SUBJECTS, stream=stream)
    messages = []
    while True:
        try:
            batch = await sub.fetch(100, timeout=0.5)
        except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either
            return messages
        messages += batch


async def test_a_result_published_twice_is_stored_once(tmp_path):
    async with running_nats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_stream(js, STREAM)
        await ensure_stream(js, STREAM)  # a second agent finds it made
        info = await js.stream_info(STREAM)
        assert info.config.subjects == [SUBJECTS]
        assert info.config.duplicate_window == DUPLICATE_WINDOW
        assert info.config.storage == StorageType.FILE

        started = time.time()
        first = outgoing("psap-north", result(started))
        assert first.subject == "commwatch.results.north.psap-north"
        expected_id = f"psap-north.north/fibre/tcp-sip.{round(started * 1e9)}"
        assert first.msg_id == expected_id
        for _ in range(2):
            ack = await js.publish(first.subject, first.data, headers=first.headers, stream=STREAM)
        assert ack.duplicate
        other = outgoing("psap-north", result(started + 30))
        await js.publish(other.subject, other.data, headers=other.headers, stream=STREAM)

        messages = await stored(js, STREAM)
        assert len(messages) == 2
        message = messages[0]
        assert message.subject == "commwatch.results.north.psap-north"
        assert message.headers["Nats-Msg-Id"] == expected_id
        assert message.headers["Commwatch-Agent"] == "psap-north"
        assert message.headers["Commwatch-Schema"] == str(records.SCHEMA_VERSION)
        assert json.loads(message.data) == records.result_record(result(started))
        await nc.close()


async def test_a_stream_without_our_subjects_is_refused(tmp_path):
    async with running_nats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="OTHER", subjects=["elsewhere.>"]))
        with pytest.raises(StreamError, match=r"exists without the subjects commwatch\.results\.>"):
            await ensure_stream(js, "OTHER")
        await nc.close()


def test_agent_and_pool_names_are_subject_tokens():
    assert vantage_name("psap-north_2") == "psap-north_2"
    for bad in ("", "a.b", "a*", ">", "North", "a b", "-a", 7):
        with pytest.raises(OptionError):
            vantage_name(bad)
