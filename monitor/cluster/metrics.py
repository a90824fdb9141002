"""An agent's and a central's own metrics, made by prometheus-client from their figures at each
scrape (docs/prometheus/README.md, "Agents and centrals", documents every family).

An agent serves its families alone (`monitor.cluster.agent_api`), with the process's and its
scheduler's as the engine names them. A central serves the engine's API, and `CentralMetrics`
adds its consumer's families to the engine's `/metrics` (a `MetricSource`, asked at each
scrape): what it took, dropped and rejected, what the server still holds for it, and its part
in the leadership, from its lease's figures (monitor.cluster.lease).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor.cluster.agent import AgentFigures
from monitor.cluster.central import Rejection, ResultConsumer
from monitor.cluster.lease import LeaseFigures
from monitor.cluster.spool import SpoolFigures
from monitor.cluster.stream import LeafSource, leaf_sources
from monitor.config.cluster import ClusterConfig

if TYPE_CHECKING:
    from nats.aio.client import Client

# A scrape waits no longer for the server's figures of the consumer, and shows them absent
# instead (Prometheus' default scrape timeout is 10 s).
BACKLOG_WAIT = 2.0


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def agent_families(
    figures: AgentFigures, spool: SpoolFigures, max_bytes: int, now: float
) -> Iterator[Metric]:
    """An agent's own families: its connection, what it published, and its spool."""
    yield GaugeMetricFamily(
        "commwatch_agent_connected",
        "1 while the agent is connected to NATS, else 0 (its results go to the spool).",
        value=1 if figures.connected else 0,
    )
    oldest = figures.oldest_unpublished
    yield GaugeMetricFamily(
        "commwatch_agent_publish_lag_seconds",
        "Age of the oldest result not yet published (spooled or on its way); 0 when none.",
        value=0.0 if oldest is None else max(0.0, now - oldest),
    )
    if figures.heartbeat_put_at is not None:
        yield GaugeMetricFamily(
            "commwatch_agent_heartbeat_age_seconds",
            "Seconds since the heartbeats' bucket last took this agent's heartbeat: it grows "
            "while the agent cannot reach it (behind a leaf node, the WAN). Absent before the "
            "first.",
            value=max(0.0, now - figures.heartbeat_put_at),
        )
    yield _counter(
        "commwatch_agent_published",
        "Results the stream acknowledged since the agent started, replays included.",
        figures.published,
    )
    yield _counter(
        "commwatch_agent_replayed",
        "Results published from the spool since the agent started.",
        figures.replayed,
    )
    yield _counter(
        "commwatch_agent_duplicates",
        "Published results the server had already (a replay after a lost acknowledgement).",
        figures.duplicates,
    )
    yield GaugeMetricFamily(
        "commwatch_agent_spool_results", "Results waiting in the spool.", value=spool.depth
    )
    yield GaugeMetricFamily(
        "commwatch_agent_spool_bytes",
        "The spooled results' size, as counted against the spool's max_bytes.",
        value=spool.size,
    )
    yield GaugeMetricFamily(
        "commwatch_agent_spool_limit_bytes",
        "The spool's max_bytes: beyond it the oldest results are dropped.",
        value=max_bytes,
    )
    dropped = CounterMetricFamily(
        "commwatch_agent_spool_dropped",
        "Results ever dropped from the spool, across restarts, by reason: older than "
        "max_age, or beyond max_bytes.",
        labels=("reason",),
    )
    dropped.add_metric(["age"], spool.dropped_age)
    dropped.add_metric(["size"], spool.dropped_size)
    yield dropped


class CentralMetrics:
    """A central's families for the engine's `/metrics` (a `monitor.api.metrics.MetricSource`):
    its consumer's figures, the server's backlog of it, its connection, and its part in the
    leadership as `leadership()` (the lease's figures) says now, and with `leaves` how the
    stream last heard from the leaf nodes' streams it sources."""

    def __init__(
        self,
        consumer: ResultConsumer,
        client: Client,
        leadership: Callable[[], LeaseFigures],
        leaves: Callable[[], Awaitable[list[LeafSource] | None]] | None = None,
    ) -> None:
        self._consumer = consumer
        self._client = client
        self._leadership = leadership
        self._leaves = leaves

    async def __call__(self) -> list[Metric]:
        backlog = await self._consumer.backlog(BACKLOG_WAIT) if self._client.is_connected else None
        figures = self._consumer.figures()
        leadership = self._leadership()
        families: list[Metric] = [
            GaugeMetricFamily(
                "commwatch_central_connected",
                "1 while the central is connected to NATS, else 0.",
                value=1 if self._client.is_connected else 0,
            ),
            GaugeMetricFamily(
                "commwatch_central_leader",
                "1 while this central holds the lease and notifies, else 0.",
                value=1 if leadership.leader else 0,
            ),
            GaugeMetricFamily(
                "commwatch_central_lease_token",
                "The fencing token of the lease held now, by this central or the leader it last "
                "saw; 0 while it has seen none.",
                value=leadership.token,
            ),
            _counter(
                "commwatch_central_leadership_changes",
                "Changes of leadership this central saw since it started.",
                leadership.changes,
            ),
            _counter(
                "commwatch_central_results",
                "Results taken from the stream and handed to the engine since the start.",
                figures.taken,
            ),
            _counter(
                "commwatch_central_duplicates",
                "Results dropped as not newer than the last of their check (delivered again).",
                figures.duplicates,
            ),
        ]
        rejected = CounterMetricFamily(
            "commwatch_central_rejected",
            "Messages on the results stream refused and terminated, by reason.",
            labels=("reason",),
        )
        for reason in Rejection:
            rejected.add_metric([str(reason)], figures.rejected.get(reason, 0))
        families.append(rejected)
        if backlog is not None:
            families.append(
                GaugeMetricFamily(
                    "commwatch_central_consumer_pending",
                    "Results in the stream not delivered to this central's consumer yet.",
                    value=backlog.pending,
                )
            )
            families.append(
                GaugeMetricFamily(
                    "commwatch_central_consumer_unacknowledged",
                    "Results delivered to this central and not acknowledged yet.",
                    value=backlog.unacknowledged,
                )
            )
        if self._leaves is not None and self._client.is_connected:
            families += _leaf_families(await self._leaves())
        return families


def leaves_of(
    client: Client, cluster: ClusterConfig
) -> Callable[[], Awaitable[list[LeafSource] | None]] | None:
    """What `CentralMetrics` asks of the leaf nodes' streams the central's stream sources, at
    each scrape; None when `cluster: leaf_domains:` names none."""
    if not cluster.leaf_domains:
        return None
    return functools.partial(leaf_sources, client, cluster.domain, cluster.stream, BACKLOG_WAIT)


def _leaf_families(sources: list[LeafSource] | None) -> list[Metric]:
    """None (the server did not answer): no family, as the backlog's."""
    if sources is None:
        return []
    lag = GaugeMetricFamily(
        "commwatch_central_leaf_lag",
        "Results a site's leaf node held that the hub's stream had not sourced yet, when the "
        "hub last heard from it.",
        labels=("domain",),
    )
    inactive = GaugeMetricFamily(
        "commwatch_central_leaf_inactive_seconds",
        "Seconds since the hub's stream last heard from a site's leaf node (a result or a "
        "heartbeat); it grows through a WAN outage. No series for one never heard from.",
        labels=("domain",),
    )
    for source in sources:
        lag.add_metric([source.domain], source.lag)
        if source.inactive is not None:
            inactive.add_metric([source.domain], source.inactive)
    return [lag, inactive]
