"""The results stream: how a result travels from an agent to a central engine through JetStream.

Each result is published to `commwatch.results.{site_id}.{agent}` with headers

    Nats-Msg-Id:       {agent}.{check_id}.{started_at in ns}   the server drops a duplicate
    Commwatch-Agent:   {agent}
    Commwatch-Vantage: the vantage point of the check the agent ran it for (its own name or
                       one of its pools; monitor.cluster.assignment); without it, a
                       central takes the agent's name for it
    Commwatch-Schema:  the result record's schema version (monitor.output.records)

and the compact JSON of `records.result_record(result)` as data. The message id names one run
of one check by one agent, so a retried publish, or a spooled result replayed after a publish
whose acknowledgement was lost, is stored once: JetStream drops a message whose id it has seen
within the stream's duplicate window (2 minutes here; a replay later than that after a lost
acknowledgement is stored twice, which the central sees as the same run twice and may drop by
the same id).

The stream (`COMMWATCH_RESULTS` by default) holds `commwatch.results.>` in file storage, on
`cluster: replicas:` servers of a NATS cluster.

An agent behind a site's NATS leaf node with JetStream of its own (`--leaf-domain`) publishes
to `commwatch.queued.{site_id}.{agent}` instead, which a stream of the same name in the leaf's
domain keeps (through a WAN outage too), and the hub's stream sources it across the leaf link
(`cluster: leaf_domains:`): sourcing keeps its order. Not `commwatch.results.>` there: the
hub's stream would take that straight across the link as well, twice and, after an outage,
newer results before the older ones still queued. The same name, since a sourced message keeps
the Nats-Expected-Stream header it was published with, and a stream refuses one naming another.

This module knows nats-py's types only under TYPE_CHECKING: whoever calls it has imported nats.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitor.config.cluster import DEFAULT_REPLICAS, JETSTREAM_NAME
from monitor.core.logs import Throttle
from monitor.core.model import ProbeResult
from monitor.core.text import printable
from monitor.output import records

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.api import StreamConfig, StreamSource
    from nats.js.client import JetStreamContext

SUBJECT_PREFIX = "commwatch.results"
SUBJECTS = f"{SUBJECT_PREFIX}.>"
QUEUED_PREFIX = "commwatch.queued"  # published at a site's leaf node, sourced into the hub's
QUEUED_SUBJECTS = f"{QUEUED_PREFIX}.>"
PREFIXES = (SUBJECT_PREFIX, QUEUED_PREFIX)
QUEUED_SAMPLE = f"{QUEUED_PREFIX}.site.agent"  # a subject of the leaf nodes' results
DUPLICATE_WINDOW = 120.0  # seconds
MAX_AGE = 7 * 86400.0  # a central away longer than a week finds the oldest results gone
MSG_ID = "Nats-Msg-Id"
AGENT_HEADER = "Commwatch-Agent"
SCHEMA_HEADER = "Commwatch-Schema"
VANTAGE_HEADER = "Commwatch-Vantage"  # the vantage point (agent or pool) a result is for
SCHEMA = str(records.SCHEMA_VERSION)
RETRY_PAUSE = 1.0  # seconds between tries while JetStream does not answer
_LOG_EVERY = 60.0
_LEAF_API = re.compile(rf"\$JS\.({JETSTREAM_NAME.pattern})\.API")  # a domain's API prefix

log = logging.getLogger(__name__)


class StreamError(Exception):
    """The stream exists but cannot hold commwatch's results as configured."""


def subject(site_id: str, agent: str, prefix: str = SUBJECT_PREFIX) -> str:
    return f"{prefix}.{site_id}.{agent}"


def under(subject: str, prefix: str) -> str:
    """`subject` under `prefix` (one of PREFIXES) in place of the one it has: a result spooled
    before its agent was moved behind a leaf node's stream, or away from one, would otherwise
    go where no stream takes it now."""
    for known in PREFIXES:
        if subject.startswith(f"{known}."):
            return f"{prefix}{subject[len(known) :]}"
    return subject


def message_id(agent: str, result: ProbeResult) -> str:
    return f"{agent}.{result.check.check_id}.{round(result.started_at * 1_000_000_000)}"


