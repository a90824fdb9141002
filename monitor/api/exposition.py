"""One format's exposition of the engine, kept between scrapes and renewed check by check.

prometheus-client formats every sample line in Python at every scrape: 1 s for the 60,000
series of 10,000 checks, though between two scrapes most checks have not changed. Here the
library still makes every byte, but only of what changed: each per-check family's lines of each
check are kept, as the library encoded them, with what they were made of (`check_key`) and what
they say (label values and values); at a scrape the changed checks' samples are made again, and
those that differ from the kept ones are encoded by the library's encoder, in one call per
family. The exposition is assembled as each family's header (encoded by the library, once)
followed by every check's kept lines in the inventory's order. The links' and groups' families
are kept whole until what they say changes; the engine's and the process's, few and changing
at every scrape, are encoded in full each time. The result is byte for byte the library's
encoding of all the families in one registry (tests/test_exposition.py holds it to that).

What makes the lines separable: every per-check family is a gauge, whose samples are one line
each in both formats (no `_created`, label values never hold a raw newline), in the order added;
`_lines_of` checks that the library made as many lines as samples and refuses to guess if not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from monitor.api.metric_families import (
    Scrape,
    add_check,
    check_families,
    check_key,
    engine_families,
    topology_families,
)

Encoder = Callable[[Collector], bytes]  # as `choose_encoder` gives: generate_latest and kin

_UNSEEN = object()  # the key of a check not encoded yet: equal to no check_key


def _said(samples: Sequence[Sample]) -> Hashable:
    """What the lines of `samples` say: their label values and values. The value's repr, not
    the value: 0.0 == -0.0, but the two are written differently."""
    return tuple((tuple(sample.labels.values()), repr(sample.value)) for sample in samples)


class _Families(Collector):
    """Families (and collectors' families) in order, as the encoder reads a registry."""

    def __init__(self, families: Iterable[Metric], collectors: Sequence[Collector] = ()) -> None:
        self._families = tuple(families)
        self._collectors = collectors

    def collect(self) -> Iterable[Metric]:
        yield from self._families
        for collector in self._collectors:
            yield from collector.collect()


class FormatCache:
    """The exposition in one format (one encoder) of one Exporter's checks. Thread-safe: a
    scrape renews and assembles under one lock, so each check's lines in it come from one
    result and one state, those of the scrape."""

    def __init__(self, encoder: Encoder) -> None:
        self._encoder = encoder
        self._trailer = encoder(_Families(()))  # OpenMetrics' "# EOF", nothing in text 0.0.4
        self._headers = tuple(self._bare((family,)) for family in check_families())
        self._lock = threading.Lock()
        self._order: Sequence[str] = ()  # check ids, in the exposition's order
        self._keys: list[Hashable] = []  # per check: what its kept lines were made of
        self._said: list[list[Hashable]] = []  # per family, per check: what its lines say
        self._lines: list[list[bytes]] = []  # per family, per check: its lines
        self._topology_said: Hashable = _UNSEEN  # what the links' and groups' lines say
        self._topology = b""

    def exposition(self, scrape: Scrape, collectors: Sequence[Collector] = ()) -> bytes:
        """The whole exposition of `scrape`, then what `collectors` collect (the process's),
        as `encoder` makes of one registry holding `families(scrape)` and `collectors`."""
        head = self._bare(engine_families(scrape))
        topology = tuple(topology_families(scrape))
        said = tuple(_said(family.samples) for family in topology)
        with self._lock:
            self._renew(scrape)
            parts = [head]
            for header, lines in zip(self._headers, self._lines, strict=True):
                parts.append(header)
                parts.extend(lines)
            # Links' and groups' states change seldom, and there are thousands of lines of
            # them in a large inventory: encoded again only when what they say changed.
            if said != self._topology_said:
                self._topology, self._topology_said = self._bare(topology), said
            parts.append(self._topology)
            body = b"".join(parts)
        return body + self._encoder(_Families((), collectors))

    def _bare(self, families: Iterable[Metric]) -> bytes:
        """The encoding of `families` without the format's trailer."""
        encoded = self._encoder(_Families(families))
        return encoded[: len(encoded) - len(self._trailer)]

    def _renew(self, scrape: Scrape) -> None:
        """Encode again the lines that changed since they were kept: of the checks whose key
        changed, the families whose samples did (a result of the same severity leaves the
        severity's line as it was)."""
        order = tuple(scrape.check_labels)
        if order != self._order:  # the first scrape (an exporter's inventory is fixed)
            self._order = order
            self._keys = [_UNSEEN] * len(order)
            self._said = [[_UNSEEN] * len(order) for _ in self._headers]
            self._lines = [[b""] * len(order) for _ in self._headers]
        states, latest = scrape.state.checks, scrape.latest
        families = check_families()
        changed: list[tuple[int, Hashable, list[int]]] = []  # position, key, where it begins
        for position, check_id in enumerate(order):
            state, result = states.get(check_id), latest.get(check_id)
            key = check_key(state, result)
            if key != self._keys[position]:
                changed.append((position, key, [len(family.samples) for family in families]))
                add_check(families, scrape.check_labels[check_id], state, result)
        if not changed:
            return
        # Where each changed check's samples begin in each family, then where the last ends.
        starts = [begins for _, _, begins in changed]
        starts.append([len(family.samples) for family in families])
        renewed = [
            self._renewed(index, family, [position for position, _, _ in changed], starts)
            for index, family in enumerate(families)
        ]
        # Only once every family is encoded: a failure leaves the kept lines as they were.
        for index, lines in enumerate(renewed):
            for position, said, line in lines:
                self._said[index][position] = said
                self._lines[index][position] = line
        for position, key, _ in changed:
            self._keys[position] = key

    def _renewed(
        self, index: int, family: Metric, positions: Sequence[int], starts: Sequence[list[int]]
    ) -> list[tuple[int, Hashable, bytes]]:
        """(position, what its samples say, its lines) of the changed checks (`positions`,
        whose samples begin at `starts`) whose samples in family `index` differ from those
        kept, encoded in one call of the library's encoder."""
        samples = family.samples
        renewing: list[tuple[int, Hashable, list[Sample]]] = []
        for number, position in enumerate(positions):
            part = samples[starts[number][index] : starts[number + 1][index]]
            said = _said(part)
            if said != self._said[index][position]:
                renewing.append((position, said, part))
        if not renewing:
            return []
        family.samples = [sample for *_, part in renewing for sample in part]
        lines, at, made = self._lines_of(index, family), 0, []
        for position, said, part in renewing:
            made.append((position, said, b"".join(lines[at : at + len(part)])))
            at += len(part)
        return made

    def _lines_of(self, index: int, family: Metric) -> list[bytes]:
        """The library's sample lines of one family, one per sample, in order."""
        encoded = self._bare((family,))
        header = self._headers[index]
        lines = [line + b"\n" for line in encoded[len(header) :].split(b"\n")[:-1]]
        if not encoded.startswith(header) or len(lines) != len(family.samples):
            raise RuntimeError(f"{family.name}: the encoding is not one line per sample")
        return lines
