"""The JetStream key-value buckets the cluster keeps its shared facts in, and how one is had.

    commwatch_leader    the central lease: key `central`, TTL the lease TTL
    commwatch_agents    agent heartbeats: key the agent's name, TTL the heartbeat TTL
    commwatch_notified  what the leader has delivered: key notifier id + message key

Each bucket keeps one value per key (history 1) and is made by whoever needs it first. This
module knows nats-py's types only under TYPE_CHECKING: whoever calls it has imported nats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

LEADER = "commwatch_leader"
AGENTS = "commwatch_agents"
NOTIFIED = "commwatch_notified"


async def key_value(js: JetStreamContext, bucket: str, ttl: float | None) -> KeyValue:
    """The bucket, made with history 1 and `ttl` seconds (None: keys never expire) unless it
    exists. One that exists is left as it was made: its TTL is not changed under processes
    that may rely on it."""
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BadRequestError, BucketNotFoundError

    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, ttl=ttl))
    except BadRequestError:
        # Another process made it first, perhaps with another TTL: use the one that exists.
        return await js.key_value(bucket)
