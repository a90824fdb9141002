"""The routed network of tests/peers/path_topology.py as fixtures, for a test module's
`pytest_plugins`: `routed`, made once per module, and `net`, its routes diverse again after
each test whatever the test changed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.path_topology import Network, network


@pytest.fixture(scope="module")
def routed() -> Iterator[Network]:
    """The network, made once for a test module."""
    with network() as net:
        yield net


@pytest.fixture
def net(routed: Network) -> Iterator[Network]:
    """The network, its routes diverse again after the test whatever it changed."""
    yield routed
    routed.diverse()
