"""commwatch's engine and its faces. Each subpackage is one layer; a layer imports only its
own and the layers below it, lowest first: core < probes (a sibling package) < lab < config <
store < output < alerts < engine < api < tui (a sibling package) < cli, and the demo lab
imports core alone. docs/ARCHITECTURE.md explains them; tests/test_import_graph.py enforces
them."""

# The one place the version is written: pyproject.toml reads it from here (without importing
# the package), and `commwatch --version` prints it without importlib.metadata's 20-odd ms.
__version__ = "0.1.0"
