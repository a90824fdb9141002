"""The inventory's `cluster:` section: where agents publish their results and a central engine
reads them (NATS with JetStream), how they authenticate, and where an agent spools results while
NATS cannot be reached. Connecting lives in monitor.cluster; this is only what the user
configured, checked at load time.

    cluster:
      nats:
        url: nats://127.0.0.1:4222            # `--nats URL[,URL...]` overrides; or a list of
                                              # the nodes of a NATS cluster
        credentials: {user: agent-north, password_env: COMMWATCH_NATS_PASSWORD}
        # or {token_env: NAME} / {token_file: PATH} / {creds_file: PATH} / {nkey_file: PATH}
        tls: {ca_file: /etc/commwatch/nats-ca.pem, cert_file: ..., key_file: ...}
      stream: COMMWATCH_RESULTS
      domain: hub                             # the JetStream domain of the servers that keep
                                              # the stream: `--js-domain` overrides; for agents
                                              # behind a NATS leaf node without JetStream
      leaf_domains: [psap-north, psap-south]  # the JetStream domains of the sites' leaf nodes
                                              # that keep their agents' results through a WAN
                                              # outage: the hub's stream sources each; an
                                              # agent there is given `--leaf-domain NAME`
      replicas: 3                             # the stream's, when it is made: 1, 3 or 5
      spool: {path: /var/lib/commwatch/spool.sqlite3, max_age: 24h, max_bytes: 100MiB}
      lease_ttl: 10s                          # how long a central's leadership outlives it
      heartbeat: 5s                           # how often each agent says it is alive
      heartbeat_ttl: 15s                      # an agent not heard from for this long is gone

Secrets are given by reference only (monitor.core.secrets), and a URL may not carry them
(`nats://user:pass@host`): a URL is printed in every status line, a password in it would be
printed with it. Several servers (the nodes of one NATS cluster) are one URL each, comma-
separated or a YAML list, all with one scheme: a client connects to any and moves to another
when its node goes.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config.reader import Fields, Reader
from monitor.core.options import (
    OptionError,
    duration,
    each,
    format_number,
    is_number,
    path,
    readable_file,
    text,
)
from monitor.core.secrets import SecretRef

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_STREAM = "COMMWATCH_RESULTS"
DEFAULT_REPLICAS = 1
# JetStream replicates by RAFT: an odd count keeps a majority through (count - 1) / 2 failures;
# NATS takes at most 5.
REPLICAS = (1, 3, 5)
DEFAULT_SPOOL_AGE = 24 * 3600.0
DEFAULT_SPOOL_BYTES = 100 * 1024 * 1024
_SCHEMES = ("nats", "tls")
_URL_HINT = "write nats://HOST:PORT (or tls://HOST:PORT), e.g. nats://127.0.0.1:4222"
# JetStream stream names: no whitespace, '.', '*', '>', path separators. A domain is one token
# of the API's subjects, `$JS.DOMAIN.API.>`: the same characters, so that none breaks them.
JETSTREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# An agent's or pool's name is a NATS subject token and part of every message id an agent
# publishes: no '.', '*', '>' or space.
_VANTAGE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}
_SIZE_HINT = "write a size such as 100MiB, 512KiB, 2GiB or a number of bytes"
MIN_SPOOL_BYTES = 64 * 1024
DEFAULT_LEASE_TTL = 10.0
# The lease is renewed every third of its TTL: below a second, one slow round trip to NATS
# would cost the leader its lease.
MIN_LEASE_TTL = 1.0
DEFAULT_HEARTBEAT = 5.0
HEARTBEATS_PER_TTL = 3
DEFAULT_HEARTBEAT_TTL = HEARTBEATS_PER_TTL * DEFAULT_HEARTBEAT


@dataclass(frozen=True)
class NatsCredentials:
    """How a process authenticates to NATS: one of user and password, a token, a `.creds`
    file (JWT and NKey seed) or an NKey seed file. Only references are held."""

    user: str | None = None  # a user name is not a secret
    password: SecretRef | None = None
    token: SecretRef | None = None
    creds_file: Path | None = None
    nkey_file: Path | None = None


@dataclass(frozen=True)
class NatsTls:
    ca_file: Path | None = None  # None: the system's CAs
    cert_file: Path | None = None  # a client certificate, when the server asks for one
    key_file: Path | None = None


@dataclass(frozen=True)
class NatsConfig:
    url: str = DEFAULT_URL  # one server, or several comma-separated: as shown in status lines
    credentials: NatsCredentials | None = None
    tls: NatsTls | None = None

    @property
    def servers(self) -> list[str]:
        """Each server's URL, for nats-py (which tries them in turn)."""
        return self.url.split(",")


