"""What the API's modules keep in the application and in each request: the engine served, its
configuration, and who is asking. Every module of routes reads them through these keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from monitor.api.roles import Role
from monitor.config.api import ApiConfig
from monitor.engine.pipeline import Monitor

MONITOR = web.AppKey("commwatch.monitor", Monitor)
CONFIG = web.AppKey("commwatch.api_config", ApiConfig)
# More for the bodies of /healthz and /readyz, asked at each request (a central: its part in
# the cluster, monitor.cluster.routes).
HealthDetails = Callable[[], Mapping[str, object]]
HEALTH_DETAILS: web.AppKey[HealthDetails] = web.AppKey("commwatch.health_details")


class Caller:
    """Whoever a request's token says it is: a role, and the token's name (the `by` of what
    they do). Public requests carry no token."""

    __slots__ = ("name", "role")

    def __init__(self, role: Role, name: str) -> None:
        self.role = role
        self.name = name

    def __repr__(self) -> str:
        return f"Caller({self.role.name}, {self.name!r})"


PUBLIC = Caller(Role.PUBLIC, "")
CALLER = web.RequestKey("commwatch.caller", Caller)
