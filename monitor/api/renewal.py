"""The kept expositions renewed between scrapes, in a worker thread, while scrapes keep coming.

A kept exposition (monitor/api/exposition.py) encodes at a scrape what changed since the one
before. With Prometheus' usual set-up (a scrape a minute, checks every minute) that is every
check: at 10,000 checks a scrape would still cost most of what the library's full encoding
does. So, once a format has been scraped twice (its interval is known), a worker thread brings
its kept lines to the engine's latest state and results, encoding only what changed since the
renewal before: once `RENEW_BATCH` results came since then, and at least every `RENEW_EVERY`
second. A scrape then encodes what changed in the last moment (a hundred checks or so,
whatever the rate of results), joins and compresses.

The work moves off the scrape; it does not vanish. Each change is encoded once per renewal
it falls in, so a check that changes more often than once a second costs one encoding a
second instead of one a scrape, and a burst of every check in the last second before a scrape
still costs that scrape the full encoding of them (both measured by bench/metrics_scrape.py,
reported in docs/prometheus/README.md). Renewals stop when no scrape of a format came for
`IDLE_INTERVALS` of its longest recent interval (and at least `least_idle` seconds), so an
engine nobody scrapes any more spends nothing on it; the next scrape starts them again.

The format Prometheus asks for is renewed from the engine's start (`expect`), before any scrape
came: else the first two scrapes after every start would each encode every check that had
reported by then (0.8 s at 10,000 checks). If no scrape comes within the wait given, those
renewals stop too.

The worker reads the engine's state and latest results as the event loop last set them (each
an immutable persistent map, read in one step), holds a format's lock only while renewing it,
and pauses the cyclic garbage collector meanwhile as a scrape does: the event loop is never
waited on, and never held by a full collection set off by the renewal's allocations.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from monitor.api.exposition import FormatCache
from monitor.api.metric_families import CheckLabels
from monitor.core.model import ProbeResult
from monitor.engine.checks import CheckState

log = logging.getLogger(__name__)

RENEW_EVERY = 1.0  # seconds at most between two renewals, while anything may have changed
# Results shown since the last renewal that call for one sooner: a scrape arriving at any
# moment finds about this many checks (and a renewal of as many under way) left to encode.
RENEW_BATCH = 100
POLL = 0.05  # seconds between two looks at the results shown
IDLE_INTERVALS = 3  # renewals stop after this many scrape intervals without a scrape
LEAST_IDLE = 30.0  # ... and never sooner than this many seconds after the last scrape
# The recent intervals whose longest counts: two Prometheus servers scraping one engine make
# short and long ones alternate.
INTERVALS_KEPT = 4

# What a renewal reads: the checks' labels, their states and their latest results, now.
Reading = tuple[Mapping[str, CheckLabels], Mapping[str, CheckState], Mapping[str, ProbeResult]]
Current = Callable[[], Reading]
Pause = Callable[[], contextlib.AbstractContextManager[None]]


class _Scraped:
    """When one format was scraped lately. `expected_for`: a format a scraper is expected to
    ask for (`Renewal.expect`), renewed before its interval is known for that many seconds
    after the start and after its first scrape."""

    def __init__(self, now: float, expected_for: float | None = None) -> None:
        self.last = now
        self.intervals: deque[float] = deque(maxlen=INTERVALS_KEPT)
        self.expected_for = expected_for
        self._awaited = expected_for is not None  # expected, and never scraped yet

    def scraped(self, now: float) -> None:
        if self._awaited:  # the time since the engine started is no scraper's interval
            self._awaited = False
        else:
            self.intervals.append(now - self.last)
        self.last = now

    def wanted(self, now: float, least_idle: float) -> bool:
        """Whether to renew it: scraped at least twice, and lately; or expected, and the
        scrape it waits for not overdue."""
        if not self.intervals:
            return self.expected_for is not None and now - self.last <= self.expected_for
        return now - self.last <= max(IDLE_INTERVALS * max(self.intervals), least_idle)


class Renewal:
    """Renews the kept formats scraped lately, once `batch` results were shown (`shown`) and
    at least every `every` seconds, in a thread of its own that runs only while some format
    is wanted (`_Scraped.wanted`)."""

    def __init__(
        self,
        current: Current,
        pause: Pause,
        every: float = RENEW_EVERY,
        batch: int = RENEW_BATCH,
        least_idle: float = LEAST_IDLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._current = current
        self._pause = pause
        self._every = every
        self._batch = batch
        self._least_idle = least_idle
        self._results = 0  # results shown since the start: counted on the event loop only
        self._clock = clock
        self._lock = threading.Lock()
        self._formats: dict[FormatCache, _Scraped] = {}
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self.renewals = 0  # renewals made since the start (a test and the bench read it)

    def shown(self) -> None:
        """A result was shown (called on the event loop): a renewal comes sooner when many
        did."""
        self._results += 1

    def scraped(self, cache: FormatCache) -> None:
        """`cache` was scraped now: renew it from now on, starting the worker if it rests."""
        now = self._clock()
        with self._lock:
            seen = self._formats.get(cache)
            if seen is None:
                self._formats[cache] = _Scraped(now)
                return
            seen.scraped(now)
            self._start()

    def expect(self, cache: FormatCache, within: float) -> None:
        """`cache` is the format a scraper is expected to ask for (Prometheus', from an
        engine's start): renew it from now on, so that its first scrape, and its second,
        find it current, unless `within` seconds pass without one."""
        with self._lock:
            self._formats[cache] = _Scraped(self._clock(), expected_for=within)
            self._start()

    def _start(self) -> None:
        """The worker running (called under the lock)."""
        if self._thread is None and not self._closed.is_set():
            self._thread = threading.Thread(target=self._run, name="metrics-renewal", daemon=True)
            self._thread.start()

    def forget(self, cache: FormatCache) -> None:
        """`cache` is no longer kept: stop renewing it."""
        with self._lock:
            self._formats.pop(cache, None)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def close(self, timeout: float = 10.0) -> None:
        """Stop renewing, and wait for a renewal under way to end."""
        self._closed.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        last, renewed_at = self._clock(), self._results
        while not self._closed.wait(min(POLL, self._every)):
            now, results = self._clock(), self._results
            if results - renewed_at < self._batch and now - last < self._every:
                continue
            last, renewed_at = now, results
            with self._lock:
                wanted = [
                    c for c, seen in self._formats.items() if seen.wanted(now, self._least_idle)
                ]
                if not wanted:
                    self._thread = None  # a scrape from now on starts another
                    return
            try:
                self._renew(wanted)
            except Exception:
                # Said once, not every second: the worker stops, the next scrape encodes what
                # this did not (and fails the same way, if it must) and starts it again.
                log.exception("metrics: renewing the kept exposition failed")
                break
        with self._lock:
            self._thread = None

    def _renew(self, wanted: list[FormatCache]) -> None:
        labels, states, latest = self._current()
        with self._pause():
            for cache in wanted:
                cache.renew(labels, states, latest)
        self.renewals += 1