@dataclass(frozen=True)
class SpoolConfig:
    path: Path | None = None  # None: $XDG_STATE_HOME/commwatch/spool-AGENT.sqlite3
    max_age: float = DEFAULT_SPOOL_AGE  # seconds; older entries are dropped
    max_bytes: int = DEFAULT_SPOOL_BYTES  # beyond it the oldest entries are dropped


@dataclass(frozen=True)
class ClusterConfig:
    nats: NatsConfig = field(default_factory=NatsConfig)
    stream: str = DEFAULT_STREAM
    # The JetStream domain of the servers that keep the stream and buckets, asked through
    # `$JS.DOMAIN.API`; None: the JetStream of the server connected to (monitor.cluster.connection).
    domain: str | None = None
    # The JetStream domains of the sites' leaf nodes whose own stream keeps their agents'
    # results: a central makes the stream (`domain`'s) source each (monitor.cluster.stream).
    leaf_domains: tuple[str, ...] = ()
    # An agent's own (`--leaf-domain`): it publishes to the stream of this domain, its site's
    # leaf node, which the hub's stream sources; None: straight to the stream of `domain`.
    leaf_domain: str | None = None
    replicas: int = DEFAULT_REPLICAS  # of the stream, when an agent or a central makes it
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    # Seconds the leader central's lease lasts unrenewed: a follower takes over within two of
    # them once the leader is gone (monitor.cluster.lease).
    lease_ttl: float = DEFAULT_LEASE_TTL
    heartbeat: float = DEFAULT_HEARTBEAT  # seconds between an agent's heartbeats
    # Seconds without a heartbeat before an agent counts as gone and its checks move.
    heartbeat_ttl: float = DEFAULT_HEARTBEAT_TTL

    @property
    def results_at(self) -> str:
        """Where the results go, for the start lines: `URL stream NAME[ in domain DOMAIN]`."""
        domain = self.leaf_domain or self.domain
        where = "" if domain is None else f" in JetStream domain {domain}"
        return f"{self.nats.url} stream {self.stream}{where}"


def nats_url(value: Any) -> str:
    """One NATS server URL, or several (the nodes of a cluster) comma-separated or as a list:
    the URLs comma-separated. None holds credentials (they go in `credentials:`); all have
    one scheme, since the connection's TLS is for every node alike."""
    items = value if isinstance(value, list) else text(value).split(",")
    if not items:
        raise OptionError("no NATS URL is given", _URL_HINT)
    urls = [_one_url(item) for item in items]
    if len({url.split("://", 1)[0] for url in urls}) > 1:
        raise OptionError(
            "the NATS URLs mix nats:// and tls://",
            "give every node of the cluster the same scheme (tls:// when the servers take TLS)",
        )
    if len(set(urls)) < len(urls):
        raise OptionError("a NATS URL is given twice", "name each server once")
    return ",".join(urls)


def _one_url(value: Any) -> str:
    if isinstance(value, str) and not value.strip():
        raise OptionError("a NATS URL is empty", f"separate URLs with one comma; {_URL_HINT}")
    raw = text(value).strip()
    parsed = urllib.parse.urlsplit(raw)
    if parsed.scheme not in _SCHEMES or not parsed.hostname:
        # Not quoted: a URL written wrong may still hold a password.
        raise OptionError("this is not a NATS URL", _URL_HINT)
    if parsed.username is not None or parsed.password is not None:
        raise OptionError(
            "the NATS URL holds credentials (not shown)",
            "drop them from the URL and give them in cluster: nats: credentials: by reference",
        )
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise OptionError(
            "the NATS URL's port is not a number from 1 to 65535", _URL_HINT
        ) from None
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise OptionError("a NATS URL has no path, query or fragment", _URL_HINT)
    return raw


def vantage_name(value: Any) -> str:
    """The name of an agent or of a pool of agents (a vantage point)."""
    name = text(value)
    if not _VANTAGE_NAME.fullmatch(name):
        raise OptionError(
            f"{name!r} is not a valid agent or pool name",
            "use lower-case letters, digits, '-' and '_', starting with a letter or digit "
            "(it is a NATS subject token)",
        )
    return name


