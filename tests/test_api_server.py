"""The served engine in one process: a real Monitor probing real TCP peers on loopback, its API
on a real aiohttp listener, and an aiohttp client asking it. Every answer is checked for the
tokens: none may ever show one."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import sqlite3
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.api import control
from monitor.api.keys import MONITOR
from monitor.api.roles import Role, requires
from monitor.api.server import ATTACHMENTS, ApiServer, ApiStartError
from monitor.config.api import ApiConfig, Listen, TlsFiles, TokenConfig, TokenRole
from monitor.config.loader import load_inventory
from monitor.core.model import Severity
from monitor.core.secrets import SecretRef
from monitor.engine.acks import AckChange, AckEnd
from monitor.engine.commands import PauseChange
from monitor.engine.pipeline import Monitor
from tests.history_support import stalled
from tests.peers.pki import make_ca, make_leaf
from tests.peers.tcp_peers import closed_port

VIEWER = "viewer-secret-token-7f3a9c1e5b"
OPERATOR = "operator-secret-token-2d8e4b6a0c"
SECRET_IN_A_BUG = "hunter2-in-an-exception-message"
TOKENS = (
    TokenConfig(TokenRole.VIEWER, SecretRef("env", "CW_TEST_VIEWER"), "wall-display"),
    TokenConfig(TokenRole.OPERATOR, SecretRef("env", "CW_TEST_OPERATOR"), "noc-shift"),
)
LOOPBACK = Listen("127.0.0.1", 0)


@pytest.fixture(autouse=True)
def token_env(monkeypatch):
    monkeypatch.setenv("CW_TEST_VIEWER", VIEWER)
    monkeypatch.setenv("CW_TEST_OPERATOR", OPERATOR)


class Counting:
    """A TCP peer that counts the connections it accepts (each a run of the check)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.count += 1
            self.changed.set()
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", port)
        return self.server.sockets[0].getsockname()[1]

    async def reach(self, count: int, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while self.count < count:
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass
class Served:
    monitor: Monitor
    server: ApiServer
    session: aiohttp.ClientSession
    controls: list[AckChange | PauseChange] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # every answer's status line, headers, body

    async def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.server.url + path, headers=headers, **kwargs
        ) as response:
            text = await response.text()
        self.seen.append(f"{response.status} {dict(response.headers)} {text}")
        body = json.loads(text) if text else None
        return response.status, body, response


def inventory_file(tmp_path: Path, *checks: str, history: bool = False) -> Path:
    path = tmp_path / "inventory.yaml"
    lines = "\n".join(f"          - {check}" for check in checks)
    stored = f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n" if history else ""
    path.write_text(
        f"{stored}sites:\n  - id: s\n    links:\n      - id: l\n        checks:\n{lines}\n"
    )
    return path


def tcp_check(check_id: str, port: int, interval: str = "1h") -> str:
    return (
        f"{{id: {check_id}, kind: tcp, target: '127.0.0.1:{port}', interval: {interval}, "
        "timeout: 2s, retries: 1, retry_interval: 1h}"
    )


@contextlib.asynccontextmanager
async def served(
    tmp_path: Path,
    *checks: str,
    config: ApiConfig | None = None,
    history: bool = False,
    run_engine: bool = True,
    attachments: Sequence[Callable[..., None]] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Served]:
    inventory = load_inventory(inventory_file(tmp_path, *checks, history=history))
    monitor = Monitor(
        inventory,
        inventory.checks,
        on_result=lambda _: None,
        on_event=lambda _: None,
        history=history,
        alerts=False,
        start_spread=0,
    )
    server = ApiServer(
        monitor, config or ApiConfig(listen=LOOPBACK, tokens=TOKENS), attachments=attachments
    )
    await server.start()
    connector = aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None
    session = aiohttp.ClientSession(connector=connector)
    result = Served(monitor, server, session)
    monitor.watch_controls(result.controls.append)
    engine = asyncio.create_task(monitor.run()) if run_engine else None
    try:
        if engine is not None:
            await asyncio.wait_for(monitor.ready.wait(), 20)
        yield result
    finally:
        await session.close()
        monitor.stop()
        if engine is not None:
            await asyncio.wait_for(engine, 20)
        await server.stop()
        for answer in result.seen:
            assert VIEWER not in answer and OPERATOR not in answer, answer


def assert_error(status: int, body: Any, expected: int, says: str = "") -> None:
    assert status == expected, body
    assert set(body) == {"error"} and body["error"]["status"] == expected
    assert says in body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]


