"""The cluster commands need nats-py, which the default install leaves out (the `cluster`
extra): without it they say the one command that installs it, rather than a traceback."""

from __future__ import annotations

import sys

from monitor.cli.parsing import EXIT_UNKNOWN


def missing_nats(command: str) -> int | None:
    """EXIT_UNKNOWN, with the line saying how to install nats-py, when it cannot be imported;
    None when it can."""
    try:
        import nats  # noqa: F401
    except ImportError:
        print(
            f"commwatch {command} needs nats-py: pip install 'commwatch[cluster]'", file=sys.stderr
        )
        return EXIT_UNKNOWN
    return None
