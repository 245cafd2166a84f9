"""Order status is derived from its fulfillment orders, never stored independently of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.order_record.states import CLOSED_WITHOUT_FULFILLING, FULFILLED_STATES, Method, Status


class OrderStatus(StrEnum):
    # Waiting for the customer to finish paying (3-D Secure): no store sees it yet.
    PENDING_PAYMENT = "pending_payment"
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    READY_FOR_PICKUP = "ready_for_pickup"
    PARTIALLY_FULFILLED = "partially_fulfilled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NEEDS_ATTENTION = "needs_attention"
    # The pickup store cannot serve it all and the customer chooses among ready-made changes.
    ACTION_REQUIRED = "action_required"


@dataclass(frozen=True, slots=True)
class FulfillmentSummary:
    status: Status
    method: Method
    handed_over: int = 0  # units already with the customer (partial pickups)


def derive_order_status(
    fulfillments: Iterable[FulfillmentSummary], *, needs_attention: bool = False, awaiting_payment: bool = False
) -> OrderStatus:
    """``awaiting_payment``: the order's payment is not authorised yet; until it is, an order whose
    fulfillments all still wait stays ``pending_payment`` (a cancelled one is cancelled)."""
    fulfillments = list(fulfillments)
    if awaiting_payment and fulfillments and all(f.status is Status.PENDING for f in fulfillments):
        return OrderStatus.PENDING_PAYMENT
    customer_facing = [f for f in fulfillments if f.method is not Method.TRANSFER]
    if needs_attention:
        return OrderStatus.NEEDS_ATTENTION
    # A fulfillment closed after part of it was handed over (the rest expired or was cancelled)
    # did reach the customer: it counts as done, never as "nothing will reach the customer".
    live = [f for f in customer_facing if f.status not in CLOSED_WITHOUT_FULFILLING or f.handed_over]
    if not live:
        # Every fulfillment closed without fulfilling: nothing will reach the customer.
        return OrderStatus.CANCELLED
    done = [f for f in live if f.status in FULFILLED_STATES or f.status in CLOSED_WITHOUT_FULFILLING]
    if len(done) == len(live):
        return OrderStatus.COMPLETED
    if done or any(f.handed_over for f in live):
        return OrderStatus.PARTIALLY_FULFILLED
    if all(f.status is Status.READY_FOR_PICKUP for f in live):
        return OrderStatus.READY_FOR_PICKUP
    if all(f.status is Status.PENDING for f in live):
        return OrderStatus.RECEIVED
    return OrderStatus.IN_PROGRESS
