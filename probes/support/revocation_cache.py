"""Revocation answers and verified CRLs, kept until their nextUpdate and fetched once.

Many endpoints serve the same certificate, and many certificates share an issuer's CRL:
`RevocationCache` keeps OCSP answers by (issuer key hash, serial) and verified CRLs by (URL,
issuer key hash), and concurrent lookups of the same key wait on one fetch instead of each
sending their own.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from probes.support.crl_answers import VerifiedCrl
from probes.support.revocation_answers import RevocationStatus

DEFAULT_TTL = 3600.0
# A responder that is down is asked again after this long, not by every endpoint in between.
FAILURE_TTL = 60.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[], Awaitable[tuple[V, float]]]  # the value, and when it expires


@dataclass(frozen=True)
class FailedFetch:
    """A fetch that gave nothing usable, kept (briefly) so the next lookup does not repeat it."""

    reason: str


class _Shelf(Generic[K, V]):
    """Entries that expire at a given time, the least recently used dropped beyond `size`,
    and the fetches under way for keys not held yet."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._fetching: dict[K, asyncio.Task[V]] = {}

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, expires: float) -> None:
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    async def get_or_fetch(self, key: K, fetch: Fetch[V], now: float, wait: float) -> V:
        """The value held for `key`, else the one a fetch under way gets (waiting at most
        `wait`: TimeoutError), else the one `fetch` gets."""
        held = self.get(key, now)
        if held is not None:
            return held
        task = self._fetching.get(key)
        if task is not None:
            # Shielded: a caller that gives up (its own timeout) must not cancel the fetch the
            # others are waiting on.
            async with asyncio.timeout(wait):
                return await asyncio.shield(task)

        async def run() -> V:
            try:
                value, expires = await fetch()
                self.put(key, value, expires)
                return value
            finally:
                del self._fetching[key]

        task = asyncio.ensure_future(run())
        self._fetching[key] = task
        # The fetch bounds itself (a timeout per exchange), so its starter needs no deadline.
        return await asyncio.shield(task)


OcspKey = tuple[bytes, int]
CrlKey = tuple[str, bytes]
CrlEntry = VerifiedCrl | FailedFetch


class RevocationCache:
    """OCSP answers by (issuer key hash, serial) and verified CRLs by (URL, issuer key hash),
    each until its nextUpdate (`default_ttl` when it has none, `failure_ttl` for a failure).

    CRLs are bounded separately because one may be megabytes while an answer is a few hundred
    bytes. Lookups of a key that is being fetched wait for that fetch."""

    def __init__(
        self,
        max_answers: int = 10_000,
        max_crls: int = 16,
        default_ttl: float = DEFAULT_TTL,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        self.default_ttl = default_ttl
        self.failure_ttl = failure_ttl
        self._answers: _Shelf[OcspKey, RevocationStatus] = _Shelf(max_answers)
        self._crls: _Shelf[CrlKey, CrlEntry] = _Shelf(max_crls)

    @property
    def size(self) -> int:
        """Entries held (answers and CRLs). Not __len__: an empty cache must not be falsy."""
        return len(self._answers) + len(self._crls)

    def expiry(self, next_update: float | None, now: float) -> float:
        return next_update if next_update is not None else now + self.default_ttl

    async def answer(
        self, key: OcspKey, fetch: Fetch[RevocationStatus], now: float, wait: float
    ) -> RevocationStatus:
        return await self._answers.get_or_fetch(key, fetch, now, wait)

    async def crl(self, key: CrlKey, fetch: Fetch[CrlEntry], now: float, wait: float) -> CrlEntry:
        return await self._crls.get_or_fetch(key, fetch, now, wait)
