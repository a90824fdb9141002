"""Alerting: `policy` (which events notify whom, grouped and reminded how), `message` (what a
notification says), `formats/` (one module per receiver format, in `formats/registry.py`),
`outbox` (the durable store), `dispatcher` and `delivery` (sending, retrying, signing), and
`alerter` (the shell that joins them for one process)."""
