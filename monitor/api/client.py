"""The client side of the API: how a viewer (`tui --connect`, `web`, `probe --from`) attaches to
one engine.

`ApiClient` makes the requests: the state document, the event stream (parsed by
`monitor.api.sse`), the commands (run now, pause, resume, acknowledge) with the operator's
token; the answer to a control (`Control`) says whether the engine's history has stored it
yet. TLS is verified by default (`ca_file` for a private CA). The token goes in one header and
nowhere else: no error, log line or repr of this module holds it, and aiohttp's own exceptions
(whose request info carries the headers) never leave it.

`Follower` keeps a viewer attached: the state document, then the events after it; when the
stream breaks it waits (1 s doubling to 30 s, with jitter) and resumes with `Last-Event-ID`, so
nothing is lost (the engine replays what it missed, from its history when need be, ending such a
replay with a `state` message: the state document, taken as one); when the engine answers
`resync` (another history store, or a gap wider than it keeps), or an event could not be read,
it starts again from the state document.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from monitor.api.sse import SseEvent, SseParser
from monitor.core.text import printable

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds for a request, connecting included
DOCUMENT_TIMEOUT = 60.0  # for the state document
# The engine writes a keepalive every 15 s: a stream silent for this long is dead, even where
# TCP has not noticed (a peer gone without a FIN).
STREAM_SILENCE = 45.0
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024  # the state document of a very large inventory
MAX_ERROR_BYTES = 16 * 1024
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 30.0
USER_AGENT = "commwatch-viewer"


@dataclass(frozen=True, slots=True)
class Control:
    """The engine's answer to a pause, resumption, acknowledgement or withdrawal: its body, and
    whether the engine's history has stored the control. Not stored (202 Accepted: the history
    did not store it in time, its disk stalled) means in force in the engine now, but forgotten
    should the engine stop before its history catches up."""

    body: dict[str, Any]
    stored: bool


class ApiError(Exception):
    """The engine could not be asked, or refused: `status` is the HTTP status (None when no
    answer came). The message is fit to show: printable, and never holding the token."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def engine_url(text: str) -> URL:
    """The engine's base URL as the user wrote it, or ValueError saying what is wrong."""
    try:
        url = URL(text)
    except (ValueError, TypeError):
        raise ValueError(f"{printable(text)!r} is not a URL") from None
    if url.user is not None or url.password is not None:
        # Not echoed: what stands there is often a credential.
        raise ValueError(
            "the URL holds a user name or password (not shown): give the token with "
            "--token-env or --token-file instead"
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"{printable(text)!r} is not an engine URL: write http(s)://HOST:PORT, as "
            "`commwatch run --listen` serves it"
        )
    if url.query_string or url.fragment:
        raise ValueError("the engine URL takes no query or fragment: write http(s)://HOST:PORT")
    return url.with_path(url.path.rstrip("/"))


