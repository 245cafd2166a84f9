"""The read models of orders and their fulfillments, as the use cases return them and the API
serves them, and the one place each is built from its rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from orchestrator.catalogue.tables import Location
from orchestrator.customers.tables import Customer
from orchestrator.fulfillment.views import FulfillmentView, fulfillment_view
from orchestrator.order_record.aggregate import OrderAggregate
from orchestrator.order_record.customer_status import (
    CustomerStatus,
    FulfillmentFacts,
    OrderFacts,
    StatusLocation,
    customer_status,
)
from orchestrator.order_record.states import OPEN_STATES, Method
from orchestrator.order_record.tables import FulfillmentOrder, FulfillmentOrderLine, Order, OrderEvent, OrderLine
from orchestrator.payments.views import PaymentView
from orchestrator.platform.money import OrderTotals


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


class FulfillmentChoice(msgspec.Struct, kw_only=True):
    method: str
    location: str | None = None
    address: dict[str, Any] | None = None


class ActionRequiredView(msgspec.Struct, kw_only=True):
    """What the customer (or an agent) can choose while the pickup store cannot serve it all: each
    option's ``change`` is a ``POST /v1/orders/{id}/changes`` body; at ``deadline`` the profile's
    fallback applies (null: nothing applies by itself, the order needs attention)."""

    reason: str | None
    options: list[dict[str, Any]]
    deadline: datetime | None


class OrderView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    number: str
    channel: str
    channel_order_ref: str
    status: str
    version: int
    currency: str
    subtotal: int
    shipping_total: int
    tax_total: int
    discount_total: int
    total: int
    customer: CustomerView
    fulfillment: FulfillmentChoice
    lines: list[OrderLineView]
    fulfillment_orders: list[FulfillmentView]
    attention_reason: str | None = None
    action_required: ActionRequiredView | None = None
    # When what the customer waits for is expected ready: the latest of the open pickups and
    # shipments (transfers only feed them); null when none is open.
    expected_ready_at: datetime | None = None
    # How the order is paid (``payments``): null when it carried no payment (pay at the counter).
    payment: PaymentView | None = None
    # Every payment of the order, oldest first (``payment`` is the last): a declined attempt, an
    # authorisation that ran out, the card that paid again, what the counter took.
    payments: list[PaymentView] = msgspec.field(default_factory=list)
    sourcing_profile_version: int
    created_at: datetime
    updated_at: datetime | None = None
    # The one sentence the customer sees on every channel, with its structured fields.
    customer_status: CustomerStatus


class OrderEventView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    seq: int
    type: str
    actor: str
    data: dict[str, Any]
    occurred_at: datetime


def order_view(
    o: Order,
    c: Customer,
    lines: Sequence[OrderLine],
    fulfillments: Sequence[FulfillmentOrder],
    fulfillment_lines: dict[uuid.UUID, list[FulfillmentOrderLine]],
    codes: dict[int, str],
    *,
    now: datetime,
    sites: Mapping[int, Location] | None = None,
) -> OrderView:
    """``now``: what the customer status is worded at (late is past ``expected_ready_at``);
    ``sites``: the locations ``codes`` names, whole, for the store the status shows."""
    fulfillment_views = [fulfillment_view(f, fulfillment_lines.get(f.id, []), codes, o.number) for f in fulfillments]
    pickup_location = codes.get(o.pickup_location_id) if o.pickup_location_id else None
    return OrderView(
        id=o.id,
        number=o.number,
        channel=o.channel,
        channel_order_ref=o.channel_order_ref,
        status=o.status,
        version=o.version,
        currency=o.currency,
        subtotal=o.subtotal,
        shipping_total=o.shipping_total,
        tax_total=o.tax_total,
        discount_total=o.discount_total,
        total=OrderTotals(o.subtotal, o.shipping_total, o.tax_total, o.discount_total).total,
        customer=CustomerView(id=c.id, email=c.email, phone=c.phone, name=c.name),
        fulfillment=FulfillmentChoice(
            method=o.fulfillment_method,
            location=pickup_location,
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
        fulfillment_orders=fulfillment_views,
        attention_reason=o.attention_reason,
        action_required=_action_required(o),
        expected_ready_at=expected_ready_at(fulfillments),
        sourcing_profile_version=o.sourcing_profile_version,
        created_at=o.created_at,
        updated_at=o.updated_at,
        customer_status=customer_status(
            OrderFacts(
                status=o.status,
                fulfillments=[_facts(f) for f in fulfillment_views],
                pickup_location=pickup_location,
                attention_reason=o.attention_reason,
                action_options=o.action_options,
            ),
            _stores(sites or {}),
            now,
        ),
    )


def _facts(f: FulfillmentView) -> FulfillmentFacts:
    return FulfillmentFacts(
        method=f.method,
        status=f.status,
        location=f.location,
        expected_ready_at=f.expected_ready_at,
        pickup_deadline=f.pickup_deadline,
        carrier=f.carrier,
        tracking_number=f.tracking_number,
        close_reason=f.close_reason,
        handed_over=sum(line.quantity_handed_over for line in f.lines),
    )


def _stores(sites: Mapping[int, Location]) -> dict[str, StatusLocation]:
    return {
        loc.code: StatusLocation(
            code=loc.code,
            name=loc.name,
            address=loc.address or {},
            timezone=loc.timezone,
            opening_hours=loc.opening_hours,
        )
        for loc in sites.values()
    }


def _action_required(o: Order) -> ActionRequiredView | None:
    if o.action_options is None:
        return None
    return ActionRequiredView(reason=o.attention_reason, options=o.action_options, deadline=o.action_deadline)


def expected_ready_at(fulfillments: Sequence[FulfillmentOrder]) -> datetime | None:
    times = [
        f.expected_ready_at
        for f in fulfillments
        if f.method != Method.TRANSFER.value and f.status in OPEN_STATES and f.expected_ready_at is not None
    ]
    return max(times, default=None)


def event_view(e: OrderEvent) -> OrderEventView:
    return OrderEventView(
        id=e.id,
        seq=e.seq,
        type=e.type,
        actor=f"{e.actor_kind}:{e.actor_id}" if e.actor_id else e.actor_kind,
        data=e.data,
        occurred_at=e.occurred_at,
    )


def view_of(aggregate: OrderAggregate, now: datetime) -> OrderView:
    a = aggregate
    return order_view(
        a.order, a.customer, a.lines, a.fulfillments, a.fulfillment_lines, a.codes, now=now, sites=a.sites
    )
