"""The counter lookup over HTTP: a store's staff find another store's order (``fulfillment/counter.py``).

Here rather than beside the use case: it answers with the order's view, which the orders layer builds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, Response, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import JSONBody
from msgspec import Meta
from redis.asyncio import Redis

from orchestrator.fulfillment import counter
from orchestrator.fulfillment.dependencies import LifecycleDep
from orchestrator.order_record.aggregate import load_order
from orchestrator.orders.queries import paid_views
from orchestrator.orders.views import OrderView
from orchestrator.platform.actors import Actor
from orchestrator.platform.auth import FULFIL
from orchestrator.platform.db import UnitOfWork, committing
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep, SettingsDep, etag
from orchestrator.platform.http.lookup_limits import counted
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import Code, RequestBody

LIMIT = counter.LookupLimit()


class PickupLookupIn(RequestBody, kw_only=True):
    number: Annotated[str, Meta(max_length=40, description="the order number, as the customer reads it out")]
    verify: (
        Annotated[str, Meta(max_length=320, description="the customer's email or phone, or their pickup code")] | None
    ) = None
    # The counter's store; needed when the key serves several.
    location: Code | None = None


def _redis(state: State) -> Redis:
    return state.redis


async def _look_up(
    uow: UnitOfWork, actor: Actor, lookup: counter.Lookup, secret: str, phone_region: str, now: datetime
) -> OrderView:
    order_id = await counter.look_up(uow, actor, lookup, secret=secret, phone_region=phone_region, now=now)
    # Read through the grant just recorded: what the key may now see is what it is shown.
    aggregate = await load_order(uow.session, order_id, actor, granted_at=now)
    return (await paid_views(uow.session, [aggregate], now))[0]


class PickupLookupController(Controller):
    path = "/v1/pickup-lookup"
    tags = ["fulfillment"]
    dependencies = {"redis": Provide(_redis, sync_to_thread=False)}

    @post(
        "/",
        operation_id="lookUpPickup",
        summary="Find another store's order at the counter by its number and the customer's verifier",
        description=(
            "For a store's staff key. `verify` is the customer's email, phone (any spelling) or "
            "current pickup code. The order is answered with its `id` and `version`, and for 15 "
            "minutes this key may read it (`GET /v1/orders/{id}` and its events) and move its pickup "
            "to the counter's store. An unknown number and a missing or wrong verifier are the same "
            "404. At most 10 lookups per minute per key (failures count): 429 with `Retry-After`."
        ),
        guards=[FULFIL],
        status_code=200,
        responses=problems(400, 401, 403, 404, 413, 415, 422, 429, 503),
    )
    async def look_up(
        self,
        data: JSONBody[PickupLookupIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
        lifecycle: LifecycleDep,
        redis: NamedDependency[Redis],
    ) -> Response[OrderView]:
        # Admins pass the guard so that their bodies are validated like everywhere else, but a
        # lookup is a store's: an admin has no counter and reads every order directly.
        if not actor.is_staff or actor.key_id is None:
            raise PermissionDeniedException("a counter lookup is made with a store's staff key")
        now = clock.now()
        key_id = actor.key_id
        await counted(lambda: LIMIT.count(redis, key_id, now))
        lookup = counter.Lookup(data.number, data.verify, data.location)
        secret, region = lifecycle.secret, settings.default_phone_region
        view = await db.run(committing(lambda uow: _look_up(uow, actor, lookup, secret, region, now)))
        return Response(view, status_code=200, headers={"ETag": etag(view.version)})