async def test_without_a_token_only_healthz_answers(tmp_path):
    async with served(tmp_path, tcp_check("c", closed_port())) as api:
        status, body, _ = await api.call("GET", "/healthz")
        assert (status, body) == (200, {"status": "ok"})
        for method, path in [
            ("GET", "/readyz"),
            ("GET", "/api/v1/checks/s/l/c/history"),
            ("POST", "/api/v1/checks/s/l/c/run"),
            ("GET", "/no/such/route"),  # which routes exist is not told either
            ("GET", "/api/v1/state"),
            ("GET", "/api/v1/events"),
            ("GET", "/metrics"),
        ]:
            status, body, response = await api.call(method, path)
            assert_error(status, body, 401, "bearer token")
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="commwatch"'
        for wrong in (VIEWER[:-1], VIEWER + "x", "", OPERATOR.upper()):
            status, body, response = await api.call("GET", "/readyz", wrong)
            assert_error(status, body, 401)
            assert "Bearer" in response.headers["WWW-Authenticate"]
        status, body, _ = await api.call(
            "GET", "/readyz", headers={"Authorization": f"Basic {VIEWER}"}
        )
        assert_error(status, body, 401)


async def test_a_viewer_reads_an_operator_acts(tmp_path):
    async with served(tmp_path, tcp_check("c", closed_port())) as api:
        status, body, _ = await api.call("GET", "/readyz", VIEWER)
        assert (status, body) == (200, {"status": "ready"})
        async with api.session.get(
            api.server.url + "/metrics", headers={"Authorization": f"Bearer {VIEWER}"}
        ) as scrape:
            assert scrape.status == 200
            assert "commwatch_check_severity{" in await scrape.text()
        for path in ("run", "pause", "resume"):
            status, body, response = await api.call("POST", f"/api/v1/checks/s/l/c/{path}", VIEWER)
            assert_error(status, body, 403, "an operator token")
            assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        status, body, _ = await api.call(
            "POST", "/api/v1/subjects/s/l/c/ack", VIEWER, json={"comment": "x", "expires": "1h"}
        )
        assert_error(status, body, 403)
        assert api.controls == []  # nothing a viewer asked for happened
        status, body, _ = await api.call("POST", "/api/v1/checks/s/l/c/pause", OPERATOR)
        assert (status, body) == (200, {"check_id": "s/l/c", "paused": True})
        # The scheme is case-insensitive (RFC 6750), and a known route with an unknown
        # path is a 404 to a viewer.
        status, _, _ = await api.call(
            "GET", "/readyz", headers={"Authorization": f"bearer {VIEWER}"}
        )
        assert status == 200
        status, body, _ = await api.call("GET", "/no/such/route", VIEWER)
        assert_error(status, body, 404)


async def test_bad_requests_get_json_errors(tmp_path):
    async with served(tmp_path, tcp_check("c", closed_port())) as api:
        await api.call("GET", "/healthz")
        ack = "/api/v1/subjects/s/l/c/ack"
        cases = [
            ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
            ({"json": ["a", "list"]}, 400, "JSON object"),
            ({"json": {"comment": "x", "expires": "1h", "by": "me"}}, 400, "unknown key 'by'"),
            ({"json": {"expires": "1h"}}, 400, '"comment" is required'),
            ({"json": {"comment": "x"}}, 400, '"expires"'),
            ({"json": {"comment": "x", "expires": "soon"}}, 400, "neither a duration"),
            ({"json": {"comment": "x", "expires": "2030-01-01T00:00"}}, 400, "UTC offset"),
            ({"json": {"comment": "x", "expires": "2020-01-01T00:00Z"}}, 400, "not in the future"),
            ({"json": {"comment": "x", "expires": "31d"}}, 400, "more than 30 days"),
            ({"json": {"comment": "x" * 501, "expires": "1h"}}, 400, "longer than 500"),
            ({"data": b"comment=x", "headers": {"Content-Type": "text/plain"}}, 415, "json"),
            (
                {
                    "data": b"{" + b" " * 20000 + b"}",
                    "headers": {"Content-Type": "application/json"},
                },
                413,
                "body size",
            ),
        ]
        for kwargs, expected, says in cases:
            status, body, _ = await api.call("POST", ack, OPERATOR, **kwargs)
            assert_error(status, body, expected, says)
        for method, path in [
            ("POST", "/api/v1/checks/s/l/nope/run"),
            ("POST", "/api/v1/checks/s/l/nope/pause"),
            ("GET", "/api/v1/checks/s/l/nope/history"),
            ("POST", "/api/v1/subjects/nope/ack"),
            ("DELETE", "/api/v1/subjects/s/l/c/ack"),  # a known subject with no ack
        ]:
            status, body, _ = await api.call(method, path, OPERATOR, json={})
            assert_error(status, body, 404)
        status, body, response = await api.call("GET", "/api/v1/checks/s/l/c/run", OPERATOR)
        assert_error(status, body, 405)
        assert response.headers["Allow"] == "POST"
        assert api.controls == []


