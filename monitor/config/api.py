"""The inventory's `api:` section: where `commwatch run` serves its engine over HTTP, with which
certificate, and who may read or act (bearer tokens by reference, each with a role). Serving
lives in monitor.api; this is only what the user configured, checked at load time.

    api:
      listen: 127.0.0.1:9110          # `commwatch run --listen HOST:PORT` overrides
      tls: {cert_file: /etc/commwatch/api.crt, key_file: /etc/commwatch/api.key}
      tokens:
        - {role: viewer, token_env: COMMWATCH_VIEWER_TOKEN}
        - {role: operator, token_file: /etc/commwatch/operator.token, name: noc-shift}
      allow_insecure_remote: false    # listen beyond loopback without TLS and tokens
      max_body_bytes: 16384
      max_stream_clients: 64
      stream_queue: 1000              # items buffered per event-stream client

Beyond loopback the listener needs TLS and at least one token (`exposure_problem`): a token
sent in clear over a network is a token given away, and an API without tokens answers only
`/healthz`. The address is an IP literal, never a name: which interface a name binds is up to
a resolver, and whether it is loopback must be known before anything listens.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.config.reader import Fields, Reader
from monitor.core.options import (
    OptionError,
    boolean,
    choice,
    format_host_port,
    integer,
    ip_port,
    readable_file,
    text,
)
from monitor.core.secrets import SecretRef
from monitor.core.yamlnodes import Node

# 9110 was the Blackbox prober's in Prometheus' default port allocations, deprecated when the
# Blackbox exporter moved to 9115; nothing has claimed it since.
DEFAULT_PORT = 9110
MIN_TOKEN_CHARS = 16
_LISTEN_HINT = "write an IP address and port: 127.0.0.1:9110, [::1]:9110, or port 0 for any"
_TOKEN_HINT = "make one with: openssl rand -hex 32"


class TokenRole(enum.StrEnum):
    """The roles a token can have (monitor.api.roles orders them)."""

    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Listen:
    host: str  # an IP literal
    port: int  # 0: any free port (the one bound is printed at start)

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


@dataclass(frozen=True)
class TlsFiles:
    cert_file: Path  # PEM: the certificate, then its chain
    key_file: Path  # PEM, unencrypted


@dataclass(frozen=True)
class TokenConfig:
    role: TokenRole
    secret: SecretRef  # only the reference is ever shown
    name: str  # who acts with it: the `by` of an acknowledgement


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    listen: Listen = Listen("127.0.0.1", DEFAULT_PORT)
    tls: TlsFiles | None = None
    tokens: tuple[TokenConfig, ...] = ()
    allow_insecure_remote: bool = False
    max_body_bytes: int = 16384
    max_stream_clients: int = 64
    stream_queue: int = 1000

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    def exposure_problem(self) -> tuple[str, str] | None:
        """Why this listener must not start (what is wrong, how to fix it), or None: beyond
        loopback it needs TLS and tokens, unless `allow_insecure_remote` says otherwise."""
        if self.listen.is_loopback or self.allow_insecure_remote:
            return None
        lacking = [
            what
            for what, missing in (("TLS", self.tls is None), ("tokens", not self.tokens))
            if missing
        ]
        if not lacking:
            return None
        return (
            f"refusing to listen on {self.listen}, beyond loopback, without "
            + " and ".join(lacking),
            "configure api: tls: and tokens:, listen on 127.0.0.1, or allow it explicitly "
            "(allow_insecure_remote: true, --allow-insecure-remote)",
        )


def listen_address(value: Any) -> Listen:
    """`ADDRESS:PORT` with an IP literal; port 0 asks the system for any free port."""
    raw = text(value).strip()
    head, _, port_text = raw.rpartition(":")
    if port_text == "0" and head:
        # ip_port takes ports 1-65535 only; the address is judged the same way.
        address, _ = ip_port(f"{head}:1", 1, _LISTEN_HINT)
        return Listen(address, 0)
    if not port_text or not head or raw.endswith("]"):
        raise OptionError(f"{raw!r} has no port", _LISTEN_HINT)
    address, port_number = ip_port(raw, 1, _LISTEN_HINT)
    return Listen(address, port_number)


def read_token(secret: SecretRef) -> str:
    """A token's value, refused when too short to be one (never quoted)."""
    value = secret.reveal().strip()
    if len(value) < MIN_TOKEN_CHARS:
        raise OptionError(
            f"the token in {secret} is shorter than {MIN_TOKEN_CHARS} characters", _TOKEN_HINT
        )
    return value


