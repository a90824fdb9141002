"""What an agent serves with `commwatch agent --listen`: `/healthz` for a supervisor and
`/metrics` for Prometheus, on the API's listener and by its rules (monitor.api.server: no
listening beyond loopback without TLS and tokens, errors as JSON, every route held to its role).

`/healthz` needs no token, as the engine's: 200 while the agent probes, with whether its
results reach NATS (`connected`) or go to the spool (`spooling`) and how many wait there; 503
once it stops probing. `/metrics` needs a viewer token (the api: section's tokens), as the
engine's does: the agent's families (monitor.cluster.metrics), its scheduler's and its
process's, as prometheus-client encodes them, in the format the scraper asks for.
"""

from __future__ import annotations

import time

from aiohttp import hdrs, web
from prometheus_client import ProcessCollector
from prometheus_client.exposition import choose_encoder

from monitor.api.auth import Tokens
from monitor.api.exposition import Families
from monitor.api.metric_families import build_info, scheduler_families
from monitor.api.roles import Role, requires
from monitor.api.server import secured_app
from monitor.cluster.agent import Agent
from monitor.cluster.metrics import agent_families
from monitor.config.api import ApiConfig

AGENT = web.AppKey("commwatch.agent", Agent)
PROCESS = web.AppKey("commwatch.agent_process", ProcessCollector)


def agent_app(agent: Agent, config: ApiConfig, tokens: Tokens) -> web.Application:
    """The agent's application (a `monitor.api.server.AppMaker` with `agent` and `config`)."""
    app = secured_app(config, tokens)
    app[AGENT] = agent
    app[PROCESS] = ProcessCollector(registry=None)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


@requires(Role.PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    figures = agent.figures()
    body = {
        "status": "ok" if agent.probing else "stopping",
        "agent": agent.name,
        "nats": "connected" if figures.connected else "spooling",
        "spooled": figures.spooled,
        "dropped": figures.dropped,
    }
    return web.json_response(body, status=200 if agent.probing else 503)


def exposition(agent: Agent, process: ProcessCollector, encoder_of: str) -> tuple[bytes, str]:
    """The agent's exposition now, in the format `encoder_of` (an Accept header) asks for.
    A few dozen lines: encoded on the event loop."""
    encoder, content_type = choose_encoder(encoder_of)
    spool = agent.spool
    families = [
        build_info(),
        *agent_families(agent.figures(), spool.figures(), spool.max_bytes, time.time()),
        *scheduler_families(agent.scheduler.figures()),
    ]
    return encoder(Families(families, (process,))), content_type


@requires(Role.VIEWER)
async def metrics(request: web.Request) -> web.Response:
    accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
    body, content_type = exposition(request.app[AGENT], request.app[PROCESS], accept)
    response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
    response.enable_compression()  # when the scraper accepts it; Prometheus does
    return response
