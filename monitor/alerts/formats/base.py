"""What every notifier format produces, and the JSON encoding the current ones share."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.alerts.message import Message


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message as a receiver is sent it: stored in the outbox once, sent as is every try."""

    content_type: str
    body: bytes


Format = Callable[[Message], Rendered]


def json_body(payload: Mapping[str, Any]) -> Rendered:
    """Compact UTF-8 JSON: the arrow of "OK → CRIT" arrives as itself, not as an escape."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Rendered("application/json", body.encode())
