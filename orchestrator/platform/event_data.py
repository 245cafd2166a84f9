"""The data of each event type: the exact keys and types the timeline and the outbox carry
(``events.py`` maps each type to one of these; ``docs/events.md`` is written from both)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec


class Exact(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class SkuQuantity(Exact):
    sku: str
    quantity: int


class SkuMissing(Exact):
    sku: str
    missing: int


class FulfillmentData(Exact):
    """What every ``fulfillment.*`` event says first: which fulfillment, where, how."""

    fulfillment_id: uuid.UUID
    location: str
    method: str


class Picked(FulfillmentData):
    picked: list[SkuQuantity]
    short: list[SkuMissing]


class ReadyForPickup(FulfillmentData):
    pickup_deadline: datetime


class PickupCode(Exact):
    pickup_code: str


class PickupCodeRejected(FulfillmentData):
    locked_until: datetime | None


class PickupReminder(FulfillmentData):
    pickup_deadline: datetime


class HandedOver(FulfillmentData):
    handed_over: list[SkuQuantity]
    override_reason: str | None


class Shipped(FulfillmentData):
    carrier: str
    tracking_number: str


class TransferReceived(FulfillmentData):
    destination: str


class FulfillmentClosed(FulfillmentData):
    reason: str


class FulfillmentDelayed(FulfillmentData):
    """Past the time it was expected ready (``expected_ready_at``) and still not ready."""

    expected_ready_at: datetime


class FulfillmentMoved(FulfillmentData):
    """A pickup moved to another store: the store it left (``from_location``) is told."""

    from_location: str
    to_location: str
    reason: str
    units_restocked: int  # picked units put back on the shelf of the store it left


class Expired(FulfillmentData):
    reason: str
    pickup_deadline: datetime | None


class OrderPlaced(Exact):
    number: str
    channel: str
    channel_order_ref: str
    subtotal: int
    shipping_total: int
    tax_total: int
    discount_total: int
    total: int
    currency: str
    method: str
    lines: list[SkuQuantity]


class OrderSourced(Exact):
    decision_id: uuid.UUID
    rule: str
    locations: list[str]
    fulfillment_orders: list[uuid.UUID]


class OrderResourced(Exact):
    trigger: str
    decision_id: uuid.UUID
    rule: str
    from_location: str
    locations: list[str]
    fulfillment_orders: list[uuid.UUID]


class OrderNeedsAttention(Exact):
    reason: str
    trigger: str
    decision_id: uuid.UUID
    lines: list[SkuQuantity]
    excluded: list[str]
    suggestions: list[str]


class ActionOption(Exact):
    """A ready-made change the customer (or an agent) can choose: ``change`` is the body of
    ``POST /v1/orders/{id}/changes``, to apply or dry-run as it is."""

    id: str
    description: str
    change: dict[str, Any]
    expected_ready_at: datetime | None


class OrderActionRequired(Exact):
    reason: str
    trigger: str
    decision_id: uuid.UUID
    lines: list[SkuQuantity]
    options: list[ActionOption]
    fallback: str  # what is applied at ``deadline`` if nobody chooses: transfer | cancel
    deadline: datetime


class CustomerArrived(Exact):
    parking_spot: str | None
    vehicle: str | None
    fulfillments: list[uuid.UUID]
    locations: list[str]


class StatusChanged(Exact):
    from_: str = msgspec.field(name="from")
    to: str


class OrderCancelled(Exact):
    reason: str


class OrderChanged(Exact):
    change_id: uuid.UUID
    actions: list[str]  # the action types, in the order applied
    total_before: int
    total_after: int
    currency: str


class PaymentData(Exact):
    payment_id: uuid.UUID
    provider: str
    external_id: str | None
    amount: int
    currency: str


class PaymentAuthorised(PaymentData):
    capture_before: datetime | None
    multicapture: bool


class PaymentFailed(PaymentData):
    code: str | None
    decline_code: str | None


class PaymentDue(Exact):
    payment_id: uuid.UUID
    operations: list[uuid.UUID]
    amount: int
    currency: str


class PaymentCaptured(PaymentData):
    amount_captured: int
    final: bool
    fulfillments: list[uuid.UUID]


class PaymentRefunded(PaymentData):
    refund_id: uuid.UUID  # the refund operation
    external_refund_id: str | None  # the processor's (re_...), none when refunded elsewhere
    amount_refunded: int
    reason: str | None


class PaymentExpiring(PaymentData):
    capture_before: datetime  # `amount`: what is still authorised and not captured


class PaymentTendered(PaymentData):
    method: str  # cash | card | other
    reference: str | None
    change_given: int
    fulfillments: list[uuid.UUID]


class PaymentDisputed(PaymentData):
    dispute_id: str
    reason: str | None
