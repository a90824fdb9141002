"""The runner: one classification table, failures never escape, judgement of partial results."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import socket
import ssl

import aiohttp
import dns.exception
import pytest

from monitor.config.checks import adhoc_check
from monitor.core.errors import ConfigFailure, DnsFailure, ProtocolFailure, TlsFailure
from monitor.core.failures import SEVERITY_OF_ERROR, classify, describe_error
from monitor.core.model import ErrorClass, Severity
from monitor.core.options import OptionError
from monitor.engine.runner import run_check
from probes.base import ProbeKind


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), ErrorClass.TIMEOUT),
        (dns.exception.Timeout(), ErrorClass.TIMEOUT),
        (OSError(errno.ETIMEDOUT, "timed out"), ErrorClass.TIMEOUT),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ErrorClass.REFUSED),
        (OSError(errno.ECONNREFUSED, "refused"), ErrorClass.REFUSED),
        (OSError(errno.EHOSTUNREACH, "no route"), ErrorClass.UNREACHABLE),
        (OSError(errno.ENETUNREACH, "network unreachable"), ErrorClass.UNREACHABLE),
        (DnsFailure("no such host"), ErrorClass.DNS),
        (TlsFailure("handshake"), ErrorClass.TLS),
        (ssl.SSLError(1, "bad"), ErrorClass.TLS),
        (ssl.SSLCertVerificationError(1, "verify"), ErrorClass.TLS),
        (ProtocolFailure("garbage"), ErrorClass.PROTOCOL),
        (ConnectionResetError(errno.ECONNRESET, "reset"), ErrorClass.PROTOCOL),
        (aiohttp.ServerDisconnectedError(), ErrorClass.PROTOCOL),
        (dns.exception.FormError(), ErrorClass.PROTOCOL),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), ErrorClass.DNS),
        (ConfigFailure("secret gone"), ErrorClass.CONFIG),
        (OptionError("env var unset"), ErrorClass.CONFIG),
        (KeyError("bug"), ErrorClass.INTERNAL),
        (ZeroDivisionError(), ErrorClass.INTERNAL),
    ],
)
def test_classification_table(exc, expected):
    assert classify(exc) is expected


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (
            ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            "TLS: [SSL: WRONG_VERSION_NUMBER] wrong version number",
        ),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "name lookup failed: Name or service not known",
        ),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('x', 1)"),
            "Connection refused",
        ),
        (ProtocolFailure("bad\n   status line"), "bad status line"),
    ],
)
def test_error_messages_are_one_plain_line(exc, message):
    assert describe_error(exc, classify(exc), 1.0) == message


def test_every_error_class_has_a_severity():
    assert set(SEVERITY_OF_ERROR) == set(ErrorClass)
    assert SEVERITY_OF_ERROR[ErrorClass.INTERNAL] is Severity.UNKNOWN
    assert SEVERITY_OF_ERROR[ErrorClass.TIMEOUT] is Severity.CRIT


def _with_measure(measure) -> object:
    """A tcp check whose probe measures with `measure`: a probe written wrong on purpose."""
    check = adhoc_check("tcp", {"target": "127.0.0.1:9", "timeout": "300ms"})
    probe = dataclasses.replace(check.probe, measure=measure)
    assert isinstance(probe, ProbeKind)
    return dataclasses.replace(check, probe=probe)


async def test_a_probe_bug_is_unknown_internal_and_logged(shared, caplog):
    async def broken(options, ctx):
        raise KeyError("oops")

    result = await run_check(_with_measure(broken), shared)
    assert result.severity is Severity.UNKNOWN
    assert result.error.error_class is ErrorClass.INTERNAL
    # The type and the place, never the message: libraries put their inputs (secrets) there.
    assert result.error.message.startswith("unexpected KeyError at ")
    assert "oops" not in result.error.message
    assert "failed: unexpected KeyError" in caplog.text


async def test_a_probe_that_ignores_its_timeout_is_cut_off(shared):
    async def hangs(options, ctx):
        await asyncio.sleep(3600)

    started = asyncio.get_running_loop().time()
    result = await run_check(_with_measure(hangs), shared)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert result.error.message == "no answer within 0.3s"


async def test_partial_observations_are_judged_and_kept(shared):
    async def half(options, ctx):
        raise ProtocolFailure("reset after connect", {"connect_ms": 5000.0})

    check = _with_measure(half)
    check = dataclasses.replace(
        check, options=dataclasses.replace(check.options, latency_warn=1.0, latency_crit=2.0)
    )
    result = await run_check(check, shared)
    assert result.observations["connect_ms"] == 5000.0
    assert [v.severity for v in result.verdicts] == [Severity.CRIT]
    assert result.error.error_class is ErrorClass.PROTOCOL
    # The error first, then what the attempt measured and judged before it failed.
    assert result.summary() == (
        "protocol: reset after connect; latency 5000ms (warn > 1000ms, crit > 2000ms): CRIT"
    )


async def test_memory_persists_between_attempts_of_a_check(shared):
    async def counts(options, ctx):
        ctx.memory["polls"] = ctx.memory.get("polls", 0) + 1
        return {"polls": ctx.memory["polls"]}

    check = _with_measure(counts)
    memory: dict = {}
    await run_check(check, shared, memory)
    result = await run_check(check, shared, memory)
    assert result.observations["polls"] == 2
    with pytest.raises(TypeError):
        result.observations["polls"] = 3


async def test_certificates_seen_before_a_failure_reach_the_result_and_the_json(shared):
    import json

    import jsonschema

    from monitor.core.model import CertificateInfo
    from monitor.output.records import result_record
    from tests.conftest import REPO

    certificate = CertificateInfo(
        fingerprint_sha256="ab" * 32,
        position=0,
        subject="CN=cad.example.net",
        issuer="CN=Example CA",
        serial="1f",
        not_before=0.0,
        not_after=4102444800.0,
        key_type="EC",
        key_bits=256,
        signature_algorithm="ecdsa-with-SHA256",
        subject_alt_names=("DNS:cad.example.net",),
        spki_sha256="c3BraQ==",
        self_signed=False,
    )

    async def sees_then_fails(options, ctx):
        ctx.certificates.append(certificate)
        raise TlsFailure("certificate verify failed: unable to get local issuer certificate")

    result = await run_check(_with_measure(sees_then_fails), shared)
    assert result.certificates == (certificate,)
    assert result.error.error_class is ErrorClass.TLS
    record = result_record(result)
    schema = json.loads((REPO / "monitor/output/schema/result.schema.json").read_text())
    jsonschema.validate(record, schema)
    (shown,) = record["certificates"]
    assert shown["not_after"] == "2100-01-01T00:00:00.000+00:00"
    assert shown["days_left"] > 25000
