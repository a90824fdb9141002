"""The tls probe (and https checks) against real TLS servers on 127.0.0.1, one per case, with a
PKI generated here: root -> intermediate -> leaf, plus the broken and weak variants."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass, ProbeResult, Severity, Verdict
from monitor.core.options import OptionError
from monitor.engine.runner import run_check
from probes.base import SharedResources
from tests.peers.http_peers import http_server
from tests.peers.pki import Issued, make_ca, make_leaf, server_context
from tests.peers.tcp_peers import accepting_listener, closed_port
from tests.peers.tls_peers import (
    LOOPBACK,
    REFUSING_SERVERS,
    STARTTLS_SERVERS,
    Seen,
    garbage_server,
    tls10_only,
    tls_server,
)

NAME = "gw1.psap.example.net"


def days(n: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=n)


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    other_root: Issued
    rsa_intermediate: Issued
    root_file: str
    other_root_file: str
    rsa_root_file: str
    folder: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    root = make_ca("commwatch test root", not_after=days(3650), path_length=None)
    intermediate = make_ca("commwatch test intermediate", issuer=root, not_after=days(1000))
    other_root = make_ca("some other root", not_after=days(3650))
    # RSA only where RSA is the point: SHA-1 signatures need an RSA issuer.
    rsa_root = make_ca("commwatch RSA root", not_after=days(3650), path_length=None, rsa_bits=2048)
    rsa_intermediate = make_ca(
        "commwatch RSA intermediate", issuer=rsa_root, not_after=days(1000), rsa_bits=2048
    )
    files = {}
    for stem, ca in (("root", root), ("other", other_root), ("rsa", rsa_root)):
        files[stem] = folder / f"{stem}.pem"
        files[stem].write_bytes(ca.cert_pem)
    return Pki(
        root,
        intermediate,
        other_root,
        rsa_intermediate,
        str(files["root"]),
        str(files["other"]),
        str(files["rsa"]),
        folder,
    )


@pytest.fixture
def serve(pki: Pki, tmp_path: Path) -> Iterator[Any]:
    """serve(leaf, chain) -> a context manager yielding the port of a TLS server for them."""

    def start(leaf: Issued, chain: tuple[Issued, ...] | None = None, **kwargs: Any) -> Any:
        served = (pki.intermediate,) if chain is None else chain
        return tls_server(server_context(leaf, tmp_path, served), **kwargs)

    yield start


def leaf(pki: Pki, sans: tuple[str, ...] = (LOOPBACK, NAME), **kwargs: Any) -> Issued:
    kwargs.setdefault("not_after", days(60))
    return make_leaf(pki.intermediate, list(sans), **kwargs)


async def probe(shared: SharedResources, memory: dict[str, Any] | None = None, **values: Any):
    values.setdefault("timeout", "2s")
    return await run_check(adhoc_check("tls", values), shared, memory)


def verdict(result: ProbeResult, condition: str) -> Verdict:
    return next(v for v in result.verdicts if v.condition == condition)


def bad(result: ProbeResult) -> dict[str, Severity]:
    return {v.condition: v.severity for v in result.verdicts if v.severity is not Severity.OK}


# --- the good case ---------------------------------------------------------------------------


async def test_valid_chain_is_ok_in_one_handshake(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    seen = Seen()
    with serve(leaf(pki), seen=seen) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert result.severity is Severity.OK, result.summary()
    obs = result.observations
    assert obs["trusted"] is True
    assert obs["hostname_match"] is True
    assert obs["chain_length"] == 2
    assert obs["chain_complete"] is True and obs["chain_order_ok"] is True
    assert obs["tls_version"] == "TLSv1.3"
    assert obs["legacy_handshake"] is False
    assert obs["client_auth"] == "ok"
    assert 59 < obs["days_left"] <= 60
    assert obs["min_days_left"] == obs["days_left"]
    assert obs["first_expiring"] == f"#0 CN={LOOPBACK}"
    assert obs["handshake_ms"] > 0 and isinstance(obs["cipher"], str)
    # One connection: no relaxed retry when all is well. An IP target sends no SNI.
    assert seen.server_names == [None]
    assert [c.position for c in result.certificates] == [0, 1]
    assert result.certificates[1].subject == "CN=commwatch test intermediate"


async def test_server_name_is_sent_as_sni_and_judged(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    seen = Seen()
    with serve(leaf(pki), seen=seen) as port:
        right = await probe(
            shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file, server_name=NAME
        )
        wrong = await probe(
            shared,
            target=f"{LOOPBACK}:{port}",
            ca_file=pki.root_file,
            server_name="cad.psap.example.net",
        )

    assert right.severity is Severity.OK, right.summary()
    assert seen.server_names == [NAME, "cad.psap.example.net"]
    assert wrong.severity is Severity.CRIT
    assert bad(wrong) == {"hostname": Severity.CRIT}
    assert wrong.summary() == (
        "name mismatch: cad.psap.example.net not in the leaf's subjectAltName: CRIT"
    )
    assert verdict(wrong, "hostname").reason == "name mismatch"
    matched = verdict(right, "hostname").finding
    assert matched == f"name matches: {NAME} in the leaf's subjectAltName"


async def test_wildcard_covers_one_label_only(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki, ("*.psap.example.net",))) as port:
        one = await probe(
            shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file, server_name=NAME
        )
        two = await probe(
            shared,
            target=f"{LOOPBACK}:{port}",
            ca_file=pki.root_file,
            server_name="a.gw1.psap.example.net",
        )

    assert one.observations["hostname_match"] is True
    assert two.observations["hostname_match"] is False


async def test_ip_target_is_matched_against_ip_sans(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki, ("127.0.0.2", NAME))) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert bad(result) == {"hostname": Severity.CRIT}
    assert result.observations["cn_only"] is False


async def test_cn_only_certificate_is_flagged(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki, (), common_name=LOOPBACK)) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert bad(result) == {"hostname": Severity.CRIT, "cn_only": Severity.CRIT}


# --- expiry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "severity"), [(20.5, Severity.WARN), (5.25, Severity.CRIT), (100, Severity.OK)]
)
async def test_expiry_thresholds_with_fractional_days(
    pki: Pki, serve: Any, shared: SharedResources, left: float, severity: Severity
) -> None:
    with serve(leaf(pki, not_after=days(left))) as port:
        result = await probe(
            shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file, warn_days=30, crit_days=7.5
        )

    expiry = verdict(result, "expiry")
    assert expiry.severity is severity, result.summary()
    assert result.severity is severity
    assert left - 0.01 < expiry.value <= left
    assert expiry.threshold == "warn < 30d, crit < 7.5d"


async def test_expired_leaf_is_crit_and_named(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    expired = leaf(pki, not_before=days(-90), not_after=days(-2))
    with serve(expired) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert result.error is None
    assert verdict(result, "expiry").severity is Severity.CRIT
    assert result.observations["days_left"] < -1.9
    # OpenSSL refused the dates only: verified again without them, the chain is trusted, and
    # the expiry is one finding, not also an "untrusted" one.
    assert result.observations["trusted"] is True
    assert "trust_error" not in result.observations
    assert bad(result) == {"expiry": Severity.CRIT}
    assert result.summary() == (
        f"cert expired 2.0d ago (#0 CN={LOOPBACK}) (warn < 30d, crit < 14d): CRIT"
    )
    assert verdict(result, "expiry").reason == "expired 2.0d ago"
    assert len(result.certificates) == 2


async def test_not_yet_valid_leaf_is_crit(pki: Pki, serve: Any, shared: SharedResources) -> None:
    with serve(leaf(pki, not_before=days(3), not_after=days(90))) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert verdict(result, "not_yet_valid").severity is Severity.CRIT
    assert result.observations["not_yet_valid_certificates"] == f"#0 CN={LOOPBACK}"


async def test_intermediate_expiring_first_is_named_in_the_summary(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    short = make_ca("short-lived intermediate", issuer=pki.root, not_after=days(10))
    with serve(make_leaf(short, [LOOPBACK], not_after=days(60)), (short,)) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert result.severity is Severity.CRIT
    assert result.observations["days_left"] > 59
    assert verdict(result, "expiry").about == "#1 CN=short-lived intermediate"
    assert result.summary().startswith("cert expires in ")
    assert "d (#1 CN=short-lived intermediate) (warn < 30d, crit < 14d): CRIT" in result.summary()
    assert 9.9 < verdict(result, "expiry").value <= 10


async def test_max_validity_days(pki: Pki, serve: Any, shared: SharedResources) -> None:
    with serve(leaf(pki, not_after=days(500))) as port:
        result = await probe(
            shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file, max_validity_days=398
        )

    assert bad(result) == {"max_validity": Severity.CRIT}
    assert result.observations["validity_days"] > 398


# --- trust and chain structure ---------------------------------------------------------------


async def test_missing_intermediate_is_named(pki: Pki, serve: Any, shared: SharedResources) -> None:
    with serve(leaf(pki), ()) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert result.error is None
    assert bad(result) == {"trusted": Severity.CRIT, "chain_complete": Severity.CRIT}
    obs = result.observations
    assert obs["trust_error"] == (
        f"incomplete chain: issuer CN=commwatch test intermediate of #0 CN={LOOPBACK} not sent"
    )
    assert obs["missing_issuer"].startswith("CN=commwatch test intermediate")
    assert len(result.certificates) == 1


async def test_intermediate_only_in_the_ca_file_is_still_incomplete(
    pki: Pki, serve: Any, shared: SharedResources, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.root.cert_pem + pki.intermediate.cert_pem)
    with serve(leaf(pki), ()) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=str(bundle))

    assert result.observations["trusted"] is True
    assert bad(result) == {"chain_complete": Severity.CRIT}


async def test_untrusted_root_is_named(pki: Pki, serve: Any, shared: SharedResources) -> None:
    with serve(leaf(pki)) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.other_root_file)

    assert bad(result) == {"trusted": Severity.CRIT}
    assert result.observations["trust_error"] == (
        "untrusted root: CN=commwatch test root (issuer of #1 CN=commwatch test intermediate)"
        f" is not in {pki.other_root_file}"
    )
    assert result.summary() == result.observations["trust_error"] + ": CRIT"
    assert verdict(result, "trusted").reason == "untrusted root"


async def test_served_untrusted_root_is_named(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki), (pki.intermediate, pki.root)) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.other_root_file)

    assert result.observations["trust_error"] == (
        f"untrusted root: #2 CN=commwatch test root is not in {pki.other_root_file}"
    )
    assert result.observations["chain_complete"] is True


def device_certificate(sans: tuple[str, ...] = (LOOPBACK, NAME)) -> Issued:
    """A self-signed server certificate, as routers and radios make for their web UI."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])])
    names = [
        x509.IPAddress(ipaddress.ip_address(s)) if s[0].isdigit() else x509.DNSName(s) for s in sans
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(days(-1))
        .not_valid_after(days(365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


async def test_self_signed_leaf(pki: Pki, serve: Any, shared: SharedResources) -> None:
    self_signed = device_certificate()
    with serve(self_signed, ()) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert result.observations["self_signed"] is True
    assert result.observations["trust_error"] == (
        f"self-signed leaf: #0 CN={LOOPBACK} is not in {pki.root_file} "
        "(to accept it, pin its key or name it as ca_file)"
    )
    # One finding, the trust: no separate self-signed WARN beside it (nor once accepted).
    assert bad(result) == {"trusted": Severity.CRIT}
    assert verdict(result, "trusted").reason == "self-signed leaf"


async def test_system_store_does_not_trust_a_private_chain(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki)) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}")

    assert (
        verdict(result, "trusted").threshold == "expected a chain verified by the system CA store"
    )
    assert result.observations["trusted"] is False


async def test_self_signed_device_certificate_accepted_by_pin_is_ok(
    pki: Pki, serve: Any, shared: SharedResources, tmp_path: Path
) -> None:
    device = device_certificate()
    with serve(device, ()) as port:
        first = await probe(shared, target=f"{LOOPBACK}:{port}")
        pinned = await probe(
            shared, target=f"{LOOPBACK}:{port}", pin=f"sha256/{first.certificates[0].spki_sha256}"
        )

    assert pinned.severity is Severity.OK, pinned.summary()
    assert pinned.observations["trust"] == "pinned"
    assert pinned.observations["trusted"] is False  # OpenSSL's verdict, kept as it was
    assert verdict(pinned, "trusted").finding == (
        "trusted: the leaf's key matches a configured pin"
    )
    assert not [v for v in pinned.verdicts if v.severity is not Severity.OK]


async def test_self_signed_device_certificate_named_as_ca_file_is_ok(
    serve: Any, shared: SharedResources, tmp_path: Path
) -> None:
    device = device_certificate()
    ca_file = tmp_path / "device.pem"
    ca_file.write_bytes(device.cert_pem)
    with serve(device, ()) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=str(ca_file))

    assert result.severity is Severity.OK, result.summary()
    assert result.observations["self_signed"] is True
    assert verdict(result, "trusted").finding == f"chain verified by {ca_file}"