def replica_count(value: Any) -> int:
    if isinstance(value, bool) or value not in REPLICAS:
        raise OptionError(
            f"{value!r} is not a replica count JetStream takes",
            "write 1 for one server, or 3 or 5 for a NATS cluster of at least that many nodes; "
            "a majority of the replicas must be up to store results",
        )
    return int(value)


def stream_name(value: Any) -> str:
    return _jetstream_name(value, "stream", "")


def jetstream_domain(value: Any) -> str:
    return _jetstream_name(
        value, "domain", ": the domain in the hub's nats-server.conf, jetstream { domain: NAME }"
    )


def leaf_domains(value: Any) -> tuple[str, ...]:
    domains = each(jetstream_domain)(value)
    if len(set(domains)) < len(domains):
        raise OptionError("a leaf domain is given twice", "name each site's leaf node once")
    return domains


def _jetstream_name(value: Any, what: str, where: str) -> str:
    """A name JetStream takes for a stream or a domain (`where` says where it comes from)."""
    name = text(value)
    if not JETSTREAM_NAME.fullmatch(name):
        raise OptionError(
            f"{name!r} is not a JetStream {what} name",
            f"use letters, digits, '-' and '_' (no '.', '*', '>' or spaces), at most 64{where}",
        )
    return name


def lease_ttl(value: Any) -> float:
    seconds = duration(value)
    if seconds < MIN_LEASE_TTL:
        raise OptionError(
            f"a lease TTL of {seconds:g}s is too short to renew reliably",
            f"give at least {MIN_LEASE_TTL:g}s; the default is {DEFAULT_LEASE_TTL:g}s",
        )
    return seconds


def byte_size(value: Any) -> int:
    """A size in bytes: a whole number, or a number with a unit (KiB, MiB, GiB; KB, MB, GB)."""
    if is_number(value, whole=True) and not isinstance(value, bool):
        size = int(value)
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        number, unit = match.groups()
        size = int(float(number) * _SIZE_UNITS[(unit or "b").lower()])
    else:
        raise OptionError(f"{value!r} is not a size", _SIZE_HINT)
    if size < MIN_SPOOL_BYTES:
        raise OptionError(
            f"{size} bytes is too small for a spool", f"give at least {MIN_SPOOL_BYTES // 1024}KiB"
        )
    return size


_CLUSTER_KEYS = (
    "nats",
    "stream",
    "domain",
    "leaf_domains",
    "replicas",
    "spool",
    "lease_ttl",
    "heartbeat",
    "heartbeat_ttl",
)
_NATS_KEYS = ("url", "credentials", "tls")
_CREDENTIAL_KEYS = (
    "user",
    "password_env",
    "password_file",
    "token_env",
    "token_file",
    "creds_file",
    "nkey_file",
)
_METHODS = {
    "password": ("password_env", "password_file"),
    "token": ("token_env", "token_file"),
    "creds_file": ("creds_file",),
    "nkey_file": ("nkey_file",),
}
_TLS_KEYS = ("ca_file", "cert_file", "key_file")
_SPOOL_KEYS = ("path", "max_age", "max_bytes")


