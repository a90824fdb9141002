"""The lab's HTTP(S) services: healthy, slow and intermittently failing front ends.

One aiohttp runner per behaviour, with a site per address (and per TLS context): every lab
service that speaks HTTP shares the few handlers below.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl

from aiohttp import web

from monitor.lab.layout import Behaviour, PortTaken

HEALTHY_BODY = "status: ok\n"
SLOW_SECONDS = 1.2  # above the LTE link's latency_warn (1 s), below its latency_crit (4 s)
FAIL_EVERY = 3  # the flaky service fails every 3rd request: deterministic, visible in 3 polls


def _app(behaviour: Behaviour) -> web.Application:
    requests = itertools.count(1)

    async def answer(request: web.Request) -> web.Response:
        if behaviour is Behaviour.HTTP_SLOW:
            await asyncio.sleep(SLOW_SECONDS)
        if behaviour is Behaviour.HTTP_FLAKY and next(requests) % FAIL_EVERY == 0:
            return web.Response(status=503, text="status: paging queue stalled\n")
        return web.Response(text=HEALTHY_BODY)

    app = web.Application()
    app.router.add_get("/{path:.*}", answer)
    return app


class HttpPeers:
    """Runners for HTTP behaviours; `add` a site per (address, port, TLS context) first."""

    def __init__(self) -> None:
        self._runners: dict[Behaviour, web.AppRunner] = {}
        self._sites: list[tuple[Behaviour, str, int, ssl.SSLContext | None]] = []

    def add(
        self, behaviour: Behaviour, address: str, port: int, context: ssl.SSLContext | None = None
    ) -> None:
        self._sites.append((behaviour, address, port, context))

    async def start(self) -> None:
        """Raises PortTaken when an address and port is in use."""
        for behaviour, address, port, context in self._sites:
            # Every TLS case serves healthy HTTP: only the certificate differs.
            app_behaviour = Behaviour.HTTP_HEALTHY if context is not None else behaviour
            runner = self._runners.get(app_behaviour)
            if runner is None:
                runner = web.AppRunner(_app(app_behaviour), access_log=None, shutdown_timeout=1)
                await runner.setup()
                self._runners[app_behaviour] = runner
            try:
                await web.TCPSite(runner, address, port, ssl_context=context).start()
            except OSError as exc:
                raise PortTaken(address, port, exc) from exc

    async def stop(self) -> None:
        for runner in self._runners.values():
            await runner.cleanup()
        self._runners.clear()