async def test_pin_of_an_unverified_intermediate_does_not_make_the_leaf_trusted(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    """Anyone can serve a copy of a public intermediate: only the leaf's key is proved by the
    handshake, so only a leaf pin stands in for verification."""
    with serve(leaf(pki)) as port:
        first = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.other_root_file)
        pin = f"sha256/{first.certificates[1].spki_sha256}"
        result = await probe(
            shared, target=f"{LOOPBACK}:{port}", ca_file=pki.other_root_file, pin=pin
        )

    assert result.observations["pin_match"] is True
    assert result.observations["trust"] == "untrusted"
    assert bad(result) == {"trusted": Severity.CRIT}


async def test_expired_leaf_of_an_untrusted_root_names_both(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    expired = leaf(pki, not_before=days(-90), not_after=days(-2))
    with serve(expired) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.other_root_file)

    # Behind the dates OpenSSL refused first, the untrusted root is found and named too.
    assert bad(result) == {"expiry": Severity.CRIT, "trusted": Severity.CRIT}
    assert verdict(result, "trusted").reason == "untrusted root"


@pytest.mark.parametrize(
    ("order", "condition", "about"),
    [
        ("leaf root intermediate", "chain_order", None),
        ("leaf intermediate intermediate", "duplicates", "#2 CN=commwatch test intermediate"),
        ("leaf intermediate other", "extraneous", "#2 CN=some other root"),
    ],
)
async def test_chain_structure_faults_are_named(
    pki: Pki, serve: Any, shared: SharedResources, order: str, condition: str, about: str | None
) -> None:
    named = {"root": pki.root, "intermediate": pki.intermediate, "other": pki.other_root}
    chain = tuple(named[n] for n in order.split()[1:])
    with serve(leaf(pki), chain) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert bad(result) == {condition: Severity.WARN}, result.summary()
    if about:
        assert verdict(result, condition).about == about
    assert [c.position for c in result.certificates] == [0, 1, 2]


