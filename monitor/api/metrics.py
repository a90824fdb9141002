"""`GET /metrics`: the engine in Prometheus' exposition format, made by prometheus-client.

What a scrape shows is read at scrape time: the engine's state, each check's latest result
(kept as the engine shows them, through `Monitor.watch`), counters of what it showed, and the
scheduler's, the store's and the outbox's figures. It is taken on the event loop in one go (a
`Scrape`, immutable) and turned into text in a worker thread, so that a scrape of a large
inventory never holds up probing. The text is the library's, kept per format between scrapes
and renewed only for the checks that changed (`monitor.api.exposition`): byte for byte what
`registry(scrape)`, a `CollectorRegistry` of the scrape's own (never the library's global one),
encodes to. While scrapes of a format keep coming, its kept lines are renewed once a second in
a worker thread (`monitor.api.renewal`): a scrape encodes what changed in the last moment, the
work of the rest done before it (not saved: docs/prometheus/README.md says what it costs). The
format Prometheus asks for is renewed so from the start, for its first scrapes.

The families are in `monitor.api.metric_families`; docs/prometheus/README.md documents them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

from aiohttp import hdrs, web
from isal import igzip
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor.api.exposition import FormatCache
from monitor.api.metric_families import Scrape, families
from monitor.api.renewal import Reading, Renewal
from monitor.api.roles import Role, requires
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.core.persistent import PersistentMap
from monitor.engine.pipeline import Monitor
from monitor.engine.state import EngineState

log = logging.getLogger(__name__)

# The outbox answers from its own thread; a scrape does not wait longer than this for it and
# leaves its depth out instead (Prometheus' default scrape timeout is 10 s).
OUTBOX_WAIT = 2.0
# What else a process shows after the engine's families (a central: its consumer of results),
# asked for at each scrape on the event loop: a few families, made fresh each time.
MetricSource = Callable[[], Awaitable[Sequence[Metric]]]
METRIC_SOURCES = web.AppKey("commwatch.metric_sources", tuple[MetricSource, ...])
# Formats kept at once: text 0.0.4 and OpenMetrics, with room for escaping variants. The
# Accept header names the format, so a scraper could name ever new ones: the oldest goes.
KEPT_FORMATS = 4
# Prometheus asks for gzip. ISA-L's gzip (isal) at its level 1 compresses the 7 MB exposition
# of 10,000 checks in a fifth of the time zlib's fastest level takes, to fewer bytes (0.48 MB
# against 0.56 of a like text): gzip had become the largest part of a scrape that renewals
# leave little to encode. Compressed in the encoding's worker thread.
GZIP_LEVEL = 1
# What Prometheus asks for (its default scrape protocols, 2.x), and how long the kept lines of
# that format are renewed from the engine's start while no scrape has come: two of Prometheus'
# default 1 m scrape interval, and time for it to find a new target.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
FIRST_SCRAPE_WAIT = 180.0


class Exporter:
    """What `/metrics` needs of one Monitor: its latest results and counts as shown, kept
    from the moment it is made, and the scrape made of them with the engine's figures."""

    def __init__(self, monitor: Monitor, sources: Sequence[MetricSource] = ()) -> None:
        self._monitor = monitor
        self._sources = tuple(sources)
        topology = monitor.topology
        checks = monitor.checks
        self._labels = {
            check_id: (check_id, policy.site_id, policy.link_id, checks[check_id].kind)
            for check_id, policy in topology.checks.items()
        }
        # Persistent: a scrape takes it as it is, and the kept exposition finds what changed
        # since the last by the buckets a result touched (monitor/api/exposition.py).
        self._latest: PersistentMap[str, ProbeResult] = PersistentMap()
        self._results: Counter[tuple[str, str]] = Counter()
        self._events: Counter[tuple[str, str]] = Counter()
        # Encoded in full after the engine's families at every scrape.
        self.collectors: tuple[Collector, ...] = (ProcessCollector(registry=None),)
        self._formats: dict[str, FormatCache] = {}  # content type -> its exposition
        # Keeps the formats scraped lately current between scrapes (monitor/api/renewal.py).
        self.renewal = Renewal(self._current, _PAUSE.collections)
        self.renewal.expect(self._kept(PROMETHEUS_ACCEPT)[0], FIRST_SCRAPE_WAIT)
        self._unwatch: Callable[[], None] | None = monitor.watch(self._shown)

    def close(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self.renewal.close()

    def _current(self) -> Reading:
        """What a renewal reads, from its worker thread: each map immutable, as the event loop
        last set it."""
        return self._labels, self._monitor.state.checks, self._latest

    def _shown(self, item: ProbeResult | Event, _state: EngineState) -> None:
        if isinstance(item, ProbeResult):
            self._latest = self._latest.set(item.check.check_id, item)
            self._results[item.check.kind, item.severity.name] += 1
            self.renewal.shown()
        else:
            self._events[str(item.subject), str(item.kind)] += 1

    async def scrape(self) -> Scrape:
        """The engine now; the outbox's depth is asked first, everything else is read after
        it at once, with no wait in between."""
        try:
            pending = await asyncio.wait_for(self._monitor.pending_alerts(), OUTBOX_WAIT)
        except TimeoutError:
            log.warning("metrics: the alert outbox did not answer within %ss", OUTBOX_WAIT)
            pending = None
        extra: list[Metric] = []
        for source in self._sources:
            extra.extend(await source())
        monitor = self._monitor
        return Scrape(
            inventory=monitor.inventory,
            topology=monitor.topology,
            check_labels=self._labels,
            state=monitor.state,
            latest=self._latest,
            results=dict(self._results),
            events=dict(self._events),
            figures=monitor.figures(),
            alerts_pending=pending,
            ready=monitor.ready.is_set(),
            started_at=monitor.started_at,
            extra=tuple(extra),
        )

    def registry(self, scrape: Scrape) -> CollectorRegistry:
        """A registry of its own for one scrape, the engine's families and the process's: what
        `exposition` is the encoding of (it is the reference, and the benchmark's floor)."""
        registry = CollectorRegistry()
        registry.register(_ScrapeCollector(scrape))
        for collector in self.collectors:
            registry.register(collector)
        return registry

    def _kept(self, accept: str) -> tuple[FormatCache, str]:
        """The kept exposition of the format `accept` asks for, and its content type."""
        encoder, content_type = choose_encoder(accept)
        kept = self._formats.pop(content_type, None) or FormatCache(encoder)
        self._formats[content_type] = kept  # the newest last
        while len(self._formats) > KEPT_FORMATS:
            self.renewal.forget(self._formats.pop(next(iter(self._formats))))
        return kept, content_type

    async def exposition(self, accept: str, gzipped: bool = False) -> tuple[bytes, str]:
        """The body and its content type, in the format `accept` asks for (OpenMetrics when
        the scraper prefers it, as Prometheus does, else the text format 0.0.4); gzipped if
        asked."""
        kept, content_type = self._kept(accept)
        scrape = await self.scrape()

        def encode() -> bytes:
            with _PAUSE.collections():
                body = kept.exposition(scrape, self.collectors)
            return igzip.compress(body, GZIP_LEVEL, mtime=0) if gzipped else body

        body = await asyncio.to_thread(encode)
        self.renewal.scraped(kept)
        return body, content_type


class _CollectionPause:
    """The cyclic garbage collector paused while scrapes are encoded.

    A large scrape allocates enough to set off full collections, and a full collection of the
    engine's heap holds the GIL, and so the event loop, for 100-250 ms at 10,000 checks: a
    probe timing a connect meanwhile would read the stall as latency. Reference counting still
    frees everything a scrape makes; collection resumes when the last scrape in progress ends
    (if it was on: the process may have turned it off itself)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scrapes = 0
        self._was_enabled = False

    @contextlib.contextmanager
    def collections(self) -> Iterator[None]:
        with self._lock:
            if self._scrapes == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._scrapes += 1
        try:
            yield
        finally:
            with self._lock:
                self._scrapes -= 1
                if self._scrapes == 0 and self._was_enabled:
                    gc.enable()


_PAUSE = _CollectionPause()


class _ScrapeCollector:
    def __init__(self, scrape: Scrape) -> None:
        self._scrape = scrape

    def collect(self) -> Iterable[Metric]:
        return families(self._scrape)


EXPORTER = web.AppKey("commwatch_metrics_exporter", Exporter)


@requires(Role.VIEWER)
async def metrics(request: web.Request) -> web.Response:
    accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
    gzipped = accepts_gzip(",".join(request.headers.getall(hdrs.ACCEPT_ENCODING, [])))
    body, content_type = await request.app[EXPORTER].exposition(accept, gzipped)
    headers = {hdrs.CONTENT_TYPE: content_type, hdrs.VARY: hdrs.ACCEPT_ENCODING}
    if gzipped:
        headers[hdrs.CONTENT_ENCODING] = "gzip"
    return web.Response(body=body, headers=headers)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header (RFC 9110, 12.5.3) takes gzip: named, or `*`, with a
    weight above zero, and not refused by name."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *parameters = (part.strip() for part in item.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # a weight that cannot be read accepts nothing
        if coding:
            weights[coding.lower()] = weight
    named = weights.get("gzip", weights.get("x-gzip"))
    return (weights.get("*", 0.0) if named is None else named) > 0


def attach(app: web.Application, monitor: Monitor, config: object) -> None:
    """Serve `GET /metrics` for `monitor` on `app`. `config` (the listener's) holds nothing
    the metrics need. Results shown from now on are counted: attach before the engine runs."""
    del config
    sources: tuple[MetricSource, ...] = app.get(METRIC_SOURCES, ())
    exporter = Exporter(monitor, sources)
    app[EXPORTER] = exporter

    async def unwatch(_app: web.Application) -> None:
        exporter.close()

    app.on_cleanup.append(unwatch)
    app.router.add_get("/metrics", metrics)
