"""The CA/B Forum's maximum validity by issuance date (ballot SC-081v3), as data, and the tls
check's judgement of a publicly trusted leaf against it, against real TLS servers of the test.
"Publicly trusted" is the system CA store: the test points OpenSSL's default store at its own
root (SSL_CERT_FILE), and a check naming a `ca_file` (a private CA) is exempt."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import CertificateInfo, Severity
from monitor.engine.runner import run_check
from probes.base import SharedResources
from probes.support import validity_schedule
from probes.support.validity_schedule import excess, maximum_days, validity_days
from tests.peers.pki import make_ca, make_leaf, server_context
from tests.peers.tls_peers import LOOPBACK, tls_server

UTC = datetime.UTC
SECOND = datetime.timedelta(seconds=1)
DAY = datetime.timedelta(days=1)


def at(year: int, month: int, day: int) -> datetime.datetime:
    return datetime.datetime(year, month, day, tzinfo=UTC)


@pytest.mark.parametrize(
    ("issued", "days"),
    [
        (at(2026, 3, 15) - SECOND, 398),
        (at(2026, 3, 15), 200),
        (at(2027, 3, 15) - SECOND, 200),
        (at(2027, 3, 15), 100),
        (at(2029, 3, 15) - SECOND, 100),
        (at(2029, 3, 15), 47),
        (at(2040, 1, 1), 47),
        (at(2020, 9, 1), 398),
        (at(2020, 9, 1) - SECOND, 825),
    ],
)
def test_the_maximum_in_force_on_the_issuance_date(issued: datetime.datetime, days: int) -> None:
    assert maximum_days(issued.timestamp()) == days


def test_the_schedule_is_one_table_oldest_first() -> None:
    steps = validity_schedule.SCHEDULE
    assert [s.since for s in steps] == sorted(s.since for s in steps)
    assert [(s.since.isoformat(), s.days) for s in steps[-4:]] == [
        ("2020-09-01", 398),
        ("2026-03-15", 200),
        ("2027-03-15", 100),
        ("2029-03-15", 47),
    ]


def info(not_before: datetime.datetime, not_after: datetime.datetime) -> CertificateInfo:
    return CertificateInfo(
        "00" * 32, 0, "CN=x", "CN=ca", "01", not_before.timestamp(), not_after.timestamp(),
        "EC", 256, "ecdsa-with-SHA256", (), "k", False,
    )  # fmt: skip


def test_validity_counts_notbefore_through_notafter_inclusive() -> None:
    """BR 6.3.2: a day is 86,400 seconds and any part of one more is a day more."""
    start = at(2026, 5, 1)
    assert validity_days(info(start, start + 200 * DAY - SECOND)) == 200
    assert validity_days(info(start, start + 200 * DAY)) == 201
    assert excess(info(start, start + 200 * DAY - SECOND)) is None
    over = excess(info(start, start + 398 * DAY - SECOND))
    assert over is not None
    assert over.sentence() == (
        "valid 398 days, the maximum for a certificate issued 2026-05-01 is 200 "
        "(CA/B Forum ballot SC-081v3): its renewal will come back shorter and the automation "
        "must cope"
    )
    # Issued the day before the first cut, 398 days was the rule.
    assert excess(info(at(2026, 3, 14), at(2026, 3, 14) + 398 * DAY - SECOND)) is None


@pytest.fixture
def public_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    root = make_ca("commwatch public-like root", not_after=at(2040, 1, 1))
    bundle = tmp_path / "system-store.pem"
    bundle.write_bytes(root.cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # OpenSSL's default store, for this test
    return root, bundle


async def probe(shared: SharedResources, port: int, **values: Any) -> Any:
    check = adhoc_check("tls", {"target": f"{LOOPBACK}:{port}", "timeout": "2s", **values})
    return await run_check(check, shared)


async def test_a_publicly_trusted_leaf_over_the_maximum_is_a_warning(
    tmp_path: Path, public_root: Any, shared: SharedResources
) -> None:
    root, bundle = public_root
    # Issued after the 200-day cut with the old 398-day habit; still valid, not expiring.
    start = at(2026, 5, 1)
    long = make_leaf(root, [LOOPBACK], not_before=start, not_after=start + 398 * DAY - SECOND)
    fits = make_leaf(root, [LOOPBACK], not_before=start, not_after=start + 200 * DAY - SECOND)
    with tls_server(server_context(long, tmp_path)) as port:
        public = await probe(shared, port, warn_days=1, crit_days=0)
        private = await probe(shared, port, warn_days=1, crit_days=0, ca_file=str(bundle))
    with tls_server(server_context(fits, tmp_path)) as port:
        within = await probe(shared, port, warn_days=1, crit_days=0)

    judged = next(v for v in public.verdicts if v.condition == "public_validity")
    assert judged.severity is Severity.WARN
    assert judged.reason == "validity over the CA/B maximum"
    assert judged.finding == (
        "valid 398 days, the maximum for a certificate issued 2026-05-01 is 200 (CA/B Forum "
        "ballot SC-081v3): its renewal will come back shorter and the automation must cope"
    )
    assert public.observations["trust"] == "verified"
    # The same leaf under a check that names its CA: a private CA sets its own rules.
    exempt = next(v for v in private.verdicts if v.condition == "public_validity")
    assert exempt.severity is Severity.OK
    assert exempt.finding == (
        f"not publicly trusted ({bundle}): CA/B Forum ballot SC-081v3 does not bind it"
    )
    ok = next(v for v in within.verdicts if v.condition == "public_validity")
    assert ok.severity is Severity.OK
    assert ok.finding == "valid 200 days (at most 200)"
