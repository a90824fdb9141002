"""Rendezvous (highest random weight) hashing: which of several candidates a target host goes
to, the same answer in every process that knows the host and the candidates, without talking
to each other; when a candidate goes or comes, only the hosts it wins or held move. The probe
processes of `run --workers` are its candidates (their indexes); agents in a pool are too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(host: str, agent: str) -> int:
    """The agent's rendezvous weight for the host: the same on every machine and Python (no
    `hash()`, which is salted per process)."""
    digest = hashlib.blake2b(f"{host}\0{agent}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def winner(host: str, candidates: Iterable[str]) -> str | None:
    """The candidate the host goes to; None when there is none."""
    best: tuple[int, str] | None = None
    for agent in candidates:
        key = (-weight(host, agent), agent)
        if best is None or key < best:
            best = key
    return None if best is None else best[1]
