"""The one shape of every API error: `{"error": {"status": N, "message": "..."}}`."""

from __future__ import annotations

from aiohttp import web


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"status": status, "message": message}}, status=status, headers=headers
    )
