"""A reader of a real Server-Sent Events stream, for the tests and the benchmark: an aiohttp
client that parses the wire format (fields up to a blank line, comments kept apart) and
nothing more, so the tests judge exactly what the server sent."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True)
class SseMessage:
    id: str | None
    event: str
    data: str

    @property
    def seq(self) -> int:
        assert self.id is not None
        return int(self.id.rpartition(".")[2])

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseStream:
    """One open stream; `retry` and `comments` as they came."""

    response: aiohttp.ClientResponse
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    async def next(self) -> SseMessage | None:
        """The next message; None at the end of the stream."""
        fields: dict[str, str] = {}
        data: list[str] = []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data or fields:
                    return SseMessage(
                        fields.get("id"), fields.get("event", "message"), "\n".join(data)
                    )
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "retry":
                self.retry = int(value)
            else:
                fields[name] = value

    def close(self) -> None:
        self.response.close()


async def open_stream(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None
) -> SseStream:
    response = await session.get(url, headers=dict(headers or {}))
    return SseStream(response)
