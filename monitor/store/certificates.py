"""The certificates each endpoint served: the table `certificates_seen`, one row per check and
leaf (first seen, last seen, validity, issuer, key), maintained by the writer with every result
that carries a certificate.

It is what the engine's renewal and issuer judgements (monitor/store/renewals.py) remember
across restarts, read whole at start: at most `KEEP` rows per check, the most recently seen, so
an endpoint that serves a fresh certificate on every connection (a device that makes one at
each boot, an interceptor) cannot grow it without bound. An endpoint is a check: two checks of
one host and port that send different names see different certificates.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.core.model import CertificateInfo, ProbeResult

KEEP = 32  # rows kept per check, the most recently seen

# The table, as schema version 4 creates it (monitor/store/schema.py).
SCHEMA = """
CREATE TABLE IF NOT EXISTS certificates_seen (
    check_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    not_before REAL,
    not_after REAL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    spki TEXT NOT NULL,
    PRIMARY KEY (check_id, fingerprint)
)
"""

_COLUMNS = (
    "check_id, fingerprint, first_seen, last_seen, not_before, not_after, subject, issuer, spki"
)
_UPSERT = (
    f"INSERT INTO certificates_seen ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (check_id, fingerprint) DO UPDATE SET "
    "first_seen = MIN(first_seen, excluded.first_seen), "
    "last_seen = MAX(last_seen, excluded.last_seen)"
)
_PRUNE = (
    "DELETE FROM certificates_seen WHERE check_id = ? AND fingerprint NOT IN ("
    "SELECT fingerprint FROM certificates_seen WHERE check_id = ? "
    "ORDER BY last_seen DESC LIMIT ?)"
)


@dataclass(frozen=True, slots=True)
class Sighting:
    """One leaf as one endpoint served it: when first and last, and what it was."""

    check_id: str
    fingerprint: str
    first_seen: float
    last_seen: float
    not_before: float | None
    not_after: float | None
    subject: str
    issuer: str
    spki: str

    @classmethod
    def of(cls, check_id: str, leaf: CertificateInfo, at: float) -> Sighting:
        return cls(
            check_id,
            leaf.fingerprint_sha256,
            at,
            at,
            leaf.not_before,
            leaf.not_after,
            leaf.subject,
            leaf.issuer,
            leaf.spki_sha256,
        )

    def seen_again(self, at: float) -> Sighting:
        return Sighting(
            self.check_id,
            self.fingerprint,
            min(self.first_seen, at),
            max(self.last_seen, at),
            self.not_before,
            self.not_after,
            self.subject,
            self.issuer,
            self.spki,
        )


def leaf_sighting(result: ProbeResult) -> Sighting | None:
    """The leaf `result` saw, as a sighting at its start; None when it saw no certificate."""
    if not result.certificates:
        return None
    return Sighting.of(result.check.check_id, result.certificates[0], result.started_at)


def record(connection: sqlite3.Connection, results: Iterable[ProbeResult]) -> None:
    """Store the leaves `results` saw, inside the caller's transaction."""
    sightings = [s for s in map(leaf_sighting, results) if s is not None]
    connection.executemany(
        _UPSERT,
        (
            (
                s.check_id,
                s.fingerprint,
                s.first_seen,
                s.last_seen,
                s.not_before,
                s.not_after,
                s.subject,
                s.issuer,
                s.spki,
            )
            for s in sightings
        ),
    )
    for check_id in {s.check_id for s in sightings}:
        connection.execute(_PRUNE, (check_id, check_id, KEEP))


def read(connection: sqlite3.Connection) -> list[Sighting]:
    """Every sighting kept, each check's oldest first."""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM certificates_seen ORDER BY check_id, first_seen"
    ).fetchall()
    return [Sighting(*row) for row in rows]