async def test_an_unforeseen_failure_is_a_500_that_tells_nothing(tmp_path, caplog):
    """A route added by another module: its bug says nothing of its message to the client or
    the log, and a handler that declared no role needs an operator."""

    @requires(Role.VIEWER)
    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError(SECRET_IN_A_BUG)

    async def undeclared(request: web.Request) -> web.Response:
        return web.json_response({"checks": len(request.app[MONITOR].scheduler.checks)})

    def attach(app: web.Application, _monitor: Monitor, _config: ApiConfig) -> None:
        app.router.add_get("/broken", broken)
        app.router.add_get("/undeclared", undeclared)

    caplog.set_level(logging.DEBUG)
    async with served(
        tmp_path, tcp_check("c", closed_port()), attachments=(*ATTACHMENTS, attach)
    ) as api:
        status, body, _ = await api.call("GET", "/broken", VIEWER)
        assert_error(status, body, 500, "internal error")
        assert SECRET_IN_A_BUG not in json.dumps(body)
        status, body, _ = await api.call("GET", "/undeclared", VIEWER)
        assert_error(status, body, 403)
        status, body, _ = await api.call("GET", "/undeclared", OPERATOR)
        assert (status, body) == (200, {"checks": 1})
    logged = "\n".join(
        logging.Formatter().format(record) + str(record.args) for record in caplog.records
    )
    assert "RuntimeError (message withheld)" in logged
    assert SECRET_IN_A_BUG not in logged
    assert VIEWER not in logged and OPERATOR not in logged


async def test_readyz_is_503_until_the_engine_runs(tmp_path):
    async with served(tmp_path, tcp_check("c", closed_port()), run_engine=False) as api:
        status, body, _ = await api.call("GET", "/readyz", VIEWER)
        assert (status, body) == (503, {"status": "not ready"})
        status, body, _ = await api.call("POST", "/api/v1/checks/s/l/c/run", OPERATOR)
        assert_error(status, body, 503, "not running")
        engine = asyncio.create_task(api.monitor.run())
        await asyncio.wait_for(api.monitor.ready.wait(), 20)
        status, body, _ = await api.call("GET", "/readyz", VIEWER)
        assert (status, body) == (200, {"status": "ready"})
        api.monitor.stop()
        await asyncio.wait_for(engine, 20)
        status, _, _ = await api.call("GET", "/readyz", VIEWER)
        assert status == 503


async def test_run_now_pause_and_resume_reach_the_scheduler(tmp_path):
    peer = Counting()
    port = await peer.start()
    try:
        async with served(tmp_path, tcp_check("c", port)) as api:
            await peer.reach(1)  # the first run; the next is an hour away
            status, body, _ = await api.call("POST", "/api/v1/checks/s/l/c/run", OPERATOR)
            assert (status, body) == (202, {"check_id": "s/l/c", "queued": True})
            await peer.reach(2)
            status, body, _ = await api.call("POST", "/api/v1/checks/s/l/c/pause", OPERATOR)
            assert (status, body) == (200, {"check_id": "s/l/c", "paused": True})
            assert api.monitor.scheduler.is_paused("s/l/c")
            status, body, _ = await api.call("POST", "/api/v1/checks/s/l/c/run", OPERATOR)
            assert_error(status, body, 409, "paused")
            # Pausing twice changes nothing and tells nobody twice.
            await api.call("POST", "/api/v1/checks/s/l/c/pause", OPERATOR)
            assert api.controls == [PauseChange("s/l/c", paused=True)]
            assert peer.count == 2
            status, body, _ = await api.call("POST", "/api/v1/checks/s/l/c/resume", OPERATOR)
            assert (status, body) == (200, {"check_id": "s/l/c", "paused": False})
            await peer.reach(3)  # resuming runs it at once
            assert api.controls == [
                PauseChange("s/l/c", paused=True),
                PauseChange("s/l/c", paused=False),
            ]
    finally:
        await peer.close()


