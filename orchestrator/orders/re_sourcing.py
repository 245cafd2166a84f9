"""Sourcing an order's unsourced units again once stock arrived (``POST /v1/orders/{id}/re-source``):
a pickup's into its pickup store — from the store's own shelf, by transfer from other stores for
what it lacks, never moved elsewhere (moving is the customer's choice, a ``move_pickup`` change) —
and a shipment's from wherever holds them. All or nothing, in the entry point's one transaction;
the reservations go through ``materialise``/``reserve`` (the one lock helper), so a concurrent
order never gets the same units."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from orchestrator.fulfillment.persistence import record_order_change
from orchestrator.fulfillment.resourcing import ship_destination
from orchestrator.order_record.aggregate import ORDER_NOT_FOUND, OrderAggregate, load_order
from orchestrator.order_record.states import Method, Status
from orchestrator.order_record.tables import FulfillmentOrder
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import NotFound, NothingToSource
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.sourcing.candidates import load_location, shortfalls_of, source
from orchestrator.sourcing.decisions import decision_row, insert_decision
from orchestrator.sourcing.model import LineDemand, PickupShortfall, SourcingRequest
from orchestrator.sourcing.profiles import current_profile
from orchestrator.sourcing.reservation import materialise, reserve_onto, wait_longer

TRIGGER = "re_source"
# A pickup nobody has started to hand over can take units back on its lines.
_REFILLABLE = frozenset({Status.PENDING.value, Status.ACCEPTED.value, Status.PICKING.value})


async def re_source(uow: UnitOfWork, order_id: uuid.UUID, actor: Actor, clock: Clock) -> OrderAggregate:
    """Every unsourced unit placed, or ``InsufficientStock`` and nothing changed;
    ``NothingToSource`` when no unit waits. Admin, or a key of the order's own channel."""
    session = uow.session
    aggregate = await load_order(session, order_id, actor, lock=True)
    order = aggregate.order
    if not actor.is_admin and actor.channel != order.channel:
        raise NotFound(ORDER_NOT_FOUND)
    units = {ln.id: ln.quantity_unsourced for ln in aggregate.lines if ln.quantity_unsourced > 0}
    if not units:
        raise NothingToSource("no unit of the order waits for a location")
    now = clock.now()
    lines = {ln.id: ln for ln in aggregate.lines}
    demand = tuple(LineDemand(str(i), lines[i].sku, q, lines[i].unit_price) for i, q in units.items())
    products = {ln.sku: ln.product_id for ln in aggregate.lines}
    rejected = frozenset(
        aggregate.codes[f.location_id] for f in aggregate.fulfillments if f.status == Status.REJECTED.value
    )
    profile = await current_profile(session, order.channel)
    method = Method(order.fulfillment_method)
    pickup_fo: FulfillmentOrder | None = None
    if method.is_pickup:
        store = await load_location(session, id=order.pickup_location_id)
        assert store is not None, "a pickup order names its store"
        # The store's own shelf may serve now even if it rejected before: the stock arrived there.
        request = SourcingRequest(demand, method, pickup_location=store.code, excluded=rejected - {store.code})
        into_store = replace(profile, on_pickup_shortfall=PickupShortfall.TRANSFER)
        sourced = await source(session, request, into_store, products, store=store)
        pickup_fo = _refillable_pickup(aggregate, store.id, units)
    else:
        request = SourcingRequest(
            demand, Method.SHIP, destination=ship_destination(order.ship_address), excluded=rejected
        )
        sourced = await source(session, request, profile, products)
    if not sourced.plan.complete:
        raise shortfalls_of(sourced, request)

    decision = decision_row(
        order_id=order.id,
        trigger=TRIGGER,
        channel=order.channel,
        profile=profile,
        request=request,
        plan=sourced.plan,
        now=now,
    )
    await insert_decision(session, decision)
    pickup_lines = _pickup_line_ids(aggregate, pickup_fo)
    rows = materialise(
        sourced,
        order_id=order.id,
        method=method,
        order_lines={str(i): (i, lines[i].product_id, lines[i].sku) for i in units},
        ship_address=order.ship_address,
        decision_id=decision["id"],
        now=now,
        pickup_fulfillment={"id": pickup_fo.id} if pickup_fo is not None else None,
        pickup_line_ids=pickup_lines,
        reason="re-sourced on request",
    )
    if pickup_fo is not None:
        # The pickup's lines wait for the units again (read before the new rows join the order).
        by_order_line = {ln.order_line_id: ln for ln in aggregate.fulfillment_lines[pickup_fo.id]}
        for line_id, qty in units.items():
            by_order_line[line_id].quantity_cancelled -= qty
    await reserve_onto(session, aggregate, sourced, rows, actor.label)
    if pickup_fo is not None:
        wait_longer(pickup_fo, rows)
    for line_id in units:
        lines[line_id].quantity_unsourced = 0
    event = OrderEventDraft(
        EventType.ORDER_RESOURCED,
        {
            "trigger": TRIGGER,
            "decision_id": str(decision["id"]),
            "rule": sourced.plan.rule.value,
            "from_location": aggregate.codes.get(order.pickup_location_id or 0, ""),
            "locations": sourced.plan.locations,
            "fulfillment_orders": [str(i) for i in rows.fulfillment_ids()],
        },
    )
    await session.flush()
    await record_order_change(session, aggregate, [event], actor, now)
    await session.flush()
    return await load_order(session, order_id, actor)


def _refillable_pickup(
    aggregate: OrderAggregate, store_id: int, units: dict[uuid.UUID, int]
) -> FulfillmentOrder | None:
    """The open pickup at the store whose lines gave up (cancelled) at least the units: a short
    pick's pickup takes them back; otherwise (a rejection) a new pickup is made."""
    for fo in aggregate.fulfillments:
        if fo.location_id != store_id or fo.method == Method.TRANSFER.value or fo.status not in _REFILLABLE:
            continue
        by_order_line = {ln.order_line_id: ln for ln in aggregate.fulfillment_lines.get(fo.id, [])}
        if all(i in by_order_line and by_order_line[i].quantity_cancelled >= q for i, q in units.items()):
            return fo
    return None


def _pickup_line_ids(aggregate: OrderAggregate, pickup_fo: FulfillmentOrder | None) -> dict[str, Any] | None:
    if pickup_fo is None:
        return None
    return {str(ln.order_line_id): ln.id for ln in aggregate.fulfillment_lines[pickup_fo.id]}
