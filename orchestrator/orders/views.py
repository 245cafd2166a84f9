"""The read models of orders and their fulfillments, as the use cases return them and the API
serves them, and the one place each is built from its rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from orchestrator.customers.tables import Customer
from orchestrator.fulfillment.model import Method, Status, allowed_actions
from orchestrator.orders.tables import FulfillmentOrder, FulfillmentOrderLine, Order, OrderEvent, OrderLine


class CustomerView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    email: str | None
    phone: str | None
    name: str | None


class OrderLineView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    line_no: int
    sku: str
    quantity: int
    unit_price: int
    total: int
    quantity_cancelled: int
    quantity_fulfilled: int
    quantity_returned: int
    quantity_unsourced: int


class FulfillmentLineView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    order_line_id: uuid.UUID
    sku: str
    quantity: int
    quantity_picked: int
    quantity_handed_over: int
    quantity_cancelled: int


class ArrivalView(msgspec.Struct, kw_only=True):
    arrived_at: datetime
    parking_spot: str | None = None
    vehicle: str | None = None


class FulfillmentView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    location: str
    method: str
    status: str
    version: int
    lines: list[FulfillmentLineView]
    allowed_actions: list[str]
    destination: str | None = None
    feeds_fulfillment_id: uuid.UUID | None = None
    ready_at: datetime | None = None
    pickup_deadline: datetime | None = None
    pickup_locked_until: datetime | None = None
    arrival: ArrivalView | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    shipped_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    created_at: datetime
    updated_at: datetime | None = None


class FulfillmentChoice(msgspec.Struct, kw_only=True):
    method: str
    location: str | None = None
    address: dict[str, Any] | None = None


class OrderView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    number: str
    channel: str
    channel_order_ref: str
    status: str
    version: int
    currency: str
    subtotal: int
    customer: CustomerView
    fulfillment: FulfillmentChoice
    lines: list[OrderLineView]
    fulfillment_orders: list[FulfillmentView]
    attention_reason: str | None = None
    sourcing_profile_version: int
    created_at: datetime
    updated_at: datetime | None = None


class OrderEventView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    seq: int
    type: str
    actor: str
    data: dict[str, Any]
    occurred_at: datetime


class Page(msgspec.Struct, kw_only=True):
    next_cursor: str | None = None


def fulfillment_view(
    fo: FulfillmentOrder, lines: Sequence[FulfillmentOrderLine], codes: dict[int, str], number: str
) -> FulfillmentView:
    arrival = None
    if fo.arrived_at is not None:
        info = fo.arrival or {}
        arrival = ArrivalView(
            arrived_at=fo.arrived_at, parking_spot=info.get("parking_spot"), vehicle=info.get("vehicle")
        )
    return FulfillmentView(
        id=fo.id,
        order_id=fo.order_id,
        order_number=number,
        location=codes[fo.location_id],
        method=fo.method,
        status=fo.status,
        version=fo.version,
        lines=[
            FulfillmentLineView(
                id=line.id,
                order_line_id=line.order_line_id,
                sku=line.sku,
                quantity=line.quantity,
                quantity_picked=line.quantity_picked,
                quantity_handed_over=line.quantity_handed_over,
                quantity_cancelled=line.quantity_cancelled,
            )
            for line in lines
        ],
        allowed_actions=allowed_actions(Status(fo.status), Method(fo.method)),
        destination=codes.get(fo.destination_location_id) if fo.destination_location_id else None,
        feeds_fulfillment_id=fo.feeds_fulfillment_id,
        ready_at=fo.ready_at,
        pickup_deadline=fo.pickup_deadline,
        pickup_locked_until=fo.pickup_locked_until,
        arrival=arrival,
        carrier=fo.carrier,
        tracking_number=fo.tracking_number,
        shipped_at=fo.shipped_at,
        closed_at=fo.closed_at,
        close_reason=fo.close_reason,
        created_at=fo.created_at,
        updated_at=fo.updated_at,
    )


def order_view(
    o: Order,
    c: Customer,
    lines: Sequence[OrderLine],
    fulfillments: Sequence[FulfillmentOrder],
    fulfillment_lines: dict[uuid.UUID, list[FulfillmentOrderLine]],
    codes: dict[int, str],
) -> OrderView:
    return OrderView(
        id=o.id,
        number=o.number,
        channel=o.channel,
        channel_order_ref=o.channel_order_ref,
        status=o.status,
        version=o.version,
        currency=o.currency,
        subtotal=o.subtotal,
        customer=CustomerView(id=c.id, email=c.email, phone=c.phone, name=c.name),
        fulfillment=FulfillmentChoice(
            method=o.fulfillment_method,
            location=codes.get(o.pickup_location_id) if o.pickup_location_id else None,
            address=o.ship_address,
        ),
        lines=[
            OrderLineView(
                id=line.id,
                line_no=line.line_no,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                total=line.quantity * line.unit_price,
                quantity_cancelled=line.quantity_cancelled,
                quantity_fulfilled=line.quantity_fulfilled,
                quantity_returned=line.quantity_returned,
                quantity_unsourced=line.quantity_unsourced,
            )
            for line in lines
        ],
        fulfillment_orders=[
            fulfillment_view(f, fulfillment_lines.get(f.id, []), codes, o.number) for f in fulfillments
        ],
        attention_reason=o.attention_reason,
        sourcing_profile_version=o.sourcing_profile_version,
        created_at=o.created_at,
        updated_at=o.updated_at,
    )


def event_view(e: OrderEvent) -> OrderEventView:
    return OrderEventView(
        id=e.id,
        seq=e.seq,
        type=e.type,
        actor=f"{e.actor_kind}:{e.actor_id}" if e.actor_id else e.actor_kind,
        data=e.data,
        occurred_at=e.occurred_at,
    )
