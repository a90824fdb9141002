"""The kept exposition (monitor/api/exposition.py) is byte for byte prometheus-client's own
encoding of the same families in one registry, in text 0.0.4 and OpenMetrics 1.0.0, scrape
after scrape as results, states, pauses, certificates and interfaces change: on a real engine
probing real peers, and as a property over seeds on a generated inventory whose results go
through the real state engine (`step`). It encodes again only the checks that changed, and a
scrape is never torn between two moments.

The reference is `Exporter.registry(scrape)` encoded by the encoder `choose_encoder` gives;
its collectors after the engine's families are a registry of real metrics (a counter, whose
`_created` the two formats place differently, and an info) instead of the process's, whose
figures change between two readings."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Info
from prometheus_client import Counter as CounterMetric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

from monitor.api import exposition, metrics
from monitor.api.exposition import Encoder, FormatCache
from monitor.api.metric_families import Scrape
from monitor.api.renewal import Pause, Renewal
from monitor.config.loader import load_inventory
from monitor.core.model import CertificateInfo, CheckRef, ProbeResult, Severity
from monitor.core.persistent import PersistentMap
from monitor.engine.pipeline import Monitor
from monitor.engine.state import EngineState
from monitor.engine.step import step
from probes.registry import REGISTRY
from tests.metrics_support import served_engine
from tests.peers.tcp_peers import accepting_listener

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
ENCODERS: dict[str, Encoder] = {
    "text": choose_encoder("")[0],
    "openmetrics": choose_encoder(OPENMETRICS)[0],
    # Escapings a scraper may ask for: `dots` writes every name otherwise, so its lines are
    # never made the quicker way (monitor/api/exposition.py).
    "openmetrics-dots": choose_encoder("application/openmetrics-text;version=1.0.0;escaping=dots")[
        0
    ],
    "openmetrics-utf8": choose_encoder(
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
    )[0],
}
KINDS = ("tcp", "tls", "http", "dns", "snmp")
# Interface names as an inventory may give them: dots, slashes, and characters both formats
# escape in a label value (a quote, a backslash, a newline).
INTERFACES = ("ge-0/0/0", "Gi0/1.100", 'odd"name', "back\\slash", "two\nlines")
OPER = ("up", "down", "testing", "unknown", "dormant", "notPresent", "lowerLayerDown", "bogus")
ADMIN = ("up", "down", "testing", "bogus")
SEEDS = range(5)


def fixed_collectors() -> tuple[CollectorRegistry, ...]:
    registry = CollectorRegistry()
    counter = CounterMetric("bench_things", "Things counted.", ("item",), registry=registry)
    counter.labels("a").inc(3)
    counter.labels('b"c').inc(0.5)
    Info("bench_about", "About.", registry=registry).info({"x": "1"})
    return (registry,)


def assert_same(made: bytes, expected: bytes) -> None:
    if made != expected:
        mine, theirs = made.decode().splitlines(), expected.decode().splitlines()
        first = next(
            (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
            min(len(mine), len(theirs)),
        )
        raise AssertionError(
            f"line {first}: made {mine[first : first + 1]}, library {theirs[first : first + 1]}"
            f" ({len(mine)} against {len(theirs)} lines)"
        )


def check_all(exporter: metrics.Exporter, caches: dict[str, FormatCache], scrape: Scrape) -> None:
    for name, cache in caches.items():
        encoder = ENCODERS[name]
        assert_same(
            cache.exposition(scrape, exporter.collectors), encoder(exporter.registry(scrape))
        )


# --- a real engine on real peers -------------------------------------------------------------


async def test_the_kept_exposition_of_a_real_engine_is_the_librarys_scrape_after_scrape(
    tmp_path, monkeypatch
):
    async with served_engine(tmp_path, monkeypatch) as served:
        monitor = served.monitor
        exporter = metrics.Exporter(monitor)
        exporter.collectors = fixed_collectors()
        caches = {name: FormatCache(encoder) for name, encoder in ENCODERS.items()}
        try:
            seen = 0
            results = asyncio.Event()

            def shown(item: object, _state: EngineState) -> None:
                nonlocal seen
                if isinstance(item, ProbeResult):
                    seen += 1
                    if seen % 4 == 0:
                        results.set()

            monitor.watch(shown)
            checks = sorted(monitor.topology.checks)
            for round_ in range(6):
                if round_ == 2:
                    monitor.pause(checks[0])
                if round_ == 4:
                    monitor.resume(checks[0])
                results.clear()
                await asyncio.wait_for(results.wait(), 30)  # the interval is 1 s
                check_all(exporter, caches, await exporter.scrape())
        finally:
            exporter.close()
    assert seen >= 24  # the engine went on probing: the kept lines were renewed


# --- a generated inventory, its results through the state engine -----------------------------


def write_inventory(path: Path, sites: int) -> None:
    lines = ["groups:", "  - {id: all-radio, links: [s0/radio, s1/radio], min_up: 1}", "sites:"]
    for site in range(sites):
        lines += [f"  - id: s{site}", "    links:"]
        for link in ("fibre", "radio"):
            lines += [f"      - id: {link}", "        checks:"]
            for kind in KINDS:
                lines.append("          - " + _check(kind))
    path.write_text("\n".join(lines) + "\n")


def _check(kind: str) -> str:
    if kind == "http":
        return '{id: web, kind: http, target: "https://127.0.0.1:9/health"}'
    if kind == "dns":
        return '{id: name, kind: dns, target: "a.example.net", server: "127.0.0.1:9"}'
    if kind == "snmp":
        names = ", ".join(json.dumps(name) for name in INTERFACES)  # YAML's quoting too
        return (
            '{id: sw, kind: snmp, target: "127.0.0.1:9", version: 2c,'
            f" community_env: CW_EXPOSITION_COMMUNITY, interfaces: [{names}]}}"
        )
    return f'{{id: {kind}, kind: {kind}, target: "127.0.0.1:9"}}'


def a_number(rng: random.Random) -> float:
    """Values whose Go-style formatting varies: integers, tiny, huge, negative zero."""
    return rng.choice(
        (0.0, -0.0, 1.0, 12.5, 1e-7, 123456789.123, 1.5e21, rng.random() * rng.choice((1, 1e6)))
    )


def a_result(rng: random.Random, ref: CheckRef, at: float) -> ProbeResult:
    observations: dict[str, object] = {}
    latency = REGISTRY[ref.kind].latency
    if latency is not None and rng.random() < 0.8:
        observations[latency] = a_number(rng)
    certificates: tuple[CertificateInfo, ...] = ()
    if ref.kind in ("tls", "http"):
        certificates = tuple(
            CertificateInfo(
                fingerprint_sha256=f"{rng.getrandbits(64):016x}",
                position=position,
                subject="CN=x",
                issuer="CN=ca",
                serial="01",
                not_before=None,
                not_after=rng.choice((None, 1.7e9 + rng.randrange(10**8))),
                key_type="EC",
                key_bits=256,
                signature_algorithm="ecdsa-with-SHA256",
                subject_alt_names=(),
                spki_sha256="",
                self_signed=False,
            )
            for position in range(rng.randrange(4))
        )
    if ref.kind == "snmp":
        for name in rng.sample(INTERFACES, rng.randrange(len(INTERFACES) + 1)):
            observations[f"if.{name}.oper_status"] = rng.choice(OPER)
            observations[f"if.{name}.admin_status"] = rng.choice(ADMIN)
            for field in ("in_errors_per_s", "out_errors_per_s", "in_discards_per_s"):
                if rng.random() < 0.7:
                    observations[f"if.{name}.{field}"] = a_number(rng)
            observations[f"if.{name}.in_utilisation_pct"] = rng.choice((True, a_number(rng)))
            observations[f"if.{name}.out_utilisation_pct"] = rng.random() * 100
    return ProbeResult(
        check=ref,
        started_at=at,
        duration_ms=a_number(rng),
        severity=rng.choice(tuple(Severity)),
        observations=observations,
        certificates=certificates,
    )


def generated(tmp_path: Path, monkeypatch, sites: int) -> Monitor:
    monkeypatch.setenv("CW_EXPOSITION_COMMUNITY", "public")
    write_inventory(tmp_path / "inventory.yaml", sites)
    inventory = load_inventory(tmp_path / "inventory.yaml")
    return Monitor(
        inventory,
        inventory.checks,
        on_result=lambda _: None,
        on_event=lambda _: None,
        history=False,
        alerts=False,
    )


class Engine:
    """A generated inventory's state, stepped by random results, and its scrapes."""

    def __init__(self, monitor: Monitor, rng: random.Random) -> None:
        self.monitor, self.rng = monitor, rng
        self.exporter = metrics.Exporter(monitor)
        # Its own renewal, which keeps Prometheus' format from its start, stopped: it would
        # encode the monitor's checks in a thread of its own while a test counts what a scrape
        # encodes. These tests renew through `renewal()`.
        self.exporter.renewal.close()
        self.exporter.collectors = fixed_collectors()
        self.refs = {check.ref.check_id: check.ref for check in monitor.scheduler.checks.values()}
        self.state: EngineState = monitor.state
        # Persistent, as the Exporter keeps it: the kept exposition reads what changed off it.
        self.latest: PersistentMap[str, ProbeResult] = PersistentMap()
        self.results: Counter[tuple[str, str]] = Counter()
        self.now = 1.7e9

    def results_for(self, count: int) -> None:
        for check_id in self.rng.choices(sorted(self.refs), k=count):
            self.now += self.rng.random()
            result = a_result(self.rng, self.refs[check_id], self.now)
            self.state, _ = step(self.monitor.topology, self.state, result)
            # With history a result is shown once stored, while the state has it at once:
            # a scrape may see a check's state newer than its latest result shown.
            if self.rng.random() < 0.7:
                self.latest = self.latest.set(check_id, result)
                self.results[result.check.kind, result.severity.name] += 1

    def pause_some(self) -> None:
        for check_id in self.rng.sample(sorted(self.refs), 3):
            if self.monitor.scheduler.is_paused(check_id):
                self.monitor.resume(check_id)
            else:
                self.monitor.pause(check_id)

    def renewal(self, pause: Pause = contextlib.nullcontext, **pace: Any) -> Renewal:
        """A renewal of this engine's kept expositions: it reads the engine's state and latest
        results as they are when it renews."""
        labels = self.exporter._labels
        return Renewal(lambda: (labels, self.state.checks, self.latest), pause, **pace)

    async def scrape(self) -> Scrape:
        taken = await self.exporter.scrape()
        return dataclasses.replace(
            taken, state=self.state, latest=self.latest, results=dict(self.results)
        )


