"""Beyond one machine: agents that probe and publish their results to NATS JetStream, and the
pieces a central engine consumes them with (see docs/distributed.md when it exists)."""
