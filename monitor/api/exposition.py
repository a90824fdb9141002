"""One format's exposition of the engine, kept between scrapes and renewed check by check.

prometheus-client formats every sample line in Python at every scrape: 1 s for the 60,000
series of 10,000 checks, though between two scrapes most checks may not have changed. Here the
library still makes every byte, but only of what changed: each per-check family's lines of each
check are kept, as the library encoded them, with what they were made of (`check_key`) and the
samples they say (`check_samples`: label values and values, plain tuples); at a scrape the
changed checks' samples are made again and compared with the kept ones, and the library makes
Samples of those that differ and encodes them, in one call per family. The exposition is
assembled as each family's header (encoded by the library, once) followed by every check's kept
lines in the inventory's order. The links' and groups' families are kept whole until what they
say changes; the engine's and the process's, few and changing at every scrape, are encoded in
full each time. The result is byte for byte the library's encoding of all the families in one
registry (tests/test_exposition.py holds it to that).

Between scrapes `renew` brings the kept lines to the engine's latest (monitor/api/renewal.py
calls it from a worker thread), so that a scrape encodes only what changed since the last
renewal. A scrape may find the kept lines older or newer than its own moment: either way it
encodes again the checks whose entries differ, so each scrape's lines are of its own moment.

What makes the lines separable: every per-check family is a gauge, whose samples are one line
each in both formats (no `_created`, label values never hold a raw newline), in the order added;
`_lines_of` checks that the library made as many lines as samples and refuses to guess if not.

The per-check lines are made by the library's encoder of the format asked for, with one option
of its own chosen for speed. prometheus-client's OpenMetrics encoder escapes every sample line's
metric name character by character under the `underscores` escaping (the default) and
`values`, though a name in the legacy character set, as every commwatch name is, comes out as
it went in; under `allow-utf-8` it leaves such a name as it is with one `str.replace`. So the
lines are encoded with `allow-utf-8` where that gives the same bytes: checked, per family, on
the first line encoded, against the encoder asked for (its header, and that line); a family
where they differ is encoded as asked from then on. Half the cost of a changed check's lines
went on that loop.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from monitor.api.metric_families import (
    CheckFamilies,
    CheckLabels,
    CheckSamples,
    Samples,
    Scrape,
    add_samples,
    check_families,
    check_key,
    check_samples,
    engine_families,
    topology_families,
)
from monitor.core.model import ProbeResult
from monitor.core.persistent import PersistentMap
from monitor.engine.checks import CheckState

Encoder = Callable[[Collector], bytes]  # as `choose_encoder` gives: generate_latest and kin

_UNSEEN = object()  # the key of a check not encoded yet: equal to no check_key


def _said(samples: Sequence[Sample]) -> Hashable:
    """What the lines of `samples` say: their label values and values. The value's repr, not
    the value: 0.0 == -0.0, but the two are written differently."""
    return tuple((tuple(sample.labels.values()), repr(sample.value)) for sample in samples)


def _zero_differs(samples: Samples, kept: Samples | object) -> bool:
    """Whether `samples`, equal to `kept`, are written otherwise all the same: 0.0 == -0.0,
    but the two are written differently."""
    return isinstance(kept, list) and any(
        not value and repr(value) != repr(old)
        for (_, value), (_, old) in zip(samples, kept, strict=True)
    )


# What is kept of a check not encoded yet: equal to no samples, an empty family's included.
_NOTHING_KEPT = CheckFamilies(*(_UNSEEN for _ in CheckFamilies._fields))


class Families(Collector):
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
        self._trailer = encoder(Families(()))  # OpenMetrics' "# EOF", nothing in text 0.0.4
        self._headers = tuple(self._bare((family,)) for family in check_families())
        # Per family: the encoder its lines are made with, once checked against `encoder`.
        quicker = _quicker(encoder)
        self._line_encoders: list[Encoder | None] = [
            None if quicker is not encoder else encoder for _ in self._headers
        ]
        self._quicker = quicker
        self._lock = threading.Lock()
        self._order: Sequence[str] = ()  # check ids, in the exposition's order
        self._keys: list[Hashable] = []  # per check: what its kept lines were made of
        # Per check: the samples its kept lines say, per family (None: not encoded yet).
        self._said: list[CheckSamples | None] = []
        self._lines: list[list[bytes]] = []  # per family, per check: its lines
        # Per family: its header and lines joined, until one of them changes.
        self._joined: list[bytes | None] = [None] * len(self._headers)
        # The state's checks and the latest results the kept lines were last renewed from:
        # between two scrapes of one engine these persistent maps share every bucket no new
        # result touched, so what changed is found without reading every check.
        self._seen: tuple[Mapping[str, object], Mapping[str, object]] | None = None
        self._positions: dict[str, int] = {}  # check id -> its position in `_order`
        self._topology_said: Hashable = _UNSEEN  # what the links' and groups' lines say
        self._topology = b""

    def exposition(self, scrape: Scrape, collectors: Sequence[Collector] = ()) -> bytes:
        """The whole exposition of `scrape`, then what `collectors` collect (the process's),
        as `encoder` makes of one registry holding `families(scrape)` and `collectors`."""
        head = self._bare(engine_families(scrape))
        topology = tuple(topology_families(scrape))
        said = tuple(_said(family.samples) for family in topology)
        with self._lock:
            self._renew(scrape.check_labels, scrape.state.checks, scrape.latest)
            parts = [head]
            for index, header in enumerate(self._headers):
                joined = self._joined[index]
                if joined is None:
                    joined = self._joined[index] = header + b"".join(self._lines[index])
                parts.append(joined)
            # Links' and groups' states change seldom, and there are thousands of lines of
            # them in a large inventory: encoded again only when what they say changed.
            if said != self._topology_said:
                self._topology, self._topology_said = self._bare(topology), said
            parts.append(self._topology)
            body = b"".join(parts)
        return body + self._encoder(Families((), collectors))

    def _bare(self, families: Iterable[Metric], encoder: Encoder | None = None) -> bytes:
        """The encoding of `families` (by `encoder`, else the one asked for) without the
        format's trailer, the same in every escaping."""
        encoded = (encoder or self._encoder)(Families(families))
        return encoded[: len(encoded) - len(self._trailer)]

    def renew(
        self,
        labels: Mapping[str, CheckLabels],
        states: Mapping[str, CheckState],
        latest: Mapping[str, ProbeResult],
    ) -> None:
        """Bring the kept lines to the checks' `states` and `latest` results, between scrapes
        (monitor/api/renewal.py): a scrape then encodes only what changed since."""
        with self._lock:
            self._renew(labels, states, latest)

    def _renew(
        self,
        labels: Mapping[str, CheckLabels],
        states: Mapping[str, CheckState],
        latest: Mapping[str, ProbeResult],
    ) -> None:
        """Encode again the lines that changed since they were kept: of the checks whose key
        changed, the families whose samples did (a result of the same severity leaves the
        severity's line as it was)."""
        order = tuple(labels)
        if order != self._order:  # the first scrape (an exporter's inventory is fixed)
            self._order = order
            self._keys = [_UNSEEN] * len(order)
            self._said = [None] * len(order)
            self._lines = [[b""] * len(order) for _ in self._headers]
            self._joined = [None] * len(self._headers)
            self._positions = {check_id: position for position, check_id in enumerate(order)}
            self._seen = None
        changed: list[tuple[int, Hashable, CheckSamples]] = []  # position, key, samples
        # Per family: (position, samples) of the changed checks whose samples in it differ.
        renewing: list[list[tuple[int, Samples]]] = [[] for _ in self._headers]
        for position in self._candidates(states, latest):
            check_id = order[position]
            state, result = states.get(check_id), latest.get(check_id)
            key = check_key(state, result)
            if key == self._keys[position]:
                continue
            made = check_samples(labels[check_id], state, result)
            changed.append((position, key, made))
            kept = self._said[position] or _NOTHING_KEPT
            for renew, samples, old in zip(renewing, made, kept, strict=True):
                # Most families hold no sample of a check, or the same: compared in C first.
                if samples != old or (samples and _zero_differs(samples, old)):
                    renew.append((position, samples))
        families = check_families()
        renewed = [
            self._renewed(index, family, renewing[index]) if renewing[index] else []
            for index, family in enumerate(families)
        ]
        # Only once every family is encoded: a failure leaves the kept lines as they were.
        for index, lines in enumerate(renewed):
            for (position, _), line in zip(renewing[index], lines, strict=True):
                self._lines[index][position] = line
            if lines:
                self._joined[index] = None
        for position, key, made in changed:
            self._keys[position] = key
            self._said[position] = made
        self._seen = (states, latest)

    def _candidates(
        self, states: Mapping[str, object], latest: Mapping[str, object]
    ) -> Iterable[int]:
        """The positions of the checks whose state or latest result may differ from what
        their kept lines were made of, in order: those whose entries are other objects than
        at the last renewal, when both maps are persistent and that one was seen; else all."""
        if self._seen is None:
            return range(len(self._order))
        ids: set[str] = set()
        for now, then in zip((states, latest), self._seen, strict=True):
            if not (isinstance(now, PersistentMap) and isinstance(then, PersistentMap)):
                return range(len(self._order))
            ids |= now.changed_keys(then)
        positions = self._positions
        return sorted(positions[check_id] for check_id in ids if check_id in positions)

    def _renewed(
        self, index: int, family: GaugeMetricFamily, renewing: Sequence[tuple[int, Samples]]
    ) -> list[bytes]:
        """The lines of family `index` of each of `renewing`'s checks, as the library's encoder
        makes them of their samples, in one call."""
        for _, samples in renewing:
            add_samples(family, samples)
        lines, at, made = self._lines_of(index, family), 0, []
        for _, samples in renewing:
            made.append(b"".join(lines[at : at + len(samples)]))
            at += len(samples)
        return made

    def _line_encoder(self, index: int, family: Metric) -> Encoder:
        """The encoder of family `index`'s lines: the quicker one when, on this family's first
        line, it writes the same bytes as the one asked for."""
        chosen = self._line_encoders[index]
        if chosen is None:
            first = copy.copy(family)
            first.samples = family.samples[:1]
            same = self._bare((first,), self._quicker) == self._bare((first,))
            chosen = self._line_encoders[index] = self._quicker if same else self._encoder
        return chosen

    def _lines_of(self, index: int, family: Metric) -> list[bytes]:
        """The library's sample lines of one family, one per sample, in order."""
        encoded = self._bare((family,), self._line_encoder(index, family))
        header = self._headers[index]
        lines = [line + b"\n" for line in encoded[len(header) :].split(b"\n")[:-1]]
        if not encoded.startswith(header) or len(lines) != len(family.samples):
            raise RuntimeError(f"{family.name}: the encoding is not one line per sample")
        return lines


def _quicker(encoder: Encoder) -> Encoder:
    """The encoder of the same format and version writing with `allow-utf-8` escaping, for the
    library's OpenMetrics one; the encoder itself for any other."""
    if isinstance(encoder, functools.partial) and encoder.func is openmetrics.generate_latest:
        keywords = {**encoder.keywords, "escaping": openmetrics.ALLOWUTF8}
        return functools.partial(encoder.func, *encoder.args, **keywords)
    return encoder
