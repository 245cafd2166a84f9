"""Sourcing: profiles per channel, the decisions behind an order, and what-if simulation."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, get, post, put
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, JSONBody, PathParameter

from orchestrator.order_record.states import Method
from orchestrator.platform.auth import ADMIN, CHANNELS, READ_ORDERS
from orchestrator.platform.db import committing
from orchestrator.platform.geo import Coordinates
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep
from orchestrator.platform.problems import problems
from orchestrator.sourcing import decisions as sourcing_decisions
from orchestrator.sourcing import profiles as sourcing_admin
from orchestrator.sourcing.decisions import DecisionView
from orchestrator.sourcing.model import LineDemand, SourcingRequest
from orchestrator.sourcing.profiles import ProfileView, SimulationView
from orchestrator.sourcing.schemas import ProfileIn, SimulateIn


class SourcingProfileController(Controller):
    path = "/v1/sourcing-profiles"
    tags = ["sourcing"]

    @get(
        "/{channel:str}",
        operation_id="getSourcingProfile",
        summary="The channel's current sourcing profile (version 0: the defaults)",
        guards=[CHANNELS],
        responses=problems(401, 403),
    )
    async def get_profile(self, channel: FromPath[str], actor: ActorDep, db: DB) -> ProfileView:
        if not actor.is_admin and actor.channel != channel:
            raise PermissionDeniedException("a channel key reads only its own profile")
        return await db.run(lambda uow: sourcing_admin.get_profile(uow, channel))

    @put(
        "/{channel:str}",
        operation_id="putSourcingProfile",
        summary="Change the channel's sourcing rules; each change is a new version",
        guards=[ADMIN],
        responses=problems(400, 401, 403, 422),
    )
    async def put_profile(
        self,
        channel: Annotated[str, PathParameter(max_length=80)],
        data: JSONBody[ProfileIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
    ) -> ProfileView:
        fields, now = msgspec.structs.asdict(data), clock.now()
        # A concurrent change that drew the same version (``ProfileVersionTaken``) is retried.
        return await db.run(
            committing(lambda uow: sourcing_admin.put_profile(uow, channel, fields, actor, now)), attempts=3
        )


class SourcingController(Controller):
    path = "/v1"
    tags = ["sourcing"]

    @get(
        "/orders/{order_id:uuid}/sourcing",
        operation_id="getOrderSourcing",
        summary="Why these locations: every sourcing decision for the order, newest first",
        guards=[READ_ORDERS],
        responses=problems(401, 403, 404),
    )
    async def decisions(self, order_id: FromPath[uuid.UUID], actor: ActorDep, db: DB) -> list[DecisionView]:
        return await db.run(lambda uow: sourcing_decisions.decisions(uow, order_id, actor))

    @post(
        "/sourcing/simulate",
        operation_id="simulateSourcing",
        summary="What would happen: the engine over a hypothetical order, nothing reserved",
        guards=[ADMIN],
        status_code=200,
        responses=problems(400, 401, 403, 422),
    )
    async def simulate(self, data: JSONBody[SimulateIn], db: DB, clock: ClockDep) -> SimulationView:
        destination = Coordinates(data.lat, data.lon) if data.lat is not None and data.lon is not None else None
        request = SourcingRequest(
            lines=tuple(LineDemand(str(i + 1), ln.sku, ln.quantity, ln.unit_price) for i, ln in enumerate(data.lines)),
            method=Method(data.method),
            pickup_location=data.location,
            destination=destination,
            excluded=frozenset(data.exclude),
        )
        now = clock.now()
        return await db.run(lambda uow: sourcing_admin.simulate(uow, request, data.channel, now))
