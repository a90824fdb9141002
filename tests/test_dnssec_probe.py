"""DNSSEC on the dns probe, against zones signed in the test with dnspython and served by the
test's own authoritative server on 127.0.0.1 (tests/peers/dnssec_peers.py): valid, expiring,
expired, not yet valid, tampered, signed by the wrong key, unsigned, and hostile answers.
Everything goes through `adhoc_check` + `run_check`, as the CLI does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dns.name
import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.engine.runner import run_check
from probes.base import SharedResources
from probes.dns import PROBE
from tests.peers.dnssec_peers import (
    CHILD,
    DAY,
    HASHED,
    PARENT,
    DnssecPeer,
    Nsec3,
    World,
    drop_records,
    drop_signatures,
    garble_signatures,
    new_key,
    replace_data,
    resign,
    serving,
    set_nsec_types,
    world,
)
from tests.test_cli import run_commwatch


async def judged(
    tmp_path: Path, built: World, knobs: dict[str, Any] | None = None, **values: Any
) -> tuple[ProbeResult, DnssecPeer]:
    """The result of a dnssec check of www.sub.cw.test A (unless told) against `built`."""
    peer = DnssecPeer(built.zones(), **(knobs or {}))
    anchor = built.anchor(tmp_path, values.pop("anchor_form", "DS"))
    options = {"target": f"www.{CHILD}", "dnssec": True, "trust_anchor": str(anchor), **values}
    async with serving(peer) as server:
        result = await run_check(
            adhoc_check("dns", {"server": server, **options}), SharedResources()
        )
    return result, peer


def verdict(result: ProbeResult, condition: str) -> Any:
    return next(v for v in result.verdicts if v.condition == condition)


# --- secure ----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["DS", "DNSKEY"])
async def test_a_signed_answer_is_secure_from_a_ds_or_a_dnskey_anchor(
    tmp_path: Path, form: str
) -> None:
    result, peer = await judged(tmp_path, world(), anchor_form=form, expect="192.0.2.10")
    assert result.error is None
    assert result.severity is Severity.OK, result.summary()
    seen = result.observations
    assert seen["dnssec"] == "secure"
    assert seen["dnssec_chain"] == "cw.test, sub.cw.test"
    assert seen["dnssec_algorithms"] == "ECDSAP256SHA256"
    assert seen["dnssec_deprecated"] == ""
    assert 13.9 < seen["rrsig_days"] <= 14.0
    assert verdict(result, "dnssec").finding == (
        "DNSSEC secure: chain of trust from cw.test to sub.cw.test"
    )
    shown = PROBE.headline(result, time.time())
    assert (shown.facts, shown.when_ok) == (("NOERROR",), ("DNSSEC secure, RRSIG 14d",))
    # The answer was asked with the DO bit, and each link of the chain from the same server.
    assert ("www.sub.cw.test.", "A", "udp") in peer.queries
    assert {(name, kind) for name, kind, _ in peer.queries} >= {
        ("cw.test.", "DNSKEY"),
        ("sub.cw.test.", "DS"),
        ("sub.cw.test.", "DNSKEY"),
    }


async def test_without_dnssec_a_signed_zone_is_asked_and_judged_as_before(tmp_path: Path) -> None:
    peer = DnssecPeer(world().zones())
    async with serving(peer) as server:
        check = adhoc_check("dns", {"target": f"www.{CHILD}", "server": server})
        result = await run_check(check, SharedResources())
    assert result.severity is Severity.OK
    assert not any(key.startswith(("dnssec", "rrsig")) for key in result.observations)
    assert {v.condition for v in result.verdicts} == {"rcode", "latency"}
    assert peer.queries == [("www.sub.cw.test.", "A", "udp")]


@pytest.mark.parametrize(
    ("target", "record_type", "rcode"),
    [
        (f"alias.{CHILD}", "A", "NOERROR"),  # a CNAME, then its target, both signed
        (f"x.wild.{CHILD}", "A", "NOERROR"),  # a wildcard expansion, with its NSEC proof
        (CHILD, "CAA", "NOERROR"),  # what a CA looks up before issuing
        (f"missing.{CHILD}", "A", "NXDOMAIN"),  # NSEC: no such name, no wildcard
        (f"www.{CHILD}", "MX", "NOERROR"),  # NSEC: the name exists, the type does not
        (f"b.c.{CHILD}", "A", "NOERROR"),  # an empty non-terminal
        (f"x.wild.{CHILD}", "TXT", "NOERROR"),  # the wildcard exists, without the type
        (f"www.{HASHED}", "A", "NOERROR"),
        (f"missing.{HASHED}", "A", "NXDOMAIN"),  # NSEC3: the closest encloser proof
        (f"www.{HASHED}", "TXT", "NOERROR"),
        (f"y.{HASHED}", "A", "NOERROR"),  # NSEC3 of an empty non-terminal
        (f"www.{PARENT}", "A", "NOERROR"),  # the anchor's own zone
    ],
)
async def test_answers_and_denials_validate(
    tmp_path: Path, target: str, record_type: str, rcode: str
) -> None:
    result, _ = await judged(tmp_path, world(), target=target, type=record_type, expect_rcode=rcode)
    assert result.error is None
    assert result.observations["rcode"] == rcode
    assert result.observations["dnssec"] == "secure", result.observations["dnssec_reason"]
    assert result.severity is Severity.OK, result.summary()


# --- expiry ----------------------------------------------------------------------------------


async def test_a_signature_expiring_in_a_day_is_crit_with_rrsig_crit_2(tmp_path: Path) -> None:
    now = time.time()
    built = world(child_inception=now - 13 * DAY, child_expiration=now + DAY)
    result, _ = await judged(tmp_path, built, rrsig_crit=2, rrsig_warn=7)
    assert result.observations["dnssec"] == "secure"
    assert 0.99 < result.observations["rrsig_days"] <= 1.0
    assert result.observations["rrsig_first_expiring"].startswith("sub.cw.test DNSKEY signed by")
    rrsig = verdict(result, "rrsig")
    assert rrsig.severity is Severity.CRIT
    assert rrsig.reason == "RRSIG expires in 1d"
    assert result.severity is Severity.CRIT


async def test_the_default_thresholds_warn_two_days_ahead(tmp_path: Path) -> None:
    now = time.time()
    built = world(child_inception=now - 12 * DAY, child_expiration=now + 1.5 * DAY)
    result, _ = await judged(tmp_path, built)
    assert verdict(result, "rrsig").severity is Severity.WARN
    assert result.severity is Severity.WARN


# --- bogus -----------------------------------------------------------------------------------


def _expired() -> World:
    now = time.time()
    return world(child_inception=now - 15 * DAY, child_expiration=now - DAY)


def _not_yet_valid() -> World:
    now = time.time()
    return world(child_inception=now + DAY, child_expiration=now + 15 * DAY)


def _tampered() -> World:
    built = world()
    replace_data(built.child, "www", "A", "203.0.113.66")
    return built


def _ds_for_another_key() -> World:
    return world(ds_key=new_key())


def _signed_by_an_unpublished_key() -> World:
    built = world()
    resign(built.child, "www", "A", new_key(flags=256))
    return built


def _unsigned_record() -> World:
    built = world()
    drop_signatures(built.child, "www", "A")
    return built


def _garbage_signature() -> World:
    built = world()
    garble_signatures(built.child, "www", "A")
    return built


def _signer_outside_the_zone() -> World:
    built = world()
    garble_signatures(built.child, "www", "A", signer=dns.name.from_text("evil.example."))
    return built


def _labels_beyond_the_owner() -> World:
    built = world()
    garble_signatures(built.child, "www", "A", labels=9)
    return built


def _ds_stripped() -> World:
    built = world()
    drop_records(built.parent, "sub", "DS")  # its NSEC still says there is one
    return built


def _parent_claims_the_childs_apex() -> World:
    built = world(child_ds=False)
    set_nsec_types(built.parent, "sub", "NS SOA RRSIG NSEC", built.parent_key)
    return built


@pytest.mark.parametrize(
    ("build", "reason", "detail"),
    [
        (_expired, "expired signature", "sub.cw.test DNSKEY: RRSIG by sub.cw.test key"),
        (_not_yet_valid, "signature not yet valid", "sub.cw.test DNSKEY: RRSIG by"),
        (_tampered, "bad signature", "www.sub.cw.test A: RRSIG by sub.cw.test"),
        (_ds_for_another_key, "no DNSKEY matching DS", "the DS in cw.test for sub.cw.test"),
        (_signed_by_an_unpublished_key, "no DNSKEY for the signature", "www.sub.cw.test A"),
        (_unsigned_record, "missing RRSIG", "www.sub.cw.test A has no RRSIG"),
        (_garbage_signature, "bad signature", "www.sub.cw.test A"),
        (_signer_outside_the_zone, "missing RRSIG", "www.sub.cw.test A has no RRSIG"),
        (_labels_beyond_the_owner, "bad signature", "www.sub.cw.test A: RRSIG by sub.cw.test"),
        (_ds_stripped, "bad denial proof", "the NSEC at sub.cw.test says it has DS"),
        (_parent_claims_the_childs_apex, "bad denial proof", "names an apex at sub.cw.test"),
    ],
)
async def test_bogus_answers_are_crit_with_the_reason(
    tmp_path: Path, build: Any, reason: str, detail: str
) -> None:
    result, _ = await judged(tmp_path, build())
    assert result.error is None
    assert result.observations["rcode"] == "NOERROR"  # the server answered; validation failed
    assert result.observations["dnssec"] == "bogus"
    assert result.observations["dnssec_reason"].startswith(f"{reason}: ")
    assert detail in result.observations["dnssec_reason"]
    dnssec = verdict(result, "dnssec")
    assert dnssec.severity is Severity.CRIT
    assert dnssec.reason == f"DNSSEC bogus: {reason}"
    assert "no certificate can be issued for the name" in dnssec.finding
    assert result.severity is Severity.CRIT


async def test_an_expired_chain_counts_its_days_below_zero(tmp_path: Path) -> None:
    result, _ = await judged(tmp_path, _expired())
    assert -1.01 < result.observations["rrsig_days"] < -0.99
    assert verdict(result, "rrsig").reason == "RRSIG expired 1d ago"


async def test_a_negative_answer_without_its_proof_is_bogus(tmp_path: Path) -> None:
    result, _ = await judged(
        tmp_path,
        world(),
        knobs={"withhold": frozenset({"NSEC"})},
        target=f"missing.{CHILD}",
        expect_rcode="NXDOMAIN",
    )
    assert result.observations["dnssec"] == "bogus"
    assert result.observations["dnssec_reason"] == (
        "bad denial proof: missing.sub.cw.test A: no NSEC or NSEC3 record proves that"
        " missing.sub.cw.test has no answer"
    )
    assert result.severity is Severity.CRIT


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        (
            f"x.wild.{CHILD}",
            "no NSEC or NSEC3 record proves that x.wild.sub.cw.test does not exist",
        ),
        (f"www.{CHILD}", "no NSEC or NSEC3 record proves that www.sub.cw.test has no answer"),
    ],
)
async def test_a_wildcard_answer_or_nodata_needs_its_proof(
    tmp_path: Path, target: str, problem: str
) -> None:
    record_type = "A" if "wild" in target else "MX"
    result, _ = await judged(
        tmp_path, world(), knobs={"withhold": frozenset({"NSEC"})}, target=target, type=record_type
    )
    assert result.observations["dnssec"] == "bogus"
    assert result.observations["dnssec_reason"].endswith(problem)


async def test_a_validating_resolvers_servfail_is_asked_again_with_cd(tmp_path: Path) -> None:
    result, peer = await judged(tmp_path, _expired(), knobs={"servfail_unless_cd": True})
    assert result.observations["rcode"] == "SERVFAIL"
    assert result.observations["dnssec_cd_retry"] is True
    assert result.observations["dnssec_reason"].startswith("expired signature: ")
    assert verdict(result, "rcode").severity is Severity.CRIT
    assert verdict(result, "dnssec").severity is Severity.CRIT
    assert [kind for name, kind, _ in peer.queries if name == "www.sub.cw.test."] == ["A", "A"]


# --- insecure and not validated --------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "severity"),
    [("warn", Severity.WARN), ("ok", Severity.OK), ("crit", Severity.CRIT)],
)
async def test_a_delegation_without_ds_is_insecure_not_bogus(
    tmp_path: Path, setting: str, severity: Severity
) -> None:
    result, _ = await judged(tmp_path, world(), target="www.plain.cw.test", dnssec_insecure=setting)
    assert result.observations["dnssec"] == "insecure"
    assert result.observations["dnssec_reason"] == (
        "unsigned delegation: cw.test delegates plain.cw.test without DS"
    )
    assert verdict(result, "dnssec").severity is severity
    assert verdict(result, "rrsig").severity is Severity.OK  # the parent's proof is signed
    assert result.severity is severity


async def test_an_nsec3_opt_out_span_is_insecure(tmp_path: Path) -> None:
    built = world(nsec3=Nsec3(salt=b"\x01", opt_out=True))
    result, _ = await judged(tmp_path, built, target=f"www.unsigned.{HASHED}")
    assert result.observations["dnssec"] == "insecure"
    assert result.observations["dnssec_reason"].startswith("opt-out delegation: hashed.cw.test")


async def test_nsec3_beyond_150_iterations_is_insecure_as_rfc_9276_allows(
    tmp_path: Path,
) -> None:
    built = world(nsec3=Nsec3(iterations=200))
    result, _ = await judged(tmp_path, built, target=f"missing.{HASHED}", expect_rcode="NXDOMAIN")
    assert result.observations["dnssec"] == "insecure"
    assert result.observations["dnssec_reason"] == (
        "costly NSEC3: hashed.cw.test uses NSEC3 with 200 iterations (over 150): validators"
        " treat it as unsigned (RFC 9276)"
    )


async def test_a_server_without_the_parent_zone_cannot_show_the_chain(tmp_path: Path) -> None:
    built = world()
    peer = DnssecPeer([built.child])  # the child's own server, asked with the parent's anchor
    async with serving(peer) as server:
        result = await run_check(
            adhoc_check(
                "dns",
                {
                    "target": f"www.{CHILD}",
                    "server": server,
                    "dnssec": True,
                    "trust_anchor": str(built.anchor(tmp_path)),
                },
            ),
            SharedResources(),
        )
    assert result.observations["dnssec"] == "indeterminate"
    assert result.observations["dnssec_reason"].startswith("chain not served: the server answered")
    assert verdict(result, "dnssec").severity is Severity.UNKNOWN
    assert result.severity is Severity.UNKNOWN


# --- algorithms ------------------------------------------------------------------------------


async def test_rsasha1_and_a_sha1_ds_are_secure_but_deprecated(tmp_path: Path) -> None:
    result, _ = await judged(tmp_path, world(child_algorithm="RSASHA1", ds_digest="SHA1"))
    assert result.observations["dnssec"] == "secure"
    assert result.observations["dnssec_algorithms"] == "ECDSAP256SHA256, RSASHA1"
    assert result.observations["dnssec_deprecated"] == (
        "RSASHA1 at sub.cw.test, DS digest SHA-1 for sub.cw.test"
    )
    algorithms = verdict(result, "dnssec_algorithms")
    assert algorithms.severity is Severity.WARN
    assert algorithms.reason == "deprecated algorithm"
    assert result.severity is Severity.WARN


async def test_a_zone_signed_only_with_dsa_counts_as_unsigned_and_is_flagged(
    tmp_path: Path,
) -> None:
    result, _ = await judged(tmp_path, world(child_algorithm="DSA"))
    assert result.observations["dnssec"] == "insecure"
    assert result.observations["dnssec_reason"] == (
        "unsupported algorithm: the DS in cw.test for sub.cw.test uses only DSA, which"
        " validators no longer use: they treat the zone as unsigned"
    )
    assert result.observations["dnssec_deprecated"] == "DSA at sub.cw.test"
    assert verdict(result, "dnssec_algorithms").severity is Severity.WARN
    assert result.severity is Severity.WARN


# --- transport and hostile peers -------------------------------------------------------------


async def test_a_truncated_chain_answer_is_asked_again_over_tcp(tmp_path: Path) -> None:
    result, peer = await judged(tmp_path, world(), knobs={"udp_limit": 200})
    assert result.observations["dnssec"] == "secure", result.observations["dnssec_reason"]
    assert ("sub.cw.test.", "DNSKEY", "tcp") in peer.queries


async def test_a_huge_answer_of_garbage_signatures_is_bogus_within_the_timeout(
    tmp_path: Path,
) -> None:
    built = world()
    garble_signatures(built.child, "www", "A", copies=400)  # about 40 kB: TCP only
    started = time.monotonic()
    result, peer = await judged(tmp_path, built, timeout="5s")
    assert time.monotonic() - started < 5
    assert ("www.sub.cw.test.", "A", "tcp") in peer.queries
    assert result.observations["dnssec"] == "bogus"
    assert result.observations["dnssec_reason"].startswith("bad signature: ")


async def test_garbage_for_a_chain_query_is_a_protocol_error_that_keeps_the_answer(
    tmp_path: Path,
) -> None:
    result, _ = await judged(tmp_path, world(), knobs={"garbage": frozenset({"DNSKEY"})})
    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert result.error.message.startswith("DNSSEC chain: cw.test DNSKEY: ")
    assert result.observations["rcode"] == "NOERROR"
    assert result.severity is Severity.CRIT


async def test_a_silent_chain_query_times_out_within_the_check_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    result, _ = await judged(tmp_path, world(), knobs={"silent": frozenset({"DS"})}, timeout="1s")
    assert time.monotonic() - started < 1.5
    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert result.error.message.startswith("DNSSEC chain: no answer to sub.cw.test DS within")
    assert result.observations["rcode"] == "NOERROR"


# --- as a monitoring plugin ------------------------------------------------------------------


async def test_commwatch_probe_takes_the_dnssec_flags_and_says_bogus_in_one_line(
    tmp_path: Path,
) -> None:
    built = _expired()
    anchor = built.anchor(tmp_path)
    async with serving(DnssecPeer(built.zones())) as server:
        done = await run_commwatch(
            "probe", "dns", f"www.{CHILD}", "--server", server, "--dnssec",
            "--trust-anchor", str(anchor), "--rrsig-warn", "7", "--rrsig-crit", "2", "--nagios",
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stdout.splitlines()
    text, perfdata = line.split(" | ")
    assert text.startswith("DNS CRITICAL - www.sub.cw.test A @")
    assert ": DNSSEC bogus: expired signature: sub.cw.test DNSKEY: RRSIG by sub.cw.test key" in text
    assert "no certificate can be issued for the name" in text
    assert "rrsig_days=-1;7:;2:" in perfdata.split()


async def test_commwatch_probe_says_secure_and_the_days_left(tmp_path: Path) -> None:
    built = world()
    async with serving(DnssecPeer(built.zones())) as server:
        done = await run_commwatch(
            "probe", "dns", f"www.{CHILD}", "--server", server, "--dnssec",
            "--trust-anchor", str(built.anchor(tmp_path)), "--nagios",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "DNSSEC secure: chain of trust from cw.test to sub.cw.test, RRSIG expires in 14d" in (
        done.stdout
    )
