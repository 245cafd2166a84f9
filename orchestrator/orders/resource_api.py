"""``POST /v1/orders/{id}/re-source``: try again to place the units no location could take."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, post
from litestar.params import FromPath

from orchestrator.orders.api import order_response
from orchestrator.orders.re_sourcing import re_source
from orchestrator.orders.views import OrderView, view_of
from orchestrator.platform.auth import CHANNEL_WRITES
from orchestrator.platform.db import committing
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep
from orchestrator.platform.problems import problems


class ReSourceController(Controller):
    path = "/v1/orders"
    tags = ["orders"]

    @post(
        "/{order_id:uuid}/re-source",
        operation_id="reSourceOrder",
        summary="Source the order's unsourced units again, now that stock arrived",
        description=(
            "A pickup's units go into its pickup store (from its own shelf, by transfer for what it "
            "lacks); a shipment's come from wherever holds them. All or nothing: 409 "
            "`insufficient-stock` when some are still short (nothing changes), 409 `nothing-to-source` "
            "when no unit waits. Clears `action_required` or `needs_attention` once everything is "
            "sourced; the timeline says `order.resourced` with trigger `re_source`. Admin, or a key of "
            "the order's own channel."
        ),
        guards=[CHANNEL_WRITES],
        status_code=200,
        responses=problems(401, 403, 404, 409),
    )
    async def re_source(
        self, order_id: FromPath[uuid.UUID], actor: ActorDep, db: DB, clock: ClockDep
    ) -> Response[OrderView]:
        # Another order taking the units between plan and lock (``StockMoved``) is retried.
        aggregate = await db.run(committing(lambda uow: re_source(uow, order_id, actor, clock)))
        return order_response(view_of(aggregate, clock.now()))
