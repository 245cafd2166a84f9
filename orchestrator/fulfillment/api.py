"""Store staff work their queue: accept, pick, mark ready, hand over, pack, ship."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Literal, TypeAlias

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from orchestrator.fulfillment.dependencies import LifecycleDep
from orchestrator.fulfillment.queue import fulfillment_queue, get_fulfillment
from orchestrator.fulfillment.requests import (
    Accept,
    Cancel,
    CounterTender,
    Deliver,
    HandOver,
    MarkReady,
    Pack,
    Pick,
    Reject,
    Ship,
    StartPicking,
    TransitionRequest,
)
from orchestrator.fulfillment.service import LifecycleSettings, resend_pickup_code, transition
from orchestrator.fulfillment.views import FulfillmentView
from orchestrator.platform.actors import Actor
from orchestrator.platform.auth import CHANNEL_WRITES, FULFIL, READ_ORDERS
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, committing
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep, parse_if_match
from orchestrator.platform.http.idempotent_posts import idempotency_key_header, post_claim
from orchestrator.platform.idempotency import IdempotencyClaim
from orchestrator.platform.pagination import PageResponse
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import RequestBody, if_match_header

FulfillmentId = FromPath[uuid.UUID]
IfMatch = Annotated[str | None, if_match_header("the fulfillment's ETag/version")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
TRANSITION_PROBLEMS = problems(400, 401, 403, 404, 409, 412, 422)


class RejectIn(RequestBody, kw_only=True):
    reason: Reason


class CancelIn(RequestBody, kw_only=True):
    reason: Reason = "cancelled by the store"


class PickLine(RequestBody, kw_only=True):
    line_id: uuid.UUID
    quantity: Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class PickIn(RequestBody, kw_only=True):
    lines: Annotated[list[PickLine], msgspec.Meta(min_length=1, max_length=200)]


class ShipIn(RequestBody, kw_only=True):
    carrier: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    tracking_number: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]


class HandoverLine(RequestBody, kw_only=True):
    line_id: uuid.UUID
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class TenderIn(RequestBody, kw_only=True):
    """Paid at the counter: required for a pay-in-store order or one whose card authorisation
    ended; the amount due is in the 422 ``tender-required`` problem."""

    amount: Annotated[int, msgspec.Meta(ge=0, le=10**15)]  # minor units of the order's currency
    method: Literal["cash", "card", "other"]
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None


class HandoverIn(RequestBody, kw_only=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=20)] | None = None
    override_reason: Reason | None = None
    lines: Annotated[list[HandoverLine], msgspec.Meta(min_length=1, max_length=200)] | None = None
    tender: TenderIn | None = None


HandoverKey = idempotency_key_header(
    "A retry with the same key answers the first answer: goods and tender go once", required=False
)


class PickupCodeOut(msgspec.Struct, kw_only=True):
    code: str


class FulfillmentPage(PageResponse, kw_only=True):
    items: list[FulfillmentView]


class FulfillmentReadController(Controller):
    """Any key reads a fulfillment (staff: their stores' only); the ordering channel may have its
    pickup code re-sent. Only staff and admins act on it (``FulfillmentController``)."""

    path = "/v1/fulfillments"
    tags = ["fulfillment"]

    @get(
        "/{fulfillment_id:uuid}",
        operation_id="getFulfillment",
        summary="One fulfillment order",
        guards=[READ_ORDERS],
        responses=problems(401, 403, 404),
    )
    async def get(self, fulfillment_id: FulfillmentId, actor: ActorDep, db: DB) -> FulfillmentView:
        return await get_fulfillment(db, fulfillment_id, actor)

    @post(
        "/{fulfillment_id:uuid}/resend-code",
        operation_id="resendPickupCode",
        summary="The pickup code again, for the channel that placed the order to pass on",
        description="Only while ready for pickup. The order's timeline records that it was re-sent.",
        guards=[CHANNEL_WRITES],
        status_code=200,
        responses=problems(401, 403, 404, 409),
    )
    async def resend_code(
        self, fulfillment_id: FulfillmentId, actor: ActorDep, db: DB, clock: ClockDep, lifecycle: LifecycleDep
    ) -> PickupCodeOut:
        code = await db.run(committing(lambda uow: resend_pickup_code(uow, fulfillment_id, actor, clock, lifecycle)))
        return PickupCodeOut(code=code)


@dataclass(frozen=True)
class Transitions:
    """A transition as the request's actor, with the app's database, clock and lifecycle rules."""

    actor: Actor
    db: Database
    clock: Clock
    settings: LifecycleSettings

    async def __call__(
        self,
        fulfillment_id: uuid.UUID,
        request: TransitionRequest,
        if_match: str | None,
        claim: IdempotencyClaim | None = None,
    ) -> FulfillmentView:
        expected = parse_if_match(if_match)
        return await self.db.run(
            committing(
                lambda uow: transition(
                    uow,
                    fulfillment_id,
                    request,
                    self.actor,
                    self.clock,
                    self.settings,
                    expected_version=expected,
                    claim=claim,
                )
            )
        )


def _transitions(request: Request, state: State) -> Transitions:
    return Transitions(request.user, state.db, state.clock, state.lifecycle)


TransitionsDep: TypeAlias = NamedDependency[Transitions]


def transition_route(path: str, operation_id: str, summary: str, *, extra: tuple[int, ...] = ()):  # type: ignore[no-untyped-def]
    return post(
        f"/{{fulfillment_id:uuid}}/{path}",
        operation_id=operation_id,
        summary=summary,
        status_code=200,
        responses={**TRANSITION_PROBLEMS, **problems(*extra)} if extra else TRANSITION_PROBLEMS,
    )


class FulfillmentController(Controller):
    path = "/v1/fulfillments"
    tags = ["fulfillment"]
    guards = [FULFIL]
    dependencies = {"run": Provide(_transitions, sync_to_thread=False)}

    @transition_route("accept", "acceptFulfillment", "Accept")
    async def accept(
        self, fulfillment_id: FulfillmentId, run: TransitionsDep, if_match: IfMatch = None
    ) -> FulfillmentView:
        return await run(fulfillment_id, Accept(), if_match)

    @transition_route("reject", "rejectFulfillment", "Reject; the open quantity is sourced elsewhere")
    async def reject(
        self, fulfillment_id: FulfillmentId, data: JSONBody[RejectIn], run: TransitionsDep, if_match: IfMatch = None
    ) -> FulfillmentView:
        return await run(fulfillment_id, Reject(data.reason), if_match)

    @transition_route("start-picking", "startPicking", "Start picking")
    async def start_picking(
        self, fulfillment_id: FulfillmentId, run: TransitionsDep, if_match: IfMatch = None
    ) -> FulfillmentView:
        return await run(fulfillment_id, StartPicking(), if_match)

    @transition_route(
        "pick", "pickLines", "Record picked quantities; fewer than needed is a short pick, re-sourced elsewhere"
    )
    async def pick(
        self, fulfillment_id: FulfillmentId, data: JSONBody[PickIn], run: TransitionsDep, if_match: IfMatch = None
    ) -> FulfillmentView:
        found = {line.line_id: line.quantity for line in data.lines}
        return await run(fulfillment_id, Pick(found), if_match)

    @transition_route("ready", "markReadyForPickup", "Ready for pickup: a pickup code goes to the customer")
    async def ready(
        self, fulfillment_id: FulfillmentId, run: TransitionsDep, if_match: IfMatch = None
    ) -> FulfillmentView:
        return await run(fulfillment_id, MarkReady(), if_match)

    @transition_route("pack", "packFulfillment", "Packed for shipping")
    async def pack(
        self, fulfillment_id: FulfillmentId, run: TransitionsDep, if_match: IfMatch = None
    ) -> FulfillmentView:
        return await run(fulfillment_id, Pack(), if_match)

    @transition_route("ship", "shipFulfillment", "Shipped with a carrier")
    async def ship(
        self, fulfillment_id: FulfillmentId, data: JSONBody[ShipIn], run: TransitionsDep, if_match: IfMatch = None
    ) -> FulfillmentView:
        return await run(fulfillment_id, Ship(data.carrier, data.tracking_number), if_match)

    @transition_route("deliver", "deliverFulfillment", "Delivered (a transfer: received at the pickup store)")
    async def deliver(
        self, fulfillment_id: FulfillmentId, run: TransitionsDep, if_match: IfMatch = None
    ) -> FulfillmentView:
        return await run(fulfillment_id, Deliver(), if_match)

    @transition_route(
        "handover",
        "handOver",
        "Hand over to the customer against the pickup code (or a recorded override)",
        extra=(423,),
    )
    async def handover(
        self,
        request: Request,
        fulfillment_id: FulfillmentId,
        data: JSONBody[HandoverIn],
        run: TransitionsDep,
        if_match: IfMatch = None,
        idempotency_key: HandoverKey = None,
    ) -> FulfillmentView:
        units = {line.line_id: line.quantity for line in data.lines} if data.lines else None
        t = data.tender
        tender = CounterTender(t.amount, t.method, t.reference) if t is not None else None
        claim = None
        if idempotency_key is not None:
            claim = post_claim(run.actor, idempotency_key, request.url.path, msgspec.to_builtins(data))
        return await run(fulfillment_id, HandOver(data.code, data.override_reason, units, tender), if_match, claim)

    @transition_route("cancel", "cancelFulfillment", "Cancel what this location still holds for the order")
    async def cancel(
        self,
        fulfillment_id: FulfillmentId,
        run: TransitionsDep,
        if_match: IfMatch = None,
        data: JSONBody[CancelIn | None] = None,
    ) -> FulfillmentView:
        reason = data.reason if data else "cancelled by the store"
        return await run(fulfillment_id, Cancel(reason), if_match)


class LocationQueueController(Controller):
    path = "/v1/locations/{code:str}/fulfillments"
    tags = ["fulfillment"]

    @get(
        "/",
        operation_id="fulfillmentQueue",
        summary="A location's fulfillments by urgency: arrived customers, then pickup deadlines, oldest first",
        guards=[FULFIL],
        responses=problems(400, 401, 403, 404, 422),
    )
    async def queue(
        self,
        code: FromPath[str],
        actor: ActorDep,
        db: DB,
        status: Annotated[str | None, QueryParameter(description="comma-separated states; default: open ones")] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> FulfillmentPage:
        page = await fulfillment_queue(db, code, actor, status=status, cursor=cursor, limit=limit)
        return FulfillmentPage(items=page.items, next_cursor=page.next_cursor)
