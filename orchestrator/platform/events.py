"""What happened to an order, as the timeline and the outbox will record it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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
    ORDER_PLACED = "order.placed"
    ORDER_SOURCED = "order.sourced"
    ORDER_RESOURCED = "order.resourced"
    ORDER_NEEDS_ATTENTION = "order.needs_attention"
    ORDER_CUSTOMER_ARRIVED = "order.customer_arrived"
    ORDER_STATUS_CHANGED = "order.status_changed"
    ORDER_CANCELLED = "order.cancelled"


@dataclass(frozen=True, slots=True)
class OrderEventDraft:
    """``data`` goes on the timeline every channel can read; ``private`` only into the outbox
    message for the customer's notification (a pickup code is shown once, never on the timeline).
    """

    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)
