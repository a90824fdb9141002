"""commwatch's engine and its faces. Each subpackage is one layer; a layer imports only the
layers below it (docs/ARCHITECTURE.md): cli > engine > alerts, store, output > config > probes
(a sibling package) > core."""

# The one place the version is written: pyproject.toml reads it from here (without importing
# the package), and `commwatch --version` prints it without importlib.metadata's 20-odd ms.
__version__ = "0.1.0"
