"""Rendezvous (highest random weight) hashing: which of several candidates serves a key.

Every process that knows the key and the candidates picks the same one, with no coordination,
and when a candidate goes or comes only the keys it wins or loses move. The weight is BLAKE2b of
the candidate and the key, not Python's `hash()`, which differs between processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(candidate: str, key: str) -> int:
    # A NUL between them: no name or key holds one, so no two pairs hash the same bytes.
    digest = hashlib.blake2b(f"{candidate}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def winner(key: str, candidates: Iterable[str]) -> str:
    """The candidate of the highest weight for `key`; of equal weights, the least name.
    ValueError when there is no candidate."""
    return min(candidates, key=lambda candidate: (-weight(candidate, key), candidate))
