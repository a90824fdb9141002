"""The http probe against real peers on 127.0.0.1, driven the way the engine and CLI drive it."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config.checks import adhoc_check
from monitor.core.conditions import Expectation
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.core.options import OptionError
from monitor.engine.runner import run_check
from probes.base import SharedResources
from tests.peers.http_peers import (
    HUGE_BYTES,
    LOOPBACK,
    OK_BODY,
    SECRET_HEADER,
    HttpPeer,
    closed_port,
    http_server,
    raw_server,
)
from tests.peers.pki import Issued, make_ca, make_leaf, server_context

SECRET_VALUE = "s3cret-token-4711"
OK, CRIT = Severity.OK, Severity.CRIT


@pytest.fixture
async def shared() -> AsyncIterator[SharedResources]:
    resources = SharedResources()
    yield resources
    await resources.aclose()


@pytest.fixture
async def peer() -> AsyncIterator[HttpPeer]:
    async with http_server() as server:
        yield server


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture
def ca_file(ca: Issued, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_bytes(ca.cert_pem)
    return str(path)


@pytest.fixture
async def tls_peer(ca: Issued, tmp_path: Path) -> AsyncIterator[HttpPeer]:
    leaf = make_leaf(ca, [LOOPBACK])
    async with http_server(server_context(leaf, tmp_path)) as server:
        yield server


async def probe(shared: SharedResources, **values: Any) -> ProbeResult:
    return await run_check(adhoc_check("http", values), shared)


def status_expectation(**values: Any) -> Expectation:
    check = adhoc_check("http", {"target": f"http://{LOOPBACK}/", **values})
    return next(c for c in check.probe.conditions(check.options) if c.condition == "status")


# --- answers judged on status, latency and body ----------------------------------------------


async def test_ok_records_status_latency_and_body(peer: HttpPeer, shared: SharedResources) -> None:
    result = await probe(shared, target=f"{peer.url}/ok")

    assert result.severity is Severity.OK, result.summary()
    assert result.error is None
    obs = result.observations
    assert obs["status"] == 200
    assert obs["body_bytes"] == len(OK_BODY)
    assert obs["body_truncated"] is False
    assert obs["url"] == f"{peer.url}/ok"
    assert obs["redirects"] == 0
    assert 0 < obs["latency_ms"] <= obs["total_ms"]
    assert "tls_version" not in obs
    verdicts = {v.condition: v for v in result.verdicts}
    assert verdicts.keys() == {"status", "latency"}
    status, latency = verdicts["status"], verdicts["latency"]
    assert (status.value, status.threshold, status.severity) == (200, "expected 200-399", OK)
    assert (latency.value, latency.threshold, latency.severity) == (
        obs["latency_ms"],
        "no threshold",
        OK,
    )
    assert re.fullmatch(r"HTTP 200, latency [0-9.]+ms", result.summary()), result.summary()
    assert peer.seen.requests == [("GET", "/ok")]


@pytest.mark.parametrize("code", [500, 404])
async def test_error_status_is_crit(peer: HttpPeer, shared: SharedResources, code: int) -> None:
    result = await probe(shared, target=f"{peer.url}/status/{code}")

    assert result.severity is Severity.CRIT
    assert result.error is None
    status = next(v for v in result.verdicts if v.condition == "status")
    assert (status.value, status.severity) == (code, Severity.CRIT)
    assert status.threshold == "expected 200-399"
    assert result.observations["status"] == code
    assert f"{code}" in result.summary() and "expected 200-399" in result.summary()
    assert peer.seen.requests == [("GET", f"/status/{code}")]


async def test_expected_error_status_is_ok(peer: HttpPeer, shared: SharedResources) -> None:
    result = await probe(shared, target=f"{peer.url}/status/404", expect_status=[200, "400-404"])

    assert result.severity is Severity.OK, result.summary()
    assert result.error is None
    assert result.observations["status"] == 404
    status = next(v for v in result.verdicts if v.condition == "status")
    assert (status.value, status.threshold, status.severity) == (404, "expected 200, 400-404", OK)
    assert result.summary().startswith("HTTP 404, latency ")
    assert peer.seen.requests == [("GET", "/status/404")]


async def test_slow_answer_breaches_latency_warn(peer: HttpPeer, shared: SharedResources) -> None:
    result = await probe(shared, target=f"{peer.url}/slow", latency_warn="50ms", latency_crit="5s")

    assert result.severity is Severity.WARN, result.summary()
    latency = next(v for v in result.verdicts if v.condition == "latency")
    assert latency.severity is Severity.WARN
    assert latency.value >= 150


@pytest.mark.parametrize(
    ("values", "severity"),
    [
        ({"body_contains": "link up"}, Severity.OK),
        ({"body_contains": "link down"}, Severity.CRIT),
        ({"body_regex": r"peer: \w+ up"}, Severity.OK),
        ({"body_regex": r"^down"}, Severity.CRIT),
    ],
)
async def test_body_match(
    peer: HttpPeer, shared: SharedResources, values: dict[str, str], severity: Severity
) -> None:
    result = await probe(shared, target=f"{peer.url}/ok", **values)

    assert result.severity is severity, result.summary()
    (condition,) = values
    verdict = next(v for v in result.verdicts if v.condition == condition)
    assert verdict.severity is severity
    assert result.observations[f"{condition}_match"] is (severity is Severity.OK)


async def test_unknown_charset_is_matched_as_utf8(peer: HttpPeer, shared: SharedResources) -> None:
    result = await probe(shared, target=f"{peer.url}/odd-charset", body_contains="link up")

    assert result.severity is Severity.OK, result.summary()
    assert result.observations["body_contains_match"] is True
    matched = next(v for v in result.verdicts if v.condition == "body_contains")
    assert (matched.value, matched.severity) == (True, OK)


async def test_huge_body_is_read_only_up_to_the_cap(
    peer: HttpPeer, shared: SharedResources
) -> None:
    result = await probe(
        shared, target=f"{peer.url}/huge", max_body_bytes=256 * 1024, body_contains="nowhere"
    )

    assert result.error is None
    assert result.observations["body_bytes"] == 256 * 1024 < HUGE_BYTES
    assert result.observations["body_truncated"] is True
    assert result.observations["body_contains_match"] is False
    assert result.severity is Severity.CRIT


async def test_head_request_reads_no_body(peer: HttpPeer, shared: SharedResources) -> None:
    result = await probe(shared, target=f"{peer.url}/ok", method="HEAD")

    assert result.severity is Severity.OK, result.summary()
    assert peer.seen.methods == ["HEAD"]
    assert peer.seen.requests == [("HEAD", "/ok")]
    assert result.observations["body_bytes"] == 0
    assert result.observations["status"] == 200


# --- redirects ---------------------------------------------------------------------------------


async def test_redirect_is_followed(peer: HttpPeer, shared: SharedResources) -> None:
    result = await probe(shared, target=f"{peer.url}/redirect/1")

    assert result.severity is Severity.OK, result.summary()
    assert result.observations["status"] == 200
    assert result.observations["redirects"] == 1
    assert result.observations["url"] == f"{peer.url}/ok"
    assert result.observations["body_bytes"] == len(OK_BODY)
    assert peer.seen.requests == [("GET", "/redirect/1"), ("GET", "/ok")]


async def test_unfollowed_redirect_is_the_final_status(
    peer: HttpPeer, shared: SharedResources
) -> None:
    lenient = await probe(shared, target=f"{peer.url}/redirect/1", follow_redirects=False)
    strict = await probe(
        shared, target=f"{peer.url}/redirect/1", follow_redirects=False, expect_status=200
    )

    assert lenient.severity is Severity.OK
    assert lenient.observations["status"] == 302
    assert lenient.observations["redirects"] == 0
    assert strict.severity is Severity.CRIT
    assert strict.observations["status"] == 302
    status = next(v for v in strict.verdicts if v.condition == "status")
    assert (status.value, status.threshold, status.severity) == (302, "expected 200", CRIT)
    # Neither followed the Location: the peer saw no request for /ok.
    assert peer.seen.requests == [("GET", "/redirect/1")] * 2


async def test_max_redirects_hops_are_allowed_and_no_more(
    peer: HttpPeer, shared: SharedResources
) -> None:
    exact = await probe(shared, target=f"{peer.url}/redirect/3", max_redirects=3)
    over = await probe(shared, target=f"{peer.url}/redirect/3", max_redirects=2)

    assert exact.severity is Severity.OK, exact.summary()
    assert exact.observations["redirects"] == 3
    assert over.error is not None
    assert over.error.error_class is ErrorClass.PROTOCOL
    assert over.error.message == "too many redirects (2)"
    hops = [("GET", f"/redirect/{n}") for n in (3, 2, 1)]
    # Every hop up to the limit was asked for, and the one beyond it not.
    assert peer.seen.requests == [*hops, ("GET", "/ok"), *hops]


async def test_redirect_loop_is_a_protocol_error(peer: HttpPeer, shared: SharedResources) -> None:
    result = await probe(shared, target=f"{peer.url}/loop")

    assert result.severity is Severity.CRIT
    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert result.error.message == "too many redirects (5)"


# --- peers that fail below HTTP ----------------------------------------------------------------


async def test_handler_that_never_answers_times_out(
    peer: HttpPeer, shared: SharedResources
) -> None:
    started = time.perf_counter()
    result = await probe(shared, target=f"{peer.url}/hang", timeout="300ms")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert result.severity is Severity.CRIT
    assert time.perf_counter() - started < 1.5


async def test_silent_peer_times_out(shared: SharedResources) -> None:
    async with raw_server(None) as url:
        started = time.perf_counter()
        result = await probe(shared, target=url, timeout="300ms")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert time.perf_counter() - started < 1.5


async def test_garbage_answer_is_a_protocol_error(shared: SharedResources) -> None:
    async with raw_server(b"\x00\xffnot http at all\r\n\r\n") as url:
        result = await probe(shared, target=url)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert result.error.message.startswith("malformed HTTP response")
    assert "\n" not in result.error.message


async def test_closed_port_is_refused(shared: SharedResources) -> None:
    result = await probe(shared, target=f"http://{LOOPBACK}:{closed_port()}/")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.REFUSED
    assert result.error.message.lower() == "connection refused"
    assert result.severity is Severity.CRIT


async def test_unresolvable_name_is_a_dns_error(
    shared: SharedResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "fake resolver: no such name")

    # Answered here, so the test never asks a real resolver.
    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    result = await probe(shared, target="http://peer.test/")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.DNS
    assert result.error.message == "cannot resolve peer.test: fake resolver: no such name"


# --- TLS ---------------------------------------------------------------------------------------


async def test_https_verified_with_ca_file(
    tls_peer: HttpPeer, ca_file: str, shared: SharedResources
) -> None:
    result = await probe(shared, target=f"{tls_peer.url}/ok", ca_file=ca_file)

    assert result.severity is Severity.OK, result.summary()
    assert result.error is None
    assert str(result.observations["tls_version"]).startswith("TLSv1.")
    assert result.observations["status"] == 200
    assert result.observations["body_bytes"] == len(OK_BODY)
    judged = {v.condition: v.severity for v in result.verdicts}
    # The certificate the peer served is judged too, and is good.
    assert {"status", "latency", "expiry", "chain_complete"} <= judged.keys(), judged
    assert set(judged.values()) == {OK}
    assert tls_peer.seen.requests == [("GET", "/ok")]


async def test_https_unknown_ca_is_a_tls_error(tls_peer: HttpPeer, shared: SharedResources) -> None:
    result = await probe(shared, target=f"{tls_peer.url}/ok")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TLS
    assert result.error.message.startswith("TLS certificate verify failed: ")
    assert "\n" not in result.error.message
    assert result.severity is Severity.CRIT
    assert tls_peer.seen.requests == []  # refused before a byte of HTTP was sent


async def test_https_without_verification_is_ok(
    tls_peer: HttpPeer, shared: SharedResources
) -> None:
    result = await probe(shared, target=f"{tls_peer.url}/ok", verify_tls=False)

    assert result.severity is Severity.OK, result.summary()
    assert result.error is None
    assert str(result.observations["tls_version"]).startswith("TLSv1.")
    assert result.observations["status"] == 200
    assert tls_peer.seen.requests == [("GET", "/ok")]


async def test_https_to_a_plain_http_port_is_a_tls_error(
    peer: HttpPeer, shared: SharedResources
) -> None:
    result = await probe(shared, target=peer.url.replace("http://", "https://") + "/ok")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TLS
    assert result.error.message.startswith("TLS handshake failed: ")
    assert result.severity is Severity.CRIT
    assert peer.seen.requests == []  # the ClientHello is no HTTP request


# --- secrets -----------------------------------------------------------------------------------


async def test_secret_header_reaches_the_peer_and_nothing_else(
    peer: HttpPeer, shared: SharedResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMWATCH_TEST_TOKEN", SECRET_VALUE)
    check = adhoc_check(
        "http",
        {
            "target": f"{peer.url}/secret",
            "headers": {SECRET_HEADER: {"env": "COMMWATCH_TEST_TOKEN"}},
        },
    )
    result = await run_check(check, shared)

    assert result.severity is Severity.OK, result.summary()
    assert result.observations["status"] == 200
    assert peer.seen.secret_values == [SECRET_VALUE]
    for shown in (repr(check), repr(result), result.summary(), str(dict(result.observations))):
        assert SECRET_VALUE not in shown


async def test_secret_gone_at_request_time_is_a_config_error(
    peer: HttpPeer, shared: SharedResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMWATCH_TEST_TOKEN", SECRET_VALUE)
    check = adhoc_check(
        "http",
        {
            "target": f"{peer.url}/secret",
            "headers": {SECRET_HEADER: {"env": "COMMWATCH_TEST_TOKEN"}},
        },
    )
    monkeypatch.delenv("COMMWATCH_TEST_TOKEN")
    result = await run_check(check, shared)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.CONFIG
    assert "COMMWATCH_TEST_TOKEN" in result.error.message
    assert peer.seen.secret_values == []


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"target": "ftp://127.0.0.1/"}, "target", "is not an http:// or https:// URL"),
        ({"target": "http:///health"}, "target", "has no host"),
        ({"target": "http://127.0.0.1:99999/"}, "target", "is not a URL"),
        ({"target": "https://user:pw@127.0.0.1/"}, "target", "carries credentials"),
        ({"expect_status": "300-200"}, "expect_status", "status range 300-200 is backwards"),
        ({"expect_status": 700}, "expect_status", "700 is not an HTTP status code"),
        ({"expect_status": "ok"}, "expect_status", "is not a status or range"),
        (
            {"latency_warn": "2s", "latency_crit": "1s"},
            "latency_warn",
            "latency_warn is above latency_crit",
        ),
        ({"method": "HEAD", "body_contains": "up"}, "body_contains", "HEAD request has no body"),
        ({"max_redirects": 0}, "max_redirects", "out of range"),
    ],
)
def test_bad_options_are_rejected(values: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(OptionError) as caught:
        adhoc_check("http", {"target": f"http://{LOOPBACK}/", **values})

    assert caught.value.key == key
    assert message in caught.value.message
    assert caught.value.hint


def test_unreadable_ca_file_is_rejected(tmp_path: Path) -> None:
    not_a_bundle = tmp_path / "ca.pem"
    not_a_bundle.write_text("not a certificate\n")

    with pytest.raises(OptionError) as caught:
        adhoc_check("http", {"target": f"https://{LOOPBACK}/", "ca_file": str(not_a_bundle)})

    assert caught.value.key == "ca_file"
    assert "holds no usable CA certificate" in caught.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "200-399"),
        (200, "200"),
        ("200-299", "200-299"),
        ("200, 301", "200, 301"),
        ([200, 301, "500-599"], "200, 301, 500-599"),
    ],
)
def test_expect_status_reads_back_as_written(value: Any, expected: str) -> None:
    values = {} if value is None else {"expect_status": value}
    expectation = status_expectation(**values)

    assert expectation.expected == expected


def test_expect_status_accepts_only_listed_codes() -> None:
    expectation = status_expectation(expect_status=[200, "500-599"])

    assert [expectation.accepts(code) for code in (200, 201, 499, 500, 599)] == [
        True,
        False,
        False,
        True,
        True,
    ]
    assert expectation.accepts(None) is False


def test_target_and_host() -> None:
    check = adhoc_check("http", {"target": "https://[::1]:8443/health"})

    assert check.ref.target == "https://[::1]:8443/health"
    assert check.ref.host == "::1"
