"""What an operator does to the engine over the API: run a check now, pause and resume it,
acknowledge a subject's problem and withdraw the acknowledgement.

    POST   /api/v1/checks/{id}/run      202 {"check_id", "queued": true}
    POST   /api/v1/checks/{id}/pause    200 {"check_id", "paused": true}
    POST   /api/v1/checks/{id}/resume   200 {"check_id", "paused": false}
    POST   /api/v1/subjects/{id}/ack    201 the ack record; body {"comment", "expires"}
    DELETE /api/v1/subjects/{id}/ack    204

A pause, a resumption, an acknowledgement and its withdrawal are answered once the history has
stored them, so that what the operator was told holds across a restart of the engine. When the
history has not stored it within STORE_WAIT (its disk stalled), the answer is 202 Accepted with
the same body (the withdrawal's: {"subject_id", "withdrawn": true}): it is in force in the
engine now, and stored when the history catches up, but an engine that dies meanwhile forgets
it.

Every one needs an operator token. A body is a JSON object (`Content-Type:
application/json`) of the keys named, no others. Acknowledgements and pauses reach every
watcher of the engine (`Monitor.watch_controls`), the event stream's clients among them. An
engine that runs no checks of its own (a central, fed by its agents) answers run, pause and
resume with 409 Conflict, saying why.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from monitor.api.keys import CALLER, MONITOR
from monitor.api.roles import Role, requires
from monitor.config.api import ApiConfig
from monitor.engine import acks
from monitor.engine.acks import AckRefused, NothingToAcknowledge
from monitor.engine.commands import NoScheduler
from monitor.engine.pipeline import Monitor
from monitor.output.records import iso_time
from monitor.store.controls import Ack

_CHECK = "/api/v1/checks/{check_id:.+}"
_SUBJECT = "/api/v1/subjects/{subject_id:.+}/ack"
_ACK_KEYS = ("comment", "expires")
STORE_WAIT = 5.0  # seconds a control's answer waits for the history (the client waits 10)


async def _answer(request: web.Request, body: dict[str, Any], status: int) -> web.Response:
    """`status` with `body` (none for 204 No Content) once the control just made is stored;
    else 202 Accepted with `body`."""
    if not await request.app[MONITOR].stored(STORE_WAIT):
        return web.json_response(body, status=202)
    if status == 204:
        return web.Response(status=204)
    return web.json_response(body, status=status)


def attach(app: web.Application, _monitor: Monitor, _config: ApiConfig) -> None:
    app.router.add_post(f"{_CHECK}/run", run_now)
    app.router.add_post(f"{_CHECK}/pause", pause)
    app.router.add_post(f"{_CHECK}/resume", resume)
    app.router.add_post(_SUBJECT, acknowledge)
    app.router.add_delete(_SUBJECT, withdraw)


def ack_record(ack: Ack) -> dict[str, Any]:
    """An acknowledgement as the API, the state document and the event stream show it."""
    return {
        "subject_id": ack.subject_id,
        "subject": str(ack.subject),
        "comment": ack.comment,
        "by": ack.by,
        "at": iso_time(ack.at),
        "expires": iso_time(ack.expires),
        "state": ack.state,
    }


def known_check(request: web.Request) -> str:
    """The request's check id, one this engine runs; 404 otherwise."""
    check_id = request.match_info["check_id"]
    if check_id not in request.app[MONITOR].checks:
        raise web.HTTPNotFound(text=f"no check {check_id!r} in this engine")
    return check_id


async def json_object(request: web.Request, keys: tuple[str, ...]) -> dict[str, Any]:
    """The request's body: a JSON object with no key but `keys`; 400, 413 or 415 otherwise."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send the body as Content-Type: application/json")
    raw = await request.read()  # 413 beyond the configured max_body_bytes
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    unknown = sorted(set(body) - set(keys))
    if unknown:
        raise web.HTTPBadRequest(
            text=f"unknown key {unknown[0]!r} in the body (allowed: {', '.join(keys)})"
        )
    return body


def scheduled_check(request: web.Request) -> str:
    """The request's check id, for a command to the engine's scheduler: 404 when the engine
    has no such check, 409 when it has no scheduler (a central: its agents run the checks)."""
    check_id = known_check(request)
    if request.app[MONITOR].scheduler is None:
        raise web.HTTPConflict(text=str(NoScheduler(check_id)))
    return check_id


@requires(Role.OPERATOR)
async def run_now(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR]
    check_id = scheduled_check(request)
    if not monitor.ready.is_set():
        raise web.HTTPServiceUnavailable(text="the engine is not running its checks yet")
    if monitor.is_paused(check_id):
        raise web.HTTPConflict(text=f"check {check_id!r} is paused: resume it first")
    monitor.run_now(check_id)
    return web.json_response({"check_id": check_id, "queued": True}, status=202)


@requires(Role.OPERATOR)
async def pause(request: web.Request) -> web.Response:
    check_id = scheduled_check(request)
    request.app[MONITOR].pause(check_id)
    return await _answer(request, {"check_id": check_id, "paused": True}, 200)


@requires(Role.OPERATOR)
async def resume(request: web.Request) -> web.Response:
    check_id = scheduled_check(request)
    request.app[MONITOR].resume(check_id)
    return await _answer(request, {"check_id": check_id, "paused": False}, 200)


def moment(value: Any, now: float, *, ahead: bool, what: str) -> float:
    """POSIX seconds from a duration (`ahead` of `now`, else back from it: "4h") or an ISO 8601
    time with its UTC offset; 400 naming `what` for anything else."""
    try:
        return acks.moment(value, now, ahead=ahead)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{what} {exc}") from None


def known_subject(request: web.Request) -> str:
    subject_id = request.match_info["subject_id"]
    if request.app[MONITOR].subject_of(subject_id) is None:
        raise web.HTTPNotFound(text=f"no check, link or group {subject_id!r} in this engine")
    return subject_id


@requires(Role.OPERATOR)
async def acknowledge(request: web.Request) -> web.Response:
    subject_id = known_subject(request)
    body = await json_object(request, _ACK_KEYS)
    comment = body.get("comment")
    if not isinstance(comment, str):
        raise web.HTTPBadRequest(text='"comment" is required: say what is being done')
    expires = moment(body.get("expires"), time.time(), ahead=True, what='"expires"')
    try:
        ack = request.app[MONITOR].acknowledge(
            subject_id, comment=comment, by=request[CALLER].name, expires=expires
        )
    except NothingToAcknowledge as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    except AckRefused as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return await _answer(request, ack_record(ack), 201)


@requires(Role.OPERATOR)
async def withdraw(request: web.Request) -> web.Response:
    subject_id = known_subject(request)
    if request.app[MONITOR].withdraw_ack(subject_id) is None:
        raise web.HTTPNotFound(text=f"{subject_id!r} has no acknowledgement")
    return await _answer(request, {"subject_id": subject_id, "withdrawn": True}, 204)
