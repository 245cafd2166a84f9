"""Re-sourcing: units a location rejected or could not find go to another location, or the order
is flagged ``needs_attention`` with the reason when no location can take them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment.model import Shortage, ShortageTrigger
from orchestrator.order_record.states import Method, Status
from orchestrator.order_record.tables import FulfillmentOrder, FulfillmentOrderLine
from orchestrator.platform.actors import Actor
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.geo import Coordinates
from orchestrator.sourcing.candidates import load_location, source
from orchestrator.sourcing.decisions import decision_row, insert_decision
from orchestrator.sourcing.model import LineDemand, PickupPolicy, SourcingRequest
from orchestrator.sourcing.profiles import current_profile
from orchestrator.sourcing.reservation import insert_rows, materialise, reserve

if TYPE_CHECKING:
    from orchestrator.order_record.aggregate import OrderAggregate


def ship_destination(address: dict | None) -> Coordinates | None:
    if address and address.get("lat") is not None and address.get("lon") is not None:
        return Coordinates(float(address["lat"]), float(address["lon"]))
    return None


async def resource_shortages(
    session: AsyncSession,
    aggregate: OrderAggregate,
    fo: FulfillmentOrder,
    shortages: Sequence[Shortage],
    trigger: ShortageTrigger,
    *,
    actor: Actor,
    now: datetime,
    held_stock: Iterable[tuple[int, int]],
) -> OrderEventDraft:
    """Source ``shortages`` (units ``fo`` gave up) again; the event says where they went, or why
    the order needs attention. ``held_stock``: the (location, product) rows the transition's own
    moves will lock, locked here in the same canonical pass as the new reservations."""
    order = aggregate.order
    codes = aggregate.codes
    code = codes[fo.location_id]
    method = Method(fo.method)
    order_lines = {ln.id: ln for ln in aggregate.lines}
    fo_lines: Mapping[uuid.UUID, FulfillmentOrderLine] = {ln.id: ln for ln in aggregate.fulfillment_lines[fo.id]}
    units: dict[uuid.UUID, int] = defaultdict(int)
    for s in shortages:
        units[fo_lines[s.line_id].order_line_id] += s.quantity
    demand = tuple(
        LineDemand(str(line_id), order_lines[line_id].sku, qty, order_lines[line_id].unit_price)
        for line_id, qty in units.items()
    )
    products = {order_lines[i].sku: order_lines[i].product_id for i in units}
    excluded = frozenset(
        {codes[f.location_id] for f in aggregate.fulfillments if f.status == Status.REJECTED.value} | {code}
    )
    profile = await current_profile(session, order.channel)

    pickup_fo: FulfillmentOrder | None = None
    if method is Method.SHIP:
        request = SourcingRequest(
            demand, Method.SHIP, destination=ship_destination(order.ship_address), excluded=excluded
        )
        sourced = await source(session, request, profile, products)
    else:
        if method is Method.TRANSFER:
            pickup_fo = next(f for f in aggregate.fulfillments if f.id == fo.feeds_fulfillment_id)
        elif profile.pickup_policy is PickupPolicy.TRANSFER and trigger is ShortageTrigger.SHORT_PICK:
            pickup_fo = fo
        if pickup_fo is None:
            # The customer chose this store, now excluded: the plan only ranks and suggests
            # stores; moving the pickup elsewhere is the customer's decision.
            request = SourcingRequest(demand, method, pickup_location=code, excluded=excluded)
            sourced = await source(
                session, request, profile, products, store=await load_location(session, id=fo.location_id)
            )
        else:
            store = await load_location(session, id=pickup_fo.location_id)
            assert store is not None
            request = SourcingRequest(
                demand, Method.TRANSFER, pickup_location=store.code, excluded=excluded - {store.code}
            )
            sourced = await source(session, request, profile, products, store=store)

    decision = decision_row(
        order_id=order.id,
        trigger=trigger.value,
        channel=order.channel,
        profile=profile,
        request=request,
        plan=sourced.plan,
        now=now,
    )
    await insert_decision(session, decision)
    plan = sourced.plan
    if plan.complete and plan.allocations:
        rows = materialise(
            sourced,
            order_id=order.id,
            method=Method(pickup_fo.method) if pickup_fo is not None else method,
            order_lines={str(i): (i, order_lines[i].product_id, order_lines[i].sku) for i in units},
            ship_address=order.ship_address,
            decision_id=decision["id"],
            now=now,
            pickup_fulfillment={"id": pickup_fo.id} if pickup_fo is not None else None,
            reason=f"re-sourced after {trigger.replace('_', ' ')}",
        )
        # The rows this step releases or restocks are locked in the same canonical pass as the new
        # reservations: two separate passes could lock out of order and deadlock.
        await reserve(session, rows, actor.label, list(held_stock))
        await insert_rows(session, rows)
        for row in rows.fulfillments:
            aggregate.fulfillments.append(FulfillmentOrder(**row))
        if pickup_fo is not None and rows.pickup_ready_at is not None:
            # The pickup now waits for the units to travel: never earlier than it already waited.
            known = pickup_fo.expected_ready_at
            pickup_fo.expected_ready_at = max(known, rows.pickup_ready_at) if known else rows.pickup_ready_at
        if pickup_fo is fo:
            # The pickup line waits for the units again; they come on the transfer.
            for s in shortages:
                fo_lines[s.line_id].quantity_cancelled -= s.quantity
        return OrderEventDraft(
            EventType.ORDER_RESOURCED,
            {
                "trigger": trigger.value,
                "decision_id": str(decision["id"]),
                "rule": plan.rule.value,
                "from_location": code,
                "locations": plan.locations,
                "fulfillment_orders": [str(i) for i in rows.fulfillment_ids()],
            },
        )

    short_lines = []
    for line_id, qty in units.items():
        order_lines[line_id].quantity_unsourced += qty
        short_lines.append({"sku": order_lines[line_id].sku, "quantity": qty})
    if pickup_fo is not None and method is Method.TRANSFER:
        pickup_lines = {ln.order_line_id: ln for ln in aggregate.fulfillment_lines.get(pickup_fo.id, [])}
        for line_id, qty in units.items():
            pickup_lines[line_id].quantity_cancelled += qty
    what = ", ".join(f"{s['quantity']} × {s['sku']}" for s in short_lines)
    reason = f"no location can take {what} after {trigger.replace('_', ' ')} at {code}"
    return OrderEventDraft(
        EventType.ORDER_NEEDS_ATTENTION,
        {
            "reason": reason,
            "trigger": trigger.value,
            "decision_id": str(decision["id"]),
            "lines": short_lines,
            "excluded": sorted(request.excluded),
            "suggestions": list(plan.suggestions),
        },
    )