async def test_the_kept_exposition_is_the_librarys_over_many_changes_as_a_property(
    tmp_path, monkeypatch
):
    monitor = generated(tmp_path, monkeypatch, sites=12)  # 120 checks of every kind
    for seed in SEEDS:
        engine = Engine(monitor, random.Random(seed))
        every = {name: FormatCache(encoder) for name, encoder in ENCODERS.items()}
        seldom = {name: FormatCache(encoder) for name, encoder in ENCODERS.items()}
        plain = {name: FormatCache(encoder) for name, encoder in ENCODERS.items()}
        for round_ in range(12):
            engine.results_for(engine.rng.choice((0, 1, 5, 40, 400)))
            if round_ % 3 == 1:
                engine.pause_some()
            scrape = await engine.scrape()
            check_all(engine.exporter, every, scrape)
            if round_ % 4 == 3:  # a scraper that misses rounds sees the changes piled up
                check_all(engine.exporter, seldom, scrape)
            # Latest results in a map that is not persistent: every check is looked at.
            check_all(
                engine.exporter, plain, dataclasses.replace(scrape, latest=dict(scrape.latest))
            )
        engine.exporter.close()


def recording(encoder: Encoder, bodies: list[bytes]) -> Encoder:
    def encode(registry: Collector) -> bytes:
        body = encoder(registry)
        bodies.append(body)
        return body

    return encode


