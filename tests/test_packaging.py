"""What the package needs at run time besides its Python files is declared as package data, so
a plain `pip install .` (the README's first command) carries it."""

from __future__ import annotations

import fnmatch
import tomllib

from tests.conftest import REPO


def test_every_data_file_in_the_packages_is_shipped():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = config["package-data"]
    missing = []
    for package in config["packages"]:
        root = REPO / package
        for path in root.rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(REPO)
            owner = ".".join(relative.parent.parts)
            patterns = declared.get(owner, [])
            if not any(fnmatch.fnmatch(path.name, p.rsplit("/", 1)[-1]) for p in patterns) and not (
                any(
                    fnmatch.fnmatch(str(relative.relative_to(package)), p)
                    for p in declared.get(package, [])
                )
            ):
                missing.append(str(relative))
    assert missing == []


def test_every_package_directory_is_listed():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    for top in ("monitor", "probes", "tui"):
        for init in (REPO / top).rglob("__init__.py"):
            assert ".".join(init.parent.relative_to(REPO).parts) in packages
