"""`GET /api/v1/checks/{id}/history?since=ISO8601|DURATION&limit=N` (viewer): the stored raw
results of one check, newest last, as result records (`records.stored_result_to_dict`); 503
when the engine runs without history. `since` is a time with its UTC offset or a duration
back from now (default: all kept), `limit` the newest N of them (1 to MAX_LIMIT, default
DEFAULT_LIMIT)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web

from monitor.api.control import known_check, moment
from monitor.api.keys import MONITOR
from monitor.api.roles import Role, requires
from monitor.config.api import ApiConfig
from monitor.engine.pipeline import Monitor
from monitor.output.records import stored_result_to_dict
from monitor.store.queries import HistoryReader
from monitor.store.rows import StoredResult
from monitor.store.schema import HistoryError

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


def attach(app: web.Application, _monitor: Monitor, _config: ApiConfig) -> None:
    app.router.add_get("/api/v1/checks/{check_id:.+}/history", check_history)


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text[:6]) <= MAX_LIMIT:
        raise web.HTTPBadRequest(text=f"limit is a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _read(path: Path, check_id: str, since: float, limit: int) -> list[StoredResult]:
    with HistoryReader(path) as reader:
        return reader.recent_results(check_id, limit, since)


@requires(Role.VIEWER)
async def check_history(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR]
    check_id = known_check(request)
    path = monitor.history_path
    if path is None:
        raise web.HTTPServiceUnavailable(text="this engine runs without history (--no-history)")
    limit = _limit(request.query.get("limit"))
    since_text = request.query.get("since")
    since = (
        float("-inf")
        if since_text is None
        else moment(since_text, time.time(), ahead=False, what="since")
    )
    try:
        stored = await asyncio.to_thread(_read, path, check_id, since, limit)
    except HistoryError:
        raise web.HTTPServiceUnavailable(text="the history cannot be read now") from None
    return web.json_response(
        {"check_id": check_id, "results": [stored_result_to_dict(r) for r in stored]}
    )