async def test_a_scrape_encodes_again_only_the_checks_that_changed(tmp_path, monkeypatch):
    engine = Engine(generated(tmp_path, monkeypatch, sites=40), random.Random(7))  # 400 checks
    engine.exporter.collectors = ()
    engine.results_for(4000)
    bodies: list[bytes] = []
    encoder = ENCODERS["openmetrics"]
    cache = FormatCache(recording(encoder, bodies))
    first = cache.exposition(await engine.scrape())
    bodies.clear()
    changed = sorted(engine.refs)[:3]
    for check_id in changed:
        engine.latest = engine.latest.set(
            check_id, dataclasses.replace(engine.latest[check_id], duration_ms=0.25)
        )
    second = cache.exposition(scrape := await engine.scrape())
    assert_same(second, encoder(engine.exporter.registry(scrape)))
    assert second != first
    # The engine's families in full, and of the three checks only the lines that changed:
    # their durations, not their severities; the links' and groups' lines as they were.
    again = b"".join(bodies)
    assert set(re.findall(rb'check_id="([^"]+)"', again)) == {c.encode() for c in changed}
    assert b"commwatch_check_duration_seconds{" in again
    assert b"commwatch_check_severity{" not in again
    assert b"commwatch_group_status{" not in again  # no state changed
    assert len(again) < len(second) / 5
    engine.exporter.close()