_ROLE = choice(*TokenRole, why="a viewer reads; an operator also runs, pauses and acknowledges")
_API_KEYS = (
    "listen",
    "tls",
    "tokens",
    "allow_insecure_remote",
    "max_body_bytes",
    "max_stream_clients",
    "stream_queue",
)
_TOKEN_KEYS = ("role", "token_env", "token_file", "name")


class ApiReader(Reader):
    """The `api:` section, each fault at its place."""

    def api(self, fields: Fields) -> ApiConfig | None:
        if "api" not in fields:
            return None
        node = fields["api"][1]
        inner = self.fields(node, "api", _API_KEYS)
        default = ApiConfig()
        config = ApiConfig(
            listen=self.plain(inner, "listen", listen_address, default.listen),
            tls=self._tls(inner),
            tokens=self._tokens(inner),
            allow_insecure_remote=self.plain(inner, "allow_insecure_remote", boolean, False),
            max_body_bytes=self.plain(
                inner, "max_body_bytes", integer(1024, 1 << 20), default.max_body_bytes
            ),
            max_stream_clients=self.plain(
                inner, "max_stream_clients", integer(1, 10000), default.max_stream_clients
            ),
            stream_queue=self.plain(
                inner, "stream_queue", integer(10, 1_000_000), default.stream_queue
            ),
        )
        problem = config.exposure_problem()
        if problem is not None:
            self.fail(inner.get("listen", (node, node))[1].error(*problem))
        return config

    def _tls(self, fields: Fields) -> TlsFiles | None:
        if "tls" not in fields:
            return None
        inner = self.fields(
            fields["tls"][1], "api tls", ("cert_file", "key_file"), ("cert_file", "key_file")
        )
        cert = self.plain(inner, "cert_file", readable_file, None)
        key = self.plain(inner, "key_file", readable_file, None)
        if cert is None or key is None:
            return None
        return TlsFiles(Path(cert), Path(key))

    def _tokens(self, fields: Fields) -> tuple[TokenConfig, ...]:
        if "tokens" not in fields:
            return ()
        tokens: list[TokenConfig] = []
        values: dict[str, Node] = {}
        for node in self.items(fields["tokens"][1], "api tokens"):
            inner = self.fields(node, "an api token", _TOKEN_KEYS, ("role",))
            role = self.plain(inner, "role", _ROLE, None)
            secret = self._token_secret(node, inner)
            if role is None or secret is None:
                continue
            try:
                value = read_token(secret)
            except OptionError as exc:
                self.fail(node.error(exc.message, exc.hint))
                continue
            if value in values:
                # One token in two entries would have two roles: which one it acts with would
                # depend on the order of the list.
                self.fail(
                    node.error(
                        f"this token is the same as the one at line {values[value].location.line}",
                        "give every role and person a token of its own",
                    )
                )
                continue
            values[value] = node
            name = self.plain(inner, "name", text, str(role))
            tokens.append(TokenConfig(TokenRole(role), secret, name))
        return tuple(tokens)

    def _token_secret(self, node: Node, inner: Fields) -> SecretRef | None:
        given = [key for key in ("token_env", "token_file") if key in inner]
        if len(given) != 1:
            self.fail(
                node.error(
                    "an api token needs exactly one of token_env and token_file",
                    "tokens are given by reference only, never written in the inventory",
                )
            )
            return None
        return self.secret_ref(inner, given[0])
