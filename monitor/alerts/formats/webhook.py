"""`kind: webhook`: generic JSON for any receiver, `schema_version` 1, described by
`monitor/output/schema/webhook.schema.json`.

It carries the message `id` (also sent as `Idempotency-Key`), `kind` (`alert` or `reminder`),
`group_key` (`site:<site id>`: one site's messages share it), `site_id`, `resolved` (every
subject in it ends back at OK/RESILIENT), `severity` (the worst in it), `summary` (one line),
`created_at`, and `events`, each with every field of the state change and its `event_id`. It
is the one format that may be signed (`hmac_secret_env`/`hmac_secret_file`): how, is
`monitor.alerts.delivery`'s docstring.
"""

from __future__ import annotations

from typing import Any

from monitor.alerts.formats.base import Rendered, json_body
from monitor.alerts.message import (
    Message,
    event_record,
    event_severity,
    is_resolution,
    ordered,
    summary,
)
from monitor.output.records import iso_time

SCHEMA_VERSION = 1


def payload(message: Message) -> dict[str, Any]:
    events = []
    for event in ordered(message.events):
        record = event_record(event)
        record["at_unix"] = record["at"]
        record["at"] = iso_time(event.at)
        record["severity"] = event_severity(event).name
        record["resolved"] = is_resolution(event)
        events.append(record)
    return {
        "schema_version": SCHEMA_VERSION,
        "id": message.key,
        "notifier": message.notifier_id,
        "kind": str(message.kind),
        "group_key": f"site:{message.site_id}",
        "site_id": message.site_id,
        "resolved": message.resolved,
        "severity": message.severity.name,
        "summary": summary(message),
        "created_at": iso_time(message.created_at),
        "events": events,
    }


def render(message: Message) -> Rendered:
    return json_body(payload(message))