async def test_openmetrics_lines_are_made_without_escaping_each_name_letter_by_letter(
    tmp_path, monkeypatch
):
    """The library escapes a sample's metric name one character at a time under its default
    escaping; the kept lines are made with the escaping that leaves commwatch's names as they
    are in one step (the same bytes), so renewing checks does not pay for that loop."""
    engine = Engine(generated(tmp_path, monkeypatch, sites=40), random.Random(11))  # 400 checks
    engine.exporter.collectors = ()
    engine.results_for(4000)
    encoder = ENCODERS["openmetrics"]
    cache = FormatCache(encoder)
    cache.exposition(await engine.scrape())
    for check_id in sorted(engine.refs)[:100]:
        engine.latest = engine.latest.set(
            check_id, dataclasses.replace(engine.latest[check_id], duration_ms=0.5)
        )
    escaped: list[str] = []
    escape = openmetrics._escape

    def counting(text: str, escaping: str, valid: object) -> str:
        if escaping != openmetrics.ALLOWUTF8:
            escaped.append(text)
        return escape(text, escaping, valid)

    monkeypatch.setattr(openmetrics, "_escape", counting)
    body = cache.exposition(scrape := await engine.scrape())
    # Only the engine's own families, encoded whole as asked, escape letter by letter: not
    # the 100 checks' renewed lines.
    assert len(escaped) < 60, len(escaped)
    assert not any(name.startswith("commwatch_check_duration") for name in escaped)
    monkeypatch.undo()
    assert_same(body, encoder(engine.exporter.registry(scrape)))
    engine.exporter.close()


async def test_a_scrape_looks_only_at_the_checks_whose_state_or_result_is_new(
    tmp_path, monkeypatch
):
    """Between two scrapes the engine's state and the latest results are persistent maps that
    share what no result touched: the checks to look at are found without reading all 400."""
    engine = Engine(generated(tmp_path, monkeypatch, sites=40), random.Random(5))
    engine.exporter.collectors = ()
    engine.results_for(4000)
    cache = FormatCache(ENCODERS["openmetrics"])
    cache.exposition(await engine.scrape())
    looked: list[object] = []
    key = exposition.check_key

    def counting(state: object, result: object) -> object:
        looked.append(result)
        return key(state, result)  # type: ignore[arg-type]

    monkeypatch.setattr(exposition, "check_key", counting)
    engine.results_for(3)
    body = cache.exposition(scrape := await engine.scrape())
    assert 0 < len(looked) <= 3
    monkeypatch.undo()
    assert_same(body, ENCODERS["openmetrics"](engine.exporter.registry(scrape)))
    engine.exporter.close()


