"""Notifiers: where alert messages go, how each format says them, and one HTTP delivery attempt.

Formats (`kind`):

- `webhook`: generic JSON, `schema_version` 1, described by
  `monitor/output/schema/webhook.schema.json`: the message `id` (also sent as
  `Idempotency-Key`), `kind` (`alert` or `reminder`),
  `group_key` (`site:<site id>`: one site's messages share it), `site_id`, `resolved` (every
  subject in it ends back at OK/RESILIENT), `severity` (the worst in it), `summary` (one line),
  `created_at`, and `events`, each with every field of the state change and its `event_id`.
  With `hmac_secret_env`/`hmac_secret_file` every request is signed:
      X-Commwatch-Timestamp: <POSIX seconds, integer, when this attempt was sent>
      X-Commwatch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>
  A receiver recomputes the HMAC over the raw body bytes exactly as received, compares in
  constant time, and rejects timestamps more than a few minutes from its clock: a captured
  request cannot be replayed later because the timestamp is inside the signed string. Retries
  are signed afresh; the idempotency key stays the same.
- `slack`: Slack/Mattermost (and compatible) incoming webhooks: `{"text": "..."}`, mrkdwn.
- `teams`: Microsoft Teams workflow webhooks: a message with one Adaptive Card (1.4).

Incoming-webhook URLs are bearer tokens: a notifier's URL may come from `url_env`/`url_file`
(read at every send, so it can be rotated) and only its scheme and host are ever printed.
"""

from __future__ import annotations

import email.utils
import enum
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from monitor.alerts.outbox import Delivery, OutboxRow, Outcome, event_record
from monitor.config.alerts import NotifierConfig, NotifierKind
from monitor.core.events import CheckStatus, Event, EventKind, GroupStatus, LinkStatus, Subject
from monitor.core.model import Severity
from monitor.core.options import OptionError
from monitor.core.secrets import SecretRef
from monitor.core.text import printable
from monitor.output.records import iso_time

SCHEMA_VERSION = 1
USER_AGENT = "commwatch/0.1.0"
SIGNATURE_HEADER = "X-Commwatch-Signature"
TIMESTAMP_HEADER = "X-Commwatch-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


# --- states and what they weigh -------------------------------------------------------------

# Check and link states are severities; group states say how much redundancy is left. AT RISK is
# CRIT: one more failure is an outage, the thing an emergency-communications engineer must hear.
STATE_SEVERITY: Mapping[str, Severity] = {
    **{status: status.severity for status in CheckStatus},
    LinkStatus.UP: Severity.OK,
    LinkStatus.DOWN: Severity.CRIT,  # a group DOWN too: the same word
    GroupStatus.RESILIENT: Severity.OK,
    GroupStatus.DEGRADED: Severity.WARN,
    GroupStatus.AT_RISK: Severity.CRIT,
}


def state_severity(state: str) -> Severity:
    """How bad a state is; a state this table does not know is notified as UNKNOWN."""
    return STATE_SEVERITY.get(state.upper(), Severity.UNKNOWN)


def event_severity(event: Event) -> Severity:
    # A flapping check is worth a heads-up, never a page: its notifications are being held.
    if event.kind in (EventKind.FLAPPING_START, EventKind.FLAPPING_STOP):
        return Severity.WARN
    return state_severity(event.after)


def is_resolution(event: Event) -> bool:
    return event.kind is EventKind.HARD and state_severity(event.after) is Severity.OK


# --- messages ------------------------------------------------------------------------------


class MessageKind(enum.StrEnum):
    ALERT = "alert"  # state changes
    REMINDER = "reminder"  # re-notification of problems still unresolved


@dataclass(frozen=True, slots=True)
class Message:
    """One notification to one notifier: one site's events from one group window."""

    notifier_id: str
    key: str  # idempotency key
    kind: MessageKind
    site_id: str
    events: tuple[Event, ...]
    created_at: float

    @property
    def resolved(self) -> bool:
        """Every subject in it ends back at OK/RESILIENT (it may pass AT RISK on the way)."""
        latest = {(e.subject, e.subject_id): e for e in self.events if e.kind is EventKind.HARD}
        return bool(latest) and all(is_resolution(e) for e in latest.values())

    @property
    def severity(self) -> Severity:
        return Severity.worst(event_severity(e) for e in self.events)


def message_key(events: tuple[Event, ...], salt: str = "") -> str:
    """A single event's message is keyed by the event's id, a group by a hash of their ids."""
    if len(events) == 1 and not salt:
        return events[0].event_id
    joined = "|".join([salt, *sorted(e.event_id for e in events)])
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


_SUBJECT_ORDER = {Subject.GROUP: 0, Subject.LINK: 1, Subject.CHECK: 2}


def _ordered(events: tuple[Event, ...]) -> list[Event]:
    """Most telling first: a group's state before its links', links before checks."""
    return sorted(events, key=lambda e: (_SUBJECT_ORDER[e.subject], -event_severity(e).rank))


def _change(event: Event) -> str:
    if event.kind is EventKind.FLAPPING_START:
        return "is flapping: notifications held until it settles"
    if event.kind is EventKind.FLAPPING_STOP:
        return "stopped flapping"
    return f"{event.before} → {event.after}"


def event_line(event: Event) -> str:
    # The cause quotes a result's summary (peer text): a chat message is read by people.
    return f"{event.subject} {event.subject_id}: {_change(event)} ({printable(event.cause)})"


