"""Shared fixtures. Peers live in tests/peers; every one of them listens on loopback only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from probes.base import SharedResources

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def shared() -> AsyncIterator[SharedResources]:
    resources = SharedResources()
    yield resources
    await resources.aclose()


@pytest.fixture(autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """The history store defaults to $XDG_STATE_HOME: never the real one from a test (commands
    run as subprocesses inherit this too)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