@dataclass(frozen=True)
class Outgoing:
    """One result as it is published, and as the spool keeps it until it is."""

    subject: str
    msg_id: str
    agent: str
    data: bytes
    vantage: str | None  # None: no Commwatch-Vantage header

    @property
    def check_key(self) -> str:
        """Its check's part of the message id (the agent's name and the check's id): the same
        for every result of one check from one agent."""
        return self.msg_id.rpartition(".")[0]

    @property
    def headers(self) -> dict[str, str]:
        headers = {MSG_ID: self.msg_id, AGENT_HEADER: self.agent, SCHEMA_HEADER: SCHEMA}
        if self.vantage is not None:
            headers[VANTAGE_HEADER] = self.vantage
        return headers


def outgoing(
    agent: str, result: ProbeResult, vantage: str | None = None, prefix: str = SUBJECT_PREFIX
) -> Outgoing:
    data = records.json_line(records.result_record(result)).encode("utf-8")
    subject_ = subject(result.check.site_id, agent, prefix)
    return Outgoing(subject_, message_id(agent, result), agent, data, vantage)


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    replicas: int = DEFAULT_REPLICAS,
    *,
    subjects: str = SUBJECTS,
    leaves: Sequence[str] = (),
) -> str | None:
    """Make the stream of `subjects`, on `replicas` servers, sourcing the stream of the same
    name in each of the `leaves` domains, unless it exists. One that exists is left as its
    operator made it (replicas, limits), but must take `subjects` (else StreamError), and is
    made to source each of `leaves` it does not yet. What differs from the configuration, for
    the caller to log, or None."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import BadRequestError, NotFoundError, ServerError

    try:
        info = await js.stream_info(name)
    except NotFoundError:
        config = StreamConfig(
            name=name,
            subjects=[subjects],
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
            max_age=MAX_AGE,
            num_replicas=replicas,
            sources=[leaf_source(name, leaf) for leaf in leaves] or None,
        )
        try:
            await js.add_stream(config)
            return None
        except (BadRequestError, ServerError) as refused:
            # Another agent made it first, perhaps differently: judge the one that exists. (A
            # server without a cluster answers 500 to more replicas than one.)
            try:
                info = await js.stream_info(name)
            except NotFoundError:
                raise StreamError(_refusal(name, replicas, refused.description)) from None
    if subjects not in (info.config.subjects or []):
        raise StreamError(
            f"stream {name} exists without the subjects {subjects}: "
            "add them to it, or name another stream in cluster: stream:"
        )
    straight = [s for s in info.config.subjects or [] if leaves and _covers(s, QUEUED_SAMPLE)]
    if straight:
        raise StreamError(
            f"stream {name} takes {printable(straight[0])}, which holds the leaf nodes' "
            f"{QUEUED_SUBJECTS}: their results would come straight across the leaf links as "
            f"well as sourced, twice and out of order; take it out of the stream's subjects"
        )
    missing = [leaf for leaf in leaves if not sources_leaf(info.config, leaf)]
    if missing:
        await _source_leaves(js, info.config, missing)
    found = info.config.num_replicas or 1
    if found == replicas:
        return None
    return (
        f"stream {name} has {found} replica{'' if found == 1 else 's'} but cluster: replicas: "
        f"says {replicas}; a stream that exists is left as it is: change it on the NATS side "
        f"(nats stream edit {name} --replicas {replicas}), or write replicas: {found}"
    )


def _covers(pattern: str, subject: str) -> bool:
    """Whether the NATS subject `pattern` (its `*` one token, its last `>` one or more) takes
    `subject`."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or token not in ("*", tokens[index]):
            return False
    return len(wanted) == len(tokens)


def leaf_source(name: str, leaf: str) -> StreamSource:
    """The stream `name` of the JetStream domain `leaf`, as a source of the hub's stream."""
    from nats.js.api import ExternalStream, StreamSource

    return StreamSource(name=name, external=ExternalStream(api=_api(leaf)))


def sources_leaf(config: StreamConfig, leaf: str) -> bool:
    """Whether the stream of `config` sources the stream of its name in the domain `leaf`."""
    api = _api(leaf)
    return any(
        source.name == config.name and source.external is not None and source.external.api == api
        for source in config.sources or []
    )