# --- weak keys, weak signatures, legacy protocols --------------------------------------------


async def test_rsa_1024_leaf_is_a_weak_key(pki: Pki, shared: SharedResources, tmp_path) -> None:
    weak = leaf(pki, rsa_bits=1024)
    context = server_context(weak, tmp_path, (pki.intermediate,), legacy=True)
    with tls_server(context) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert verdict(result, "weak_key").severity is Severity.CRIT
    assert verdict(result, "weak_key").about == f"#0 CN={LOOPBACK} (RSA 1024 bits)"
    # OpenSSL refuses the key at its default level; verified again at a lower one, the chain
    # is trusted, and the weak key is the one finding.
    assert bad(result) == {"weak_key": Severity.CRIT}
    assert result.summary() == f"weak key: #0 CN={LOOPBACK} (RSA 1024 bits): CRIT"
    assert result.certificates[0].key_bits == 1024


async def test_sha1_signature_is_weak(pki: Pki, shared: SharedResources, tmp_path) -> None:
    weak = make_leaf(pki.rsa_intermediate, [LOOPBACK], sha1=True)
    context = server_context(weak, tmp_path, (pki.rsa_intermediate,), legacy=True)
    with tls_server(context) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.rsa_root_file)

    assert verdict(result, "weak_signature").severity is Severity.CRIT
    assert result.observations["weak_signature_certificates"] == (
        f"#0 CN={LOOPBACK} (sha1WithRSAEncryption)"
    )
    assert result.observations["weak_key"] is False


