"""Operating the distributed parts: the stream's replicas and several NATS servers in the
inventory, and what a replica count that NATS cannot have, or one that differs from an
existing stream's, looks like (real nats-server)."""

from __future__ import annotations

import nats
import pytest

from monitor.cluster.stream import StreamError, ensure_stream
from monitor.config.cluster import NatsConfig, nats_url
from monitor.core.options import OptionError
from tests.peers.nats_peers import running_nats
from tests.test_api_config import faults, load

# --- the configuration ------------------------------------------------------------------------


def test_replicas_and_several_servers_load(tmp_path):
    cluster = load(
        tmp_path,
        """\
        cluster:
          nats: {url: [nats://127.0.0.1:4222, 'nats://[::1]:4223', nats://127.0.0.1:4224]}
          replicas: 3
        """,
    ).cluster
    assert cluster is not None and cluster.replicas == 3
    assert cluster.nats.url == "nats://127.0.0.1:4222,nats://[::1]:4223,nats://127.0.0.1:4224"
    assert cluster.nats.servers == [
        "nats://127.0.0.1:4222",
        "nats://[::1]:4223",
        "nats://127.0.0.1:4224",
    ]
    assert load(tmp_path, "cluster: {}\n").cluster.replicas == 1  # type: ignore[union-attr]


def test_a_comma_separated_url_is_several_servers():
    assert nats_url(" tls://10.0.0.1:4222 , tls://10.0.0.2:4222") == (
        "tls://10.0.0.1:4222,tls://10.0.0.2:4222"
    )
    assert NatsConfig(url="nats://127.0.0.1:4222").servers == ["nats://127.0.0.1:4222"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nats://127.0.0.1:4222,", "a NATS URL is empty"),
        ("nats://127.0.0.1:4222,tls://127.0.0.1:4223", "the NATS URLs mix nats:// and tls://"),
        ("nats://127.0.0.1:4222,nats://127.0.0.1:4222", "a NATS URL is given twice"),
        ("nats://127.0.0.1:4222,nats://u:hunter2@127.0.0.1:4223", "holds credentials (not shown)"),
        ([], "no NATS URL is given"),
    ],
)
def test_a_bad_list_of_servers_is_refused(value, expected):
    with pytest.raises(OptionError) as refused:
        nats_url(value)
    assert expected in refused.value.message
    assert "hunter2" not in str(refused.value) + refused.value.hint


@pytest.mark.parametrize(
    ("replicas", "shown"), [("2", "2"), ("7", "7"), ("three", "'three'"), ("true", "True")]
)
def test_a_replica_count_jetstream_does_not_take_is_placed(tmp_path, replicas, shown):
    (found,) = faults(tmp_path, f"cluster: {{replicas: {replicas}}}\n")
    assert found == (
        f"{tmp_path / 'inventory.yaml'}:8:21: 'replicas': {shown} is not a replica count "
        "JetStream takes (write 1 for one server, or 3 or 5 for a NATS cluster of at least "
        "that many nodes; a majority of the replicas must be up to store results)"
    )


def test_the_command_line_takes_several_servers(tmp_path):
    from monitor.cli.parser import build_parser

    args = build_parser().parse_args(
        ["agent", "--name", "a", "--nats", "nats://127.0.0.1:1,nats://127.0.0.1:2"]
    )
    assert args.nats == "nats://127.0.0.1:1,nats://127.0.0.1:2"


# --- the stream's replicas on a real server -----------------------------------------------------


async def test_more_replicas_than_a_lone_server_has_is_a_clear_refusal(tmp_path):
    async with running_nats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        try:
            with pytest.raises(StreamError) as refused:
                await ensure_stream(nc.jetstream(), "RESULTS_R3", 3)
        finally:
            await nc.close()
    assert str(refused.value) == (
        "NATS refused to make stream RESULTS_R3 (replicas > 1 not supported in non-clustered "
        "mode); 3 replicas need a NATS cluster of at least 3 nodes with JetStream, or write "
        "cluster: replicas: 1"
    )


async def test_an_existing_stream_with_other_replicas_is_left_and_told(tmp_path):
    async with running_nats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            assert await ensure_stream(js, "RESULTS", 1) is None  # made
            assert await ensure_stream(js, "RESULTS", 1) is None  # as configured
            differs = await ensure_stream(js, "RESULTS", 3)
            info = await js.stream_info("RESULTS")
        finally:
            await nc.close()
    assert differs == (
        "stream RESULTS has 1 replica but cluster: replicas: says 3; a stream that exists is "
        "left as it is: change it on the NATS side (nats stream edit RESULTS --replicas 3), "
        "or write replicas: 1"
    )
    assert info.config.num_replicas == 1
