"""Hostile TLS peers serving malformed certificates, to the tls probe and to https checks.

Each certificate is one OpenSSL loads and serves but a strict parser refuses, on loading or on
reading a field (tests/hostile/forged_certificates.py forges them). Whatever is wrong, the
result is a CRIT finding "malformed certificate: <which>: <what>", the chain is still in the
result with everything that could be read, and nothing is an internal error (no UNKNOWN, no
traceback in the log, no warning on stderr).
"""

from __future__ import annotations

import datetime
import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass, ProbeResult, Severity, Verdict
from monitor.engine.runner import run_check
from monitor.lab.pki import Issued, make_ca, make_leaf, server_context
from monitor.output.records import result_line
from probes.base import SharedResources
from tests.conftest import REPO
from tests.hostile.forged_certificates import (
    BASIC_CONSTRAINTS,
    DNS_NAME,
    EDI_PARTY_NAME,
    GENERALIZED_TIME,
    INTEGER,
    IP_ADDRESS,
    NULL,
    PRINTABLE_STRING,
    SUBJECT_ALT_NAME,
    UNKNOWN_OID,
    UTC_TIME,
    VERSION,
    X400_ADDRESS,
    Tbs,
    common_name,
    der,
    extension,
    forge,
    subject_alt_name,
    validity,
)
from tests.peers.http_peers import http_server
from tests.peers.tls_peers import LOOPBACK, tls_server

LOOPBACK_IP = der(IP_ADDRESS, bytes([127, 0, 0, 1]))
SCHEMA = json.loads((REPO / "monitor/output/schema/result.schema.json").read_text())


def days(n: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=n)


def _utc(moment: datetime.datetime, template: str = "%y%m%d%H%M%SZ") -> bytes:
    return der(UTC_TIME, moment.strftime(template).encode())


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    root_file: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = make_ca("hostile test root", not_after=days(3650), path_length=None)
    intermediate = make_ca("hostile test intermediate", issuer=root, not_after=days(1000))
    root_file = tmp_path_factory.mktemp("pki") / "root.pem"
    root_file.write_bytes(root.cert_pem)
    return Pki(root, intermediate, str(root_file))


Edit = Callable[[Tbs], Tbs]


@dataclass(frozen=True)
class Case:
    where: str  # "leaf" or "intermediate": which certificate of the chain is forged
    edit: Edit
    finding: str  # what the malformed finding must say about it


def _san(*names: bytes) -> Edit:
    return lambda t: t.with_extensions([*t.without(SUBJECT_ALT_NAME), subject_alt_name(*names)])


def _serial(content: bytes) -> Edit:
    return lambda t: t.with_field(Tbs.SERIAL, der(INTEGER, content))


def _dates(not_before: bytes, not_after: bytes) -> Edit:
    return lambda t: t.with_field(Tbs.VALIDITY, validity(not_before, not_after))


def _extra(*encoded: bytes) -> Edit:
    return lambda t: t.with_extensions([*t.extensions(), *encoded])


