"""What the leader central has delivered, and the dispatcher's `Gate` of a central.

Every central fills its own outbox from the same events (the same messages under the same
keys: monitor.alerts.policy.Grouper); only the leader sends them (monitor.cluster.lease). Each
message the leader delivers is recorded in the JetStream key-value bucket `commwatch_notified`
before it is marked sent in the leader's outbox:

    key    NOTIFIER.KEY       the notifier's id and the message's idempotency key, each escaped
                              to KV key characters (`=XX` for each byte of any character other
                              than a letter, a digit, `-` or `_`)
    value  {"central": NAME, "token": N, "at": POSIX seconds}   who delivered it, with which
                              fencing token, when

A follower marks sent the rows of its outbox it finds there; a central that takes the lease
over sends only what it does not find there. So a message is sent again after a failover only
when the old leader died between the receiver's answer and the record: with the same
Idempotency-Key, which a receiver honouring it drops.

The bucket keeps each key for the alerts retention of the central that made it (`alerts:
retention:`, 30 days by default), as long as an outbox keeps what it delivered and longer than
the results stream keeps results (7 days): a central reading the stream from its start finds
every message a leader delivered from it.
"""

from __future__ import annotations

import asyncio
import json
import string
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from monitor.alerts.dispatcher import GateError
from monitor.alerts.outbox import OutboxRow
from monitor.cluster.buckets import NOTIFIED, key_value
from monitor.cluster.lease import Lease, opened, read_holder

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

KV_TIMEOUT = 2.0  # seconds for one read or write of the bucket
_PLAIN = frozenset(string.ascii_letters + string.digits + "-_")


def record_key(notifier_id: str, message_key: str) -> str:
    """The bucket's key for one notifier's message."""
    return f"{_escaped(notifier_id)}.{_escaped(message_key)}"


def _escaped(text: str) -> str:
    return "".join(
        char if char in _PLAIN else "".join(f"={byte:02X}" for byte in char.encode())
        for char in text
    )


async def open_notified_bucket(js: JetStreamContext, retention: float) -> KeyValue:
    """The bucket, made to keep each key for `retention` seconds unless it exists; LeaseError
    when it cannot be opened."""
    return await opened(key_value(js, NOTIFIED, retention), NOTIFIED)


class LeaderGate:
    """A central's `Gate` (monitor.alerts.dispatcher): it delivers while it holds `lease`,
    with the lease's fencing token; `kv` is the bucket `commwatch_notified`."""

    def __init__(self, lease: Lease, kv: KeyValue, *, wall: Callable[[], float] = time.time):
        self._lease = lease
        self._kv = kv
        self._wall = wall

    def fencing_token(self) -> int | None:
        return self._lease.token()

    def watch(self, changed: Callable[[], None]) -> None:
        self._lease.watch(changed)

    async def delivered_elsewhere(self, row: OutboxRow) -> str | None:
        import nats.errors
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await asyncio.wait_for(
                self._kv.get(record_key(row.notifier_id, row.key)), KV_TIMEOUT
            )
        except KeyNotFoundError:
            return None
        except (nats.errors.Error, TimeoutError) as exc:
            raise GateError(
                f"cannot read what was delivered from the key-value bucket {NOTIFIED} "
                f"({type(exc).__name__})"
            ) from None
        # A record has the lease's shape: a central and its token.
        holder = read_holder(entry.value, 0)
        if holder is None or holder.token == 0:
            return f"delivered, as the key-value bucket {NOTIFIED} says"
        return f"delivered by central {holder.central} (fencing token {holder.token})"

    async def delivered(self, row: OutboxRow, fencing_token: int) -> None:
        import nats.errors

        record = {"central": self._lease.name, "token": fencing_token, "at": self._wall()}
        value = json.dumps(record, separators=(",", ":")).encode()
        try:
            await asyncio.wait_for(
                self._kv.put(record_key(row.notifier_id, row.key), value), KV_TIMEOUT
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise GateError(
                f"cannot record message {row.key} as delivered in the key-value bucket "
                f"{NOTIFIED} ({type(exc).__name__}): a central taking the lease over may send "
                "it again, under the same Idempotency-Key"
            ) from None
