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
