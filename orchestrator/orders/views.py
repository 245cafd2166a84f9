"""Read models returned by the use cases and served by the API as they are."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec


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
