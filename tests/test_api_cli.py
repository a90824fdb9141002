"""`commwatch run --listen`: the real command serving its engine, asked over HTTP on loopback,
its output and log read whole for the tokens afterwards."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import REPO
from tests.peers.tcp_peers import closed_port

VIEWER = "cli-viewer-token-5e1f0a9b7c3d"
OPERATOR = "cli-operator-token-8a2c6e4f1b9d"


def write_inventory(tmp_path: Path, port: int, api: str = "") -> Path:
    (tmp_path / "operator.token").write_text(OPERATOR + "\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n  - id: s\n    links:\n      - id: l\n        checks:\n"
        f"          - {{id: c, kind: tcp, target: '127.0.0.1:{port}', interval: 1h, "
        "timeout: 2s, retries: 1}\n"
        "api:\n  tokens:\n    - {role: viewer, token_env: CW_CLI_VIEWER}\n"
        "    - {role: operator, token_file: operator.token}\n" + api
    )
    return path


def commwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor.cli", *args]


ENV = {**os.environ, "CW_CLI_VIEWER": VIEWER, "COMMWATCH_LOG": "DEBUG", "NO_COLOR": "1"}


class Running:
    def __init__(self, process: asyncio.subprocess.Process, url: str, stderr: list[str]):
        self.process = process
        self.url = url
        self.stderr = stderr


@pytest.fixture
async def running(tmp_path) -> AsyncIterator[Running]:
    inventory = write_inventory(tmp_path, closed_port())
    process = await asyncio.create_subprocess_exec(
        *commwatch("run", str(inventory), "--no-history", "--listen", "127.0.0.1:0"),
        cwd=REPO,
        env=ENV,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    url = None
    async with asyncio.timeout(30):
        while url is None:
            line = (await process.stderr.readline()).decode()
            assert line, "".join(lines)
            lines.append(line)
            found = re.search(r"serving the engine on (http://127\.0\.0\.1:\d+)$", line.strip())
            url = found.group(1) if found else None
    try:
        yield Running(process, url, lines)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_served_run_answers_by_role_and_never_shows_a_token(running):
    async with aiohttp.ClientSession() as session:

        async def status(method: str, path: str, token: str | None = None) -> int:
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            async with session.request(method, running.url + path, headers=headers) as answer:
                text = await answer.text()
                assert VIEWER not in text and OPERATOR not in text
                assert VIEWER not in str(answer.headers) and OPERATOR not in str(answer.headers)
                assert answer.content_type == "application/json"
                return answer.status

        assert await status("GET", "/healthz") == 200
        assert await status("GET", "/readyz") == 401
        async with asyncio.timeout(20):
            while await status("GET", "/readyz", VIEWER) != 200:
                await asyncio.sleep(0.05)
        assert await status("GET", "/readyz", OPERATOR + "x") == 401
        assert await status("POST", "/api/v1/checks/s/l/c/run", VIEWER) == 403
        assert await status("POST", "/api/v1/checks/s/l/c/run", OPERATOR) == 202
        assert await status("POST", "/api/v1/checks/s/l/nope/run", OPERATOR) == 404
    # A request aiohttp's parser refuses, the token in it: the refusal must not quote it.
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(f"GET /readyz HTTP/1.1\r\nAuthorization: Bearer {VIEWER}\x01\r\n\r\n".encode())
        answer = raw.recv(65536).decode(errors="replace")
    assert re.match(r"HTTP/1\.[01] 400 ", answer) and VIEWER not in answer
    assert answer.endswith('{"error": {"status": 400, "message": "Bad Request"}}')
    running.process.send_signal(signal.SIGTERM)
    stdout, stderr = await asyncio.wait_for(running.process.communicate(), 30)
    assert running.process.returncode == 0
    output = stdout.decode() + "".join(running.stderr) + stderr.decode()
    assert '"GET /readyz HTTP/1.1" 401' in output  # the access log was on, at DEBUG
    assert '"POST /api/v1/checks/s/l/c/run HTTP/1.1" 202' in output
    assert '"check_id":"s/l/c"' in stdout.decode()  # and the run's own lines went on
    assert VIEWER not in output and OPERATOR not in output


def test_it_refuses_to_listen_beyond_loopback_without_tls_before_running_anything(tmp_path):
    """0.0.0.0 is only the refused argument: nothing binds, nothing probes."""
    port = closed_port()
    inventory = write_inventory(tmp_path, closed_port())
    done = subprocess.run(
        commwatch("run", str(inventory), "--listen", f"0.0.0.0:{port}"),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert f"refusing to listen on 0.0.0.0:{port}, beyond loopback, without TLS" in done.stderr
    assert "--allow-insecure-remote" in done.stderr and "nothing was run" in done.stderr
    assert done.stdout == ""
    assert VIEWER not in done.stderr and OPERATOR not in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--once", "--listen", "127.0.0.1:0"], "--listen is for a continuous run: drop --once"),
        (["--listen", "localhost:9110"], "'localhost' is not an IP address"),
        (["--listen", "127.0.0.1"], "has no port"),
    ],
)
def test_listen_flag_misuse_is_a_usage_error(tmp_path, args, says):
    inventory = write_inventory(tmp_path, closed_port())
    done = subprocess.run(
        commwatch("run", str(inventory), *args),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert says in done.stderr and done.stdout == ""


def test_an_unreadable_token_in_the_api_section_is_placed(tmp_path):
    inventory = write_inventory(tmp_path, closed_port())
    done = subprocess.run(
        commwatch("run", str(inventory), "--listen", "127.0.0.1:0"),
        cwd=REPO,
        env={k: v for k, v in ENV.items() if k != "CW_CLI_VIEWER"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert f"{inventory}:9:33: 'token_env': environment variable CW_CLI_VIEWER" in done.stderr
