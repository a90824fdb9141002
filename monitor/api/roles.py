"""Who may call what: every route of the API names the least role it needs.

A route without a declared role needs the strictest (operator): forgetting to declare one can
only make an endpoint harder to reach, never open it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

_ROLE_ATTRIBUTE = "__commwatch_role__"


class Role(enum.IntEnum):
    """Ordered: a token of a role may do what every lower role may."""

    PUBLIC = 0  # no token at all: liveness only
    VIEWER = 1  # read state, events, history, metrics
    OPERATOR = 2  # and act: run now, pause, acknowledge


def requires(role: Role) -> Callable[[H], H]:
    """Declare the least role a handler needs."""

    def declare(handler: H) -> H:
        setattr(handler, _ROLE_ATTRIBUTE, role)
        return handler

    return declare


def required_role(handler: Callable[..., object]) -> Role:
    """The role `handler` declared; operator when it declared none."""
    role = getattr(handler, _ROLE_ATTRIBUTE, Role.OPERATOR)
    return role if isinstance(role, Role) else Role.OPERATOR