async def test_scrapes_at_once_are_each_whole_and_of_their_own_moment(tmp_path, monkeypatch):
    """Two threads scrape one kept exposition with two scrapes far apart (most checks differ):
    each body is the library's encoding of its own scrape, no check's lines from the other."""
    engine = Engine(generated(tmp_path, monkeypatch, sites=40), random.Random(3))
    engine.exporter.collectors = ()
    engine.results_for(2000)
    before = await engine.scrape()
    engine.results_for(2000)
    after = await engine.scrape()
    encoder = ENCODERS["text"]
    expected = {id(s): encoder(engine.exporter.registry(s)) for s in (before, after)}
    assert expected[id(before)] != expected[id(after)]
    cache = FormatCache(encoder)
    wrong: list[int] = []

    def scrapes(mine: Scrape) -> None:
        for _ in range(40):
            if cache.exposition(mine) != expected[id(mine)]:
                wrong.append(id(mine))

    threads = [threading.Thread(target=scrapes, args=(s,)) for s in (before, after)]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the threads interleave often, as on a busy engine
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        sys.setswitchinterval(switching)
    assert wrong == []
    engine.exporter.close()


# --- renewed between scrapes (monitor/api/renewal.py) ----------------------------------------


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time allowed")
        time.sleep(0.005)


async def test_renewals_racing_with_results_leave_the_scrape_the_librarys(tmp_path, monkeypatch):
    """A worker renews the kept lines as fast as it can while results arrive and states change
    (each renewal reads the state and the latest results at moments of its own): every scrape
    after it is still byte for byte the library's full encoding of that scrape's moment."""
    engine = Engine(generated(tmp_path, monkeypatch, sites=20), random.Random(13))  # 200 checks
    engine.results_for(1000)
    for name, encoder in ENCODERS.items():
        cache = FormatCache(encoder)
        cache.exposition(await engine.scrape(), engine.exporter.collectors)
        renewal = engine.renewal(every=0)
        renewal.scraped(cache)
        renewal.scraped(cache)  # twice: its interval is known, the worker starts
        switching = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)  # the worker's reads fall between a result's two writes
        try:
            for round_ in range(8):
                before = renewal.renewals
                for _ in range(40):
                    engine.results_for(engine.rng.choice((1, 5, 20)))
                    await asyncio.sleep(0)  # the worker renews between them
                if round_ % 3 == 1:
                    engine.pause_some()
                wait_for(lambda made=renewal, before=before: made.renewals > before + 2)
                scrape = await engine.scrape()
                made = cache.exposition(scrape, engine.exporter.collectors)
                assert_same(made, encoder(engine.exporter.registry(scrape)))
                renewal.scraped(cache)
        finally:
            sys.setswitchinterval(switching)
            renewal.close()
        assert not renewal.running, name
    engine.exporter.close()


async def test_a_scrape_after_a_renewal_encodes_no_check_again(tmp_path, monkeypatch):
    """What the renewal encoded between scrapes the scrape does not: of the checks, nothing
    is left to encode when no result came since the last renewal."""
    engine = Engine(generated(tmp_path, monkeypatch, sites=40), random.Random(17))  # 400 checks
    engine.exporter.collectors = ()
    engine.results_for(4000)
    bodies: list[bytes] = []
    encoder = ENCODERS["openmetrics"]
    cache = FormatCache(recording(encoder, bodies))
    cache.exposition(await engine.scrape())
    renewal = engine.renewal(every=0.01)
    renewal.scraped(cache)
    renewal.scraped(cache)
    try:
        engine.results_for(2000)
        done = renewal.renewals
        wait_for(lambda: renewal.renewals > done + 1)  # one began after the last result
        bodies.clear()
        body = cache.exposition(scrape := await engine.scrape())
    finally:
        renewal.close()
    assert_same(body, encoder(engine.exporter.registry(scrape)))
    assert not re.findall(rb'check_id="([^"]+)"', b"".join(bodies))
    engine.exporter.close()