async def test_tls10_only_server_is_read_and_warned(
    pki: Pki, shared: SharedResources, tmp_path: Path
) -> None:
    context = tls10_only(server_context(leaf(pki), tmp_path, (pki.intermediate,), legacy=True))
    with tls_server(context) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert result.error is None, result.summary()
    assert result.severity is Severity.WARN, result.summary()
    assert bad(result) == {"tls_version": Severity.WARN, "legacy_handshake": Severity.WARN}
    assert verdict(result, "tls_version").finding == (
        "old protocol TLSv1 (accepted: TLSv1.2, TLSv1.3; see min_tls_version)"
    )
    assert result.observations["tls_version"] == "TLSv1"
    # Verified with legacy settings: the chain itself is fine.
    assert result.observations["trusted"] is True
    assert result.observations["strict_handshake_error"] == "tlsv1 alert protocol version"


async def test_legacy_gear_accepted_by_min_tls_version_is_ok(
    pki: Pki, shared: SharedResources, tmp_path: Path
) -> None:
    """A radio that will never speak more than TLS 1.0: named as accepted, it is OK, not a
    WARN that no configuration could clear."""
    context = tls10_only(server_context(leaf(pki), tmp_path, (pki.intermediate,), legacy=True))
    with tls_server(context) as port:
        result = await probe(
            shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file, min_tls_version="1.0"
        )

    assert result.severity is Severity.OK, result.summary()
    assert verdict(result, "legacy_handshake").finding.startswith(
        "legacy handshake accepted (min_tls_version TLSv1): "
    )
    assert result.summary().startswith("TLSv1, cert expires in ")


