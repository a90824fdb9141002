"""One attempt to deliver a stored message: an HTTP POST of its body as rendered, and what the
receiver's answer comes to (delivered, worth retrying, or rejected for good). The same for
every format.

Every request carries `Idempotency-Key: <message id>`, the same on every retry, so a receiver
that saw a message already can drop the copy. Sent by one central of several (the leader, see
monitor.cluster.lease), it also carries `Commwatch-Fencing-Token: <N>`, the leader's token: a
leader that took over has a higher one, so a receiver may refuse a request whose token is
lower than one it has seen (it comes from a leader that lost its lease).

A notifier with `hmac_secret_env` or `hmac_secret_file` (webhooks only) signs every request:

    X-Commwatch-Timestamp: <POSIX seconds, integer, when this attempt was sent>
    X-Commwatch-Signature: sha256=<hex HMAC-SHA256(secret,
        "<timestamp>.<Idempotency-Key>.<Commwatch-Fencing-Token, or nothing>." + raw body)>

A receiver recomputes the HMAC over the raw body bytes exactly as received, compares in constant
time, and rejects timestamps more than a few minutes from its clock: a captured request cannot
be replayed later because the timestamp is inside the signed string. The key and the fencing
token are inside it too: a receiver drops copies and refuses stale leaders by them, so a token
raised on the way could make it refuse every request of the real leader, and a key changed on
the way could make it take a copy twice. Retries are signed afresh.

Incoming-webhook URLs are bearer tokens: a notifier's URL may come from `url_env`/`url_file`
(read at every send, so it can be rotated) and only its scheme and host are ever printed.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import time

import aiohttp

from monitor.alerts.dispatcher import Delivery, Outcome
from monitor.alerts.outbox import OutboxRow
from monitor.config.alerts import NotifierConfig
from monitor.core.options import OptionError
from monitor.core.secrets import SecretRef
from monitor.core.text import printable

USER_AGENT = "commwatch/0.1.0"
SIGNATURE_HEADER = "X-Commwatch-Signature"
TIMESTAMP_HEADER = "X-Commwatch-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
FENCING_HEADER = "Commwatch-Fencing-Token"


def sign(secret: str, timestamp: int, key: str, fencing_token: int | None, body: bytes) -> str:
    token = "" if fencing_token is None else str(fencing_token)
    signed = f"{timestamp}.{key}.{token}.".encode() + body
    return f"sha256={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def _request_headers(
    notifier: NotifierConfig, row: OutboxRow, now: float, fencing_token: int | None
) -> dict[str, str]:
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
    if fencing_token is not None:
        result[FENCING_HEADER] = str(fencing_token)
    if notifier.hmac_secret is not None:
        timestamp = int(now)
        result[TIMESTAMP_HEADER] = str(timestamp)
        secret = notifier.hmac_secret.reveal()
        result[SIGNATURE_HEADER] = sign(secret, timestamp, row.key, fencing_token, row.body)
    return result


async def deliver(
    session: aiohttp.ClientSession,
    notifier: NotifierConfig,
    row: OutboxRow,
    now: float,
    fencing_token: int | None = None,
) -> Outcome:
    """One attempt to POST a stored message. Never raises for a network or receiver fault, and
    no outcome or log line carries more of the URL than scheme and host."""
    try:
        url = notifier.reveal_url()
        request_headers = _request_headers(notifier, row, now, fencing_token)
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
