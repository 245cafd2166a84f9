"""What a guest holding a tracking token sees of their order (``GET /v1/public/orders/{token}``).

Built field by field from the order's rows rather than by deleting fields from the channels'
``OrderView``: a field added there later stays out of here until someone decides a customer may
see it. Left out on purpose: the customer's identities (email, phone, name), any street, postcode
or coordinates (the city and country say where), payments, pickup codes and their lock, internal
ids (the order's, its lines', its fulfillments'), the channel and its reference, transfers
between stores, and the ``change`` bodies of the offered options (they name line ids; the guest
chooses an option by its ``id``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from orchestrator.order_record.aggregate import OrderAggregate
from orchestrator.order_record.customer_status import CustomerStatus
from orchestrator.order_record.states import Method
from orchestrator.order_record.tables import FulfillmentOrder
from orchestrator.orders.views import expected_ready_at


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """A location as a customer may know it."""

    code: str
    name: str
    city: str | None
    country: str | None


class PublicStore(msgspec.Struct, kw_only=True):
    code: str
    name: str
    city: str | None = None
    country: str | None = None


class PublicPlace(msgspec.Struct, kw_only=True):
    """Where a shipment goes, no nearer than its city."""

    city: str | None = None
    country: str | None = None


class PublicLine(msgspec.Struct, kw_only=True):
    sku: str
    name: str | None
    quantity: int
    unit_price: int
    quantity_cancelled: int
    quantity_fulfilled: int
    quantity_returned: int


class PublicFulfillmentLine(msgspec.Struct, kw_only=True):
    sku: str
    quantity: int
    quantity_handed_over: int


class PublicFulfillment(msgspec.Struct, kw_only=True):
    method: str
    status: str
    store: PublicStore
    lines: list[PublicFulfillmentLine]
    expected_ready_at: datetime | None = None
    ready_at: datetime | None = None
    pickup_deadline: datetime | None = None
    arrived_at: datetime | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    shipped_at: datetime | None = None


class PublicOption(msgspec.Struct, kw_only=True):
    """Applied with ``POST /v1/public/orders/{token}/changes`` and ``{"option": id}``."""

    id: str
    description: str
    expected_ready_at: datetime | None = None


class PublicActionRequired(msgspec.Struct, kw_only=True):
    reason: str | None
    options: list[PublicOption]
    deadline: datetime | None


class PublicStatusLocation(msgspec.Struct, kw_only=True):
    code: str
    name: str
    city: str | None = None
    country: str | None = None
    timezone: str
    opening_hours: dict[str, list[list[str]]] | None = None


class PublicCustomerStatus(msgspec.Struct, kw_only=True):
    """The channels' ``customer_status``, its same sentence, with the store shown by its town and
    the options by their ids."""

    code: str
    text: str
    location: PublicStatusLocation | None = None
    until: datetime | None = None
    tracking_url: str | None = None
    options: list[PublicOption] = msgspec.field(default_factory=list)


class PublicOrderView(msgspec.Struct, kw_only=True):
    number: str
    status: str
    currency: str
    subtotal: int
    shipping_total: int
    tax_total: int
    discount_total: int
    total: int
    method: str
    pickup_store: PublicStore | None = None
    ship_to: PublicPlace | None = None
    lines: list[PublicLine]
    fulfillments: list[PublicFulfillment]
    expected_ready_at: datetime | None = None
    action_required: PublicActionRequired | None = None
    customer_status: PublicCustomerStatus | None = None
    created_at: datetime


def public_view(
    aggregate: OrderAggregate,
    product_names: Mapping[str, str],
    stores: Mapping[int, StoreFacts],
    status: CustomerStatus | None = None,
) -> PublicOrderView:
    """``product_names`` by sku and ``stores`` by location id: of the order's lines and locations;
    ``status``: the order's customer status as every channel shows it."""
    o = aggregate.order
    totals = o.totals
    # Transfers move stock between stores for the order; the customer waits on what they feed.
    shown = [f for f in aggregate.fulfillments if f.method != Method.TRANSFER.value]
    return PublicOrderView(
        number=o.number,
        status=o.status,
        currency=o.currency,
        subtotal=totals.subtotal,
        shipping_total=totals.shipping_total,
        tax_total=totals.tax_total,
        discount_total=totals.discount_total,
        total=totals.total,
        method=o.fulfillment_method,
        pickup_store=_store(stores[o.pickup_location_id]) if o.pickup_location_id in stores else None,
        ship_to=_place(o.ship_address) if o.ship_address else None,
        lines=[
            PublicLine(
                sku=ln.sku,
                name=product_names.get(ln.sku),
                quantity=ln.quantity,
                unit_price=ln.unit_price,
                quantity_cancelled=ln.quantity_cancelled,
                quantity_fulfilled=ln.quantity_fulfilled,
                quantity_returned=ln.quantity_returned,
            )
            for ln in aggregate.lines
        ],
        fulfillments=[_fulfillment(f, aggregate, stores) for f in shown],
        expected_ready_at=expected_ready_at(aggregate.fulfillments),
        action_required=_action_required(o.attention_reason, o.action_options, o.action_deadline),
        customer_status=_status(status) if status is not None else None,
        created_at=o.created_at,
    )


def _store(facts: StoreFacts) -> PublicStore:
    return PublicStore(code=facts.code, name=facts.name, city=facts.city, country=facts.country)


def _place(address: Mapping[str, Any]) -> PublicPlace:
    return PublicPlace(city=address.get("city"), country=address.get("country"))


def _fulfillment(f: FulfillmentOrder, aggregate: OrderAggregate, stores: Mapping[int, StoreFacts]) -> PublicFulfillment:
    return PublicFulfillment(
        method=f.method,
        status=f.status,
        store=_store(stores[f.location_id]),
        lines=[
            PublicFulfillmentLine(sku=ln.sku, quantity=ln.quantity, quantity_handed_over=ln.quantity_handed_over)
            for ln in aggregate.fulfillment_lines.get(f.id, [])
        ],
        expected_ready_at=f.expected_ready_at,
        ready_at=f.ready_at,
        pickup_deadline=f.pickup_deadline,
        arrived_at=f.arrived_at,
        carrier=f.carrier,
        tracking_number=f.tracking_number,
        shipped_at=f.shipped_at,
    )


def _action_required(
    reason: str | None, options: list[dict[str, Any]] | None, deadline: datetime | None
) -> PublicActionRequired | None:
    if options is None:
        return None
    return PublicActionRequired(reason=reason, options=_options(options), deadline=deadline)


def _options(options: list[dict[str, Any]]) -> list[PublicOption]:
    return [
        PublicOption(id=o["id"], description=o["description"], expected_ready_at=_when(o.get("expected_ready_at")))
        for o in options
    ]


def _status(status: CustomerStatus) -> PublicCustomerStatus:
    at = status.location
    location = None
    if at is not None:
        location = PublicStatusLocation(
            code=at.code,
            name=at.name,
            city=at.address.get("city"),
            country=at.address.get("country"),
            timezone=at.timezone,
            opening_hours=at.opening_hours,
        )
    return PublicCustomerStatus(
        code=status.code,
        text=status.text,
        location=location,
        until=status.until,
        tracking_url=status.tracking_url,
        options=_options(status.options),
    )


def _when(stored: Any) -> datetime | None:
    # The options are kept as JSON: their times come back as ISO strings.
    return datetime.fromisoformat(stored) if isinstance(stored, str) else stored
