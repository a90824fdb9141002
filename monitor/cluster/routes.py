"""A central's part in the cluster, over its API: `GET /api/v1/cluster` (viewer role), and the
same document under `"cluster"` in the bodies of `/healthz` and `/readyz`:

    {"central": "noc-a", "consumer": "central-noc-a", "role": "leader", "leader": "noc-a",
     "fencing_token": 42, "lease_ttl": 10.0, "changes": 1}

`role` is `leader` (it delivers the notifications), `follower` (it would take the lease over)
or `observer` (it runs no alerting, so never takes the lease); `leader` the central holding the
lease as this one last saw it (null: none, or NATS could not be asked), with its
`fencing_token`; `changes` how often leadership changed as this central saw it.
"""

from __future__ import annotations

from aiohttp import web

from monitor.api.keys import HEALTH_DETAILS
from monitor.api.roles import Role, requires
from monitor.api.server import Attach
from monitor.cluster.lease import Lease
from monitor.config.api import ApiConfig
from monitor.engine.pipeline import Monitor

PATH = "/api/v1/cluster"


def cluster_document(lease: Lease, consumer: str) -> dict[str, object]:
    figures = lease.figures()
    return {
        "central": figures.central,
        "consumer": consumer,
        "role": str(figures.role),
        "leader": figures.holder,
        "fencing_token": figures.token if figures.holder is not None else None,
        "lease_ttl": figures.ttl,
        "changes": figures.changes,
    }


def cluster_routes(lease: Lease, consumer: str) -> Attach:
    """The routes of a central's lease (`consumer`: its durable consumer's name), for
    `ApiServer(attachments=...)`."""

    @requires(Role.VIEWER)
    async def cluster(_request: web.Request) -> web.Response:
        return web.json_response(cluster_document(lease, consumer))

    def attach(app: web.Application, _monitor: Monitor, _config: ApiConfig) -> None:
        app.router.add_get(PATH, cluster)
        app[HEALTH_DETAILS] = lambda: {"cluster": cluster_document(lease, consumer)}

    return attach