async def test_renewals_stop_when_scrapes_stop_and_start_again_with_them(tmp_path, monkeypatch):
    engine = Engine(generated(tmp_path, monkeypatch, sites=2), random.Random(19))
    cache = FormatCache(ENCODERS["text"])
    cache.exposition(await engine.scrape())
    renewal = engine.renewal(
        every=0.01,
        least_idle=0.3,
    )
    try:
        renewal.scraped(cache)
        time.sleep(0.05)
        assert not renewal.running  # scraped once: no interval known, nothing to keep up
        renewal.scraped(cache)
        assert renewal.running
        wait_for(lambda: renewal.renewals >= 3)
        wait_for(lambda: not renewal.running)  # 0.3 s (3 x 0.05 s at the least) without one
        stopped = renewal.renewals
        time.sleep(0.2)
        assert renewal.renewals == stopped
        renewal.scraped(cache)  # scrapes come back: so do renewals
        assert renewal.running
        wait_for(lambda: renewal.renewals > stopped)
    finally:
        renewal.close()
    assert not renewal.running
    engine.exporter.close()


async def test_an_exporter_renews_from_its_start_until_it_is_closed(tmp_path, monkeypatch):
    """Prometheus' format is renewed before any scrape came (for its first scrapes), the
    formats scraped twice after that, until the exporter is closed."""
    exporter = metrics.Exporter(generated(tmp_path, monkeypatch, sites=2))
    assert exporter.renewal.running
    wait_for(lambda: exporter.renewal.renewals >= 1)
    await exporter.exposition("")
    await exporter.exposition("", gzipped=True)  # the same format, compressed
    renewed = exporter.renewal.renewals
    wait_for(lambda: exporter.renewal.renewals > renewed)
    exporter.close()
    assert not exporter.renewal.running


async def test_the_first_scrape_in_prometheus_format_finds_its_lines_renewed(tmp_path, monkeypatch):
    """From the engine's start the kept lines of the format Prometheus asks for are renewed, so
    its first scrape encodes no check again; a first scrape in another format encodes all."""
    bodies: list[bytes] = []
    monkeypatch.setattr(
        metrics, "choose_encoder", lambda accept: _recorded(choose_encoder(accept), bodies)
    )
    async with accepting_listener() as port:
        (tmp_path / "inventory.yaml").write_text(
            "defaults: {interval: 1h}\nsites:\n  - id: s\n    links:\n      - id: l\n"
            "        checks:\n"
            + "".join(
                f'          - {{id: c{n}, kind: tcp, target: "127.0.0.1:{port}"}}\n'
                for n in range(20)
            )
        )
        inventory = load_inventory(tmp_path / "inventory.yaml")
        shown: set[str] = set()
        monitor = Monitor(
            inventory,
            inventory.checks,
            on_result=lambda result: shown.add(result.check.check_id),
            on_event=lambda _: None,
            history=False,
            alerts=False,
        )
        exporter = metrics.Exporter(monitor)
        running = asyncio.create_task(monitor.run())
        try:
            async with asyncio.timeout(30):
                while len(shown) < 20:
                    await asyncio.sleep(0.01)
            done = exporter.renewal.renewals
            wait_for(lambda: exporter.renewal.renewals > done + 1)  # one began after the last
            bodies.clear()
            first, _ = await exporter.exposition(metrics.PROMETHEUS_ACCEPT)
            assert not re.findall(rb'check_id="([^"]+)"', b"".join(bodies))
            assert len(set(re.findall(rb'check_id="([^"]+)"', first))) == 20
            bodies.clear()
            await exporter.exposition("")  # the text format: nobody asked for it before
            assert len(set(re.findall(rb'check_id="([^"]+)"', b"".join(bodies)))) == 20
        finally:
            monitor.stop()
            await asyncio.wait_for(running, 30)
            exporter.close()


def _recorded(chosen: tuple[Encoder, str], bodies: list[bytes]) -> tuple[Encoder, str]:
    encoder, content_type = chosen
    return recording(encoder, bodies), content_type


