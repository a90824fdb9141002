"""Alerting: the policy (which events notify whom), the durable outbox, and the notifier
formats."""