class ClusterReader(Reader):
    """The `cluster:` section, each fault at its place."""

    def cluster(self, fields: Fields) -> ClusterConfig | None:
        if "cluster" not in fields:
            return None
        inner = self.fields(fields["cluster"][1], "cluster", _CLUSTER_KEYS)
        default = ClusterConfig()
        heartbeat, heartbeat_ttl = self._heartbeats(inner)
        domain = self.plain(inner, "domain", jetstream_domain, default.domain)
        return ClusterConfig(
            nats=self._nats_section(inner),
            stream=self.plain(inner, "stream", stream_name, default.stream),
            domain=domain,
            leaf_domains=self._leaf_domains(inner, domain),
            replicas=self.plain(inner, "replicas", replica_count, default.replicas),
            spool=self._spool_section(inner),
            lease_ttl=self.plain(inner, "lease_ttl", lease_ttl, default.lease_ttl),
            heartbeat=heartbeat,
            heartbeat_ttl=heartbeat_ttl,
        )

    def _leaf_domains(self, fields: Fields, hub: str | None) -> tuple[str, ...]:
        domains = self.plain(fields, "leaf_domains", leaf_domains, ())
        if hub is not None and hub in domains:
            self.fail(
                fields["leaf_domains"][1].error(
                    f"'leaf_domains': {hub!r} is the hub's own domain (cluster: domain:)",
                    "list only the domains of the sites' leaf nodes, each with JetStream of its "
                    "own (jetstream { domain: NAME } in the leaf's nats-server.conf)",
                )
            )
            return tuple(domain for domain in domains if domain != hub)
        return domains

    def _heartbeats(self, fields: Fields) -> tuple[float, float]:
        heartbeat = self.plain(fields, "heartbeat", duration, DEFAULT_HEARTBEAT)
        # Unless given, it follows the heartbeat: three may be missed before an agent is gone.
        ttl = self.plain(fields, "heartbeat_ttl", duration, HEARTBEATS_PER_TTL * heartbeat)
        if ttl < 2 * heartbeat:
            self.fail(
                fields["heartbeat_ttl"][1].error(
                    f"'heartbeat_ttl': {format_number(ttl)}s is less than two heartbeats "
                    f"({format_number(heartbeat)}s each): one late heartbeat would make a live "
                    "agent look gone",
                    "make it at least twice cluster: heartbeat:, three times is usual",
                )
            )
            return heartbeat, HEARTBEATS_PER_TTL * heartbeat
        return heartbeat, ttl

    def _nats_section(self, fields: Fields) -> NatsConfig:
        if "nats" not in fields:
            return NatsConfig()
        inner = self.fields(fields["nats"][1], "cluster nats", _NATS_KEYS)
        return NatsConfig(
            url=self.plain(inner, "url", nats_url, DEFAULT_URL),
            credentials=self._nats_credentials(inner),
            tls=self._nats_tls(inner),
        )

    def _nats_credentials(self, fields: Fields) -> NatsCredentials | None:
        if "credentials" not in fields:
            return None
        node = fields["credentials"][1]
        inner = self.fields(node, "cluster nats credentials", _CREDENTIAL_KEYS)
        methods = [m for m, keys in _METHODS.items() if any(k in inner for k in keys)]
        given = [key for keys in _METHODS.values() for key in keys if key in inner]
        if len(given) != 1:
            self.fail(
                node.error(
                    "NATS credentials need exactly one of password_env, password_file, "
                    "token_env, token_file, creds_file and nkey_file",
                    "secrets are given by reference only, never written in the inventory",
                )
            )
            return None
        method = methods[0]
        user = self.plain(inner, "user", text, None)
        if (method == "password") != (user is not None):
            self.fail(
                node.error(
                    "a NATS password goes with a user, and only a password does",
                    "write user: NAME beside password_env or password_file",
                )
            )
            return None
        key = given[0]
        if method in ("password", "token"):
            secret = self.secret_ref(inner, key)
            if secret is None:
                return None
            if method == "password":
                return NatsCredentials(user=user, password=secret)
            return NatsCredentials(token=secret)
        file = self.plain(inner, key, readable_file, None)
        if file is None:
            return None
        if method == "creds_file":
            return NatsCredentials(creds_file=Path(file))
        return NatsCredentials(nkey_file=Path(file))

    def _nats_tls(self, fields: Fields) -> NatsTls | None:
        if "tls" not in fields:
            return None
        node = fields["tls"][1]
        inner = self.fields(node, "cluster nats tls", _TLS_KEYS)
        files = {key: self.plain(inner, key, readable_file, None) for key in _TLS_KEYS}
        if ("cert_file" in inner) != ("key_file" in inner):
            self.fail(
                node.error(
                    "a client certificate needs both cert_file and key_file",
                    "give both, or neither to connect without a client certificate",
                )
            )
        return NatsTls(**{key: None if f is None else Path(f) for key, f in files.items()})

    def _spool_section(self, fields: Fields) -> SpoolConfig:
        if "spool" not in fields:
            return SpoolConfig()
        inner = self.fields(fields["spool"][1], "cluster spool", _SPOOL_KEYS)
        spool_path = self.plain(inner, "path", path, None)
        return SpoolConfig(
            path=None if spool_path is None else Path(spool_path),
            max_age=self.plain(inner, "max_age", duration, DEFAULT_SPOOL_AGE),
            max_bytes=self.plain(inner, "max_bytes", byte_size, DEFAULT_SPOOL_BYTES),
        )