def test_min_tls_version_names_a_version() -> None:
    assert adhoc_check("tls", {"target": LOOPBACK, "min_tls_version": "tlsv1.1"}).options
    with pytest.raises(OptionError) as caught:
        adhoc_check("tls", {"target": LOOPBACK, "min_tls_version": "SSLv3"})
    assert caught.value.message == "'SSLv3' is not a TLS version"


# --- client certificates ---------------------------------------------------------------------


@pytest.fixture
def mtls_context(pki: Pki, tmp_path: Path) -> Any:
    context = server_context(leaf(pki), tmp_path, (pki.intermediate,))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(pki.root_file)
    return context


async def test_server_demanding_a_client_certificate_is_not_down(
    pki: Pki, mtls_context: Any, shared: SharedResources
) -> None:
    with tls_server(mtls_context) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert result.error is None
    assert bad(result) == {"client_auth": Severity.CRIT}
    assert result.observations["client_auth"] == "server requires a client certificate"
    assert result.observations["trusted"] is True
    assert len(result.certificates) == 2


async def test_client_certificate_with_passphrase_is_accepted(
    pki: Pki, mtls_context: Any, shared: SharedResources, tmp_path: Path, monkeypatch: Any
) -> None:
    from cryptography.hazmat.primitives import serialization

    client = make_leaf(pki.intermediate, ["dispatch-monitor"], client=True)
    cert = tmp_path / "client.crt"
    cert.write_bytes(client.cert_pem + pki.intermediate.cert_pem)
    key = tmp_path / "client.key"
    key.write_bytes(
        client.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-secret-0815"),
        )
    )
    monkeypatch.setenv("CW_TEST_KEY_PASS", "key-secret-0815")
    with tls_server(mtls_context) as port:
        result = await probe(
            shared,
            target=f"{LOOPBACK}:{port}",
            ca_file=pki.root_file,
            client_cert=str(cert),
            client_key=str(key),
            client_key_passphrase_env="CW_TEST_KEY_PASS",
        )

    assert result.severity is Severity.OK, result.summary()
    assert result.observations["client_auth"] == "ok"
    assert "key-secret-0815" not in repr(result)


