"""Where the real peers' programs are: found on PATH or in the sbin folders Debian installs
daemons to (not on an ordinary user's PATH), or the test fails saying what to install."""

from __future__ import annotations

import os
import shutil

import pytest

SEARCHED = (os.environ.get("PATH", ""), "/usr/sbin", "/sbin")


def installed(name: str, needed_for: str, packages: str) -> str:
    """The path of program `name`; else the test fails: `name` is not installed, what for
    (`needed_for`), and the Debian packages that bring it."""
    found = shutil.which(name, path=os.pathsep.join(SEARCHED))
    if found is None:
        pytest.fail(
            f"{name} is not installed: {needed_for} (Debian/Ubuntu: apt-get install {packages})",
            pytrace=False,
        )
    return found
