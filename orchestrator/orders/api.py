"""Orders: intake from every channel, one record read by all of them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from orchestrator.customers.model import CustomerDetails, normalise_phone
from orchestrator.fulfillment.dependencies import LifecycleDep
from orchestrator.fulfillment.views import FulfillmentView
from orchestrator.order_record.states import Method
from orchestrator.order_record.status import OrderStatus
from orchestrator.orders import changes as order_changes
from orchestrator.orders import paid_intake, repayment
from orchestrator.orders import queries as order_queries
from orchestrator.orders.commands import NewLine, NewPayment, PlaceOrder
from orchestrator.orders.schemas import CancelOrder, CreateOrder, PaymentIn
from orchestrator.orders.views import OrderEventView, OrderView, view_of
from orchestrator.payments.dependencies import GatewayDep
from orchestrator.payments.views import PaymentOperationView
from orchestrator.platform import metrics
from orchestrator.platform.actors import Actor
from orchestrator.platform.auth import CHANNEL_WRITES, READ_ORDERS
from orchestrator.platform.db import committing
from orchestrator.platform.errors import InsufficientStock, InvalidRequest
from orchestrator.platform.geo import Coordinates
from orchestrator.platform.http.dependencies import (
    DB,
    ActorDep,
    ClockDep,
    SettingsDep,
    etag,
    parse_if_match,
)
from orchestrator.platform.http.idempotent_posts import idempotency_key_header, keyed_answer, post_claim
from orchestrator.platform.pagination import PageResponse
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import RequestBody, if_match_header

IdempotencyKey = idempotency_key_header("Unique per intended order; a retry with the same key returns the first answer")
IfMatch = Annotated[str | None, if_match_header("ETag (version) the change is based on")]
_TOTALS = frozenset({"shipping_total", "tax_total", "discount_total"})


class OrderPage(PageResponse, kw_only=True):
    items: list[OrderView]


class ArrivalIn(RequestBody, kw_only=True):
    parking_spot: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    vehicle: Annotated[str, msgspec.Meta(max_length=200)] | None = None


def to_command(data: CreateOrder, channel: str) -> PlaceOrder:
    f = data.fulfillment
    address = msgspec.to_builtins(f.address) if f.address else None
    destination = None
    if f.address and f.address.lat is not None and f.address.lon is not None:
        destination = Coordinates(f.address.lat, f.address.lon)
    return PlaceOrder(
        channel=channel,
        channel_order_ref=data.channel_order_ref,
        customer=CustomerDetails(
            data.customer.email,
            data.customer.phone,
            data.customer.name,
            data.customer.loyalty_id,
            data.customer.account,
        ),
        lines=tuple(NewLine(line.sku, line.quantity, line.unit_price) for line in data.lines),
        currency=data.currency,
        method=Method(f.method),
        location=f.location,
        address=address,
        destination=destination,
        shipping_total=data.shipping_total,
        tax_total=data.tax_total,
        discount_total=data.discount_total,
    )


def channel_for(actor: Actor, requested: str | None) -> str:
    if actor.is_admin:
        if not requested:
            raise InvalidRequest("an admin placing an order names its channel", field="channel")
        return requested
    if requested and requested != actor.channel:
        raise PermissionDeniedException(f"this key places orders for channel {actor.channel}")
    return actor.channel or ""


def order_response(view: OrderView, status: int = 200) -> Response[OrderView]:
    return Response(view, status_code=status, headers={"ETag": etag(view.version)})


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["orders"]

    @post(
        "/",
        operation_id="createOrder",
        summary="Place an order from any channel (idempotent)",
        description=(
            "Reserves stock and creates the order in one transaction. The same `Idempotency-Key` "
            "replays the first answer; the same channel and `channel_order_ref` returns the "
            "existing order with 200."
        ),
        guards=[CHANNEL_WRITES],
        status_code=201,
        responses={
            200: ResponseSpec(OrderView, description="The order already existed for this channel reference"),
            **problems(400, 401, 402, 403, 409, 413, 422, 503),
        },
    )
    async def create_order(
        self,
        request: Request,
        data: JSONBody[CreateOrder],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
        lifecycle: LifecycleDep,
        gateway: GatewayDep,
        idempotency_key: IdempotencyKey,
    ) -> Response[OrderView]:
        channel = channel_for(actor, data.channel)
        body: Any = msgspec.to_builtins(data)
        # Totals left at 0 are left out, so a body without them fingerprints as it did before they
        # existed (a retry across the upgrade is the same request), and an explicit 0 as an omitted
        # one; so is an absent payment.
        body = {k: v for k, v in body.items() if not (k in _TOTALS and v == 0) and not (k == "payment" and v is None)}
        claim = post_claim(actor, idempotency_key, "/v1/orders", body)
        cmd = to_command(data, channel)
        intake = paid_intake.Intake.configured(
            settings,
            db=db,
            gateway=gateway,
            actor=actor,
            clock=clock,
            lifecycle=lifecycle,
            claim=claim,
            instance=request.url.path,
        )
        payment = data.payment
        chosen = NewPayment(**msgspec.to_builtins(payment)) if payment is not None else None
        try:
            placed = await paid_intake.place_paid_order(intake, cmd, chosen)
        except InsufficientStock:
            metrics.RESERVATIONS_FAILED.labels(channel=channel).inc()
            raise
        if placed.status >= 400:  # a refused payment, answered (or replayed) as its problem
            return keyed_answer(placed.body, placed.status, replayed=placed.replayed)
        if placed.created and not placed.replayed:
            metrics.ORDERS_CREATED.labels(channel=channel).inc()
        headers = {"ETag": etag(placed.version), "Location": f"/v1/orders/{placed.order_id}"}
        return keyed_answer(placed.body, placed.status, replayed=placed.replayed, headers=headers)

    @get(
        "/",
        operation_id="listOrders",
        summary="Orders from every channel, newest first",
        guards=[READ_ORDERS],
        responses=problems(400, 401, 403, 422),
    )
    async def list_orders(
        self,
        actor: ActorDep,
        db: DB,
        settings: SettingsDep,
        clock: ClockDep,
        customer_email: FromQuery[str | None] = None,
        customer_phone: Annotated[
            str | None, QueryParameter(max_length=40, description="any spelling; matched in E.164")
        ] = None,
        customer_id: FromQuery[uuid.UUID | None] = None,
        channel: FromQuery[str | None] = None,
        status: FromQuery[OrderStatus | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> OrderPage:
        phone = None
        if customer_phone is not None:
            try:
                phone = normalise_phone(customer_phone, settings.default_phone_region)
            except InvalidRequest as exc:
                raise InvalidRequest(exc.detail, field="customer_phone") from None
        flt = order_queries.OrderFilter(
            customer_email,
            channel,
            status.value if status else None,
            cursor,
            limit,
            customer_phone=phone,
            customer_id=customer_id,
        )
        page = await order_queries.list_orders(db, flt, actor, clock.now())
        return OrderPage(items=page.items, next_cursor=page.next_cursor)

    @get(
        "/{order_id:uuid}",
        operation_id="getOrder",
        summary="One order, as every channel sees it",
        guards=[READ_ORDERS],
        responses=problems(401, 403, 404),
    )
    async def get_order(
        self, order_id: FromPath[uuid.UUID], actor: ActorDep, db: DB, clock: ClockDep
    ) -> Response[OrderView]:
        return order_response(await order_queries.get_order(db, order_id, actor, clock.now()))

    @get(
        "/by-number/{number:str}",
        operation_id="getOrderByNumber",
        summary="An order by its short number (as read out by a customer)",
        guards=[READ_ORDERS],
        responses=problems(401, 403, 404),
    )
    async def get_by_number(
        self, number: FromPath[str], actor: ActorDep, db: DB, clock: ClockDep
    ) -> Response[OrderView]:
        return order_response(await order_queries.get_order_by_number(db, number, actor, clock.now()))

    @get(
        "/{order_id:uuid}/events",
        operation_id="getOrderTimeline",
        summary="The order's timeline, oldest first",
        guards=[READ_ORDERS],
        responses=problems(401, 403, 404),
    )
    async def events(
        self, order_id: FromPath[uuid.UUID], actor: ActorDep, db: DB, clock: ClockDep
    ) -> list[OrderEventView]:
        return await order_queries.order_events(db, order_id, actor, clock.now())

    @get(
        "/{order_id:uuid}/payments",
        operation_id="listOrderPayments",
        summary="Every operation on the order's payment, oldest first",
        guards=[READ_ORDERS],
        responses=problems(401, 403, 404),
    )
    async def payments(self, order_id: FromPath[uuid.UUID], actor: ActorDep, db: DB) -> list[PaymentOperationView]:
        return await order_queries.order_payment_operations(db, order_id, actor)

    @post(
        "/{order_id:uuid}/payments",
        operation_id="payOrderAgain",
        summary="Pay what is still due with a new payment (idempotent)",
        description=(
            "When the order has no live payment covering what is due (its authorisation lapsed, was "
            "voided or failed, or 3-D Secure was never finished), a new card or the counter pays the "
            "total less what was captured or tendered. A decline is 402 and leaves the order waiting."
        ),
        guards=[CHANNEL_WRITES],
        status_code=201,
        responses=problems(400, 401, 402, 403, 404, 409, 413, 422, 503),
    )
    async def pay_again(
        self,
        request: Request,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[PaymentIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
        lifecycle: LifecycleDep,
        gateway: GatewayDep,
        idempotency_key: IdempotencyKey,
    ) -> Response[OrderView]:
        claim = post_claim(actor, idempotency_key, f"/v1/orders/{order_id}/payments", msgspec.to_builtins(data))
        flow = paid_intake.Intake.configured(
            settings,
            db=db,
            gateway=gateway,
            actor=actor,
            clock=clock,
            lifecycle=lifecycle,
            claim=claim,
            instance=request.url.path,
        )
        paid = await repayment.repay(flow, order_id, NewPayment(**msgspec.to_builtins(data)))
        if paid.status >= 400:
            return keyed_answer(paid.body, paid.status, replayed=paid.replayed)
        return keyed_answer(paid.body, paid.status, replayed=paid.replayed, headers={"ETag": etag(paid.version)})

    @post(
        "/{order_id:uuid}/cancel",
        operation_id="cancelOrder",
        summary="Cancel what is not yet with the customer; releases stock",
        description=(
            "Cancels every quantity not yet handed over or shipped and keeps what was: reservations "
            "are released, picked units go back on the shelf, and the card payment captures only "
            "the handed-over goods (the rest of the authorisation is released; voided when nothing "
            "was handed over). The order's status follows (`completed` when something reached the "
            "customer). Always the whole open rest: a body naming `lines` is 422 (cancel single "
            "lines with a `cancel_line` change). 409 `order-not-cancellable` when nothing is open."
        ),
        guards=[CHANNEL_WRITES],
        status_code=200,
        responses=problems(400, 401, 403, 404, 409, 412, 422),
    )
    async def cancel(
        self,
        order_id: FromPath[uuid.UUID],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        if_match: IfMatch = None,
        data: JSONBody[CancelOrder | None] = None,
    ) -> Response[OrderView]:
        reason = data.reason if data else "cancelled on request"
        expected = parse_if_match(if_match)
        aggregate = await db.run(
            committing(
                lambda uow: order_changes.cancel_order(
                    uow, order_id, actor, clock, lifecycle, reason=reason, expected_version=expected
                )
            )
        )
        return order_response(view_of(aggregate, clock.now()))

    @post(
        "/{order_id:uuid}/arrival",
        operation_id="recordArrival",
        summary="The customer has arrived (curbside or at the counter)",
        guards=[CHANNEL_WRITES],
        status_code=200,
        responses=problems(400, 401, 403, 404, 409, 422),
    )
    async def arrival(
        self, order_id: FromPath[uuid.UUID], data: JSONBody[ArrivalIn], actor: ActorDep, db: DB, clock: ClockDep
    ) -> list[FulfillmentView]:
        return await db.run(
            committing(
                lambda uow: order_changes.record_arrival(uow, order_id, actor, clock, data.parking_spot, data.vehicle)
            )
        )