class ApiClient:
    """Requests to one engine; use as `async with ApiClient(...) as client:`."""

    def __init__(self, url: URL, *, token: str | None = None, ca_file: str | None = None) -> None:
        self.url = url
        self._token = token
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if url.scheme == "https" else False
        )
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<ApiClient {self.url}>"

    async def __aenter__(self) -> ApiClient:
        headers = {"User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, connect=REQUEST_TIMEOUT),
            # The viewer reaches the engine it was told, never through a proxy of the
            # environment, and reads no .netrc.
            trust_env=False,
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- reading ---------------------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        """The state document (`GET /api/v1/state`)."""
        return await self._json("GET", "/api/v1/state", limit=MAX_DOCUMENT_BYTES)

    @contextlib.asynccontextmanager
    async def stream(self, last_event_id: str | None) -> AsyncIterator[EventStream]:
        """The event stream from after `last_event_id` (everything buffered, when None), open
        once this is entered; ApiError when it cannot be opened."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            async with self._request("GET", "/api/v1/events", headers=headers) as response:
                await _raise_for_status(response)
                if response.content_type != "text/event-stream":
                    raise ApiError(
                        f"{self.url} answered {printable(response.content_type)!r}, not an "
                        "event stream: is this a commwatch engine?",
                        response.status,
                    )
                yield EventStream(response)
        except aiohttp.ClientError as exc:
            raise ApiError(f"cannot reach the engine at {self.url}: {_reason(exc)}") from None

    async def history(self, check_id: str, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` stored results of a check, newest last (as the store keeps
        them: no target, tags or certificates); ApiError 503 when the engine keeps none."""
        answer = await self._json(
            "GET", f"/api/v1/checks/{_segment(check_id)}/history?limit={limit}"
        )
        results = answer.get("results")
        if not isinstance(results, list):
            raise ApiError(f"{self.url} sent a history without results")
        return [r for r in results if isinstance(r, dict)]

    # --- commands --------------------------------------------------------------------------

    async def run_now(self, check_id: str) -> dict[str, Any]:
        return await self._json("POST", f"/api/v1/checks/{_segment(check_id)}/run")

    async def set_paused(self, check_id: str, paused: bool) -> Control:
        verb = "pause" if paused else "resume"
        return await self._control("POST", f"/api/v1/checks/{_segment(check_id)}/{verb}")

    async def acknowledge(self, subject_id: str, comment: str, expires: str) -> Control:
        """The acknowledgement record in `body`."""
        return await self._control(
            "POST",
            f"/api/v1/subjects/{_segment(subject_id)}/ack",
            body={"comment": comment, "expires": expires},
        )

    async def unacknowledge(self, subject_id: str) -> Control:
        return await self._control("DELETE", f"/api/v1/subjects/{_segment(subject_id)}/ack")

    # --- the plumbing ----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> aiohttp.client._RequestContextManager:
        if self._session is None:
            raise RuntimeError("ApiClient is used outside `async with`")
        url = URL(f"{self.url}{path}", encoded=True)
        return self._session.request(method, url, headers=headers, json=body, ssl=self._ssl)

    async def _control(
        self, method: str, path: str, *, body: dict[str, Any] | None = None
    ) -> Control:
        status, answer = await self._exchange(method, path, body=body)
        # 202 is the engine's way of saying "in force, not stored yet" (monitor.api.control).
        return Control(answer, stored=status != 202)

    async def _json(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        limit: int = MAX_ERROR_BYTES * 64,
    ) -> dict[str, Any]:
        return (await self._exchange(method, path, body=body, limit=limit))[1]

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        limit: int = MAX_ERROR_BYTES * 64,
    ) -> tuple[int, dict[str, Any]]:
        """The answer's status and its JSON object ({} for 204 No Content)."""
        # The whole state document of a large inventory may take a while over a slow link.
        timeout = DOCUMENT_TIMEOUT if limit >= MAX_DOCUMENT_BYTES else REQUEST_TIMEOUT
        try:
            async with asyncio.timeout(timeout):
                async with self._request(method, path, body=body) as response:
                    await _raise_for_status(response)
                    status = response.status
                    if status == 204:
                        return status, {}
                    raw = await _read_bounded(response, limit)
        except TimeoutError:
            raise ApiError(f"{self.url} did not answer within {timeout:.0f}s") from None
        except aiohttp.ClientError as exc:
            raise ApiError(f"cannot reach the engine at {self.url}: {_reason(exc)}") from None
        except ApiError:
            raise
        except Exception as exc:
            # Not chained: a library's frames hold the request's headers, and a crash report
            # that shows their locals (Textual's does) would show the token.
            raise ApiError(f"the request to {self.url} failed ({type(exc).__name__})") from None
        try:
            document = json.loads(raw)
        except ValueError:
            raise ApiError(f"{self.url}{path} answered something that is not JSON") from None
        if not isinstance(document, dict):
            raise ApiError(f"{self.url}{path} answered JSON that is not an object")
        return status, document


class EventStream:
    """An open event stream: its events as they come, and the reconnection time it asked for."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._parser = SseParser()

    @property
    def retry_seconds(self) -> float:
        retry = self._parser.retry_ms
        return 0.0 if retry is None else min(retry / 1000, BACKOFF_CAP)

    async def __aiter__(self) -> AsyncIterator[SseEvent]:
        """Until the engine ends the stream (ApiError then, as when it breaks or falls
        silent). An event too large to keep is replaced by a `resync`: what it said is lost,
        and only the state document can make up for it."""
        try:
            while True:
                chunk = await asyncio.wait_for(self._response.content.readany(), STREAM_SILENCE)
                if not chunk:
                    raise ApiError("the engine closed the event stream")
                dropped = self._parser.dropped
                for event in self._parser.feed(chunk):
                    yield event
                if self._parser.dropped != dropped:
                    yield SseEvent("resync", '{"reason": "an event too large to read"}', "")
        except TimeoutError:
            raise ApiError(f"no keepalive from the engine for {STREAM_SILENCE:.0f}s") from None
        except aiohttp.ClientError as exc:
            raise ApiError(f"the event stream broke: {_reason(exc)}") from None


def _segment(subject_id: str) -> str:
    """A check, link or group id in a path: its slashes stay (the routes match `.+` before
    the fixed suffix), anything else a URL cannot carry is escaped."""
    return quote(subject_id, safe="/")


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise ApiError(f"the engine's answer is larger than {limit} bytes", response.status)
    return bytes(body)


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    message = ""
    with contextlib.suppress(ApiError, ValueError, aiohttp.ClientError, TimeoutError):
        body = json.loads(await _read_bounded(response, MAX_ERROR_BYTES))
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message", ""))
    shown = printable(message) or response.reason or ""
    hint = {
        401: " (no token, or not one the engine knows: --token-env or --token-file)",
        403: " (needs an operator token)",
    }.get(response.status, "")
    raise ApiError(f"{response.status} {printable(shown)}{hint}", response.status)


def _reason(exc: BaseException) -> str:
    """What went wrong, in words that hold no header and no token."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate not trusted ({printable(str(exc.certificate_error))}; --ca-file?)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return printable(exc.strerror or type(exc).__name__)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the engine closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer was cut short"
    return type(exc).__name__


