"""`kind: slack`: Slack, Mattermost and compatible incoming webhooks: `{"text": "..."}` in
mrkdwn, the summary in bold, a line per change, the byline in italics."""

from __future__ import annotations

from typing import Any

from monitor.alerts.formats.base import Rendered, json_body
from monitor.alerts.message import Message, byline, event_line, ordered, summary


def _escape(value: str) -> str:
    # The three characters Slack's mrkdwn gives meaning to in plain text.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(message: Message) -> dict[str, Any]:
    lines = [f"*{_escape(summary(message))}*"]
    lines += [f"• {_escape(event_line(e))}" for e in ordered(message.events)]
    lines.append(f"_{byline(message)}_")
    return {"text": "\n".join(lines)}


def render(message: Message) -> Rendered:
    return json_body(payload(message))
