"""Who may ask what: bearer tokens by role, and the middleware that holds every route to the
role its handler declares (`monitor.api.roles`).

Tokens are read once, when the server starts, and kept only as SHA-256 digests: a request's
token is hashed and compared with each of them in constant time (`hmac.compare_digest` on
digests of equal length, every entry compared), so neither the timing nor a memory dump
tells which characters were right. No token is ever logged, echoed or put in an error.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from monitor.api.keys import CALLER, PUBLIC, Caller
from monitor.api.roles import Role, required_role
from monitor.config.api import TokenConfig, TokenRole, read_token

ROLE_OF_TOKEN = {TokenRole.VIEWER: Role.VIEWER, TokenRole.OPERATOR: Role.OPERATOR}
REALM = 'Bearer realm="commwatch"'


class Tokens:
    """The tokens that open the API, each with the role and name it carries."""

    def __init__(self, entries: Sequence[tuple[str, Caller]] = ()) -> None:
        self._entries = tuple((_digest(token.encode()), caller) for token, caller in entries)

    @classmethod
    def read(cls, configs: Sequence[TokenConfig]) -> Tokens:
        """Each configured token's value, read now; OptionError (naming the reference, never
        the value) when one cannot be read."""
        return cls([(read_token(c.secret), Caller(ROLE_OF_TOKEN[c.role], c.name)) for c in configs])

    def __bool__(self) -> bool:
        return bool(self._entries)

    def caller(self, presented: bytes) -> Caller | None:
        digest = _digest(presented)
        found = None
        for known, caller in self._entries:
            # Every entry is compared, whichever matched: the time taken says nothing.
            if hmac.compare_digest(known, digest) and found is None:
                found = caller
        return found


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def presented_token(request: web.Request) -> bytes | None:
    """The token of an `Authorization: Bearer TOKEN` header (the scheme in any case), or None."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token.encode("utf-8", "surrogateescape")


def unauthorized(message: str, error: str | None = None) -> web.HTTPUnauthorized:
    challenge = REALM if error is None else f'{REALM}, error="{error}"'
    return web.HTTPUnauthorized(text=message, headers={"WWW-Authenticate": challenge})


def auth_middleware(tokens: Tokens) -> Middleware:
    """Refuse a request whose token does not carry the role the matched handler requires:
    401 without a token or with a wrong one, 403 with one of too low a role. A path that
    matches no route needs a viewer, so that without a token no one learns which exist."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        needed = Role.VIEWER if match.http_exception is not None else required_role(match.handler)
        presented = presented_token(request)
        caller = None if presented is None else tokens.caller(presented)
        if needed > Role.PUBLIC:
            if caller is None:
                if presented is None:
                    raise unauthorized("this needs a bearer token (Authorization: Bearer TOKEN)")
                raise unauthorized("the token is not valid", "invalid_token")
            if caller.role < needed:
                article = "an" if needed is Role.OPERATOR else "a"
                raise web.HTTPForbidden(
                    text=f"this needs {article} {needed.name.lower()} token",
                    headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'},
                )
        request[CALLER] = caller or PUBLIC
        return await handler(request)

    return authenticate