CASES = {
    "duplicate extension": Case(
        "intermediate",
        lambda t: t.with_extensions([*t.extensions(), t.extensions()[0]]),
        "duplicate extension 2.5.29.19 (basicConstraints)",
    ),
    "x400Address in the subjectAltName": Case(
        "leaf",
        _san(der(X400_ADDRESS, der(0x30, b"")), LOOPBACK_IP),
        "unsupported general-name type",
    ),
    "ediPartyName in the subjectAltName": Case(
        "leaf",
        _san(der(EDI_PARTY_NAME, der(0xA1, der(0x0C, b"party"))), LOOPBACK_IP),
        "unsupported general-name type",
    ),
    "negative serial": Case("leaf", _serial(b"\xff\x01"), "serial number is not positive"),
    "zero serial": Case("leaf", _serial(b"\x00"), "serial number is not positive"),
    "unknown critical extension": Case(
        "leaf",
        _extra(extension(UNKNOWN_OID, der(NULL, b""), critical=True)),
        "unknown critical extension 1.3.6.1.4.1.55555.1.1",
    ),
    "month 13": Case(
        "leaf",
        _dates(der(UTC_TIME, b"251301000000Z"), _utc(days(90))),
        "cannot be read: invalid value in Validity::not_before",
    ),
    "time without seconds": Case(
        "leaf",
        _dates(_utc(days(-1), "%y%m%d%H%MZ"), _utc(days(90), "%y%m%d%H%MZ")),
        "cannot be read: invalid value",
    ),
    "time with an offset": Case(
        "intermediate",
        _dates(_utc(days(-1), "%y%m%d%H%M%S+0100"), _utc(days(900))),
        "cannot be read: invalid value",
    ),
    "PrintableString with @ in the subject": Case(
        "intermediate",
        lambda t: t.with_field(Tbs.SUBJECT, common_name(PRINTABLE_STRING, b"bad@name*")),
        "invalid value",
    ),
    "GeneralizedTime with a fraction": Case(
        "leaf",
        _dates(der(GENERALIZED_TIME, b"20250101000000.5Z"), _utc(days(90))),
        "cannot be read",
    ),
    "empty subjectAltName": Case("leaf", _san(), "subjectAltName is empty"),
    "IP address of three bytes": Case(
        "leaf", _san(der(IP_ADDRESS, b"\x7f\x00\x00")), "extensions: "
    ),
    "DNS name that is not ASCII": Case(
        "leaf",
        _san(der(DNS_NAME, "gw.exämple.net".encode()), LOOPBACK_IP),
        "is not ASCII",
    ),
    "truncated basicConstraints": Case(
        "intermediate",
        lambda t: t.with_extensions(
            [*t.without(BASIC_CONSTRAINTS), extension(BASIC_CONSTRAINTS, b"\x30\x03\x01\x01")]
        ),
        "extensions: short data",
    ),
    "version 8": Case(
        "intermediate",
        lambda t: t.with_field(Tbs.VERSION, der(VERSION, der(INTEGER, b"\x07"))),
        "cannot be read: invalid version 7",
    ),
    "version 1 written out": Case(
        "intermediate",
        lambda t: t.with_field(Tbs.VERSION, der(VERSION, der(INTEGER, b"\x00"))),
        "cannot be read: encoded default",
    ),
}


def served(pki: Pki, case: Case) -> tuple[Issued, tuple[Issued, ...]]:
    """(leaf, chain) with the case's certificate forged."""
    leaf = make_leaf(pki.intermediate, [LOOPBACK, "gw.hostile.example.net"], not_after=days(90))
    if case.where == "leaf":
        return forge(leaf, pki.intermediate, case.edit), (pki.intermediate,)
    return leaf, (forge(pki.intermediate, pki.root, case.edit),)


def malformed(result: ProbeResult) -> Verdict:
    return next(v for v in result.verdicts if v.condition == "malformed")


def assert_named_and_kept(result: ProbeResult, case: Case, chain_length: int) -> None:
    position = 0 if case.where == "leaf" else 1
    verdict = malformed(result)
    assert verdict.severity is Severity.CRIT, result.summary()
    assert verdict.reason == "malformed certificate"
    assert verdict.finding.startswith(f"malformed certificate: #{position} "), verdict.finding
    assert case.finding in verdict.finding, verdict.finding
    # The chain is still there, the forged certificate with what could be read of it.
    assert [c.position for c in result.certificates] == list(range(chain_length))
    forged = result.certificates[position]
    assert forged.malformed and case.finding in "; ".join(forged.malformed)
    assert forged.subject and len(forged.fingerprint_sha256) == 64
    assert result.severity is Severity.CRIT
    assert "malformed certificate: " in result.summary()
    # The JSON record stays valid (an unreadable date is null), and names the fault too.
    record = json.loads(result_line(result))
    jsonschema.validate(record, SCHEMA)
    assert record["certificates"][position]["malformed"] == list(forged.malformed)


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Any:
    """Fails the test if anything was logged as an error (a traceback) or a warning leaked."""
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert not leaked, [str(w.message) for w in leaked]


@pytest.mark.parametrize("name", list(CASES))
async def test_tls_probe_names_a_malformed_certificate(
    name: str, pki: Pki, tmp_path: Path, shared: SharedResources, quiet: Any
) -> None:
    case = CASES[name]
    leaf, chain = served(pki, case)
    with tls_server(server_context(leaf, tmp_path, chain)) as port:
        started = time.perf_counter()
        result = await run_check(
            adhoc_check(
                "tls", {"target": f"{LOOPBACK}:{port}", "ca_file": pki.root_file, "timeout": "3s"}
            ),
            shared,
        )

    assert result.error is None, result.summary()
    assert_named_and_kept(result, case, 1 + len(chain))
    assert time.perf_counter() - started < 3


HTTPS_CASES = [
    "x400Address in the subjectAltName",
    "negative serial",
    "duplicate extension",
    "month 13",
    "IP address of three bytes",
]


