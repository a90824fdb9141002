"""An immutable mapping whose `set` is cheap, for the state engine's pure steps.

Copying a dict of 10,000 check states on every result made one sweep of 10,000 checks
quadratic. Here the entries sit in a fixed number of buckets; `set` copies the tuple of bucket
references and the one bucket that changes, so a step costs a few hundred operations however
large the inventory.
"""

from __future__ import annotations

import builtins
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_WIDTH = 128
_EMPTY: dict[Any, Any] = {}
_ABSENT: Any = object()


class PersistentMap(Mapping[K, V], Generic[K, V]):
    __slots__ = ("_buckets", "_size")

    def __init__(self, items: Iterable[tuple[K, V]] | Mapping[K, V] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        buckets: list[dict[K, V]] = [{} for _ in range(_WIDTH)]
        for key, value in pairs:
            buckets[hash(key) % _WIDTH][key] = value
        self._buckets: tuple[dict[K, V], ...] = tuple(b or _EMPTY for b in buckets)
        self._size = sum(len(b) for b in buckets)

    def set(self, key: K, value: V) -> PersistentMap[K, V]:
        """A new map with `key` set to `value`; this one is unchanged."""
        index = hash(key) % _WIDTH
        bucket = self._buckets[index]
        changed = dict(bucket)
        changed[key] = value
        new = object.__new__(PersistentMap)
        new._buckets = (*self._buckets[:index], changed, *self._buckets[index + 1 :])
        new._size = self._size + (key not in bucket)
        return new

    def delete(self, key: K) -> PersistentMap[K, V]:
        """A new map without `key` (this one if it has none); this one is unchanged."""
        index = hash(key) % _WIDTH
        bucket = self._buckets[index]
        if key not in bucket:
            return self
        changed = {k: v for k, v in bucket.items() if k != key}
        new = object.__new__(PersistentMap)
        new._buckets = (*self._buckets[:index], changed or _EMPTY, *self._buckets[index + 1 :])
        new._size = self._size - 1
        return new

    def changed_keys(self, other: PersistentMap[K, V]) -> builtins.set[K]:
        """The keys whose entry differs between this map and `other`: in one only, or bound to
        different objects. A bucket both share (every bucket a step did not touch) is skipped
        unread, so two states of one engine compare in time proportional to what changed.
        Equal values that are distinct objects count as changed: compare them if it matters."""
        changed: builtins.set[K] = builtins.set()  # `set` here is the method
        for mine, theirs in zip(self._buckets, other._buckets, strict=True):
            if mine is theirs:
                continue
            changed.update(k for k, v in mine.items() if theirs.get(k, _ABSENT) is not v)
            changed.update(k for k in theirs if k not in mine)
        return changed

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        # Mapping.get goes through a KeyError for every miss: the engine misses a lot.
        return self._buckets[hash(key) % _WIDTH].get(key, default)

    def __getitem__(self, key: K) -> V:
        return self._buckets[hash(key) % _WIDTH][key]

    def __contains__(self, key: object) -> bool:
        return key in self._buckets[hash(key) % _WIDTH]

    def __iter__(self) -> Iterator[K]:
        for bucket in self._buckets:
            yield from bucket

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"PersistentMap({dict(self.items())!r})"
