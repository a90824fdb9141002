"""`commwatch web --connect`: a real headless Chromium (Debian's) opens the served dashboard of a
real engine; the test reads what the browser's terminal shows over the DevTools protocol and
keeps a screenshot.

textual-serve draws with xterm.js on a canvas (WebGL, else 2D), so the page's DOM holds no
row text: the test reads xterm's own buffer (its public API, `buffer.active.getLine`). A
script run before the page's catches the terminal object as textual-serve's client stores it
(the one place this leans on textual-serve's inside: its `fitAddon` property; a rename fails
here, loudly). The browser reaches loopback only: every other name resolves to nothing and any
other request goes to a closed local proxy (the page asks for a web font from the internet).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from monitor.cli.commands.web import tab_command
from monitor.cli.parser import build_parser
from tests.viewer_support import (
    LOOPBACK,
    OPERATOR_ENV,
    TOKENS,
    CountingPeer,
    commwatch,
    environment,
    free_port,
    running_engine,
)

CHROMIUM = "/usr/bin/chromium"
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "fitAddon", {
  configurable: true,
  set(value) {
    window.__commwatchTerminal = this;
    Object.defineProperty(this, "fitAddon", {value, writable: true, enumerable: true});
  },
});
"""
READ_SCREEN = """(() => {
  const client = window.__commwatchTerminal;
  if (!client || !client.terminal) return "";
  const terminal = client.terminal, buffer = terminal.buffer.active, lines = [];
  for (let i = 0; i < terminal.rows; i++) {
    const line = buffer.getLine(buffer.viewportY + i);
    if (line) lines.push(line.translateToString(true));
  }
  return lines.join("\\n");
})()"""


class DevTools:
    """Commands over one page's DevTools websocket; events are read and let go."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._next = 0

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        await self._socket.send_json({"id": ident, "method": method, "params": params})
        async for message in self._socket:
            reply = json.loads(message.data)
            if reply.get("id") == ident:
                assert "error" not in reply, reply
                return reply["result"]  # type: ignore[no-any-return]
        raise AssertionError("the browser closed its DevTools connection")


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[DevTools]:
    dead_proxy = free_port()  # nothing listens there
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'chromium'}",
        f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOOPBACK}",
        f"--proxy-server=http://{LOOPBACK}:{dead_proxy}",
        "--window-size=1280,900",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        port = None
        async with asyncio.timeout(30):
            while port is None:
                line = (await process.stderr.readline()).decode()
                assert line, "chromium ended before it listened"
                found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                port = found and int(found.group(1))
        drain = asyncio.create_task(process.stderr.read())  # never let its pipe fill
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{LOOPBACK}:{port}/json/list") as answer:
                pages = [t for t in await answer.json() if t["type"] == "page"]
            async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield DevTools(ws)
        drain.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def screen_until(devtools: DevTools, words: tuple[str, ...], timeout: float = 40) -> str:
    screen = ""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not all(word in screen for word in words):
                await asyncio.sleep(0.25)
                reply = await devtools.send(
                    "Runtime.evaluate", expression=READ_SCREEN, returnByValue=True
                )
                screen = reply["result"].get("value", "")
    assert all(word in screen for word in words), screen
    return screen


async def test_a_browser_tab_shows_the_engines_sites_and_severities(tmp_path):
    up, down = CountingPeer(), CountingPeer()
    await up.start()
    web_port = free_port()
    try:
        async with running_engine(tmp_path, {"fibre": up, "lte": down}) as engine:
            web = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "monitor.cli",
                "web",
                "--connect",
                str(engine.url),
                "--token-env",
                OPERATOR_ENV,
                "--listen",
                f"{LOOPBACK}:{web_port}",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=environment(),
            )
            try:
                async with aiohttp.ClientSession() as session:
                    async with asyncio.timeout(20):
                        while True:
                            with contextlib.suppress(aiohttp.ClientError):
                                async with session.get(f"http://{LOOPBACK}:{web_port}/") as page:
                                    if page.status == 200:
                                        break
                            await asyncio.sleep(0.2)
                async with chromium(tmp_path) as devtools:
                    await devtools.send("Page.enable")
                    await devtools.send(
                        "Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINAL
                    )
                    await devtools.send("Page.navigate", url=f"http://{LOOPBACK}:{web_port}/")
                    screen = await screen_until(
                        devtools,
                        ("North PSAP", "fibre", "lte", "✔ OK", "✖ CRIT", "1 ✔ OK · 1 ✖ CRIT"),
                    )
                    assert "refused" in screen  # the CRIT check's reason, as the engine has it
                    shot = await devtools.send("Page.captureScreenshot", format="png")
                    png = base64.b64decode(shot["data"])
                    (tmp_path / "web.png").write_bytes(png)
                    assert png.startswith(b"\x89PNG") and len(png) > 10_000
                    # The page names what it serves (the DOM's text; the rows are on the canvas).
                    dom = await devtools.send(
                        "Runtime.evaluate",
                        expression="document.body.textContent",
                        returnByValue=True,
                    )
                    assert f"commwatch · {engine.url}" in dom["result"]["value"]
                    html = await devtools.send(
                        "Runtime.evaluate",
                        expression="document.documentElement.outerHTML",
                        returnByValue=True,
                    )
                    assert TOKENS[OPERATOR_ENV] not in html["result"]["value"] + screen
                assert up.accepted == 1  # the tab's viewer probed nothing
            finally:
                web.terminate()
                await asyncio.wait_for(web.wait(), 10)
    finally:
        await up.stop()


async def test_without_textual_serve_it_says_the_command_that_installs_it(tmp_path):
    blocker = tmp_path / "blocked"
    (blocker / "textual_serve").mkdir(parents=True)
    (blocker / "textual_serve" / "__init__.py").write_text("raise ImportError('not installed')\n")
    code, out, err = await commwatch(
        "web",
        "--connect",
        f"http://{LOOPBACK}:9",
        env={**environment(), "PYTHONPATH": str(blocker)},
    )
    assert code == 3
    assert err == "commwatch web needs textual-serve: pip install 'commwatch[web]'\n"
    assert out == ""


async def test_it_listens_beyond_loopback_only_when_told():
    code, _, err = await commwatch(
        "web", "--connect", f"http://{LOOPBACK}:9", "--listen", "0.0.0.0:8110"
    )
    assert code == 3
    assert "0.0.0.0 is not a loopback address" in err and "--allow-remote" in err


def test_each_tab_shows_the_selection_it_was_given():
    selection = ["--site", "psap", "--only", "psap/lte/*", "--tag", "radio"]
    args = build_parser().parse_args(
        ["web", "--connect", "http://127.0.0.1:9", "--token-env", "NOC_TOKEN", *selection]
    )
    words = shlex.split(tab_command(args, "http://127.0.0.1:9"))
    assert words[words.index("tui") :] == [
        "tui",
        "--connect",
        "http://127.0.0.1:9",
        "--token-env",
        "NOC_TOKEN",
        "--only",
        "psap/lte/*",
        "--site",
        "psap",
        "--tag",
        "radio",
    ]
