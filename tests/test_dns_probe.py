"""The dns probe against a real dnsmasq, and scripted responders for the failures dnsmasq cannot
produce. Everything goes through `adhoc_check` + `run_check`, as the CLI does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import dns.flags
import dns.rcode
import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.core.options import OptionError
from monitor.engine.runner import run_check
from probes.base import SharedResources
from tests.peers.dns_peers import (
    LOCALHOST,
    answer,
    free_port,
    garbage,
    running_dnsmasq,
    silent,
    udp_responder,
)

ZONE = "cw.test"
MANY = [f"198.51.100.{n}" for n in range(1, 41)]
RECORDS = [
    f"--host-record=www.{ZONE},192.0.2.10,2001:db8::10",
    f"--host-record=pair.{ZONE},192.0.2.21",
    f"--host-record=pair.{ZONE},192.0.2.22",
    *(f"--host-record=many.{ZONE},{address}" for address in MANY),
    f"--cname=alias.{ZONE},www.{ZONE}",
    f"--mx-host={ZONE},mail.{ZONE},10",
    f"--txt-record=spf.{ZONE},v=spf1 -all",
    f"--srv-host=_sip._udp.{ZONE},sip.{ZONE},5060,0,5",
]


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The `server` option value of a dnsmasq serving RECORDS."""
    log_dir = tmp_path_factory.mktemp("dnsmasq")
    with running_dnsmasq(ZONE, RECORDS, f"www.{ZONE}", log_dir) as port_number:
        yield f"{LOCALHOST}:{port_number}"


async def probe(**values: Any) -> ProbeResult:
    return await run_check(adhoc_check("dns", values), SharedResources())


def verdict_of(result: ProbeResult, condition: str) -> Severity:
    return next(v.severity for v in result.verdicts if v.condition == condition)


# --- answers from dnsmasq ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "record_type", "expected", "rendered"),
    [
        ("www", "A", "192.0.2.10", "192.0.2.10"),
        ("www", "aaaa", "2001:DB8:0:0::10", "2001:db8::10"),
        ("alias", "CNAME", "WWW.cw.test.", "www.cw.test"),
        ("alias", "A", "192.0.2.10", "192.0.2.10"),
        ("", "MX", "10 Mail.cw.test", "10 mail.cw.test"),
        ("spf", "TXT", "v=spf1 -all", '"v=spf1 -all"'),
        ("_sip._udp", "SRV", "0 5 5060 sip.cw.test.", "0 5 5060 sip.cw.test"),
    ],
)
async def test_expected_answer_matches_after_normalisation(
    dnsmasq: str, name: str, record_type: str, expected: str, rendered: str
) -> None:
    target = f"{name}.{ZONE}" if name else ZONE
    result = await probe(target=target, server=dnsmasq, type=record_type, expect=expected)
    assert result.error is None
    assert result.severity is Severity.OK, result.summary()
    assert result.observations["rcode"] == "NOERROR"
    assert result.observations["answers"] == 1
    assert result.observations["answer"] == rendered
    assert result.observations["ttl"] == 300
    assert result.observations["transport"] == "udp"
    assert result.observations["truncated_fallback"] is False


@pytest.mark.parametrize(
    ("expect", "mode", "severity"),
    [
        (["192.0.2.21", "192.0.2.99"], "any", Severity.OK),
        (["192.0.2.21", "192.0.2.22"], "all", Severity.OK),
        (["192.0.2.21", "192.0.2.99"], "all", Severity.CRIT),
        (["192.0.2.98", "192.0.2.99"], "any", Severity.CRIT),
    ],
)
async def test_expect_mode_any_and_all(
    dnsmasq: str, expect: list[str], mode: str, severity: Severity
) -> None:
    result = await probe(target=f"pair.{ZONE}", server=dnsmasq, expect=expect, expect_mode=mode)
    assert result.error is None
    assert result.observations["answers"] == 2
    assert verdict_of(result, "answer") is severity
    assert result.severity is severity


async def test_mismatch_verdict_shows_what_was_answered(dnsmasq: str) -> None:
    result = await probe(target=f"www.{ZONE}", server=dnsmasq, expect="192.0.2.99")
    assert result.severity is Severity.CRIT
    assert result.summary() == "answer 192.0.2.10 (expected any of 192.0.2.99): CRIT"


