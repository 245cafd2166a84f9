"""Liveness, readiness and Prometheus metrics.

Readiness answers "can this replica serve the API?": the database, within a bound, whatever
state the database is in. Redis is reported but does not make a replica unready: the API does
not need it to serve (only the worker does), and pulling every healthy replica out of a load
balancer because Redis is down would turn a degraded event feed into an outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.prometheus import PrometheusController
from sqlalchemy import text

# Each check gets this long; together (they run at once) readiness answers within it.
CHECK_SECONDS = 1.5
# A check that outlives its bound keeps running in the background until its own timeouts end it;
# held here so it is not garbage-collected mid-flight.
_lingering: set[asyncio.Task[None]] = set()


class HealthStatus(msgspec.Struct, kw_only=True):
    status: str
    database: str | None = None
    redis: str | None = None


async def _check(probe: Awaitable[object]) -> str:
    """``ok`` or ``down: <why>``, within CHECK_SECONDS whatever the probe does (a hung server never
    answers, and cancelling a driver mid-call waits on the same server to clean up)."""

    async def run() -> None:
        await probe

    task = asyncio.ensure_future(run())
    done, _ = await asyncio.wait({task}, timeout=CHECK_SECONDS)
    if not done:
        _lingering.add(task)
        task.add_done_callback(lambda t: (_lingering.discard(t), t.cancelled() or t.exception()))
        return f"down: no answer within {CHECK_SECONDS:g} s"
    exc = task.exception()
    return "ok" if exc is None else f"down: {type(exc).__name__}"


async def _select_one(state: State) -> None:
    async with state.db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    # Public (auth.PUBLIC_PATHS): an empty requirement overrides the document's global bearer one.
    security = [{}]

    @get("/live", operation_id="live", summary="The process is up")
    async def live(self) -> HealthStatus:
        return HealthStatus(status="ok")

    @get(
        "/ready",
        operation_id="ready",
        summary="The API can serve: the database answers (Redis is reported, not required)",
        responses={503: ResponseSpec(HealthStatus, description="The database is down or does not answer")},
    )
    async def ready(self, state: State) -> Response[HealthStatus]:
        database, redis = await asyncio.gather(_check(_select_one(state)), _check(state.redis.ping()))
        ok = database == "ok"
        return Response(
            HealthStatus(status="ok" if ok else "unavailable", database=database, redis=redis),
            status_code=200 if ok else 503,
        )


class MetricsController(PrometheusController):
    path = "/metrics"
    openmetrics_format = False
    include_in_schema = False
