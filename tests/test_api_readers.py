"""Records read back: a viewer's `ProbeResult` renders as the engine's did (the same record,
summary, plugin line and perfdata) for real results of real probes, certificates and
lower-is-worse thresholds included; events likewise; a malformed record is a RecordError."""

from __future__ import annotations

import datetime as dt

import pytest

from monitor.api.readers import RecordError, event_from_record, result_from_record
from monitor.config.checks import adhoc_check
from monitor.core.events import CheckStatus, Event, EventKind, Subject, Suppression
from monitor.core.model import ProbeResult, Severity, Verdict
from monitor.engine.runner import run_check
from monitor.output.plugin import nagios_line
from monitor.output.records import event_record, result_record
from tests.peers.pki import make_ca, make_leaf, server_context
from tests.peers.tcp_peers import accepting_listener, closed_port
from tests.peers.tls_peers import LOOPBACK, tls_server


def later(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


def assert_reads_back(result):
    record = result_record(result)
    read = result_from_record(record, result.check)
    assert result_record(read) == record
    assert read.summary() == result.summary()
    assert nagios_line(read) == nagios_line(result)
    # A threshold's direction (the plugin ranges' "30:" form) comes back from its words.
    assert [v.higher_is_worse for v in read.verdicts] == [
        v.higher_is_worse for v in result.verdicts
    ]


async def ok_tls_result(shared, tmp_path):
    """A real TLS check's result against a server whose certificate has 200 days left."""
    root = make_ca("viewer test root", not_after=later(3650), path_length=None)
    leaf = make_leaf(root, [LOOPBACK], not_after=later(200))
    ca_file = tmp_path / "root.pem"
    ca_file.write_bytes(root.cert_pem)
    with tls_server(server_context(leaf, tmp_path, ())) as port:
        check = adhoc_check(
            "tls", {"target": f"{LOOPBACK}:{port}", "ca_file": str(ca_file), "timeout": "2s"}
        )
        result = await run_check(check, shared)
    return result


async def test_an_ok_tls_result_keeps_its_headline_summary(shared, tmp_path):
    result = await ok_tls_result(shared, tmp_path)
    assert result.severity.name == "OK"
    assert any(v.headline for v in result.verdicts)
    read = result_from_record(result_record(result), result.check)
    assert [v.headline for v in read.verdicts] == [v.headline for v in result.verdicts]
    assert_reads_back(result)


def without_headlines(record):
    """The record as an engine before the verdicts' `headline` field wrote it."""
    return {
        **record,
        "verdicts": [
            {k: v for k, v in verdict.items() if k != "headline"} for verdict in record["verdicts"]
        ],
    }


async def test_records_with_and_without_headlines_read_back_alike(shared, tmp_path):
    result = await ok_tls_result(shared, tmp_path)
    record = result_record(result)
    assert [v["headline"] for v in record["verdicts"]] == [v.headline for v in result.verdicts]
    read = result_from_record(record, result.check)
    assert read == result_from_record(without_headlines(record), result.check)
    assert read.verdicts == result.verdicts


def test_a_headline_the_summary_cannot_tell_is_read_from_the_record():
    # Every measured finding a headline: the summary is the same with or without the flags,
    # so only the record's field can say which they were.
    ref = adhoc_check("tcp", {"target": "127.0.0.1:1"}).ref
    verdict = Verdict(
        condition="latency",
        observation="connect_ms",
        value=3.0,
        threshold="warn > 200ms",
        severity=Severity.OK,
        unit="ms",
        warn=200.0,
        crit=None,
        finding="connected in 3ms",
        headline=True,
    )
    result = ProbeResult(ref, 1_750_000_000.0, 3.0, Severity.OK, {"connect_ms": 3.0}, (verdict,))
    read = result_from_record(result_record(result), ref)
    assert read == result
    assert read.verdicts[0].headline
    assert (
        not result_from_record(without_headlines(result_record(result)), ref).verdicts[0].headline
    )


@pytest.mark.parametrize("headline", ["yes", 1, None])
def test_a_headline_that_is_not_a_boolean_is_a_record_error(headline):
    ref = adhoc_check("tcp", {"target": "127.0.0.1:1"}).ref
    verdict = Verdict("latency", "connect_ms", 3.0, "warn > 200ms", Severity.OK, "ms", 200.0, None)
    record = result_record(ProbeResult(ref, 1_750_000_000.0, 3.0, Severity.OK, {}, (verdict,)))
    record["verdicts"][0]["headline"] = headline
    with pytest.raises(RecordError, match="the engine sent a result"):
        result_from_record(record, ref)


async def test_tcp_results_read_back(shared):
    async with accepting_listener() as port:
        assert_reads_back(
            await run_check(
                adhoc_check("tcp", {"target": f"127.0.0.1:{port}", "latency_warn": "1s"}), shared
            )
        )
    refused = await run_check(adhoc_check("tcp", {"target": f"127.0.0.1:{closed_port()}"}), shared)
    assert refused.error is not None
    assert_reads_back(refused)


async def test_a_tls_result_with_its_chain_and_days_left_reads_back(shared, tmp_path):
    root = make_ca("viewer test root", not_after=later(3650), path_length=None)
    intermediate = make_ca("viewer test intermediate", issuer=root, not_after=later(1000))
    leaf = make_leaf(intermediate, [LOOPBACK], not_after=later(20))  # below warn_days 30
    ca_file = tmp_path / "root.pem"
    ca_file.write_bytes(root.cert_pem)
    with tls_server(server_context(leaf, tmp_path, (intermediate,))) as port:
        check = adhoc_check(
            "tls", {"target": f"{LOOPBACK}:{port}", "ca_file": str(ca_file), "timeout": "2s"}
        )
        result = await run_check(check, shared)
    assert result.certificates and result.severity.name == "WARN"
    assert any(not v.higher_is_worse for v in result.verdicts)  # days left: lower is worse
    assert_reads_back(result)


def test_events_read_back():
    event = Event(
        1_750_000_000.25,
        Subject.CHECK,
        "psap/fibre/router",
        "psap",
        EventKind.HARD,
        CheckStatus.OK,
        CheckStatus.CRIT,
        "refused: Connection refused",
        (Suppression.MAINTENANCE,),
    )
    record = event_record(event)
    read = event_from_record(record)
    assert event_record(read) | {"event_id": record["event_id"]} == record
    assert (read.before, read.after, read.suppressed) == (
        CheckStatus.OK,
        CheckStatus.CRIT,
        (Suppression.MAINTENANCE,),
    )


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("severity"),
        lambda r: r.update(severity="FINE"),
        lambda r: r.update(started_at="yesterday"),
        lambda r: r.update(started_at="2026-01-01T00:00:00"),  # no offset
        lambda r: r.update(duration_ms="12"),
        lambda r: r.update(verdicts=[{"condition": "latency"}]),
        lambda r: r.update(observations={"x": {"nested": 1}}),
        lambda r: r.update(error={"class": "no such class", "message": ""}),
    ],
)
async def test_a_malformed_result_record_is_a_record_error(shared, damage):
    result = await run_check(adhoc_check("tcp", {"target": f"127.0.0.1:{closed_port()}"}), shared)
    record = result_record(result)
    damage(record)
    with pytest.raises(RecordError, match="the engine sent a result"):
        result_from_record(record)