async def test_an_expected_format_is_renewed_until_its_scrape_is_overdue(tmp_path, monkeypatch):
    engine = Engine(generated(tmp_path, monkeypatch, sites=2), random.Random(29))
    cache = FormatCache(ENCODERS["openmetrics"])
    skipped = [0.0]  # seconds the renewal's clock is ahead of the real one

    def renews() -> None:
        made = renewal.renewals
        wait_for(lambda: renewal.renewals > made + 1)

    renewal = engine.renewal(
        every=0.01, least_idle=0.2, clock=lambda: time.monotonic() + skipped[0]
    )
    try:
        renewal.expect(cache, 30.0)
        renews()  # before any scrape
        skipped[0] += 31  # the scrape it waited for is overdue
        wait_for(lambda: not renewal.running)
        renewal.expect(cache, 30.0)
        skipped[0] += 20
        renewal.scraped(cache)  # its first scrape: the wait starts again from it
        skipped[0] += 20  # 40 s after the start, 20 after that scrape
        renews()
        skipped[0] += 5
        renewal.scraped(cache)  # a second: its interval (25 s) known, as any format's
        skipped[0] += 70  # within three such intervals
        renews()
        skipped[0] += 10
        wait_for(lambda: not renewal.running)
    finally:
        renewal.close()
    engine.exporter.close()


async def test_a_renewal_encodes_with_the_garbage_collector_paused(tmp_path, monkeypatch):
    """As a scrape does: a full collection set off by the renewal's allocations would hold
    the event loop. Collection is on again once it has renewed."""
    engine = Engine(generated(tmp_path, monkeypatch, sites=4), random.Random(29))
    engine.results_for(100)
    collecting: list[bool] = []
    encoder = ENCODERS["openmetrics"]

    def encode(registry: Collector) -> bytes:
        if threading.current_thread().name == "metrics-renewal":
            collecting.append(gc.isenabled())
        return encoder(registry)

    cache = FormatCache(encode)
    cache.exposition(await engine.scrape())
    renewal = engine.renewal(
        metrics._PAUSE.collections,
        every=0.01,
    )
    assert gc.isenabled()
    renewal.scraped(cache)
    renewal.scraped(cache)
    try:
        engine.results_for(100)
        wait_for(lambda: bool(collecting))
    finally:
        renewal.close()
    assert collecting and not any(collecting)
    assert gc.isenabled()
    engine.exporter.close()


async def test_a_failing_renewal_is_said_once_and_the_next_scrape_starts_another(
    tmp_path, monkeypatch, caplog
):
    engine = Engine(generated(tmp_path, monkeypatch, sites=4), random.Random(31))
    engine.results_for(100)
    encoder = ENCODERS["text"]
    failing = [True]

    def encode(registry: Collector) -> bytes:
        if failing[0] and threading.current_thread().name == "metrics-renewal":
            raise RuntimeError("the encoder failed")
        return encoder(registry)

    cache = FormatCache(encode)
    cache.exposition(await engine.scrape())
    renewal = engine.renewal(every=0.01)
    try:
        renewal.scraped(cache)
        renewal.scraped(cache)
        engine.results_for(50)
        wait_for(lambda: not renewal.running)
        time.sleep(0.1)  # had it gone on, it would have failed and said so again meanwhile
        said = [r for r in caplog.records if "renewing the kept exposition" in r.getMessage()]
        assert len(said) == 1 and renewal.renewals == 0
        failing[0] = False
        scrape = await engine.scrape()
        made = cache.exposition(scrape, engine.exporter.collectors)
        assert_same(made, encoder(engine.exporter.registry(scrape)))  # nothing half-renewed
        renewal.scraped(cache)
        assert renewal.running
        engine.results_for(50)
        wait_for(lambda: renewal.renewals > 0)
    finally:
        renewal.close()
    engine.exporter.close()


async def test_many_results_call_for_a_renewal_before_the_pace_does(tmp_path, monkeypatch):
    """A renewal comes once `batch` results were shown, not only every `every` seconds: at a
    high rate of results a scrape finds about a batch of checks left to encode."""
    engine = Engine(generated(tmp_path, monkeypatch, sites=2), random.Random(37))
    cache = FormatCache(ENCODERS["text"])
    cache.exposition(await engine.scrape())
    renewal = engine.renewal(
        every=3600.0,
        batch=10,
    )
    try:
        renewal.scraped(cache)
        renewal.scraped(cache)
        for _ in range(9):
            renewal.shown()
        time.sleep(0.3)  # six looks at the results shown: fewer than a batch, no renewal
        assert renewal.renewals == 0
        renewal.shown()
        wait_for(lambda: renewal.renewals == 1, seconds=10)
    finally:
        renewal.close()
    engine.exporter.close()
