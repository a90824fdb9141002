"""The private pipe from a probe worker up to its parent (monitor.cluster.frames): real results
go up and come back as the very objects, and whatever is not a message of a worker is told
apart, never read past."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import MappingProxyType

import pytest

from monitor.cluster import frames
from monitor.config.loader import load_inventory
from monitor.core.model import ProbeResult
from monitor.engine.scheduler import Scheduler
from tests.peers.pki import make_ca, make_leaf, server_context
from tests.peers.tcp_peers import closed_port
from tests.peers.tls_peers import tls_server

HOST = "127.0.62.1"
NAME = "gw.frames.test"


async def real_results(tmp_path: Path) -> list[ProbeResult]:
    """A sweep of a TLS check whose certificate expires in 20 days (WARN, with certificates and
    verdicts), one with a name the certificate lacks (CRIT) and a TCP check to a closed port
    (an error)."""
    ca = make_ca("frames test CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(days=20)
    leaf = make_leaf(ca, [NAME], common_name=NAME, not_after=expiry)
    with tls_server(server_context(leaf, tmp_path), host=HOST) as port:
        target = f"{HOST}:{port}"
        (tmp_path / "inventory.yaml").write_text(
            "version: 1\ndefaults: {timeout: 5s}\nsites:\n  - id: s\n    links:\n"
            "      - id: l\n        checks:\n"
            f'          - {{id: dying, kind: tls, target: "{target}", server_name: {NAME}, '
            "ca_file: ca.pem}\n"
            f'          - {{id: misnamed, kind: tls, target: "{target}", '
            "server_name: other.test, ca_file: ca.pem}\n"
            f'          - {{id: closed, kind: tcp, target: "{HOST}:{closed_port(HOST)}"}}\n'
        )
        inventory = load_inventory(tmp_path / "inventory.yaml")
        results: list[ProbeResult] = []
        await Scheduler(inventory.checks, inventory.concurrency, results.append).sweep()
    return sorted(results, key=lambda r: r.check.check_id)


async def read_all(data: bytes) -> list[object]:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    messages = []
    while (message := await frames.read(stream)) is not None:
        messages.append(message)
    return messages


async def test_results_come_back_as_the_very_objects_a_worker_made(tmp_path):
    results = await real_results(tmp_path)
    assert [r.severity.name for r in results] == ["CRIT", "WARN", "CRIT"]
    assert results[1].certificates and results[1].verdicts and results[0].error is not None
    read = await read_all(b"".join(frames.encode(r) for r in results))
    assert read == results
    for original, back in zip(results, read, strict=True):
        assert type(back) is ProbeResult
        assert back.summary() == original.summary()  # the headlines, exactly
        assert isinstance(back.observations, MappingProxyType)  # still read-only
        with pytest.raises(TypeError):
            back.observations["tls_version"] = "SSLv3"  # type: ignore[index]


async def test_what_is_not_a_message_of_a_worker_is_refused_not_read_past():
    message = frames.encode("ready")
    assert await read_all(message) == ["ready"]
    with pytest.raises(frames.FrameError, match="ended inside a message"):
        await read_all(message[:-1])
    with pytest.raises(frames.FrameError, match="ended inside a message"):
        await read_all(message[:2])
    with pytest.raises(frames.FrameError, match="does not unpickle"):
        await read_all(len(b"not a pickle").to_bytes(4, "big") + b"not a pickle")
    stream = asyncio.StreamReader()
    stream.feed_data((frames.LIMIT + 1).to_bytes(4, "big"))  # nothing more need come
    with pytest.raises(frames.FrameError, match=f"beyond {frames.LIMIT}"):
        await frames.read(stream)