@pytest.mark.parametrize("name", HTTPS_CASES)
async def test_https_check_names_a_malformed_certificate(
    name: str, pki: Pki, tmp_path: Path, shared: SharedResources, quiet: Any
) -> None:
    case = CASES[name]
    leaf, chain = served(pki, case)
    async with http_server(server_context(leaf, tmp_path, chain)) as peer:
        result = await run_check(
            adhoc_check(
                "http", {"target": f"{peer.url}/ok", "ca_file": pki.root_file, "timeout": "3s"}
            ),
            shared,
        )

    # OpenSSL may refuse the chain (a TLS error) or accept it (HTTP 200): either way the
    # certificate is judged, never an internal error.
    assert result.error is None or result.error.error_class is ErrorClass.TLS, result.summary()
    assert_named_and_kept(result, case, 1 + len(chain))


async def huge_san_probe(pki: Pki, tmp_path: Path, shared: SharedResources, count: int) -> Any:
    names = [der(DNS_NAME, f"n{i}.hostile.example.net".encode()) for i in range(count)]
    good = make_leaf(pki.intermediate, [LOOPBACK], not_after=days(90))
    leaf = forge(good, pki.intermediate, _san(*names, der(DNS_NAME, b"last.hostile.example.net")))
    values = {"server_name": "last.hostile.example.net", "ca_file": pki.root_file}
    with tls_server(server_context(leaf, tmp_path, (pki.intermediate,))) as port:
        started = time.perf_counter()
        result = await run_check(
            adhoc_check("tls", {"target": f"{LOOPBACK}:{port}", **values}), shared
        )
    return result, time.perf_counter() - started


async def test_huge_subject_alt_name_is_matched_and_shown_bounded(
    pki: Pki, tmp_path: Path, shared: SharedResources, quiet: Any
) -> None:
    result, took = await huge_san_probe(pki, tmp_path, shared, 2500)

    assert result.severity is Severity.OK, result.summary()
    assert took < 2
    shown = result.certificates[0].subject_alt_names
    assert len(shown) == 101 and shown[-1] == "(+2401 more)"


async def test_a_chain_over_the_clients_size_limit_is_a_tls_error(
    pki: Pki, tmp_path: Path, shared: SharedResources, quiet: Any
) -> None:
    """OpenSSL bounds what a client reads of a certificate list (100 KiB)."""
    result, _ = await huge_san_probe(pki, tmp_path, shared, 5000)

    assert result.error is not None and result.error.error_class is ErrorClass.TLS
    assert result.error.message == "TLS handshake failed: excessive message size"


async def test_unknown_public_key_algorithm_is_not_an_internal_error(
    pki: Pki, tmp_path: Path, shared: SharedResources, quiet: Any
) -> None:
    unknown_key = der(0x30, der(0x30, UNKNOWN_OID) + der(0x03, b"\x00" + b"\x01" * 32))
    intermediate = forge(pki.intermediate, pki.root, lambda t: t.with_field(Tbs.SPKI, unknown_key))
    leaf = make_leaf(pki.intermediate, [LOOPBACK], not_after=days(90))
    # Served at security level 0: a server checks its own chain's keys at its default level.
    with tls_server(server_context(leaf, tmp_path, (intermediate,), legacy=True)) as port:
        result = await run_check(
            adhoc_check("tls", {"target": f"{LOOPBACK}:{port}", "ca_file": pki.root_file}),
            shared,
        )

    assert result.error is None, result.summary()
    assert result.certificates[1].key_type == "unknown"
    assert result.severity is Severity.CRIT  # the chain no longer verifies: untrusted


@pytest.mark.parametrize(
    "name",
    [
        "x400Address in the subjectAltName",
        "negative serial",
        "PrintableString with @ in the subject",
    ],
)
async def test_revocation_check_of_a_malformed_chain_is_a_finding(
    name: str, pki: Pki, tmp_path: Path, shared: SharedResources, quiet: Any
) -> None:
    """OpenSSL verifies these chains, so OCSP and CRL would be asked about them; a malformed
    leaf or issuer is not looked up (the malformed finding says why), never an internal
    error or a warning on stderr."""
    case = CASES[name]
    leaf, chain = served(pki, case)
    values = {"ca_file": pki.root_file, "ocsp": True, "crl": True, "timeout": "3s"}
    with tls_server(server_context(leaf, tmp_path, chain)) as port:
        result = await run_check(
            adhoc_check("tls", {"target": f"{LOOPBACK}:{port}", **values}), shared
        )

    assert result.error is None, result.summary()
    assert_named_and_kept(result, case, 1 + len(chain))
    known = next(v for v in result.verdicts if v.condition == "revocation_known")
    assert known.severity is Severity.OK, known.finding
    assert known.finding == "revocation not checked: not asked: the leaf is malformed" or (
        known.finding.startswith("revocation not checked: no verified issuer")
    )
