"""commwatch's engine and its faces. Each subpackage is one layer; a layer imports only the
layers below it (docs/ARCHITECTURE.md): cli > engine > alerts, store, output > config > probes
(a sibling package) > core."""
