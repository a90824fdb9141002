"""The engine served: an HTTP API (state, a resumable event stream, history, commands),
Prometheus metrics, and the client that viewers (`tui --connect`, `web`, `probe --from`)
attach with. A layer above the engine and below the faces that show it."""