async def test_txt_is_compared_exactly(dnsmasq: str) -> None:
    result = await probe(target=f"spf.{ZONE}", server=dnsmasq, type="TXT", expect="V=SPF1 -ALL")
    assert verdict_of(result, "answer") is Severity.CRIT


async def test_nxdomain_is_an_answer_judged_by_expect_rcode(dnsmasq: str) -> None:
    missing = f"missing.{ZONE}"
    default = await probe(target=missing, server=dnsmasq)
    assert default.error is None
    assert default.observations["rcode"] == "NXDOMAIN"
    assert default.observations["answers"] == 0
    assert default.severity is Severity.CRIT
    assert default.summary() == "rcode NXDOMAIN (expected NOERROR): CRIT"

    expected = await probe(target=missing, server=dnsmasq, expect_rcode="nxdomain")
    assert expected.error is None
    assert expected.severity is Severity.OK


async def test_empty_noerror_answer_is_visible(dnsmasq: str) -> None:
    result = await probe(target=f"www.{ZONE}", server=dnsmasq, type="MX")
    assert result.severity is Severity.OK
    assert result.observations["rcode"] == "NOERROR"
    assert result.observations["answers"] == 0
    assert result.observations["answer"] == ""
    assert result.observations["ttl"] is None


async def test_truncated_udp_answer_is_asked_again_over_tcp(dnsmasq: str) -> None:
    result = await probe(target=f"many.{ZONE}", server=dnsmasq, expect=MANY, expect_mode="all")
    assert result.error is None
    assert result.observations["transport"] == "tcp"
    assert result.observations["truncated_fallback"] is True
    assert result.observations["answers"] == len(MANY)
    assert verdict_of(result, "answer") is Severity.OK


async def test_compact_answer_is_bounded_and_shows_expected_answers_first(dnsmasq: str) -> None:
    expected = MANY[-3:]
    result = await probe(target=f"many.{ZONE}", server=dnsmasq, expect=expected, expect_mode="all")
    shown = result.observations["answer"]
    assert isinstance(shown, str)
    assert len(shown) < 240
    assert set(shown.split(", ")[:3]) == set(expected)
    assert shown.endswith(" more")
    assert verdict_of(result, "answer") is Severity.OK


async def test_tcp_option_skips_udp(dnsmasq: str) -> None:
    result = await probe(target=f"www.{ZONE}", server=dnsmasq, tcp=True)
    assert result.severity is Severity.OK
    assert result.observations["transport"] == "tcp"
    assert result.observations["truncated_fallback"] is False


async def test_target_and_host_name_the_server_asked(dnsmasq: str) -> None:
    check = adhoc_check("dns", {"target": f"www.{ZONE}.", "server": dnsmasq, "type": "aaaa"})
    assert check.ref.target == f"www.{ZONE} AAAA @{dnsmasq}"
    assert check.ref.host == LOCALHOST


# --- scripted responders ---------------------------------------------------------------


async def test_recurse_false_clears_the_rd_flag() -> None:
    async with udp_responder(answer(addresses=["192.0.2.1"])) as (server, responder):
        asked = await probe(target="a.example", server=server)
        not_asked = await probe(target="a.example", server=server, recurse=False)
    assert asked.severity is not_asked.severity is Severity.OK
    assert [bool(q.flags & dns.flags.RD) for q in responder.queries] == [True, False]


async def test_latency_thresholds_judge_a_slow_server() -> None:
    async with udp_responder(answer(addresses=["192.0.2.1"]), delay=0.2) as (server, _):
        warn = await probe(target="a.example", server=server, latency_warn="50ms")
        crit = await probe(
            target="a.example", server=server, latency_warn="50ms", latency_crit="100ms"
        )
    assert warn.observations["latency_ms"] >= 200
    assert warn.severity is Severity.WARN
    assert crit.severity is Severity.CRIT
    assert crit.summary().endswith("(warn > 50ms, crit > 100ms): CRIT")


async def test_fast_server_is_within_latency_threshold(dnsmasq: str) -> None:
    result = await probe(target=f"www.{ZONE}", server=dnsmasq, latency_warn="1s")
    assert verdict_of(result, "latency") is Severity.OK


