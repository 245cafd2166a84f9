"""Store staff work their queue: accept, pick, mark ready, hand over, pack, ship."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from orchestrator.api.auth import ANY_KEY, STAFF
from orchestrator.api.dependencies import DB, ActorDep, ClockDep, LifecycleDep, parse_if_match
from orchestrator.api.problems import problems
from orchestrator.db.engine import Database
from orchestrator.domain.access import Actor
from orchestrator.domain.fulfillment import Action
from orchestrator.services import fulfillment as steps
from orchestrator.services.clock import Clock
from orchestrator.services.fulfillment import LifecycleSettings
from orchestrator.services.fulfillment_queries import fulfillment_queue, get_fulfillment
from orchestrator.services.views import FulfillmentView, Page

FulfillmentId = FromPath[uuid.UUID]
IfMatch = Annotated[
    str | None, HeaderParameter(name="If-Match", required=False, description="the fulfillment's ETag/version")
]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
TRANSITION_PROBLEMS = problems(400, 401, 403, 404, 409, 412, 422)


class RejectIn(msgspec.Struct, kw_only=True):
    reason: Reason


class CancelIn(msgspec.Struct, kw_only=True):
    reason: Reason = "cancelled by the store"


class PickLine(msgspec.Struct, kw_only=True):
    line_id: uuid.UUID
    quantity: Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class PickIn(msgspec.Struct, kw_only=True):
    lines: Annotated[list[PickLine], msgspec.Meta(min_length=1, max_length=200)]


class ShipIn(msgspec.Struct, kw_only=True):
    carrier: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    tracking_number: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]


class HandoverLine(msgspec.Struct, kw_only=True):
    line_id: uuid.UUID
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class HandoverIn(msgspec.Struct, kw_only=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=20)] | None = None
    override_reason: Reason | None = None
    lines: Annotated[list[HandoverLine], msgspec.Meta(min_length=1, max_length=200)] | None = None


class FulfillmentPage(Page, kw_only=True):
    items: list[FulfillmentView]


class FulfillmentReadController(Controller):
    """Any key reads a fulfillment (staff: their stores' only); only staff and admins act on it."""

    path = "/v1/fulfillments"
    tags = ["fulfillment"]

    @get(
        "/{fulfillment_id:uuid}",
        operation_id="getFulfillment",
        summary="One fulfillment order",
        guards=[ANY_KEY],
        responses=problems(401, 403, 404),
    )
    async def get(self, fulfillment_id: FulfillmentId, actor: ActorDep, db: DB) -> FulfillmentView:
        return await get_fulfillment(db, fulfillment_id, actor)


class FulfillmentController(Controller):
    path = "/v1/fulfillments"
    tags = ["fulfillment"]
    guards = [STAFF]

    async def _act(
        self,
        fulfillment_id: uuid.UUID,
        action: Action,
        actor: Actor,
        db: Database,
        clock: Clock,
        settings: LifecycleSettings,
        apply: steps.Apply | None,
        if_match: str | None,
    ) -> FulfillmentView:
        return await steps.transition(
            db, fulfillment_id, action, actor, clock, settings, apply, expected_version=parse_if_match(if_match)
        )

    @post(
        "/{fulfillment_id:uuid}/accept",
        operation_id="acceptFulfillment",
        summary="Accept",
        status_code=200,
        responses=TRANSITION_PROBLEMS,
    )
    async def accept(
        self,
        fulfillment_id: FulfillmentId,
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
    ) -> FulfillmentView:
        return await self._act(fulfillment_id, Action.ACCEPT, actor, db, clock, lifecycle, steps.accept, if_match)

    @post(
        "/{fulfillment_id:uuid}/reject",
        operation_id="rejectFulfillment",
        summary="Reject; the open quantity is sourced elsewhere",
        status_code=200,
        responses=TRANSITION_PROBLEMS,
    )
    async def reject(
        self,
        fulfillment_id: FulfillmentId,
        data: JSONBody[RejectIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
    ) -> FulfillmentView:
        return await self._act(
            fulfillment_id, Action.REJECT, actor, db, clock, lifecycle, steps.reject_with(data.reason), if_match
        )

    @post(
        "/{fulfillment_id:uuid}/start-picking",
        operation_id="startPicking",
        summary="Start picking",
        status_code=200,
        responses=TRANSITION_PROBLEMS,
    )
    async def start_picking(
        self,
        fulfillment_id: FulfillmentId,
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
    ) -> FulfillmentView:
        return await self._act(
            fulfillment_id, Action.START_PICKING, actor, db, clock, lifecycle, steps.start_picking, if_match
        )

    @post(
        "/{fulfillment_id:uuid}/pick",
        operation_id="pickLines",
        summary="Record picked quantities; fewer than needed is a short pick, re-sourced elsewhere",
        status_code=200,
        responses=TRANSITION_PROBLEMS,
    )
    async def pick(
        self,
        fulfillment_id: FulfillmentId,
        data: JSONBody[PickIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
    ) -> FulfillmentView:
        picks = {line.line_id: line.quantity for line in data.lines}
        return await self._act(
            fulfillment_id, Action.PICK, actor, db, clock, lifecycle, steps.pick_lines(picks), if_match
        )

    @post(
        "/{fulfillment_id:uuid}/ready",
        operation_id="markReadyForPickup",
        summary="Ready for pickup: a pickup code goes to the customer",
        status_code=200,
        responses=TRANSITION_PROBLEMS,
    )
    async def ready(
        self,
        fulfillment_id: FulfillmentId,
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
    ) -> FulfillmentView:
        return await self._act(fulfillment_id, Action.READY, actor, db, clock, lifecycle, steps.mark_ready, if_match)

    @post(
        "/{fulfillment_id:uuid}/pack",
        operation_id="packFulfillment",
        summary="Packed for shipping",
        status_code=200,
        responses=TRANSITION_PROBLEMS,
    )
    async def pack(
        self,
        fulfillment_id: FulfillmentId,
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
    ) -> FulfillmentView:
        return await self._act(fulfillment_id, Action.PACK, actor, db, clock, lifecycle, steps.pack, if_match)

    @post(
        "/{fulfillment_id:uuid}/ship",
        operation_id="shipFulfillment",
        summary="Shipped with a carrier",
        status_code=200,
        responses=TRANSITION_PROBLEMS,
    )
    async def ship(
        self,
        fulfillment_id: FulfillmentId,
        data: JSONBody[ShipIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
    ) -> FulfillmentView:
        return await self._act(
            fulfillment_id,
            Action.SHIP,
            actor,
            db,
            clock,
            lifecycle,
            steps.ship_with(data.carrier, data.tracking_number),
            if_match,
        )

    @post(
        "/{fulfillment_id:uuid}/deliver",
        operation_id="deliverFulfillment",
        summary="Delivered (a transfer: received at the pickup store)",
        status_code=200,
        responses=TRANSITION_PROBLEMS,
    )
    async def deliver(
        self,
        fulfillment_id: FulfillmentId,
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
    ) -> FulfillmentView:
        return await self._act(fulfillment_id, Action.DELIVER, actor, db, clock, lifecycle, steps.deliver, if_match)

    @post(
        "/{fulfillment_id:uuid}/handover",
        operation_id="handOver",
        summary="Hand over to the customer against the pickup code (or a recorded override)",
        status_code=200,
        responses={**TRANSITION_PROBLEMS, **problems(423)},
    )
    async def handover(
        self,
        fulfillment_id: FulfillmentId,
        data: JSONBody[HandoverIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
    ) -> FulfillmentView:
        units = {line.line_id: line.quantity for line in data.lines} if data.lines else None
        return await self._act(
            fulfillment_id,
            Action.HANDOVER,
            actor,
            db,
            clock,
            lifecycle,
            steps.hand_over(data.code, data.override_reason, units),
            if_match,
        )

    @post(
        "/{fulfillment_id:uuid}/cancel",
        operation_id="cancelFulfillment",
        summary="Cancel what this location still holds for the order",
        status_code=200,
        responses=TRANSITION_PROBLEMS,
    )
    async def cancel(
        self,
        fulfillment_id: FulfillmentId,
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
        data: JSONBody[CancelIn | None] = None,
    ) -> FulfillmentView:
        reason = data.reason if data else "cancelled by the store"
        return await self._act(
            fulfillment_id, Action.CANCEL, actor, db, clock, lifecycle, steps.cancel_with(reason), if_match
        )


class LocationQueueController(Controller):
    path = "/v1/locations/{code:str}/fulfillments"
    tags = ["fulfillment"]

    @get(
        "/",
        operation_id="fulfillmentQueue",
        summary="A location's fulfillments by urgency: arrived customers, then pickup deadlines, oldest first",
        guards=[STAFF],
        responses=problems(400, 401, 403, 404, 422),
    )
    async def queue(
        self,
        code: FromPath[str],
        actor: ActorDep,
        db: DB,
        status: Annotated[str | None, QueryParameter(description="comma-separated states; default: open ones")] = None,
        cursor: Annotated[int | None, QueryParameter(ge=0)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> FulfillmentPage:
        items, next_cursor = await fulfillment_queue(db, code, actor, status=status, offset=cursor or 0, limit=limit)
        return FulfillmentPage(items=items, next_cursor=next_cursor)
