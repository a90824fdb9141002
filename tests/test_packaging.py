"""What the package needs at run time besides its Python files is declared as package data, so
a plain `pip install .` (the README's first command) carries it."""

from __future__ import annotations

import fnmatch
import tomllib

from tests.conftest import REPO


def test_every_data_file_in_the_packages_is_shipped():
    """Each data file belongs to the deepest listed package that holds it, and one of that
    package's package-data patterns (relative to the package's folder) must match it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = config["package-data"]
    folders = {package: REPO.joinpath(*package.split(".")) for package in config["packages"]}
    missing = []
    for top in ("monitor", "probes", "tui"):
        for path in (REPO / top).rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            owner = max(
                (p for p, folder in folders.items() if folder in path.parents),
                key=lambda p: len(folders[p].parts),
            )
            relative = str(path.relative_to(folders[owner]))
            if not any(fnmatch.fnmatch(relative, p) for p in declared.get(owner, [])):
                missing.append(str(path.relative_to(REPO)))
    assert missing == []


def test_every_package_directory_is_listed():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    for top in ("monitor", "probes", "tui"):
        for init in (REPO / top).rglob("__init__.py"):
            assert ".".join(init.parent.relative_to(REPO).parts) in packages
