"""What happened to an order, as the timeline and the outbox record it: every event type, the
exact keys of its data and which of them only the outbox carries. ``docs/events.md`` is written
from this module (``python -m orchestrator.platform.events_doc``); a test keeps it current, and
another checks every event the service writes against its schema."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from orchestrator.platform.event_data import (
    CustomerArrived,
    Exact,
    Expired,
    FulfillmentClosed,
    FulfillmentData,
    FulfillmentDelayed,
    FulfillmentMoved,
    HandedOver,
    OrderActionRequired,
    OrderCancelled,
    OrderChanged,
    OrderNeedsAttention,
    OrderPlaced,
    OrderResourced,
    OrderSourced,
    PaymentAuthorised,
    PaymentCaptured,
    PaymentData,
    PaymentDisputed,
    PaymentDue,
    PaymentExpiring,
    PaymentFailed,
    PaymentRefunded,
    PaymentTendered,
    Picked,
    PickupCode,
    PickupCodeRejected,
    PickupReminder,
    ReadyForPickup,
    Shipped,
    StatusChanged,
    TransferReceived,
)


class EventType(StrEnum):
    """Every event the service records; the timeline, the outbox and the worker use these names."""

    FULFILLMENT_ACCEPTED = "fulfillment.accepted"
    FULFILLMENT_PICKING_STARTED = "fulfillment.picking_started"
    FULFILLMENT_PICKED = "fulfillment.picked"
    FULFILLMENT_READY_FOR_PICKUP = "fulfillment.ready_for_pickup"
    FULFILLMENT_PICKUP_CODE_REJECTED = "fulfillment.pickup_code_rejected"
    FULFILLMENT_PICKUP_CODE_RESENT = "fulfillment.pickup_code_resent"
    FULFILLMENT_PICKUP_REMINDER = "fulfillment.pickup_reminder"
    FULFILLMENT_PARTIALLY_PICKED_UP = "fulfillment.partially_picked_up"
    FULFILLMENT_PICKED_UP = "fulfillment.picked_up"
    FULFILLMENT_PACKED = "fulfillment.packed"
    FULFILLMENT_SHIPPED = "fulfillment.shipped"
    FULFILLMENT_DELIVERED = "fulfillment.delivered"
    FULFILLMENT_TRANSFER_RECEIVED = "fulfillment.transfer_received"
    FULFILLMENT_REJECTED = "fulfillment.rejected"
    FULFILLMENT_CANCELLED = "fulfillment.cancelled"
    FULFILLMENT_EXPIRED = "fulfillment.expired"
    FULFILLMENT_MOVED = "fulfillment.moved"
    FULFILLMENT_DELAYED = "fulfillment.delayed"
    ORDER_PLACED = "order.placed"
    ORDER_SOURCED = "order.sourced"
    ORDER_RESOURCED = "order.resourced"
    ORDER_NEEDS_ATTENTION = "order.needs_attention"
    ORDER_ACTION_REQUIRED = "order.action_required"
    ORDER_CUSTOMER_ARRIVED = "order.customer_arrived"
    ORDER_STATUS_CHANGED = "order.status_changed"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_CHANGED = "order.changed"
    PAYMENT_AUTHORISED = "payment.authorised"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_CAPTURE_DUE = "payment.capture_due"
    PAYMENT_CAPTURED = "payment.captured"
    PAYMENT_VOID_DUE = "payment.void_due"
    PAYMENT_VOIDED = "payment.voided"
    PAYMENT_REFUNDED = "payment.refunded"
    PAYMENT_EXPIRING = "payment.expiring"
    PAYMENT_EXPIRED = "payment.expired"
    PAYMENT_TENDERED = "payment.tendered"
    PAYMENT_DISPUTED = "payment.disputed"


@dataclass(frozen=True, slots=True)
class OrderEventDraft:
    """``data`` goes on the timeline every channel can read; ``private`` only into the outbox
    message for the customer's notification (a pickup code is shown once, never on the timeline).
    """

    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)


# --- payload schemas: every key required, no other key allowed --------------------------------


@dataclass(frozen=True)
class EventSpec:
    description: str
    data: type[msgspec.Struct]
    # Keys only the outbox message carries (to the customer's notification), never the timeline;
    # the relay removes them from the row once the message is published.
    private: type[msgspec.Struct] | None = None

    @property
    def private_fields(self) -> tuple[str, ...]:
        return self.private.__struct_encode_fields__ if self.private is not None else ()


E = EventType
CATALOGUE: dict[EventType, EventSpec] = {
    E.FULFILLMENT_ACCEPTED: EventSpec("The location took the fulfillment on.", FulfillmentData),
    E.FULFILLMENT_PICKING_STARTED: EventSpec("Picking began.", FulfillmentData),
    E.FULFILLMENT_PICKED: EventSpec(
        "Units were picked; `short` lists what was not on the shelf (sourced again elsewhere).", Picked
    ),
    E.FULFILLMENT_READY_FOR_PICKUP: EventSpec(
        "The goods wait for the customer until `pickup_deadline`; the code opens the pickup.",
        ReadyForPickup,
        private=PickupCode,
    ),
    E.FULFILLMENT_PICKUP_CODE_REJECTED: EventSpec(
        "A wrong pickup code was shown; `locked_until` is set once too many were.", PickupCodeRejected
    ),
    E.FULFILLMENT_PICKUP_CODE_RESENT: EventSpec("The pickup code was handed to the channel again.", FulfillmentData),
    E.FULFILLMENT_PICKUP_REMINDER: EventSpec("The pickup deadline is near; remind the customer.", PickupReminder),
    E.FULFILLMENT_PARTIALLY_PICKED_UP: EventSpec(
        "Some of the ready units were handed over; the rest still wait.", HandedOver
    ),
    E.FULFILLMENT_PICKED_UP: EventSpec("The customer collected everything that was ready.", HandedOver),
    E.FULFILLMENT_PACKED: EventSpec("The parcel is packed.", FulfillmentData),
    E.FULFILLMENT_SHIPPED: EventSpec("Handed to the carrier (or, for a transfer, sent to the store).", Shipped),
    E.FULFILLMENT_DELIVERED: EventSpec("The carrier delivered the parcel.", FulfillmentData),
    E.FULFILLMENT_TRANSFER_RECEIVED: EventSpec(
        "A transfer arrived at `destination`, the store the customer collects from.", TransferReceived
    ),
    E.FULFILLMENT_REJECTED: EventSpec(
        "The location cannot fulfil it; its open units are sourced again.", FulfillmentClosed
    ),
    E.FULFILLMENT_CANCELLED: EventSpec("The fulfillment was cancelled; its stock goes back.", FulfillmentClosed),
    E.FULFILLMENT_DELAYED: EventSpec(
        "Still not ready past `expected_ready_at`: the customer is told it is delayed (once per promised time).",
        FulfillmentDelayed,
    ),
    E.FULFILLMENT_MOVED: EventSpec(
        "The pickup moved to `to_location` (a counter lookup, a change, or the shortfall policy); its "
        "pickup code stays valid there and `from_location` lets go of its stock.",
        FulfillmentMoved,
    ),
    E.FULFILLMENT_EXPIRED: EventSpec("Not collected by the pickup deadline: the goods go back on the shelf.", Expired),
    E.ORDER_PLACED: EventSpec("A channel placed the order.", OrderPlaced),
    E.ORDER_SOURCED: EventSpec("Sourcing decided where the order is fulfilled.", OrderSourced),
    E.ORDER_RESOURCED: EventSpec(
        "Units a location could not supply (`trigger`) were sourced again elsewhere.", OrderResourced
    ),
    E.ORDER_NEEDS_ATTENTION: EventSpec(
        "No location can take some units; an operator has to decide.", OrderNeedsAttention
    ),
    E.ORDER_ACTION_REQUIRED: EventSpec(
        "The pickup store cannot serve it all: the order waits for the customer to choose one of "
        "`options` (each a ready-made change); at `deadline` the profile's `fallback` applies.",
        OrderActionRequired,
    ),
    E.ORDER_CUSTOMER_ARRIVED: EventSpec("The customer is waiting outside for these pickups.", CustomerArrived),
    E.ORDER_STATUS_CHANGED: EventSpec("The order's derived status changed.", StatusChanged),
    E.ORDER_CANCELLED: EventSpec("The order was cancelled; whatever was still open is cancelled.", OrderCancelled),
    E.ORDER_CHANGED: EventSpec(
        "A channel or an admin changed the order (`POST /v1/orders/{id}/changes`); `change_id` names the "
        "change record.",
        OrderChanged,
    ),
    E.PAYMENT_AUTHORISED: EventSpec(
        "The order's payment is held for capture (card), or taken at the counter or by the marketplace "
        "(`pos`, `marketplace`: `amount` is what is due).",
        PaymentAuthorised,
    ),
    E.PAYMENT_FAILED: EventSpec(
        "The processor refused the payment (`code`, `decline_code`): the order is cancelled (or, a capture, "
        "`needs_attention`).",
        PaymentFailed,
    ),
    E.PAYMENT_CAPTURE_DUE: EventSpec("Goods moved (or the last fulfillment closed): `amount` to capture.", PaymentDue),
    E.PAYMENT_CAPTURED: EventSpec(
        "The processor captured `amount` (`amount_captured` in all); `final` released the rest.", PaymentCaptured
    ),
    E.PAYMENT_VOID_DUE: EventSpec(
        "Nothing of the order will be charged: the worker releases the authorisation.", PaymentDue
    ),
    E.PAYMENT_VOIDED: EventSpec("The authorisation was released; nothing was charged.", PaymentData),
    E.PAYMENT_REFUNDED: EventSpec(
        "Captured money went back to the customer: `amount` now, `amount_refunded` in all.", PaymentRefunded
    ),
    E.PAYMENT_EXPIRING: EventSpec(
        "The authorisation lapses at `capture_before` and goods are still to hand over: the order needs attention.",
        PaymentExpiring,
    ),
    E.PAYMENT_EXPIRED: EventSpec(
        "The authorisation lapsed uncaptured (`amount`); what is still due needs a new payment.", PaymentExpiring
    ),
    E.PAYMENT_TENDERED: EventSpec(
        "Paid at the counter at handover (`method`, `reference`); `change_given` in cash.", PaymentTendered
    ),
    E.PAYMENT_DISPUTED: EventSpec("The card holder disputed the charge: the order needs attention.", PaymentDisputed),
}
del E

# Keys of an event's data meant for the customer's notification only, across every type.
PRIVATE_FIELDS: tuple[str, ...] = tuple(sorted({name for s in CATALOGUE.values() for name in s.private_fields}))


class OutboxPayload(Exact):
    """The message the outbox relays to the events stream: the event and its order."""

    id: uuid.UUID
    type: EventType
    order_id: uuid.UUID
    order_number: str
    channel: str
    seq: int
    order_version: int  # the order's version once the event happened
    actor: str
    occurred_at: datetime
    data: dict[str, Any]


class EventMismatch(ValueError):
    pass


def _check(struct: type[msgspec.Struct], values: Any, what: str) -> None:
    try:
        msgspec.json.decode(msgspec.json.encode(values), type=struct)
    except msgspec.ValidationError as exc:
        raise EventMismatch(f"{what}: {exc}") from None


def check_event(type_: str, data: Any, private: Any = None) -> None:
    """``data`` as JSON holds exactly the keys and types the catalogue lists for ``type_``, and
    so does ``private`` unless it is ``None`` (not there to check); ``EventMismatch`` says what
    differs."""
    try:
        spec = CATALOGUE[EventType(type_)]
    except ValueError:
        raise EventMismatch(f"{type_!r} is not an event type") from None
    _check(spec.data, data, f"{type_} data")
    if private is not None:
        _check(spec.private or Exact, private, f"{type_} private data")


def check_outbox_payload(payload: Any, *, published: bool) -> None:
    """A message as the outbox holds it: the envelope, and its data with the private keys in
    while it waits to be relayed, without them once it is published."""
    _check(OutboxPayload, payload, "outbox payload")
    spec = CATALOGUE[EventType(payload["type"])]
    data = dict(payload["data"])
    private = {name: data.pop(name) for name in spec.private_fields if name in data}
    check_event(payload["type"], data, None if published else private)
    if published and private:
        raise EventMismatch(f"{payload['type']}: a published message still holds {sorted(private)}")
