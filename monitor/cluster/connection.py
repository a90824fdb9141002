"""How an agent or a central connects to NATS: nats-py's options for the configured
credentials and TLS, the JetStream of the configured domain, and its troubles told in
commwatch's words."""

from __future__ import annotations

import functools
import re
import ssl
from typing import TYPE_CHECKING, Any

from monitor.config.cluster import NatsConfig
from monitor.core.options import format_host_port
from monitor.core.text import printable

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.api import PubAck
    from nats.js.client import JetStreamContext

# nats-server's "-ERR 'Permissions Violation for Publish to "SUBJECT"'" (nats-py lower-cases
# it): the connection stays up, the one message is dropped.
_REFUSED = re.compile(r'permissions violation for (publish|subscription) to "([^"]{0,200})')


def connect_options(config: NatsConfig) -> dict[str, Any]:
    """nats-py's keyword arguments for the credentials and TLS configured; secrets revealed
    here, at the moment of use, and passed nowhere else."""
    options: dict[str, Any] = {}
    credentials = config.credentials
    if credentials is not None:
        if credentials.password is not None:
            options["user"] = credentials.user
            options["password"] = credentials.password.reveal()
        elif credentials.token is not None:
            options["token"] = credentials.token.reveal()
        elif credentials.creds_file is not None:
            options["user_credentials"] = str(credentials.creds_file)
        elif credentials.nkey_file is not None:
            options["nkeys_seed"] = str(credentials.nkey_file)
    tls = config.tls
    if tls is not None or config.url.startswith("tls://"):
        context = ssl.create_default_context(
            cafile=None if tls is None or tls.ca_file is None else str(tls.ca_file)
        )
        if tls is not None and tls.cert_file is not None and tls.key_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        options["tls"] = context
    return options


def jetstream(client: Client, domain: str | None) -> JetStreamContext:
    """The JetStream that keeps the stream and the buckets: that of the server `client` is
    connected to, or with `domain` (`cluster: domain:`) that of the servers of the domain,
    asked through `$JS.DOMAIN.API`. A NATS leaf node without JetStream of its own passes on
    only that: it denies `$JS.API.>` and `$KV.>` across its link, and the hub maps
    `$JS.DOMAIN.API.>` back (its `$JS.DOMAIN.API.$KV.>` to `$KV.>`)."""
    if domain is None:
        return client.jetstream()
    return _domain_context()(client, domain=domain)


@functools.cache
def _domain_context() -> type[JetStreamContext]:
    # Made once nats-py is imported: this module is loaded before it is known to be installed.
    from nats.js.client import JetStreamContext

    class DomainJetStream(JetStreamContext):
        """nats-py 2.16's KeyValue publishes its puts and deletes to `$KV.BUCKET.KEY` whatever
        the domain, which no stream takes through a leaf node; they go under the domain's API
        prefix here, as nats.go sends them (its `useJSPfx`; fixed upstream in
        nats-io/nats.py#1011, not in 2.16). Its reads and watches already go through the
        prefix, and a KeyValue that prefixes its own puts is left as it is."""

        async def publish(self, subject: str, *args: Any, **kwargs: Any) -> PubAck:
            if subject.startswith("$KV."):
                subject = f"{self._prefix}.{subject}"
            return await super().publish(subject, *args, **kwargs)

    return DomainJetStream


def trouble(exc: Exception, url: str, role: str) -> str:
    """What went wrong with NATS, for the log. The library's message is not shown: it is the
    library's words and may quote the server; the kind of failure is enough to act on."""
    from nats.errors import AuthorizationError

    said = str(exc).lower()
    # nats-py reports the server's "-ERR 'Authorization Violation'" as a plain nats.errors.Error.
    if isinstance(exc, AuthorizationError) or "authorization violation" in said:
        return f"NATS at {url} refused this {role}'s credentials"
    refused = _REFUSED.search(said)
    if refused is not None:
        action = "publish to" if refused.group(1) == "publish" else "subscribe to"
        # The subject is the server's text, as it reports it (lower-cased): made printable.
        return (
            f"NATS at {url} does not let this {role} {action} {printable(refused.group(2))}: "
            "its NATS user's permissions forbid it"
        )
    return f"cannot reach NATS at {url} ({type(exc).__name__})"


def connected_server(client: Client, config: NatsConfig) -> str:
    """The server `client` is connected to, for the log: which node of a cluster (one the
    server told of, perhaps, not one configured); the configured URL when not connected."""
    url = client.connected_url
    if url is None or url.hostname is None:
        return config.url
    return printable(f"{url.scheme}://{format_host_port(url.hostname, url.port or 4222)}")


def inbox_prefix(agent: str) -> str:
    """The subjects an agent's replies come on: `_INBOX_NAME.>`, what its NATS user needs to
    subscribe to (docs/distributed.md, "NATS permissions")."""
    return f"_INBOX_{agent}"


def unpublished(exc: Exception) -> str:
    """Why a publish to the stream got no acknowledgement, for the log."""
    from nats.errors import NoRespondersError
    from nats.js.errors import APIError, NoStreamResponseError

    if isinstance(exc, APIError):
        # The server's fixed phrase ("maximum messages exceeded"), made printable all the same.
        return f"the stream refused it: {printable(exc.description or 'no reason given')}"
    if isinstance(exc, NoStreamResponseError | NoRespondersError):
        return (
            "no stream took it: the stream is gone, or a majority of its replicas is down, or "
            "they are electing a leader, or a leaf node in between is cut off from its hub"
        )
    if isinstance(exc, TimeoutError):  # nats-py's TimeoutError is one
        return (
            "no acknowledgement in time: the server is slow, or a majority of the stream's "
            "replicas is down"
        )
    return type(exc).__name__
