"""Bearer API keys → an Actor on every request; guards say which roles an operation admits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from orchestrator.domain.access import Actor, Role
from orchestrator.services.api_keys import KeyResolver

# Paths served without a key: health probes, metrics scrapes, the API's own documentation.
PUBLIC_PATHS = ("/health", "/metrics", "/schema")
PUBLIC_PATTERNS = [f"^{p}(/|$)" for p in PUBLIC_PATHS]


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("send an API key as 'Authorization: Bearer <key>'")
        resolver: KeyResolver = connection.app.state.key_resolver
        actor = await resolver.resolve(token.strip())
        if actor is None:
            raise NotAuthorizedException("unknown or revoked API key")
        return AuthenticationResult(user=actor, auth=token)


def allow(*roles: Role) -> Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]:
    names = {r.value for r in roles}

    # async: litestar runs a synchronous guard in a worker thread, a thread hop per request.
    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            # The key middleware lets OPTIONS through unauthenticated (CORS preflight); litestar's
            # generated OPTIONS handler still inherits a controller's guards, and there is no actor.
            return
        actor: Actor = connection.user
        if actor.kind not in names:
            raise PermissionDeniedException(f"a {actor.kind} key may not do this; allowed: {', '.join(sorted(names))}")

    return guard


ADMIN = allow(Role.ADMIN)
ANY_KEY = allow(Role.ADMIN, Role.CHANNEL, Role.STAFF)
CHANNELS = allow(Role.ADMIN, Role.CHANNEL)
STAFF = allow(Role.ADMIN, Role.STAFF)
