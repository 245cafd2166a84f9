"""Bearer API keys → an Actor on every request; guards say which roles an operation admits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Receive, Send
from litestar.types import Scope as AsgiScope

from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.api_keys import KeyResolver
from orchestrator.platform.db import database_unavailable
from orchestrator.platform.problems import on_database_unavailable, on_http_error
from orchestrator.platform.scopes import Scope

# Paths served without a key: health probes, metrics scrapes, the API's own documentation, and
# guest tracking (its lookup is rate-limited; its token is the credential).
PUBLIC_PATHS = ("/health", "/metrics", "/schema", "/v1/public")
PUBLIC_PATTERNS = [f"^{p}(/|$)" for p in PUBLIC_PATHS]


class NotAuthenticated(Exception):
    """Who is calling could not be established: no key, an unknown one, or the database did not
    answer the lookup (``cause``)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except NotAuthenticated as failed:
            # Answered here: raised on, the error would pass the access log and the metrics
            # middleware (which wrap this one) unanswered and reach only litestar's outermost
            # handler; the client got its 401 or 503, the access log said 500 and the metrics 200.
            request: Request = Request(scope, receive)
            cause = failed.cause
            if isinstance(cause, HTTPException):
                response = on_http_error(request, cause)
            else:
                response = on_database_unavailable(request, cause)
            await response.to_asgi_response(app=None, request=request)(scope, receive, send)

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        try:
            return await self.key_of(connection)
        except NotAuthorizedException as exc:
            raise NotAuthenticated(exc) from exc
        except Exception as exc:
            if database_unavailable(exc):
                raise NotAuthenticated(exc) from exc
            raise

    async def key_of(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("send an API key as 'Authorization: Bearer <key>'")
        resolver: KeyResolver = connection.app.state.key_resolver
        actor = await resolver.resolve(token.strip())
        if actor is None:
            raise NotAuthorizedException("unknown or revoked API key")
        return AuthenticationResult(user=actor, auth=token)


Guard = Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]


def allow(*roles: Role, scope: Scope | None = None) -> Guard:
    """Admits keys of ``roles`` holding ``scope``: a key lacking the scope is 403 naming it, a key of
    another role 403 naming the roles. What the key may *reach* (its channel's orders, its stores)
    is the use case's to check, answering 404 as for an unknown resource."""
    names = {r.value for r in roles}

    # async: litestar runs a synchronous guard in a worker thread, a thread hop per request.
    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            # The key middleware lets OPTIONS through unauthenticated (CORS preflight); litestar's
            # generated OPTIONS handler still inherits a controller's guards, and there is no actor.
            return
        actor: Actor = connection.user
        if scope is not None and not actor.has(scope):
            raise PermissionDeniedException(f"this {actor.kind} key lacks the scope {scope.value}")
        if actor.kind not in names:
            raise PermissionDeniedException(f"a {actor.kind} key may not do this; allowed: {', '.join(sorted(names))}")

    return guard


_EVERY_ROLE = (Role.ADMIN, Role.CHANNEL, Role.STAFF)

ADMIN = allow(Role.ADMIN, scope=Scope.ADMIN)
ANY_KEY = allow(*_EVERY_ROLE)
CHANNELS = allow(Role.ADMIN, Role.CHANNEL)
# By scope: what most operations need.
READ_ORDERS = allow(*_EVERY_ROLE, scope=Scope.ORDERS_READ)
WRITE_ORDERS = allow(*_EVERY_ROLE, scope=Scope.ORDERS_WRITE)
# A channel's own writes: placing, cancelling, paying, refunding, check-in, re-sending a code.
CHANNEL_WRITES = allow(Role.ADMIN, Role.CHANNEL, scope=Scope.ORDERS_WRITE)
READ_CUSTOMERS = allow(*_EVERY_ROLE, scope=Scope.CUSTOMERS_READ)
WRITE_CUSTOMERS = allow(*_EVERY_ROLE, scope=Scope.CUSTOMERS_WRITE)
FULFIL = allow(Role.ADMIN, Role.STAFF, scope=Scope.FULFILLMENT)
WRITE_INVENTORY = allow(Role.ADMIN, Role.STAFF, scope=Scope.INVENTORY_WRITE)
# Webhook subscriptions: an admin's, or a channel's own (they carry what the key may read).
SUBSCRIBERS = allow(Role.ADMIN, Role.CHANNEL, scope=Scope.ORDERS_READ)
