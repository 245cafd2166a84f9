"""Changes to a whole order rather than one fulfillment, decided on the same snapshots: cancelling
what of it is still open (each open fulfillment's cancel transition, then the order lines) and
the customer's arrival."""

from __future__ import annotations

import uuid
from datetime import datetime

from orchestrator.fulfillment.model import Fulfillment, Order, OrderLineChange, OrderOutcome, Outcome
from orchestrator.fulfillment.requests import Cancel, Context
from orchestrator.fulfillment.transitions import transition
from orchestrator.order_record.states import FULFILLED_STATES, OPEN_STATES, Method
from orchestrator.platform.errors import Conflict, OrderNotCancellable
from orchestrator.platform.events import EventType, OrderEventDraft


def cancel_order(order: Order, reason: str, ctx: Context) -> OrderOutcome:
    """Every quantity not yet with the customer is cancelled, and what was handed over or shipped
    stays: each open fulfillment goes through its own cancel transition (reservations released,
    picked but not handed-over units back on the shelf, transfers feeding it cancelled), and
    whatever of the lines is left unsourced is cancelled too. Refused when nothing is open."""
    if order.status == "cancelled":
        raise OrderNotCancellable("the order is already cancelled", status=order.status)
    facing = [f for f in order.fulfillments if f.method is not Method.TRANSFER]
    if not open_quantities(order) and not any(f.status in OPEN_STATES for f in facing):
        kept = [str(f.id) for f in facing if _delivered(f)]
        raise OrderNotCancellable(
            "nothing of the order is left to cancel: it is with the customer or closed",
            fulfillments=kept,
            status=order.status,
        )
    outcomes = tuple(transition(f, order, Cancel(reason), ctx) for f in facing if f.status in OPEN_STATES)
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


def open_quantities(order: Order) -> dict[uuid.UUID, int]:
    """Order line id → units not yet handed over, shipped or cancelled (what a cancel takes)."""
    left = {ln.id: ln.quantity - ln.fulfilled - ln.cancelled for ln in order.lines}
    return {line_id: units for line_id, units in left.items() if units > 0}


def _delivered(f: Fulfillment) -> bool:
    return f.status in FULFILLED_STATES or any(ln.handed_over for ln in f.lines)


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
