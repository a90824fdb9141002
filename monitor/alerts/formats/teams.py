"""`kind: teams`: Microsoft Teams workflow webhooks: a message with one Adaptive Card (1.4),
the summary coloured by severity, a fact per change, the byline small and subtle."""

from __future__ import annotations

from typing import Any

from monitor.alerts.formats.base import Rendered, json_body
from monitor.alerts.message import (
    Message,
    byline,
    change_and_cause,
    ordered,
    subject_label,
    summary,
)
from monitor.core.model import Severity

_COLOUR = {
    Severity.OK: "Good",
    Severity.WARN: "Warning",
    Severity.UNKNOWN: "Warning",
    Severity.CRIT: "Attention",
}


def payload(message: Message) -> dict[str, Any]:
    colour = "Good" if message.resolved else _COLOUR[message.severity]
    facts = [
        {"title": subject_label(e), "value": change_and_cause(e)} for e in ordered(message.events)
    ]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": summary(message),
                "weight": "Bolder",
                "color": colour,
                "wrap": True,
            },
            {"type": "FactSet", "facts": facts},
            {
                "type": "TextBlock",
                "text": byline(message),
                "isSubtle": True,
                "size": "Small",
                "wrap": True,
            },
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }


def render(message: Message) -> Rendered:
    return json_body(payload(message))
