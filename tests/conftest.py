"""Shared fixtures. Peers live in tests/peers; every one of them listens on loopback only."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from probes.base import SharedResources

REPO = Path(__file__).resolve().parent.parent
HYPOTHESIS_HOME = "HYPOTHESIS_STORAGE_DIRECTORY"


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis keeps caches (constants it reads from the source, at collection) in
    `.hypothesis` of the working folder unless told otherwise: a folder of the run's instead."""
    os.environ.setdefault(HYPOTHESIS_HOME, tempfile.mkdtemp(prefix="commwatch-hypothesis-"))


def pytest_unconfigure(config: pytest.Config) -> None:
    home = os.environ.get(HYPOTHESIS_HOME, "")
    if Path(home).name.startswith("commwatch-hypothesis-"):
        shutil.rmtree(home, ignore_errors=True)


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