async def _source_leaves(js: JetStreamContext, config: StreamConfig, leaves: list[str]) -> None:
    """Add the leaf domains' streams to the sources of the stream of `config`. Every central
    writes the sources it found with the ones its inventory names: two doing so at once end
    with the sources of both, since they name the same."""
    from nats.js.errors import BadRequestError, ServerError

    sources = [*(config.sources or []), *(leaf_source(config.name or "", leaf) for leaf in leaves)]
    try:
        await js.update_stream(dataclasses.replace(config, sources=sources))
    except (BadRequestError, ServerError) as refused:
        said = printable(refused.description or "no reason given")
        raise StreamError(
            f"NATS refused to make stream {config.name} source the leaf domains "
            f"{', '.join(leaves)} ({said}); the central's NATS user must be allowed to update "
            "the stream"
        ) from None


def _api(domain: str | None) -> str:
    """The JetStream API prefix of `domain`; None: of the server connected to."""
    return "$JS.API" if domain is None else f"$JS.{domain}.API"


@dataclass(frozen=True)
class LeafSource:
    """How the hub's stream last heard from a leaf node's stream it sources."""

    domain: str
    lag: int  # results the leaf's stream held that the hub's had not taken, when last heard
    inactive: float | None  # seconds since the hub's stream last heard from it; None: never


async def leaf_sources(
    client: Client, domain: str | None, name: str, timeout: float
) -> list[LeafSource] | None:
    """The leaf nodes' streams the stream `name` (of JetStream `domain`) sources, from the
    server's stream info; None when it does not answer in `timeout` seconds. Asked raw: nats-py
    drops a source's `external`, and every leaf's stream has the one name."""
    import nats.errors

    try:
        reply = await client.request(f"{_api(domain)}.STREAM.INFO.{name}", b"", timeout=timeout)
        info = json.loads(reply.data)
    except (nats.errors.Error, TimeoutError, ValueError):
        return None
    sources = info.get("sources") if isinstance(info, dict) else None
    found = []
    for source in sources if isinstance(sources, list) else []:
        external = source.get("external") if isinstance(source, dict) else None
        leaf = _LEAF_API.fullmatch(str(external.get("api"))) if isinstance(external, dict) else None
        if leaf is None or source.get("name") != name:
            continue
        lag, active = source.get("lag"), source.get("active")
        found.append(
            LeafSource(
                leaf.group(1),
                lag if isinstance(lag, int) else 0,
                # nanoseconds; -1 while the source has not been heard from
                active / 1e9 if isinstance(active, int) and active >= 0 else None,
            )
        )
    return found


async def ensure_stream_patiently(
    js: JetStreamContext,
    name: str,
    replicas: int = DEFAULT_REPLICAS,
    leaves: Sequence[str] = (),
) -> str | None:
    """`ensure_stream`, tried again every second while JetStream does not answer (not enabled
    yet, its servers electing leaders after a restart, a cluster without a majority), which is
    logged at most once a minute; until it answers or the caller cancels. StreamError as
    `ensure_stream`: a stream that answers but cannot serve does not get better by waiting."""
    throttle = Throttle(_LOG_EVERY)
    while True:
        try:
            return await ensure_stream(js, name, replicas, leaves=leaves)
        except StreamError:
            raise
        except Exception as exc:  # nats-py's errors (no responders, 503), a timeout
            if throttle.let_through(name) is not None:
                log.warning(
                    "JetStream does not answer about stream %s (%s); trying again",
                    name,
                    type(exc).__name__,
                )
        await asyncio.sleep(RETRY_PAUSE)


def _refusal(name: str, replicas: int, description: str | None) -> str:
    """Why NATS would not make the stream, with its own words (an API error's description:
    a fixed phrase of the server's, made printable all the same)."""
    said = printable(description or "no reason given")
    hint = (
        f"; {replicas} replicas need a NATS cluster of at least {replicas} nodes with "
        "JetStream, or write cluster: replicas: 1"
        if replicas > 1
        else ""
    )
    return f"NATS refused to make stream {name} ({said}){hint}"