# --- STARTTLS --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", sorted(STARTTLS_SERVERS))
async def test_starttls(pki: Pki, shared: SharedResources, tmp_path: Path, protocol: str) -> None:
    context = server_context(leaf(pki), tmp_path, (pki.intermediate,))
    with tls_server(context, before_tls=STARTTLS_SERVERS[protocol]) as port:
        result = await probe(
            shared,
            target=f"{LOOPBACK}:{port}",
            ca_file=pki.root_file,
            starttls=protocol,
            server_name=NAME,
        )

    assert result.severity is Severity.OK, result.summary()
    assert result.observations["trusted"] is True
    assert len(result.certificates) == 2


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        ("smtp", "smtp: server does not offer STARTTLS"),
        ("postgres", "postgres: server does not accept SSL"),
    ],
)
async def test_starttls_refused_is_a_protocol_error(
    pki: Pki, shared: SharedResources, tmp_path: Path, protocol: str, message: str
) -> None:
    context = server_context(leaf(pki), tmp_path, (pki.intermediate,))
    with tls_server(context, before_tls=REFUSING_SERVERS[protocol]) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", starttls=protocol)

    assert result.error is not None
    assert (result.error.error_class, result.error.message) == (ErrorClass.PROTOCOL, message)


# --- peers that fail below TLS ---------------------------------------------------------------


async def test_silent_peer_times_out(shared: SharedResources) -> None:
    async with accepting_listener() as port:
        started = time.perf_counter()
        result = await probe(shared, target=f"{LOOPBACK}:{port}", timeout="300ms")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert time.perf_counter() - started < 1.5


async def test_garbage_is_a_tls_error(shared: SharedResources) -> None:
    with garbage_server() as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TLS
    assert result.error.message == (
        "TLS handshake failed: the server does not speak TLS here (wrong version number)"
    )
    assert result.certificates == ()


async def test_closed_port_is_refused(shared: SharedResources) -> None:
    result = await probe(shared, target=f"{LOOPBACK}:{closed_port()}")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.REFUSED


# --- pins, change detection, the parse cache -------------------------------------------------


async def test_pins(pki: Pki, serve: Any, shared: SharedResources) -> None:
    served = leaf(pki)
    with serve(served) as port:
        first = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)
        intermediate_pin = f"sha256/{first.certificates[1].spki_sha256}"
        other_pin = "sha256/" + "A" * 43 + "="
        match = await probe(
            shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file, pin=[intermediate_pin]
        )
        mismatch = await probe(
            shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file, pin=other_pin
        )

    assert match.severity is Severity.OK, match.summary()
    assert match.observations["pin_match"] is True
    assert bad(mismatch) == {"pin": Severity.CRIT}