async def test_an_acknowledgement_ends_when_its_subject_recovers(tmp_path):
    port = closed_port()
    peer = Counting()
    async with served(tmp_path, tcp_check("c", port)) as api:
        await wait_for(lambda: api.monitor.subject_of("s/l") is not None and link_is(api, "DOWN"))
        status, body, _ = await api.call(
            "POST",
            "/api/v1/subjects/s/l/ack",
            OPERATOR,
            json={"comment": "carrier\x1b[31m ticket 4711", "expires": "4h"},
        )
        assert status == 201, body
        assert body["subject_id"] == "s/l" and body["subject"] == "link"
        assert body["comment"] == "carrier\\x1b[31m ticket 4711"
        assert body["by"] == "noc-shift"  # the operator token's name
        at = dt.datetime.fromisoformat(body["at"])
        expires = dt.datetime.fromisoformat(body["expires"])
        assert abs((expires - at).total_seconds() - 4 * 3600) < 1
        assert api.monitor.acks.get("s/l") is not None
        [placed] = api.controls
        assert isinstance(placed, AckChange) and placed.ack is not None
        # The subject recovers: its confirmed state changes, and the acknowledgement ends.
        await peer.start(port)
        try:
            await api.call("POST", "/api/v1/checks/s/l/c/run", OPERATOR)
            await wait_for(lambda: len(api.controls) == 2)
        finally:
            await peer.close()
        ended = api.controls[1]
        assert isinstance(ended, AckChange) and ended.ack is None and ended.ended is not None
        assert ended.ended[1] is AckEnd.STATE_CHANGED and link_is(api, "UP")
        assert api.monitor.acks.get("s/l") is None
        # Nothing is wrong now: nothing to acknowledge.
        status, body, _ = await api.call(
            "POST", "/api/v1/subjects/s/l/ack", OPERATOR, json={"comment": "x", "expires": "1h"}
        )
        assert_error(status, body, 409, "no problem to acknowledge")


async def test_an_acknowledgement_expires_or_is_withdrawn(tmp_path):
    async with served(tmp_path, tcp_check("c", closed_port())) as api:
        await wait_for(lambda: "s/l/c" in api.monitor.state.checks)
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)).isoformat()
        status, body, _ = await api.call(
            "POST",
            "/api/v1/subjects/s/l/c/ack",
            OPERATOR,
            json={"comment": "short", "expires": soon},
        )
        assert status == 201, body
        await wait_for(lambda: len(api.controls) == 2)
        assert api.controls[1].ended is not None and api.controls[1].ended[1] is AckEnd.EXPIRED
        status, body, _ = await api.call(
            "POST",
            "/api/v1/subjects/s/l/c/ack",
            OPERATOR,
            json={"comment": "longer", "expires": "1d"},
        )
        assert status == 201
        status, body, _ = await api.call("DELETE", "/api/v1/subjects/s/l/c/ack", OPERATOR)
        assert (status, body) == (204, None)
        assert api.controls[-1].ended is not None
        assert api.controls[-1].ended[1] is AckEnd.WITHDRAWN
        assert api.monitor.acks.get("s/l/c") is None


async def test_a_control_is_answered_once_stored_and_202_while_the_history_stalls(
    tmp_path, monkeypatch
):
    """201 (or 200, 204) means the history holds it: it outlives a restart. A history whose
    disk stalls (here: another connection holding the database's write lock) gets 202 Accepted:
    in force now, stored when the history catches up."""
    monkeypatch.setattr(control, "STORE_WAIT", 0.5)
    ack = "/api/v1/subjects/s/l/c/ack"
    body = {"comment": "on it", "expires": "1h"}
    async with served(tmp_path, tcp_check("c", closed_port()), history=True) as api:
        # Confirmed CRIT first: the confirmation would end an acknowledgement made before it.
        await wait_for(lambda: confirmed(api, "s/l/c") is Severity.CRIT)
        status, answer, _ = await api.call("POST", ack, OPERATOR, json=body)
        assert status == 201, answer
        assert stored_acks(tmp_path) == ["s/l/c"]  # stored before the answer
        with stalled(tmp_path / "history.sqlite3"):
            status, answer, _ = await api.call("DELETE", ack, OPERATOR)
            assert (status, answer) == (202, {"subject_id": "s/l/c", "withdrawn": True})
            assert api.monitor.acks.get("s/l/c") is None  # in force at once
            status, answer, _ = await api.call("POST", "/api/v1/checks/s/l/c/pause", OPERATOR)
            assert (status, answer) == (202, {"check_id": "s/l/c", "paused": True})
        await wait_for(lambda: stored_acks(tmp_path) == [])  # caught up
        status, answer, _ = await api.call("POST", "/api/v1/checks/s/l/c/resume", OPERATOR)
        assert (status, answer) == (200, {"check_id": "s/l/c", "paused": False})