# --- staying attached ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connection:
    """The viewer's link to the engine: up or down, since when (POSIX seconds), and why."""

    connected: bool
    since: float
    reason: str = ""


def backoff_delay(attempt: int, floor: float = 0.0) -> float:
    """How long to wait before reconnection attempt `attempt` (0 first): 1 s doubling to 30 s,
    the second half of each step random, so viewers dropped together come back spread out;
    never less than the engine's `retry:`."""
    step = min(BACKOFF_CAP, BACKOFF_FIRST * 2.0 ** min(attempt, 16))
    return max(floor, step / 2 + random.uniform(0, step / 2))


Document = dict[str, Any]


def stream_position(document: Document) -> str:
    """The Last-Event-ID that follows a state document: nothing after it is missed."""
    try:
        stream = document["stream"]
        return f"{stream['epoch']}.{int(stream['seq'])}"
    except (KeyError, TypeError, ValueError):
        raise ApiError("the engine sent a state document with no stream position") from None


class Follower:
    """Keeps a viewer attached to one engine until cancelled.

    `on_document(document)` gets each state document (the first, after every resync, and
    each `state` message);
    `on_message(event, payload)` each event after it, in order, none twice;
    `on_connection(connection)` each change of the link (and the reason it is down)."""

    def __init__(
        self,
        client: ApiClient,
        *,
        on_document: Callable[[Document], None],
        on_message: Callable[[SseEvent, dict[str, Any]], None],
        on_connection: Callable[[Connection], None],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._on_document = on_document
        self._on_message = on_message
        self._on_connection = on_connection
        self._clock = clock
        self._sleep = sleep
        self.last_event_id: str | None = None  # None: the state document is needed first
        self.connection: Connection | None = None

    async def run(self) -> None:
        attempt = 0
        retry = 0.0  # the engine's `retry:`, once it said one
        while True:
            try:
                if self.last_event_id is None:
                    await self._load_document()
                async with self._client.stream(self.last_event_id) as stream:
                    self._report(True)
                    try:
                        async for event in stream:
                            attempt = 0  # it works again: the next break waits 1 s
                            if not self._take(event):
                                break  # resync: the document again, at once
                    finally:
                        retry = stream.retry_seconds or retry
                continue
            except ApiError as exc:
                self._report(False, str(exc))
            delay = backoff_delay(attempt, retry)
            attempt += 1
            log.debug("reconnecting to %s in %.1fs", self._client.url, delay)
            await self._sleep(delay)

    async def _load_document(self) -> None:
        document = await self._client.state()
        position = stream_position(document)
        try:
            self._on_document(document)
        except ValueError as exc:
            raise ApiError(f"the engine's state document cannot be read: {exc}") from None
        self.last_event_id = position

    def _take(self, event: SseEvent) -> bool:
        """Hand one event on; False when the viewer must start again from the document."""
        if event.event == "resync":
            log.info("the engine asks for a resync: %s", printable(event.data[:200]))
            self.last_event_id = None
            return False
        try:
            payload = json.loads(event.data)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
            if event.event == "state":
                stream_position(payload)  # a document it cannot resume from is unreadable
                self._on_document(payload)
            else:
                self._on_message(event, payload)
        except (ValueError, ApiError) as exc:  # one this viewer cannot read: start again
            log.warning("unreadable %s event from the engine: %s", printable(event.event), exc)
            self.last_event_id = None
            return False
        if event.id:
            self.last_event_id = event.id
        return True

    def _report(self, connected: bool, reason: str = "") -> None:
        if self.connection is None or self.connection.connected != connected:
            self.connection = Connection(connected, self._clock(), reason)
            self._on_connection(self.connection)