async def test_unexpected_change_across_polls(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    memory: dict[str, Any] = {}
    values = {"ca_file": pki.root_file, "warn_days": 30}
    with serve(leaf(pki, not_after=days(200))) as port:
        first = await probe(shared, memory, target=f"{LOOPBACK}:{port}", **values)
    with serve(leaf(pki, not_after=days(300))) as port:
        replaced = await probe(shared, memory, target=f"{LOOPBACK}:{port}", **values)
        again = await probe(shared, memory, target=f"{LOOPBACK}:{port}", **values)

    assert first.observations["unexpected_change"] is False
    assert bad(replaced) == {"unexpected_change": Severity.WARN}
    assert again.severity is Severity.OK


@pytest.mark.parametrize(
    "remembered", ["sha256:abc", ["abc"], ["abc", "soon", 3], ["abc", "soon"], {"leaf": "abc"}]
)
async def test_a_remembered_leaf_not_as_written_is_no_change(
    pki: Pki, serve: Any, shared: SharedResources, remembered: Any
) -> None:
    """A state file of another version, or a damaged one: the poll is not lost to it, and
    the next one compares with the leaf this one saw."""
    memory: dict[str, Any] = {"certificates.last_leaf": remembered}
    values = {"ca_file": pki.root_file, "warn_days": 30}
    with serve(leaf(pki, not_after=days(200))) as port:
        first = await probe(shared, memory, target=f"{LOOPBACK}:{port}", **values)
    with serve(leaf(pki, not_after=days(300))) as port:
        replaced = await probe(shared, memory, target=f"{LOOPBACK}:{port}", **values)

    assert first.error is None, first.summary()
    assert first.observations["unexpected_change"] is False
    assert bad(replaced) == {"unexpected_change": Severity.WARN}


async def test_renewal_near_expiry_is_not_a_surprise(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    memory: dict[str, Any] = {}
    with serve(leaf(pki, not_after=days(20))) as port:
        await probe(shared, memory, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)
    with serve(leaf(pki, not_after=days(90))) as port:
        renewed = await probe(shared, memory, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert renewed.severity is Severity.OK, renewed.summary()


async def test_each_certificate_is_parsed_once_per_run(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki)) as port:
        for _ in range(3):
            await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    cache = await shared.get("certificates.parsed", _never)
    assert len(cache) == 2


async def _never() -> None:
    raise AssertionError("the cache should exist already")


# --- https checks judge the same chain -------------------------------------------------------


@pytest.fixture
async def https_url(pki: Pki, tmp_path: Path) -> AsyncIterator[str]:
    expiring = leaf(pki, not_after=days(10))
    async with http_server(server_context(expiring, tmp_path, (pki.intermediate,))) as peer:
        yield f"{peer.url}/ok"


async def test_https_judges_the_served_chain(
    pki: Pki, https_url: str, shared: SharedResources
) -> None:
    result = await run_check(
        adhoc_check(
            "http",
            {"target": https_url, "ca_file": pki.root_file, "pin": "sha256/" + "A" * 43 + "="},
        ),
        shared,
    )

    assert result.observations["status"] == 200
    assert bad(result) == {"expiry": Severity.CRIT, "pin": Severity.CRIT}
    assert [c.position for c in result.certificates] == [0, 1]


async def test_https_untrusted_chain_is_still_read_and_named(
    pki: Pki, https_url: str, shared: SharedResources
) -> None:
    result = await run_check(
        adhoc_check("http", {"target": https_url, "ca_file": pki.other_root_file}), shared
    )

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TLS
    assert len(result.certificates) == 2
    assert result.observations["trust_error"].startswith("untrusted root")
    assert verdict(result, "expiry").severity is Severity.CRIT


async def test_https_name_mismatch_is_one_finding_not_also_untrusted(
    pki: Pki, tmp_path: Path, shared: SharedResources
) -> None:
    """aiohttp refuses the name; the chain itself is verified again without it."""
    other = make_leaf(pki.intermediate, ["other.psap.example.net"], not_after=days(60))
    async with http_server(server_context(other, tmp_path, (pki.intermediate,))) as peer:
        result = await run_check(
            adhoc_check("http", {"target": f"{peer.url}/ok", "ca_file": pki.root_file}), shared
        )

    assert result.error is not None and result.error.error_class is ErrorClass.TLS
    assert result.observations["trusted"] is True
    assert bad(result) == {"hostname": Severity.CRIT}
    assert verdict(result, "hostname").reason == "name mismatch"


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"warn_days": 5, "crit_days": 10}, "crit_days", "crit_days is above warn_days"),
        ({"pin": "md5/abc"}, "pin", "is not a sha256/BASE64 pin"),
        ({"starttls": "gopher"}, "starttls", "is not one of the choices"),
        ({"target": "127.0.0.1:0"}, "target", "is not a TCP/UDP port"),
    ],
)
def test_bad_options_are_rejected(values: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(OptionError) as caught:
        adhoc_check("tls", {"target": f"{LOOPBACK}:443", **values})

    assert caught.value.key == key
    assert message in caught.value.message


def test_client_cert_needs_its_key(pki: Pki) -> None:
    with pytest.raises(OptionError) as caught:
        adhoc_check("tls", {"target": LOOPBACK, "client_cert": pki.root_file})

    assert caught.value.key == "client_key"


def test_port_defaults_to_443() -> None:
    check = adhoc_check("tls", {"target": "192.0.2.10"})
    assert check.ref.target == "192.0.2.10:443"