def confirmed(api: Served, check_id: str) -> object:
    state = api.monitor.state.checks.get(check_id)
    return None if state is None else state.hard


def stored_acks(tmp_path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(tmp_path / "history.sqlite3")) as db:
        return [row[0] for row in db.execute("SELECT subject_id FROM acks ORDER BY subject_id")]


async def test_history_of_a_check(tmp_path):
    peer = Counting()
    port = await peer.start()
    try:
        async with served(tmp_path, tcp_check("c", port), history=True) as api:
            for runs in (2, 3):
                await peer.reach(runs - 1)
                await api.call("POST", "/api/v1/checks/s/l/c/run", OPERATOR)
            await peer.reach(3)

            async def stored() -> list[dict[str, Any]]:
                status, body, _ = await api.call("GET", "/api/v1/checks/s/l/c/history", VIEWER)
                assert status == 200 and body["check_id"] == "s/l/c"
                return body["results"]

            async with asyncio.timeout(20):
                while len(results := await stored()) < 3:
                    await asyncio.sleep(0.1)
            assert [r["severity"] for r in results] == ["OK"] * 3
            assert results == sorted(results, key=lambda r: r["started_at"])  # newest last
            assert results[0]["check_id"] == "s/l/c" and results[0]["kind"] == "tcp"
            status, body, _ = await api.call("GET", "/api/v1/checks/s/l/c/history?limit=2", VIEWER)
            assert body["results"] == results[1:]
            status, body, _ = await api.call("GET", "/api/v1/checks/s/l/c/history?since=1h", VIEWER)
            assert len(body["results"]) == 3
            future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
            status, body, _ = await api.call(
                "GET", "/api/v1/checks/s/l/c/history", VIEWER, params={"since": future}
            )
            assert (status, body["results"]) == (200, [])
            for query, says in [("limit=0", "limit"), ("limit=x", "limit"), ("since=x", "since")]:
                status, body, _ = await api.call(
                    "GET", f"/api/v1/checks/s/l/c/history?{query}", VIEWER
                )
                assert_error(status, body, 400, says)
    finally:
        await peer.close()


async def test_history_is_503_without_a_store(tmp_path):
    async with served(tmp_path, tcp_check("c", closed_port())) as api:
        status, body, _ = await api.call("GET", "/api/v1/checks/s/l/c/history", VIEWER)
        assert_error(status, body, 503, "without history")


async def test_tls_from_certificate_files_verified_by_the_client(tmp_path):
    ca = make_ca("commwatch API test CA")
    cert, key = make_leaf(ca, ["127.0.0.1"]).write(tmp_path, "api")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    config = ApiConfig(listen=LOOPBACK, tokens=TOKENS, tls=TlsFiles(cert, key))
    async with served(
        tmp_path, tcp_check("c", closed_port()), config=config, ssl_context=client
    ) as api:
        assert api.server.url.startswith("https://127.0.0.1:")
        status, body, _ = await api.call("GET", "/readyz", VIEWER)
        assert (status, body) == (200, {"status": "ready"})
        # A client that does not trust the CA refuses the listener; plain HTTP gets nowhere.
        async with aiohttp.ClientSession() as untrusting:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await untrusting.get(api.server.url + "/healthz")
            with pytest.raises(aiohttp.ClientError):
                plain = api.server.url.replace("https://", "http://")
                await untrusting.get(plain + "/healthz")


async def test_an_unusable_certificate_is_a_start_error(tmp_path):
    (tmp_path / "bad.crt").write_text("not a certificate")
    (tmp_path / "bad.key").write_text("not a key")
    inventory = load_inventory(inventory_file(tmp_path, tcp_check("c", closed_port())))
    monitor = Monitor(inventory, inventory.checks, on_result=print, on_event=print)
    config = ApiConfig(listen=LOOPBACK, tls=TlsFiles(tmp_path / "bad.crt", tmp_path / "bad.key"))
    with pytest.raises(ApiStartError, match="must be PEM"):
        await ApiServer(monitor, config).start()


