"""Where commwatch keeps files of its own (not the user's inventory or secrets)."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """commwatch's own state folder: $XDG_STATE_HOME/commwatch, else ~/.local/state/commwatch."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "commwatch"
