"""Pools of agents against a real nats-server with JetStream, real `commwatch agent`
processes and real TCP peers on loopback: heartbeats in the commwatch_agents bucket, a pool's
checks shared by rendezvous hashing and moved when an agent dies or comes back, an agent named
as a vantage point running its checks, and the central refusing a result from an agent not
assigned to it. Which agent ran which check is read from the stream (every result names its
agent and vantage point)."""

from __future__ import annotations

import pytest

from monitor.config.cluster import DEFAULT_HEARTBEAT, DEFAULT_HEARTBEAT_TTL
from tests.test_api_config import faults, load

# --- the cluster: keys ---------------------------------------------------------------------------


def test_heartbeats_default_to_five_seconds_and_three_of_them(tmp_path):
    cluster = load(tmp_path, "cluster: {}\n").cluster
    assert cluster is not None
    assert (cluster.heartbeat, cluster.heartbeat_ttl) == (DEFAULT_HEARTBEAT, DEFAULT_HEARTBEAT_TTL)
    assert (DEFAULT_HEARTBEAT, DEFAULT_HEARTBEAT_TTL) == (5.0, 15.0)


def test_the_ttl_follows_a_heartbeat_given_alone(tmp_path):
    cluster = load(tmp_path, "cluster: {heartbeat: 2s}\n").cluster
    assert cluster is not None
    assert (cluster.heartbeat, cluster.heartbeat_ttl) == (2.0, 6.0)
    both = load(tmp_path, "cluster: {heartbeat: 1s, heartbeat_ttl: 2500ms}\n").cluster
    assert both is not None
    assert (both.heartbeat, both.heartbeat_ttl) == (1.0, 2.5)


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (
            "cluster: {heartbeat: 2s, heartbeat_ttl: 3s}\n",
            "8:41: 'heartbeat_ttl': 3s is less than two heartbeats (2s each)",
        ),
        ("cluster: {heartbeat: 0s}\n", "8:22: 'heartbeat': duration must be greater than zero"),
        ("cluster: {heartbeat_ttl: soon}\n", "'heartbeat_ttl': 'soon' is not a duration"),
    ],
)
def test_heartbeat_faults_are_placed(tmp_path, cluster, expected):
    found = faults(tmp_path, cluster)
    assert any(expected in fault for fault in found), found
