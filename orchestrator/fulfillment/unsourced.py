"""Units no location takes after a rejection or short pick stay unsourced on the order lines, and
the order says what can be done: a pickup waits in ``action_required`` for the customer to choose
among ready-made changes (``sourcing/shortfall_options.py``) until its deadline, or, when nothing
can bring the units, ``needs_attention`` with going without them as its one option; a shipment
no location can take is ``needs_attention``. ``persistence.record_order_change`` derives the
status from what is written here."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment.model import ShortageTrigger
from orchestrator.order_record.states import Method, Status
from orchestrator.order_record.tables import FulfillmentOrder
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.sourcing.candidates import CANDIDATE_LIMIT, load_location, sourcing_candidates, store_candidate
from orchestrator.sourcing.model import SourcingProfile, SourcingRequest
from orchestrator.sourcing.shortfall_options import PickupLine, PickupShortfallCase, shortfall_options

if TYPE_CHECKING:
    from orchestrator.order_record.aggregate import OrderAggregate


async def ask_customer(
    session: AsyncSession,
    aggregate: OrderAggregate,
    fo: FulfillmentOrder,
    pickup_fo: FulfillmentOrder | None,
    short: Mapping[uuid.UUID, int],
    trigger: ShortageTrigger,
    decision_id: uuid.UUID,
    profile: SourcingProfile,
    now: datetime,
) -> OrderEventDraft:
    """The short units stay unsourced; the order waits for the customer to choose, or, when
    nothing can bring them, needs attention with going without them as its one option."""
    order = aggregate.order
    order_lines = {ln.id: ln for ln in aggregate.lines}
    for line_id, qty in short.items():
        order_lines[line_id].quantity_unsourced += qty
    if pickup_fo is not None and fo.method == Method.TRANSFER.value:
        # The pickup no longer waits for what the failed transfer carried.
        pickup_lines = {ln.order_line_id: ln for ln in aggregate.fulfillment_lines.get(pickup_fo.id, [])}
        for line_id, qty in short.items():
            pickup_lines[line_id].quantity_cancelled += qty
    at = pickup_fo if pickup_fo is not None else fo
    store = await load_location(session, id=order.pickup_location_id or at.location_id)
    assert store is not None
    lines = tuple(
        PickupLine(
            str(ln.id), ln.sku, ln.quantity - ln.quantity_cancelled - ln.quantity_fulfilled, ln.quantity_unsourced
        )
        for ln in aggregate.lines
        if ln.quantity - ln.quantity_cancelled - ln.quantity_fulfilled > 0
    )
    need = {ln.product_id: ln.quantity - ln.quantity_cancelled - ln.quantity_fulfilled for ln in aggregate.lines}
    candidates, _ = await sourcing_candidates(
        session,
        {ln.product_id: ln.sku for ln in aggregate.lines},
        need=need,
        near=store.coordinates,
        limit=CANDIDATE_LIMIT,
    )
    rejected = {aggregate.codes[f.location_id] for f in aggregate.fulfillments if f.status == Status.REJECTED.value}
    case = PickupShortfallCase(store_candidate(store, {}), Method(at.method), lines, frozenset(rejected))
    offered = shortfall_options(case, candidates, profile, now)
    options = [_stored(o) for o in offered.options]
    short_lines = [{"sku": order_lines[i].sku, "quantity": q} for i, q in short.items()]
    what = ", ".join(f"{s['quantity']} × {s['sku']}" for s in short_lines)
    happened = (
        f"{store.code} cannot serve {what} after the {trigger.replace('_', ' ')} at {aggregate.codes[fo.location_id]}"
    )
    order.action_options = options
    if offered.only_going_without:
        order.action_deadline = None
        return OrderEventDraft(
            EventType.ORDER_NEEDS_ATTENTION,
            {
                "reason": f"{happened}; no store holds them and no transfer can bring them: {offered.describe()}",
                "trigger": trigger.value,
                "decision_id": str(decision_id),
                "lines": short_lines,
                "excluded": sorted(rejected | {store.code}),
                "suggestions": [],
            },
        )
    deadline = now + timedelta(hours=profile.ask_customer_timeout_hours)
    order.action_deadline = deadline
    fallback = profile.ask_customer_fallback.value
    return OrderEventDraft(
        EventType.ORDER_ACTION_REQUIRED,
        {
            "reason": f"{happened}; the customer can {offered.describe()} (by {deadline.isoformat()}, else {fallback})",
            "trigger": trigger.value,
            "decision_id": str(decision_id),
            "lines": short_lines,
            "options": options,
            "fallback": fallback,
            "deadline": deadline.isoformat(),
        },
    )


def _stored(option: Mapping[str, Any]) -> dict[str, Any]:
    """As the order row and the event keep it: JSON, times as ISO 8601."""
    ready = option["expected_ready_at"]
    return {**option, "expected_ready_at": ready.isoformat() if ready is not None else None}


def needs_attention(
    aggregate: OrderAggregate,
    short: Mapping[uuid.UUID, int],
    trigger: ShortageTrigger,
    code: str,
    decision_id: uuid.UUID,
    request: SourcingRequest,
    suggestions: Sequence[str],
) -> OrderEventDraft:
    order_lines = {ln.id: ln for ln in aggregate.lines}
    short_lines = []
    for line_id, qty in short.items():
        order_lines[line_id].quantity_unsourced += qty
        short_lines.append({"sku": order_lines[line_id].sku, "quantity": qty})
    what = ", ".join(f"{s['quantity']} × {s['sku']}" for s in short_lines)
    reason = f"no location can take {what} after {trigger.replace('_', ' ')} at {code}"
    return OrderEventDraft(
        EventType.ORDER_NEEDS_ATTENTION,
        {
            "reason": reason,
            "trigger": trigger.value,
            "decision_id": str(decision_id),
            "lines": short_lines,
            "excluded": sorted(request.excluded),
            "suggestions": list(suggestions),
        },
    )
