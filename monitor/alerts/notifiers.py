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

import dataclasses
import email.utils
import enum
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from monitor.alerts.outbox import Delivery, OutboxRow, Outcome, event_record
from monitor.core.events import Event, EventKind, Subject
from monitor.core.model import Severity
from monitor.core.options import (
    OptionError,
    SecretRef,
    boolean,
    choice,
    duration,
    each,
    headers,
    integer,
    secret_env,
    secret_file,
    text,
    type_name,
)
from monitor.core.text import printable
from monitor.output.render import iso_time

SCHEMA_VERSION = 1
USER_AGENT = "commwatch/0.1.0"
SIGNATURE_HEADER = "X-Commwatch-Signature"
TIMESTAMP_HEADER = "X-Commwatch-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class NotifierKind(enum.StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    TEAMS = "teams"


# --- states and what they weigh -------------------------------------------------------------

# Check and link states are severities; group states say how much redundancy is left. AT RISK is
# CRIT: one more failure is an outage, the thing an emergency-communications engineer must hear.
STATE_SEVERITY: Mapping[str, Severity] = {
    "OK": Severity.OK,
    "WARN": Severity.WARN,
    "CRIT": Severity.CRIT,
    "UNKNOWN": Severity.UNKNOWN,
    "RESILIENT": Severity.OK,
    "UP": Severity.OK,  # a link
    "DEGRADED": Severity.WARN,
    "AT RISK": Severity.CRIT,
    "DOWN": Severity.CRIT,
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


# --- configuration --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NotifierConfig:
    id: str
    kind: NotifierKind
    url: str | SecretRef = field(repr=False)  # repr=False: an inline URL may carry a token
    min_severity: Severity = Severity.WARN
    sites: tuple[str, ...] = ()  # empty: every site
    renotify_interval: float | None = None
    send_resolved: bool = True
    hmac_secret: SecretRef | None = None
    headers: tuple[tuple[str, str | SecretRef], ...] = ()
    timeout: float = 10.0
    concurrency: int = 1  # 1 keeps a chat channel in order while the receiver keeps up

    @property
    def target(self) -> str:
        """Printable: scheme and host only, or the secret reference it is read from."""
        return str(self.url) if isinstance(self.url, SecretRef) else redact_url(self.url)

    def routes(self, site_id: str) -> bool:
        return not self.sites or site_id in self.sites

    def wants(self, severity: Severity) -> bool:
        return severity.rank >= self.min_severity.rank

    def reveal_url(self) -> str:
        raw = self.url.reveal() if isinstance(self.url, SecretRef) else self.url
        return webhook_url(raw.strip())


def redact_url(raw: str) -> str:
    """`scheme://host[:port]` of a URL: the path and query of an incoming webhook are its key."""
    try:
        url = URL(raw.strip())
        host, explicit_port = url.raw_host, url.explicit_port
    except (ValueError, TypeError):
        return "<unparseable URL>"
    if not url.scheme or not host:
        return "<unparseable URL>"
    shown = f"[{host}]" if ":" in host else host
    return f"{url.scheme}://{shown}" + (f":{explicit_port}" if explicit_port else "")


def webhook_url(value: Any) -> str:
    """An http(s) URL without credentials. Error messages show scheme and host only."""
    raw = text(value).strip()
    shown = redact_url(raw)
    hint = "write a full URL such as https://192.0.2.10/hooks/commwatch"
    try:
        url = URL(raw)
        url.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise OptionError(f"the notifier URL ({shown}) is not a valid URL", hint) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise OptionError(f"the notifier URL ({shown}) is not an http:// or https:// URL", hint)
    if url.user is not None or url.password is not None:
        raise OptionError(
            f"the notifier URL ({shown}) carries credentials",
            "put them in headers: {Authorization: {env: NAME}}",
        )
    return raw


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NOTIFIER_KEYS = (
    "id",
    "kind",
    "url",
    "url_env",
    "url_file",
    "min_severity",
    "sites",
    "renotify_interval",
    "send_resolved",
    "hmac_secret_env",
    "hmac_secret_file",
    "headers",
    "timeout",
    "concurrency",
)


def _severity(value: Any) -> Severity:
    return Severity[choice("warn", "crit")(value).upper()]


def _optional_duration(value: Any) -> float | None:
    return None if value is None else duration(value)


def _notifier_id(value: Any) -> str:
    name = text(value)
    if not _ID.fullmatch(name):
        raise OptionError(f"{name!r} is not a notifier id", "use letters, digits, '.', '_', '-'")
    return name


_PARSERS: Mapping[str, Any] = {
    "id": _notifier_id,
    "kind": lambda v: NotifierKind(choice(*NotifierKind)(v)),
    "min_severity": _severity,
    "sites": each(text),
    "renotify_interval": _optional_duration,
    "send_resolved": boolean,
    "headers": headers,
    "timeout": duration,
    "concurrency": integer(1, 32),
}


def parse_notifier(values: Mapping[str, Any]) -> NotifierConfig:
    """A notifier from its YAML-typed inventory keys; OptionError names the key at fault.

    The URL is `url` (a URL without a token), `url_env` or `url_file`; the HMAC secret (webhook
    only) is `hmac_secret_env` or `hmac_secret_file`. Secrets are checked to be readable now
    and read again at every send.
    """
    if not isinstance(values, Mapping):
        raise OptionError(
            f"a notifier is a mapping of keys, got {type_name(values)}", "write id: and kind:"
        )
    parsed: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in _NOTIFIER_KEYS:
            raise OptionError(
                f"unknown key '{key}' in a notifier", "allowed: " + ", ".join(_NOTIFIER_KEYS), key
            )
        try:
            parsed[key] = _parse_key(key, raw)
        except OptionError as exc:
            exc.key = exc.key or key
            raise
    for required in ("id", "kind"):
        if required not in parsed:
            raise OptionError(f"'{required}' is required for a notifier", "", required)
    parsed["url"] = _one_of(parsed, "url", ("url", "url_env", "url_file"), required=True)
    parsed["hmac_secret"] = _one_of(
        parsed, "hmac_secret", ("hmac_secret_env", "hmac_secret_file"), required=False
    )
    if parsed["hmac_secret"] is not None and parsed["kind"] is not NotifierKind.WEBHOOK:
        raise OptionError(
            f"{parsed['kind']} webhooks are not signed",
            "hmac_secret_env/hmac_secret_file apply to kind: webhook only",
            "hmac_secret_env" if "hmac_secret_env" in parsed else "hmac_secret_file",
        )
    if isinstance(parsed["url"], SecretRef):
        try:
            # Read once to fail at load on a malformed URL; kept only as the reference.
            webhook_url(parsed["url"].reveal())
        except OptionError as exc:
            exc.key = "url_env" if parsed["url"].source == "env" else "url_file"
            raise
    fields = {f.name for f in dataclasses.fields(NotifierConfig)}
    return NotifierConfig(**{k: v for k, v in parsed.items() if k in fields})


def _parse_key(key: str, raw: Any) -> Any:
    if key == "url":
        return webhook_url(raw)
    if key.endswith(("_env", "_file")):
        ref = secret_env(raw) if key.endswith("_env") else secret_file(raw)
        ref.check_available()
        return ref
    value = _PARSERS[key](raw)
    if key == "headers":
        for _, header in value:
            if isinstance(header, SecretRef):
                header.check_available()
    return value


def _one_of(parsed: dict[str, Any], name: str, keys: tuple[str, ...], required: bool) -> Any:
    given = [k for k in keys if k in parsed]
    if len(given) > 1:
        raise OptionError(f"give only one of {', '.join(given)}", "", given[1])
    if not given:
        if required:
            raise OptionError(
                f"a notifier needs one of {', '.join(keys)}",
                "incoming-webhook URLs carry a token: prefer url_env or url_file",
                name,
            )
        return None
    return parsed[given[0]]


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
