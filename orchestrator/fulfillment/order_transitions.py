"""Changes to a whole order rather than one fulfillment, decided on the same snapshots: cancelling
it (each open fulfillment's cancel transition, then the order lines) and the customer's arrival."""

from __future__ import annotations

from datetime import datetime

from orchestrator.fulfillment.model import Order, OrderLineChange, OrderOutcome, Outcome
from orchestrator.fulfillment.requests import Cancel, Context
from orchestrator.fulfillment.transitions import transition
from orchestrator.order_record.states import FULFILLED_STATES, OPEN_STATES, Method
from orchestrator.platform.errors import Conflict, OrderNotCancellable
from orchestrator.platform.events import EventType, OrderEventDraft


def cancel_order(order: Order, reason: str, ctx: Context) -> OrderOutcome:
    """Everything not yet with the customer is cancelled; an order of which something was already
    handed over or shipped cannot be cancelled whole."""
    if order.status == "cancelled":
        raise OrderNotCancellable("the order is already cancelled", status=order.status)
    delivered = [
        str(f.id)
        for f in order.fulfillments
        if f.method is not Method.TRANSFER and (f.status in FULFILLED_STATES or any(ln.handed_over for ln in f.lines))
    ]
    if delivered:
        raise OrderNotCancellable(
            "part of the order is already with the customer", fulfillments=delivered, status=order.status
        )
    outcomes = tuple(
        transition(f, order, Cancel(reason), ctx)
        for f in order.fulfillments
        if f.method is not Method.TRANSFER and f.status in OPEN_STATES
    )
    cancelled_by = {ln.id: 0 for ln in order.lines}
    for outcome in outcomes:
        for change in outcome.order_lines:
            cancelled_by[change.order_line_id] += change.cancelled
    # Whatever was not fulfilled is cancelled, and nothing is left waiting for a location.
    lines = tuple(
        OrderLineChange(
            ln.id, cancelled=ln.quantity - ln.fulfilled - ln.cancelled - cancelled_by[ln.id], unsourced=-ln.unsourced
        )
        for ln in order.lines
    )
    return OrderOutcome(outcomes, lines, (OrderEventDraft(EventType.ORDER_CANCELLED, {"reason": reason}),))


def arrive(order: Order, parking_spot: str | None, vehicle: str | None, now: datetime) -> OrderOutcome:
    """The customer is outside (curbside) or at the counter: every open pickup shows it."""
    waiting = [f for f in order.fulfillments if f.method.is_pickup and f.status in OPEN_STATES]
    if not waiting:
        raise Conflict("this order has no open pickup to arrive for")
    arrival = {"parking_spot": parking_spot, "vehicle": vehicle}
    event = OrderEventDraft(
        EventType.ORDER_CUSTOMER_ARRIVED,
        {
            **arrival,
            "fulfillments": [str(f.id) for f in waiting],
            "locations": sorted({f.location for f in waiting}),
        },
    )
    outcomes = tuple(Outcome(f.id, f.status, {"arrived_at": now, "arrival": dict(arrival)}) for f in waiting)
    return OrderOutcome(outcomes, events=(event,))
