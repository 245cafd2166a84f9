"""Placing what an order change asks for (``SourcingAsk``): sourced on current availability (which
already counts the stock the change's give-backs freed, in the same transaction), reserved with
the same lock-and-recheck as intake, written as fulfillments, lines and reservations. A pickup
store that lacks units gets them by transfer whatever the channel's shortfall policy: a change
names its store, so the customer chose it. A shortfall refuses the action the units serve."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment.resourcing import ship_destination
from orchestrator.order_record.aggregate import OrderAggregate
from orchestrator.order_record.states import Method
from orchestrator.order_record.tables import FulfillmentOrder, FulfillmentOrderLine
from orchestrator.orders.change_actions import ChangePlan, Decision, SourcingAsk
from orchestrator.platform.actors import Actor
from orchestrator.platform.errors import ChangeRefused
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.sourcing.candidates import load_location, shortfalls_of, source
from orchestrator.sourcing.decisions import candidate_dicts, decision_row, insert_decision
from orchestrator.sourcing.model import LineDemand, PickupShortfall, SourcingRequest
from orchestrator.sourcing.profiles import current_profile
from orchestrator.sourcing.reservation import materialise, reserve_onto

TRIGGER = "order_change"
AVAILABILITY_SHOWN = 5
# The give-backs' stock rows are locked and applied before these asks lock theirs, so that what
# a moved pickup frees can travel to its new store: two passes, where intake takes one. Another
# transaction meeting them in the other order is a deadlock Postgres breaks and ``db.run`` retries.


async def place_asks(
    session: AsyncSession,
    aggregate: OrderAggregate,
    plan: ChangePlan,
    products: dict[str, int],
    actor: Actor,
    now: datetime,
) -> tuple[list[OrderEventDraft], list[dict[str, Any]]]:
    """Each ask placed: the ``order.sourced`` events and, per ask, what was planned (locations,
    fulfillments, expected ready times) for the dry run and the change record."""
    events: list[OrderEventDraft] = []
    placed: list[dict[str, Any]] = []
    profile = await current_profile(session, aggregate.order.channel)
    for ask in plan.asks:
        lines = {ln.id: ln for ln in aggregate.lines}
        demand = tuple(
            LineDemand(str(line_id), lines[line_id].sku, units, lines[line_id].unit_price)
            for line_id, units in ask.units.items()
        )
        wanted = {lines[i].sku: products[lines[i].sku] for i in ask.units}
        if ask.method is Method.SHIP:
            request = SourcingRequest(demand, Method.SHIP, destination=ship_destination(dict(ask.address or {})))
            sourced = await source(session, request, profile, wanted)
        else:
            store = await load_location(session, code=ask.location)
            assert store is not None, "the use case checked the store exists"
            request = SourcingRequest(demand, ask.method, pickup_location=store.code)
            transfer = replace(profile, on_pickup_shortfall=PickupShortfall.TRANSFER)
            sourced = await source(session, request, transfer, wanted, store=store)
        if not (sourced.plan.complete and sourced.plan.allocations):
            short = shortfalls_of(sourced, request)
            decisions = [
                Decision(d.index, d.type, False, "insufficient_stock") if d.index == ask.index else d
                for d in plan.decisions
            ]
            raise ChangeRefused(
                "not enough stock for the change; nothing was changed",
                actions=[d.as_dict() for d in decisions],
                shortfalls=[
                    {"sku": s.sku, "requested": s.requested, "available": s.available} for s in short.shortfalls
                ],
            )
        decision = decision_row(
            order_id=aggregate.order.id,
            trigger=TRIGGER,
            channel=aggregate.order.channel,
            profile=profile,
            request=request,
            plan=sourced.plan,
            now=now,
        )
        await insert_decision(session, decision)
        pickup = _join(session, aggregate, ask) if ask.pickup is not None else None
        await session.flush()  # lines the pickup grew by exist before their reservations
        rows = materialise(
            sourced,
            order_id=aggregate.order.id,
            method=ask.method,
            order_lines={str(i): (i, lines[i].product_id, lines[i].sku) for i in ask.units},
            ship_address=dict(ask.address) if ask.address is not None else aggregate.order.ship_address,
            decision_id=decision["id"],
            now=now,
            pickup_fulfillment={"id": pickup.id} if pickup is not None else None,
            pickup_line_ids=_pickup_lines(aggregate, pickup) if pickup is not None else None,
            reason="order changed",
        )
        await reserve_onto(session, aggregate, sourced, rows, actor.label)
        if pickup is not None and rows.pickup_ready_at is not None:
            pickup.expected_ready_at = rows.pickup_ready_at
        touched = [*rows.fulfillment_ids(), *([pickup.id] if pickup is not None else [])]
        events.append(
            OrderEventDraft(
                EventType.ORDER_SOURCED,
                {
                    "decision_id": str(decision["id"]),
                    "rule": sourced.plan.rule.value,
                    "locations": sourced.plan.locations,
                    "fulfillment_orders": [str(i) for i in touched],
                },
            )
        )
        placed.append(
            {
                "action_index": ask.index,
                "method": ask.method.value,
                "rule": sourced.plan.rule.value,
                "locations": sourced.plan.locations,
                "expected_ready_at": _ready(rows, pickup),
                "fulfillments_created": len(rows.fulfillments),
                "transfers": sum(1 for f in rows.fulfillments if f["method"] == Method.TRANSFER.value),
                # Who could serve the units, chosen first: how many each covers and how far it is.
                "availability": candidate_dicts(sourced.plan)[:AVAILABILITY_SHOWN],
            }
        )
    return events, placed


def _join(session: AsyncSession, aggregate: OrderAggregate, ask: SourcingAsk) -> FulfillmentOrder:
    """The pickup the units join, its lines grown by the units new to it (a new line where it
    had none of the order line)."""
    pickup = next(f for f in aggregate.fulfillments if f.id == ask.pickup)
    own = aggregate.fulfillment_lines.setdefault(pickup.id, [])
    order_lines = {ln.id: ln for ln in aggregate.lines}
    for order_line_id, units in ask.joining.items():
        line = next((ln for ln in own if ln.order_line_id == order_line_id), None)
        if line is not None:
            line.quantity += units
            continue
        source_line = order_lines[order_line_id]
        line = FulfillmentOrderLine(
            id=uuid.uuid4(),
            fulfillment_order_id=pickup.id,
            order_line_id=order_line_id,
            product_id=source_line.product_id,
            sku=source_line.sku,
            quantity=units,
        )
        session.add(line)
        own.append(line)
    return pickup


def _pickup_lines(aggregate: OrderAggregate, pickup: FulfillmentOrder) -> dict[str, uuid.UUID]:
    return {str(ln.order_line_id): ln.id for ln in aggregate.fulfillment_lines.get(pickup.id, [])}


def _ready(rows: Any, pickup: FulfillmentOrder | None) -> str | None:
    times = [f["expected_ready_at"] for f in rows.fulfillments if f.get("expected_ready_at") is not None]
    if rows.pickup_ready_at is not None:
        times.append(rows.pickup_ready_at)
    return max(times).isoformat() if times else None
