"""A local webhook receiver for the alerting tests, bound to 127.0.0.1.

It records every request, verifies the HMAC signature of requests under `/signed/`, and counts
messages by path and `Idempotency-Key` the way a careful receiver would: the first 2xx answer
for a key accepts the message, a later request with the same key is recorded as a duplicate (and
answered 200, since the sender cannot know its earlier attempt got through). It can be told to
fail the next N requests (HTTP errors or hanging), and be stopped and started again on the same
port (connection refused in between).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

LOOPBACK = "127.0.0.1"
MAX_SKEW = 300  # seconds a signed timestamp may be away from the receiver's clock


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    status: int | None = None  # None: left hanging
    signature_ok: bool | None = None  # None: not a signed path
    hung: bool = False  # left hanging on purpose (a "hang" failure): no answer until stop()

    @property
    def key(self) -> str | None:
        return self.headers.get("Idempotency-Key")

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Failure:
    mode: str  # an HTTP status as text ("500", "429", "400", ...) or "hang"
    count: int
    retry_after: str | None = None
    location: str | None = None  # where a 3xx answer points


@dataclass
class WebhookReceiver:
    secret: str | None = None
    delay: float = 0.0  # seconds every request takes before it is answered
    requests: list[Received] = field(default_factory=list)
    # Keyed by (path, key): each path stands for a separate receiver.
    accepted: dict[tuple[str, str], Received] = field(default_factory=dict)
    duplicates: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    _failures: list[Failure] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def fail(
        self, mode: str, count: int, retry_after: str | None = None, location: str | None = None
    ) -> None:
        """Answer the next `count` requests with status `mode`, or leave them hanging."""
        self._failures.append(Failure(mode, count, retry_after, location))

    def accepted_on(self, path_prefix: str) -> list[Received]:
        return [r for r in self.accepted.values() if r.path.startswith(path_prefix)]

    async def start(self) -> None:
        """Listen; again on the same port after `stop()`."""
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:
        """Wait until `predicate(self)` holds; fails the test with what was seen otherwise."""

        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            seen = [(r.path, r.status, r.key) for r in self.requests]
            raise AssertionError(
                f"receiver condition not met within {timeout}s; saw {seen}"
            ) from None

    async def _handle(self, request: web.Request) -> web.Response:
        received = Received(request.path, dict(request.headers), await request.read())
        self.requests.append(received)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        headers: dict[str, str] = {}
        try:
            received.status = await self._answer(received, headers)
        finally:
            self.in_flight -= 1
            async with self._changed:
                self._changed.notify_all()
        return web.Response(status=received.status or 503, headers=headers, text="recorded\n")

    async def _answer(self, received: Received, headers: dict[str, str]) -> int | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if received.path.startswith("/signed/"):
            received.signature_ok = self._signature_ok(received)
            if not received.signature_ok:
                return 401
        if self._failures:
            failure = self._failures[0]
            failure.count -= 1
            if failure.count <= 0:
                self._failures.pop(0)
            if failure.mode == "hang":
                received.hung = True
                async with self._changed:
                    self._changed.notify_all()
                await self._release.wait()
                return None
            if failure.retry_after:
                headers["Retry-After"] = failure.retry_after
            if failure.location:
                headers["Location"] = failure.location
            return int(failure.mode)
        if received.key is None:
            return 400
        if (received.path, received.key) in self.accepted:
            self.duplicates.append(received)
        else:
            self.accepted[received.path, received.key] = received
        return 200

    def _signature_ok(self, received: Received) -> bool:
        timestamp = received.headers.get("X-Commwatch-Timestamp", "")
        signature = received.headers.get("X-Commwatch-Signature", "")
        if self.secret is None or not timestamp.isdigit():
            return False
        if abs(time.time() - int(timestamp)) > MAX_SKEW:
            return False
        # As a receiver would, from the documented string, not from commwatch's own code.
        key = received.headers.get("Idempotency-Key", "")
        token = received.headers.get("Commwatch-Fencing-Token", "")
        signed = f"{timestamp}.{key}.{token}.".encode() + received.body
        expected = hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature, f"sha256={expected}")