async def test_no_listening_beyond_loopback_without_tls_and_tokens(tmp_path):
    """Refused before anything is bound: 0.0.0.0 is only ever the argument refused."""
    inventory = load_inventory(inventory_file(tmp_path, tcp_check("c", closed_port())))
    monitor = Monitor(inventory, inventory.checks, on_result=print, on_event=print)
    port = closed_port()
    for config in (
        ApiConfig(listen=Listen("0.0.0.0", port)),
        ApiConfig(listen=Listen("0.0.0.0", port), tokens=TOKENS),
        ApiConfig(listen=Listen("::", port), tls=TlsFiles(Path("x.crt"), Path("x.key"))),
    ):
        server = ApiServer(monitor, config)
        with pytest.raises(ApiStartError, match=r"refusing to listen on .* beyond loopback"):
            await server.start()
        assert server.port is None
        # Had it bound 0.0.0.0, loopback would answer on that port.
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_a_token_that_cannot_be_read_is_a_start_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CW_TEST_OPERATOR")
    inventory = load_inventory(inventory_file(tmp_path, tcp_check("c", closed_port())))
    monitor = Monitor(inventory, inventory.checks, on_result=print, on_event=print)
    with pytest.raises(ApiStartError, match="CW_TEST_OPERATOR is not set") as refused:
        await ApiServer(monitor, replace(ApiConfig(), listen=LOOPBACK, tokens=TOKENS)).start()
    assert VIEWER not in str(refused.value)


def link_is(api: Served, status: str) -> bool:
    return api.monitor.state.links.get("s/l") == status


async def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_watchers_see_every_item_with_history_off_too(tmp_path):
    """Monitor.watch's promise holds without a store: every result and event the sinks see,
    in their order (the API's stream and acknowledgements rest on it)."""
    sinks: list[object] = []
    watched: list[object] = []
    inventory = load_inventory(inventory_file(tmp_path, tcp_check("c", closed_port())))
    monitor = Monitor(
        inventory,
        inventory.checks,
        on_result=sinks.append,
        on_event=sinks.append,
        history=False,
        alerts=False,
        start_spread=0,
    )
    monitor.watch(lambda item, _state: watched.append(item))
    engine = asyncio.create_task(monitor.run())
    await wait_for(lambda: len(sinks) >= 4)  # a result; the check's, link's and site's change
    monitor.stop()
    await asyncio.wait_for(engine, 20)
    assert watched == sinks


async def test_pauses_and_acknowledgements_reach_the_event_stream_and_the_document(tmp_path):
    """Through the whole served app: what an operator does, a viewer sees, in order."""
    from tests.sse_reader import open_stream

    async with served(tmp_path, tcp_check("c", closed_port())) as api:
        await wait_for(lambda: link_is(api, "DOWN"))
        stream = await open_stream(
            api.session, api.server.url + "/api/v1/events", {"Authorization": f"Bearer {VIEWER}"}
        )
        try:
            assert (await api.call("POST", "/api/v1/checks/s/l/c/pause", OPERATOR))[0] == 200
            status, placed, _ = await api.call(
                "POST", "/api/v1/subjects/s/l/ack", OPERATOR, json={"comment": "t", "expires": "1h"}
            )
            assert status == 201
            assert (await api.call("DELETE", "/api/v1/subjects/s/l/ack", OPERATOR))[0] == 204
            seen = []
            async with asyncio.timeout(20):
                while len(seen) < 3:
                    message = await stream.next()
                    assert message is not None
                    if message.event in ("pause", "ack"):
                        seen.append((message.event, message.json(), message.seq))
        finally:
            stream.close()
        assert [(event, data) for event, data, _ in seen] == [
            ("pause", {"check_id": "s/l/c", "paused": True}),
            ("ack", {"subject_id": "s/l", "ack": placed}),
            ("ack", {"subject_id": "s/l", "ack": None}),
        ]
        assert [seq for _, _, seq in seen] == sorted(seq for _, _, seq in seen)
        status, document, _ = await api.call("GET", "/api/v1/state", VIEWER)
        assert status == 200 and document["acks"] == []
        assert [c["paused"] for c in document["checks"] if c["check_id"] == "s/l/c"] == [True]
        status, placed, _ = await api.call(
            "POST", "/api/v1/subjects/s/l/ack", OPERATOR, json={"comment": "u", "expires": "1h"}
        )
        _, document, _ = await api.call("GET", "/api/v1/state", VIEWER)
        assert document["acks"] == [placed]
