"""The inventory's `alerts:` section: notifiers, their routing and retry policy, read and
checked at load time. Sending lives in monitor.alerts; this is only what the user configured.

The section, as `parse_alerts` reads it (addresses are documentation examples):

    alerts:
      group_window: 5s
      notifiers:
        - id: noc
          kind: webhook
          url: https://192.0.2.20/commwatch
          hmac_secret_env: COMMWATCH_HMAC
          min_severity: warn
        - id: on-call
          kind: slack                       # or teams
          url_file: /etc/commwatch/slack-url  # the URL is the token: keep it out of the file
          min_severity: crit
          sites: [psap-north, psap-south]
          renotify_interval: 30m
          send_resolved: true

Incoming-webhook URLs are bearer tokens: a notifier's URL may come from `url_env`/`url_file`
(read at every send, so it can be rotated) and only its scheme and host are ever printed.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.core.model import Severity
from monitor.core.options import (
    OptionError,
    boolean,
    choice,
    duration,
    each,
    integer,
    text,
    type_name,
)
from monitor.core.secrets import SecretRef, headers, secret_env, secret_file

if TYPE_CHECKING:
    from yarl import URL


class NotifierKind(enum.StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    TEAMS = "teams"


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


def _url(raw: str) -> URL:
    # yarl (with multidict and idna under it) loads only when a notifier's URL is read: an
    # inventory without notifiers, and `commwatch probe`, which has none, never load it.
    from yarl import URL

    return URL(raw)


def redact_url(raw: str) -> str:
    """`scheme://host[:port]` of a URL: the path and query of an incoming webhook are its key."""
    try:
        url = _url(raw.strip())
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
        url = _url(raw)
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
                f"unknown key '{key}' in a notifier",
                "allowed: " + ", ".join(_NOTIFIER_KEYS),
                str(key),
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


# --- the section -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    backoff_base: float = 2.0  # first retry after 1-2 s
    backoff_cap: float = 600.0  # never wait longer than this between attempts
    give_up_after: float = 86400.0  # a message this old is stale: recorded as failed

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds before retry number `attempt` (1-based); `jitter` in [0, 1).

        Exponential with "equal jitter": half the step is fixed so retries never bunch at zero,
        half is random so many commwatch instances do not hammer a recovering receiver together.
        """
        step = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt - 1, 32))
        return step / 2 + jitter * step / 2


@dataclass(frozen=True, kw_only=True)
class AlertsConfig:
    notifiers: tuple[NotifierConfig, ...] = ()
    group_window: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retention: float = 30 * 86400.0  # delivered messages and seen events are kept this long

    def __post_init__(self) -> None:
        ids = [n.id for n in self.notifiers]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise OptionError(
                f"notifier id {duplicates[0]} is used twice", "give every notifier its own id"
            )


_RETRY_KEYS = {
    "retry_base": "backoff_base",
    "retry_cap": "backoff_cap",
    "give_up_after": "give_up_after",
}
_ALERTS_KEYS = ("notifiers", "group_window", "retention", *_RETRY_KEYS)


def parse_alerts(values: Mapping[str, Any]) -> AlertsConfig:
    """The `alerts:` section: `notifiers` (a list), `group_window`, `retention`, `retry_base`,
    `retry_cap`, `give_up_after`. OptionError.key names the fault, e.g. `notifiers[1].url`."""
    if not isinstance(values, Mapping):
        raise OptionError(f"alerts is a mapping, got {type_name(values)}", "write notifiers: [...]")
    for key in values:
        if key not in _ALERTS_KEYS:
            # str(): a YAML key may be a number (`5: red`); OptionError.key is a key path.
            raise OptionError(
                f"unknown key '{key}' in alerts", "allowed: " + ", ".join(_ALERTS_KEYS), str(key)
            )
    durations: dict[str, float] = {}
    for key in _ALERTS_KEYS[1:]:
        if key in values:
            try:
                durations[key] = duration(values[key])
            except OptionError as exc:
                exc.key = key
                raise
    raw_notifiers = values.get("notifiers", [])
    if not isinstance(raw_notifiers, list):
        raise OptionError(
            "notifiers is a list", "write one '- id: ...' item per notifier", "notifiers"
        )
    notifiers = []
    for index, raw in enumerate(raw_notifiers):
        try:
            notifiers.append(parse_notifier(raw))
        except OptionError as exc:
            exc.key = f"notifiers[{index}]" + (f".{exc.key}" if exc.key else "")
            raise
    retry = RetryPolicy(**{_RETRY_KEYS[k]: v for k, v in durations.items() if k in _RETRY_KEYS})
    windows = {k: v for k, v in durations.items() if k not in _RETRY_KEYS}
    try:
        return AlertsConfig(notifiers=tuple(notifiers), retry=retry, **windows)
    except OptionError as exc:
        exc.key = "notifiers"
        raise
