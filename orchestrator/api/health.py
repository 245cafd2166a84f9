"""Liveness, readiness (database and Redis) and Prometheus metrics."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.prometheus import PrometheusController
from sqlalchemy import text


class HealthStatus(msgspec.Struct, kw_only=True):
    status: str
    database: str | None = None
    redis: str | None = None


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
        summary="Database and Redis answer",
        responses={503: ResponseSpec(HealthStatus, description="A dependency is down")},
    )
    async def ready(self, state: State) -> Response[HealthStatus]:
        database = redis = "ok"
        try:
            async with state.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # readiness reports any failure, whatever its kind
            database = f"down: {type(exc).__name__}"
        try:
            await state.redis.ping()
        except Exception as exc:  # as above
            redis = f"down: {type(exc).__name__}"
        ok = database == "ok" and redis == "ok"
        return Response(
            HealthStatus(status="ok" if ok else "unavailable", database=database, redis=redis),
            status_code=200 if ok else 503,
        )


class MetricsController(PrometheusController):
    path = "/metrics"
    openmetrics_format = False
    include_in_schema = False