def summary(message: Message) -> str:
    """One line naming the site, its most telling change and how many more there are."""
    lead, *rest = _ordered(message.events)
    label = "RESOLVED" if message.resolved else lead.after
    if lead.kind is not EventKind.HARD:
        label = "FLAPPING"
    prefix = "Still unresolved: " if message.kind is MessageKind.REMINDER else ""
    more = f" (+{len(rest)} more)" if rest else ""
    subject = f"{lead.subject} {lead.subject_id}"
    return f"{prefix}[{label}] {message.site_id}: {subject} {_change(lead)}{more}"


def webhook_payload(message: Message) -> dict[str, Any]:
    events = []
    for event in _ordered(message.events):
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


def _slack_escape(value: str) -> str:
    # The three characters Slack's mrkdwn gives meaning to in plain text.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: Message) -> dict[str, Any]:
    lines = [f"*{_slack_escape(summary(message))}*"]
    lines += [f"• {_slack_escape(event_line(e))}" for e in _ordered(message.events)]
    lines.append(f"_commwatch · {iso_time(message.created_at)} · {message.key}_")
    return {"text": "\n".join(lines)}


_TEAMS_COLOUR = {
    Severity.OK: "Good",
    Severity.WARN: "Warning",
    Severity.UNKNOWN: "Warning",
    Severity.CRIT: "Attention",
}


def teams_payload(message: Message) -> dict[str, Any]:
    colour = "Good" if message.resolved else _TEAMS_COLOUR[message.severity]
    facts = [
        {"title": f"{e.subject} {e.subject_id}", "value": f"{_change(e)} ({printable(e.cause)})"}
        for e in _ordered(message.events)
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
                "text": f"commwatch · {iso_time(message.created_at)} · {message.key}",
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


_FORMATS = {
    NotifierKind.WEBHOOK: webhook_payload,
    NotifierKind.SLACK: slack_payload,
    NotifierKind.TEAMS: teams_payload,
}


def render(message: Message, kind: NotifierKind) -> tuple[str, bytes]:
    """The content type and body to store in the outbox and send as is."""
    body = json.dumps(_FORMATS[kind](message), ensure_ascii=False, separators=(",", ":"))
    return "application/json", body.encode()


# --- delivery ------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _request_headers(notifier: NotifierConfig, row: OutboxRow, now: float) -> dict[str, str]:
    result = {}
    for name, value in notifier.headers:
        revealed = value.reveal() if isinstance(value, SecretRef) else value
        if "\r" in revealed or "\n" in revealed:
            # Named by reference: the error must not carry the value.
            raise OptionError(f"header {name} from {value} contains a line break", "fix the secret")
        result[name] = revealed
    # Set last: a configured header cannot replace the key or the signature.
    result |= {
        "Content-Type": row.content_type,
        "User-Agent": USER_AGENT,
        IDEMPOTENCY_HEADER: row.key,
    }
    if notifier.hmac_secret is not None:
        timestamp = int(now)
        result[TIMESTAMP_HEADER] = str(timestamp)
        result[SIGNATURE_HEADER] = sign(notifier.hmac_secret.reveal(), timestamp, row.body)
    return result


async def deliver(
    session: aiohttp.ClientSession, notifier: NotifierConfig, row: OutboxRow, now: float
) -> Outcome:
    """One attempt to POST a stored message. Never raises for a network or receiver fault, and
    no outcome or log line carries more of the URL than scheme and host."""
    try:
        url = notifier.reveal_url()
        request_headers = _request_headers(notifier, row, now)
    except OptionError as exc:
        # A secret file may be restored or fixed: worth retrying, with backoff.
        return Outcome(Delivery.RETRY, str(exc))
    try:
        async with session.post(
            url,
            data=row.body,
            headers=request_headers,
            timeout=aiohttp.ClientTimeout(total=notifier.timeout),
            # A redirect would carry the message (and its signature) somewhere not configured.
            allow_redirects=False,
        ) as response:
            return _judge(response.status, response.reason, response.headers.get("Retry-After"))
    except TimeoutError:
        return Outcome(Delivery.RETRY, f"no answer within {notifier.timeout:g}s")
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return Outcome(Delivery.RETRY, f"cannot connect: {reason}")
    except (aiohttp.ClientError, OSError) as exc:
        # Only the type: aiohttp's messages include the full URL.
        return Outcome(Delivery.RETRY, f"request failed: {type(exc).__name__}")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds (ASCII digits) or an HTTP-date; None for anything else.
    The outbox caps what it honours, so only the size of the text needs a bound here."""
    text = (value or "").strip()
    if not text or len(text) > 64:
        return None
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT; a date without a zone is not one
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _judge(status: int, reason: str | None, retry_after: str | None) -> Outcome:
    shown = f"HTTP {status}" + (f" {printable(reason)[:60]}" if reason else "")
    if 200 <= status < 300:
        return Outcome(Delivery.DELIVERED, shown)
    if status in (408, 429) or status >= 500:
        return Outcome(
            Delivery.RETRY, f"receiver answered {shown}", retry_after_seconds(retry_after)
        )
    if 300 <= status < 400:
        return Outcome(
            Delivery.FAILED, f"receiver redirected ({shown}): configure the final URL instead"
        )
    if 400 <= status < 500:
        return Outcome(Delivery.FAILED, f"receiver rejected the message: {shown}")
    return Outcome(Delivery.RETRY, f"unexpected answer {shown}")
