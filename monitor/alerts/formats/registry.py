"""Every notifier format, by kind. A new format is one module beside this one and one line
here (and its name in `monitor.config.alerts.NotifierKind`)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from monitor.alerts.formats import slack, teams, webhook
from monitor.alerts.formats.base import Format, Rendered
from monitor.alerts.message import Message
from monitor.config.alerts import NotifierKind

FORMATS: Mapping[NotifierKind, Format] = MappingProxyType(
    {
        NotifierKind.WEBHOOK: webhook.render,
        NotifierKind.SLACK: slack.render,
        NotifierKind.TEAMS: teams.render,
    }
)


def render(message: Message, kind: NotifierKind) -> Rendered:
    """The content type and body to store in the outbox and send as is."""
    return FORMATS[kind](message)
