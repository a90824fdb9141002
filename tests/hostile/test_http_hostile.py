"""HTTP servers that break a response off or redirect nowhere: a classified protocol error whose
message says what happened in words, never the repr of one of aiohttp's objects."""

from __future__ import annotations

import re

import pytest

from monitor.config.checks import adhoc_check
from monitor.core.model import ErrorClass
from monitor.engine.runner import run_check
from probes.base import SharedResources
from tests.peers.http_peers import raw_server

# `<ContentLengthError: 400, message=...>`, `<RawResponseMessage(version=...)>`, aiohttp's
# made-up status `400, message:`.
LIBRARY_REPR = re.compile(r"<[A-Za-z_.]+[:(]|\b400, message[:=]")


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (b"HTTP/1.1 200 OK\r\n", "closed the connection before a complete response"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
            "broken off: Not enough data to satisfy content length header",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "broken off: Not enough data to satisfy transfer length header",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nabcde",
            "broken off: Can not decode content-encoding: gzip",
        ),
        (
            b"HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1/x\r\nContent-Length: 0\r\n\r\n",
            "redirected to ftp://127.0.0.1/x, which is not an http:// or https:// URL",
        ),
    ],
    ids=["disconnect", "short-body", "cut-chunk", "bad-gzip", "ftp-redirect"],
)
async def test_a_broken_response_is_described_in_words(
    shared: SharedResources, reply: bytes, said: str
) -> None:
    async with raw_server(reply) as url:
        check = adhoc_check("http", {"target": f"{url}/x", "timeout": "2s", "body_contains": "z"})
        result = await run_check(check, shared)

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert said in result.error.message
    assert not LIBRARY_REPR.search(result.error.message), result.error.message
