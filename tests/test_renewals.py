"""Certificate renewals observed over time: a real engine with history probes a real TLS server
of the test whose certificate the test swaps (certificates made here with chosen notBefore and
notAfter), across a restart of the engine; and the issuer a new certificate comes from."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.events import Event
from monitor.core.model import ProbeResult, Severity, Verdict
from monitor.engine.pipeline import Monitor
from monitor.output.records import result_record
from monitor.store.certificates import KEEP
from monitor.store.queries import HistoryReader
from monitor.store.renewals import issuing_ca
from tests.conftest import REPO
from tests.peers.pki import Issued, make_ca, make_leaf
from tests.peers.tls_peers import LOOPBACK, tls_server

DAY = datetime.timedelta(days=1)


def ago(days: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - days * DAY


class SwappableServer:
    """A TLS server whose certificate the test replaces between handshakes."""

    def __init__(self, folder: Path, leaf: Issued) -> None:
        self.folder = folder
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.serve(leaf)

    def serve(self, leaf: Issued) -> None:
        cert, key = leaf.write(self.folder, "served")
        self.context.load_cert_chain(cert, key)


@contextlib.contextmanager
def swappable(folder: Path, leaf: Issued) -> Iterator[tuple[SwappableServer, int]]:
    server = SwappableServer(folder, leaf)
    with tls_server(server.context) as port:
        yield server, port


def inventory(tmp_path: Path, port: int, ca_file: Path, extra: str = "") -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
        "sites:\n  - id: s\n    links:\n      - id: l\n        checks:\n"
        f"          - {{id: gw, kind: tls, target: '{LOOPBACK}:{port}', ca_file: {ca_file}, "
        f"warn_days: 5, crit_days: 2, interval: 2s, timeout: 2s{extra}}}\n"
    )
    return load_inventory(path)


class Engine:
    def __init__(self, monitor: Monitor, results: asyncio.Queue[ProbeResult]) -> None:
        self.monitor = monitor
        self.results = results

    async def next_result(self, fingerprint: str) -> ProbeResult:
        """The next result that saw the leaf `fingerprint` (the swap takes one handshake)."""
        async with asyncio.timeout(20):
            while True:
                result = await self.results.get()
                if result.certificates and result.certificates[0].fingerprint_sha256 == fingerprint:
                    return result


@contextlib.asynccontextmanager
async def engine(inv: Inventory) -> AsyncIterator[Engine]:
    results: asyncio.Queue[ProbeResult] = asyncio.Queue()
    events: list[Event] = []
    monitor = Monitor(
        inv,
        inv.checks,
        on_result=results.put_nowait,
        on_event=events.append,
        alerts=False,
        start_spread=0,
    )
    running = asyncio.create_task(monitor.run())
    try:
        async with asyncio.timeout(10):
            await monitor.ready.wait()
        yield Engine(monitor, results)
    finally:
        monitor.stop()
        await asyncio.wait_for(running, 15)


def verdict(result: ProbeResult, condition: str) -> Verdict:
    return next(v for v in result.verdicts if v.condition == condition)


def fingerprint(issued: Issued) -> str:
    from cryptography.hazmat.primitives import hashes

    return issued.certificate.fingerprint(hashes.SHA256()).hex()


def date(moment: datetime.datetime) -> str:
    return moment.date().isoformat()


@pytest.fixture
def cas(tmp_path: Path) -> tuple[Issued, Issued, Path]:
    usual = make_ca("Usual Issuing CA 1", not_after=ago(-3650))
    other = make_ca("Surprise Interception CA", not_after=ago(-3650))
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(usual.cert_pem + other.cert_pem)
    return usual, other, bundle


def overdue_and_renewed(ca: Issued) -> tuple[datetime.datetime, Issued, Issued]:
    """A 90-day leaf 70 days old: past two thirds (day 60.3 at 0.67) with 20 days still to
    run, so expiry alone (warn_days 5) says nothing yet; and its renewal, issued yesterday."""
    start = ago(70)
    old = make_leaf(ca, [LOOPBACK], not_before=start, not_after=start + 90 * DAY)
    renewed = make_leaf(ca, [LOOPBACK], not_before=ago(1), not_after=ago(1) + 90 * DAY)
    return start, old, renewed


async def test_an_overdue_renewal_then_a_renewal_then_a_stale_server_after_a_restart(
    tmp_path: Path, cas: tuple[Issued, Issued, Path]
) -> None:
    usual, _, bundle = cas
    start, old, renewed = overdue_and_renewed(usual)
    with swappable(tmp_path, old) as (server, port):
        inv = inventory(tmp_path, port, bundle)
        async with engine(inv) as running:
            overdue = await running.next_result(fingerprint(old))
            server.serve(renewed)
            after = await running.next_result(fingerprint(renewed))

        due = date(start + 0.67 * 90 * DAY)
        found = verdict(overdue, "renewal")
        assert found.severity is Severity.WARN
        assert found.reason == "renewal overdue"
        assert found.finding == (
            f"renewal overdue: should have renewed by {due} (67% of its 90-day validity); "
            "no newer certificate seen here"
        )
        assert overdue.severity is Severity.WARN
        assert "renewal overdue" in overdue.summary()
        # JSON carries it like any verdict, and the first sighting and due date as observations.
        record = result_record(overdue)
        assert {"condition": "renewal", "severity": "WARN"}.items() <= next(
            v for v in record["verdicts"] if v["condition"] == "renewal"
        ).items()
        assert record["observations"]["certificate_first_seen"] == overdue.started_at

        assert verdict(after, "renewal").severity is Severity.OK
        assert verdict(after, "renewal").finding.startswith("renewal due ")
        assert verdict(after, "new_issuer").severity is Severity.OK  # the same CA renewed it
        assert after.severity is Severity.OK

        with HistoryReader(tmp_path / "history.sqlite3") as reader:
            seen = {s.fingerprint: s for s in reader.certificates_seen()}
        assert set(seen) == {fingerprint(old), fingerprint(renewed)}
        assert seen[fingerprint(old)].first_seen == overdue.started_at

        # One server behind the address was never given the renewal: a new engine, which knows
        # only what the history remembers, tells that apart from a renewal that never came.
        server.serve(old)
        async with engine(inv) as restarted:
            stale = await restarted.next_result(fingerprint(old))
    found = verdict(stale, "renewal")
    assert found.severity is Severity.WARN
    assert found.reason == "renewal not deployed everywhere"
    assert f"a newer certificate ({fingerprint(renewed)[:16]}, issued {date(ago(1))})" in (
        found.finding
    )
    assert found.finding.endswith("but this one is still served")
    assert stale.observations["certificate_first_seen"] == overdue.started_at


async def test_a_certificate_from_a_ca_the_endpoint_never_used_is_a_warning_of_its_own(
    tmp_path: Path, cas: tuple[Issued, Issued, Path]
) -> None:
    usual, other, bundle = cas
    first = make_leaf(usual, [LOOPBACK], not_before=ago(5), not_after=ago(5) + 90 * DAY)
    # A sibling CA of the same organisation's name-space would be no news; this is another CA.
    strange = make_leaf(other, [LOOPBACK], not_before=ago(1), not_after=ago(1) + 90 * DAY)
    with swappable(tmp_path, first) as (server, port):
        async with engine(inventory(tmp_path, port, bundle)) as running:
            known = await running.next_result(fingerprint(first))
            server.serve(strange)
            surprise = await running.next_result(fingerprint(strange))
            again = await running.next_result(fingerprint(strange))

    assert verdict(known, "new_issuer").severity is Severity.OK  # nothing to differ from yet
    for result in (surprise, again):  # it holds while that leaf is served, not for one poll
        found = verdict(result, "new_issuer")
        assert found.severity is Severity.WARN
        assert result.severity is Severity.WARN
        assert found.finding == (
            f"new issuer: a certificate never seen here ({fingerprint(strange)[:16]}, first "
            f"seen {date(datetime.datetime.fromtimestamp(surprise.started_at, datetime.UTC))})"
            " from CN=Surprise Interception CA, a CA this endpoint never used "
            "(before: CN=Usual Issuing CA 1)"
        )
    assert verdict(surprise, "renewal").severity is Severity.OK


async def test_renewal_due_is_the_checks_own_fraction(
    tmp_path: Path, cas: tuple[Issued, Issued, Path]
) -> None:
    usual, _, bundle = cas
    start = ago(70)  # 78% of 90 days gone: overdue at the default, not at 0.9
    old = make_leaf(usual, [LOOPBACK], not_before=start, not_after=start + 90 * DAY)
    with swappable(tmp_path, old) as (_, port):
        inv = inventory(tmp_path, port, bundle, ", renewal_due: 0.9")
        async with engine(inv) as running:
            result = await running.next_result(fingerprint(old))
    found = verdict(result, "renewal")
    assert found.severity is Severity.OK
    assert found.finding == f"renewal due {date(start + 0.9 * 90 * DAY)}"


def test_renewal_due_out_of_range_is_an_inventory_error(tmp_path: Path) -> None:
    from monitor.core.yamlnodes import InventoryErrors

    ca = tmp_path / "ca.pem"
    ca.write_bytes(make_ca("x").cert_pem)
    with pytest.raises(InventoryErrors) as raised:
        inventory(tmp_path, 443, ca, ", renewal_due: 1.5")
    assert "renewal_due" in str(raised.value) and "at most 1.0" in str(raised.value)


def test_a_ca_is_the_issuers_organisation_so_rotating_intermediates_are_not_new() -> None:
    assert issuing_ca("CN=R11,O=Let's Encrypt,C=US") == "Let's Encrypt"
    assert issuing_ca("CN=R10,O=Let's Encrypt,C=US") == issuing_ca("CN=R11,O=Let's Encrypt,C=US")
    assert issuing_ca(r"CN=A\, B,O=Example\, Inc.") == r"Example\, Inc."
    assert issuing_ca("CN=device-1234") == "CN=device-1234"


def test_the_store_keeps_a_bounded_number_of_certificates_per_endpoint(tmp_path: Path) -> None:
    from monitor.core.model import CertificateInfo, CheckRef
    from monitor.store.history import HistoryStore

    ref = CheckRef("s/l/c", "s", "s/l", "tls", "h:443", "h")

    def leaf(n: int) -> CertificateInfo:
        return CertificateInfo(
            f"{n:064x}", 0, "CN=h", "CN=ca", "01", 0.0, 1e10, "EC", 256, "ecdsa", (), "k", False
        )

    path = tmp_path / "history.sqlite3"
    with HistoryStore(path, create=True) as store:
        for n in range(KEEP + 10):  # a device that makes a new certificate at every boot
            result = ProbeResult(ref, 1000.0 + n, 1.0, Severity.OK, certificates=(leaf(n),))
            store.write([result])
        kept = store.certificates_seen()
    assert len(kept) == KEEP
    assert {s.fingerprint for s in kept} == {f"{n:064x}" for n in range(10, KEEP + 10)}


def audit(inventory_path: Path, fmt: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "audit",
            "certs",
            str(inventory_path),
            "--format",
            fmt,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )


async def test_audit_certs_names_an_overdue_renewal_from_the_history(
    tmp_path: Path, cas: tuple[Issued, Issued, Path]
) -> None:
    usual, _, bundle = cas
    start, old, renewed = overdue_and_renewed(usual)
    with swappable(tmp_path, old) as (server, port):
        inv = inventory(tmp_path, port, bundle)
        alone = await asyncio.to_thread(audit, tmp_path / "inventory.yaml", "table")
        # The engine sees the renewal on this address; then a server still serving the old
        # one answers the audit.
        server.serve(renewed)
        async with engine(inv) as running:
            await running.next_result(fingerprint(renewed))
        server.serve(old)
        table = await asyncio.to_thread(audit, tmp_path / "inventory.yaml", "table")
        document = await asyncio.to_thread(audit, tmp_path / "inventory.yaml", "json")

    due = date(start + 0.67 * 90 * DAY)
    # No history file yet: the served leaf alone is past its renewal date.
    assert alone.returncode == 1, alone.stderr
    assert (
        f"WARN     s/l/gw  {LOOPBACK}:{port}  renewal overdue: should have renewed by {due} "
        "(67% of its 90-day validity); no newer certificate seen here"
    ) in alone.stdout
    assert table.returncode == 1, table.stderr
    assert "Endpoint findings (trust, names, chain, renewal):" in table.stdout
    assert f"renewal overdue here: should have renewed by {due}" in table.stdout
    assert f"a newer certificate ({fingerprint(renewed)[:16]}" in table.stdout
    report = json.loads(document.stdout)
    (endpoint,) = report["findings"]
    assert [(f["condition"], f["severity"], f["reason"]) for f in endpoint["findings"]] == [
        ("renewal", "WARN", "renewal not deployed everywhere")
    ]
    # The audit reads the history, never writes it: what it saw is not a sighting.
    with HistoryReader(tmp_path / "history.sqlite3") as reader:
        assert {s.fingerprint for s in reader.certificates_seen()} == {fingerprint(renewed)}


def stored_leaf(path: Path, n: int, at: float) -> None:
    from monitor.core.model import CertificateInfo, CheckRef
    from monitor.store.history import HistoryStore

    ref = CheckRef(f"s/l/c{n}", "s", "s/l", "tls", "h:443", "h")
    leaf = CertificateInfo(
        f"{n:064x}", 0, "CN=h", "CN=ca", "01", 0.0, 1e10, "EC", 256, "ecdsa", (), "k", False
    )
    with HistoryStore(path, create=True) as store:
        store.write([ProbeResult(ref, at, 1.0, Severity.OK, certificates=(leaf,))])


def test_retention_forgets_certificates_no_endpoint_served_within_it(tmp_path: Path) -> None:
    from monitor.config.inventory import HistoryConfig
    from monitor.store.history import HistoryStore
    from tests.history_support import maintain

    path = tmp_path / "history.sqlite3"
    now = 1_800_000_000.0
    stored_leaf(path, 1, now - 40 * 86400)  # a check since removed from the inventory
    stored_leaf(path, 2, now - 40 * 86400)
    stored_leaf(path, 2, now - 60)  # still served: seen again at every poll
    with HistoryStore(path, create=True) as store:
        stats = maintain(store, now, HistoryConfig(path=path, retention=30 * 86400))
        kept = store.certificates_seen()
    assert stats.deleted_certificates == 1
    assert [(s.check_id, s.first_seen, s.last_seen) for s in kept] == [
        ("s/l/c2", now - 40 * 86400, now - 60)
    ]


def test_a_version_3_store_is_upgraded_by_the_writer_and_refused_by_a_reader(
    tmp_path: Path,
) -> None:
    import sqlite3

    from monitor.store.history import HistoryStore
    from monitor.store.schema import HistoryError

    path = tmp_path / "history.sqlite3"
    HistoryStore(path, create=True).close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # as commwatch before it left it
        db.execute("DROP TABLE certificates_seen")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'history.schema_version'")
    with pytest.raises(HistoryError, match="version 3 is older"):
        HistoryReader(path)
    stored_leaf(path, 1, 1000.0)  # a writer's open upgrades it
    with HistoryReader(path) as reader:
        assert [s.fingerprint for s in reader.certificates_seen()] == [f"{1:064x}"]


async def test_an_overdue_renewal_reaches_a_webhook_as_a_warning_with_its_reason(
    tmp_path: Path, cas: tuple[Issued, Issued, Path]
) -> None:
    from tests.peers.webhook_peers import WebhookReceiver

    usual, _, bundle = cas
    start = ago(70)
    old = make_leaf(usual, [LOOPBACK], not_before=start, not_after=start + 90 * DAY)
    hook = WebhookReceiver()
    await hook.start()
    try:
        with swappable(tmp_path, old) as (_, port):
            inv = inventory(tmp_path, port, bundle)
            alerting = tmp_path / "alerting.yaml"
            alerting.write_text(
                "alerts:\n  group_window: 200ms\n  retry_base: 100ms\n  notifiers:\n"
                f"    - {{id: noc, kind: webhook, url: '{hook.base_url}/noc'}}\n"
                + (tmp_path / "inventory.yaml").read_text()
            )
            inv = load_inventory(alerting)
            results: asyncio.Queue[ProbeResult] = asyncio.Queue()
            monitor = Monitor(
                inv, inv.checks, on_result=results.put_nowait, on_event=lambda _: None,
                start_spread=0,
            )  # fmt: skip
            running = asyncio.create_task(monitor.run())
            try:
                await hook.wait_for(lambda h: h.accepted_on("/noc"), timeout=20)
            finally:
                monitor.stop()
                await asyncio.wait_for(running, 15)
    finally:
        await hook.stop()
    events = [e for r in hook.accepted_on("/noc") for e in json.loads(r.body)["events"]]
    [change] = [e for e in events if e["subject"] == "check"]
    assert (change["subject_id"], change["after"]) == ("s/l/gw", "WARN")
    assert change["cause"].startswith("renewal overdue: should have renewed by ")