async def test_servfail_is_an_answer_not_an_error() -> None:
    async with udp_responder(answer(dns.rcode.SERVFAIL)) as (server, _):
        default = await probe(target="a.example", server=server)
        expected = await probe(target="a.example", server=server, expect_rcode="SERVFAIL")
    assert default.error is None
    assert default.observations["rcode"] == "SERVFAIL"
    assert default.severity is Severity.CRIT
    assert expected.severity is Severity.OK


async def test_silent_server_times_out_within_budget() -> None:
    async with udp_responder(silent) as (server, _):
        started = time.monotonic()
        result = await probe(target="a.example", server=server, timeout="500ms")
        elapsed = time.monotonic() - started
    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert result.severity is Severity.CRIT
    assert elapsed < 0.5 + 0.3


async def test_garbage_reply_is_a_protocol_error() -> None:
    async with udp_responder(garbage, copies=50) as (server, _):
        started = time.monotonic()
        result = await probe(target="a.example", server=server, timeout="2s")
        elapsed = time.monotonic() - started
    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert result.severity is Severity.CRIT
    assert elapsed < 1


async def test_flood_of_answers_from_another_port_is_ignored_until_timeout() -> None:
    spoof = answer(addresses=["203.0.113.66"])
    async with udp_responder(spoof, copies=200, from_other_port=True) as (server, _):
        started = time.monotonic()
        result = await probe(target="a.example", server=server, timeout="500ms")
        elapsed = time.monotonic() - started
    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert "answer" not in result.observations
    assert elapsed < 0.5 + 0.3


@pytest.mark.parametrize("tcp", [False, True])
async def test_closed_port_is_refused_at_once(tcp: bool) -> None:
    server = f"{LOCALHOST}:{free_port()}"
    started = time.monotonic()
    result = await probe(target="a.example", server=server, tcp=tcp, timeout="5s")
    assert result.error is not None
    assert result.error.error_class is ErrorClass.REFUSED
    assert time.monotonic() - started < 1


# --- option errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"target": "a.example"}, "server", "'server' is required for dns checks"),
        (
            {"target": "a.example", "server": LOCALHOST, "type": "AAA"},
            "type",
            "'AAA' is not a supported record type (use one of: A, AAAA, CAA, CNAME, MX, NS, SOA,"
            " SRV, TXT)",
        ),
        (
            {"target": "a.example", "server": "127.0.0.1:70000"},
            "server",
            "70000 is not a TCP/UDP port (use a whole number from 1 to 65535)",
        ),
        (
            {"target": "a.example", "server": "127.0.0.1:domain"},
            "server",
            "'domain' is not a port number (use a number from 1 to 65535)",
        ),
        (
            {"target": "a.example", "server": "ns1.example.net"},
            "server",
            "'ns1.example.net' is not an IP address",
        ),
        (
            {"target": "a example", "server": LOCALHOST},
            "target",
            "'a example' is not a DNS name: it contains white space",
        ),
        (
            {"target": "a..example", "server": LOCALHOST},
            "target",
            "'a..example' is not a DNS name: A DNS label is empty.",
        ),
        (
            {"target": "a.example", "server": LOCALHOST, "expect": "192.0.2.300"},
            "expect",
            "expected answer '192.0.2.300' is not A record data",
        ),
        (
            {"target": "a.example", "server": LOCALHOST, "expect": "x", "expect_rcode": "NXDOMAIN"},
            "expect",
            "expect lists answers but expect_rcode is NXDOMAIN",
        ),
        (
            {"target": "a.example", "server": LOCALHOST, "expect_mode": "most"},
            "expect_mode",
            "'most' is not one of the choices (use one of: any, all)",
        ),
    ],
)
def test_bad_options_are_refused_with_a_hint(
    values: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(OptionError) as caught:
        adhoc_check("dns", values)
    assert caught.value.key == key
    assert str(caught.value).startswith(message)


def test_server_port_defaults_to_53() -> None:
    check = adhoc_check("dns", {"target": "a.example", "server": "[2001:db8::53]"})
    assert check.options.server == ("2001:db8::53", 53)
    assert check.ref.target == "a.example A @[2001:db8::53]:53"
