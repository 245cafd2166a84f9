"""Re-sourcing: units a location rejected or could not find go to another location; a pickup store
that cannot serve follows the channel profile's ``on_pickup_shortfall``:

- ``transfer``: the short units travel from other stores to the pickup store (after a rejection a
  new pickup at the same store, fed by transfers; the rejecting store's own stock is no source);
- ``move``: the whole pickup goes to the nearest store that holds all of it (units picked at the
  old store go back on its shelf, and it is told by ``fulfillment.moved``);
- ``ask_customer`` (and any policy that cannot act): the units stay unsourced on the order lines
  and the order waits in ``action_required`` with ready-made changes until the profile's
  fallback applies at its deadline (``unsourced.py``).
When nothing can bring the units at all the order is ``needs_attention`` and the one option left
is going without them. A shipment no location can take is ``needs_attention`` too."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment.model import Shortage, ShortageTrigger
from orchestrator.fulfillment.stock_moves import StockLedger
from orchestrator.fulfillment.unsourced import ask_customer, needs_attention
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.order_record.tables import FulfillmentOrder, FulfillmentOrderLine, OrderLine
from orchestrator.platform.actors import Actor
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.geo import Coordinates
from orchestrator.sourcing.candidates import (
    LocationRecord,
    Sourced,
    load_location,
    source,
)
from orchestrator.sourcing.decisions import decision_row, insert_decision
from orchestrator.sourcing.model import (
    LineDemand,
    PickupShortfall,
    Rule,
    SourcingPlan,
    SourcingRequest,
)
from orchestrator.sourcing.profiles import current_profile
from orchestrator.sourcing.reservation import materialise, reserve_onto, wait_longer

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
    ledger: StockLedger | None = None,
) -> list[OrderEventDraft]:
    """Source ``shortages`` (units ``fo`` gave up) again; the events say where they went, or what
    the customer can choose, or why the order needs attention. ``held_stock``: the (location,
    product) rows the transition's own moves will lock, locked here in the same canonical pass as
    the new reservations; ``ledger``: the transition's, through which a pickup moving whole after a
    short pick gives its stock back (without it, the pickup does not move)."""
    order = aggregate.order
    code = aggregate.codes[fo.location_id]
    method = Method(fo.method)
    order_lines = {ln.id: ln for ln in aggregate.lines}
    fo_lines: Mapping[uuid.UUID, FulfillmentOrderLine] = {ln.id: ln for ln in aggregate.fulfillment_lines[fo.id]}
    short: dict[uuid.UUID, int] = defaultdict(int)
    for s in shortages:
        short[fo_lines[s.line_id].order_line_id] += s.quantity
    products = {ln.sku: ln.product_id for ln in aggregate.lines}
    rejected = {aggregate.codes[f.location_id] for f in aggregate.fulfillments if f.status == Status.REJECTED.value}
    excluded = frozenset(rejected | {code})
    profile = await current_profile(session, order.channel)
    policy = profile.on_pickup_shortfall

    pickup_fo: FulfillmentOrder | None = None  # an existing pickup the units are transferred into
    store: LocationRecord | None = None
    closing: FulfillmentOrder | None = None  # a pickup moving whole to another store
    demand = dict(short)
    if method is Method.SHIP:
        request = SourcingRequest(
            _demand(demand, order_lines),
            Method.SHIP,
            destination=ship_destination(order.ship_address),
            excluded=excluded,
        )
    elif method is Method.TRANSFER or policy is PickupShortfall.TRANSFER:
        # A failed transfer is made up by another; a short pickup store is fed by transfers (after
        # a rejection the pickup starts again at the same store, nothing taken from its shelf).
        if method is Method.TRANSFER:
            pickup_fo = next(f for f in aggregate.fulfillments if f.id == fo.feeds_fulfillment_id)
        elif trigger is ShortageTrigger.SHORT_PICK:
            pickup_fo = fo
        store = await load_location(session, id=(pickup_fo or fo).location_id)
        assert store is not None
        request = SourcingRequest(
            _demand(demand, order_lines), Method.TRANSFER, pickup_location=store.code, excluded=excluded - {store.code}
        )
    else:
        store = await load_location(session, id=fo.location_id)
        moves_whole = policy is PickupShortfall.MOVE and ledger is not None and not _feeders(aggregate, fo)
        if trigger is ShortageTrigger.SHORT_PICK and moves_whole:
            # The whole pickup moves: what the store still holds for it and what it lacks.
            closing = fo
            for ln in fo_lines.values():
                demand[ln.order_line_id] += ln.quantity - ln.quantity_cancelled - ln.quantity_handed_over
        request = SourcingRequest(_demand(demand, order_lines), method, pickup_location=code, excluded=excluded)

    asking = method.is_pickup and policy is PickupShortfall.ASK_CUSTOMER
    sourced = None if asking else await source(session, request, profile, products, store=store)
    plan = sourced.plan if sourced is not None else _asked(request)
    decision = decision_row(
        order_id=order.id,
        trigger=trigger.value,
        channel=order.channel,
        profile=profile,
        request=request,
        plan=plan,
        now=now,
    )
    await insert_decision(session, decision)
    if (
        sourced is not None
        and plan.complete
        and plan.allocations
        and (closing is None or plan.rule is Rule.PICKUP_MOVED)
    ):
        drafts = []
        held = list(held_stock)
        if closing is not None:
            assert ledger is not None
            drafts.append(await _let_go(aggregate, closing, ledger, plan.locations[0], trigger, now))
            held += [(c.location_id, c.product_id) for c in ledger.changes]
        drafts.append(
            await _place(
                session, aggregate, fo, pickup_fo, shortages, trigger, sourced, demand, decision["id"], actor, now, held
            )
        )
        return drafts
    if method is Method.SHIP:
        return [needs_attention(aggregate, short, trigger, code, decision["id"], request, plan.suggestions)]
    return [await ask_customer(session, aggregate, fo, pickup_fo, short, trigger, decision["id"], profile, now)]


def _demand(units: Mapping[uuid.UUID, int], order_lines: Mapping[uuid.UUID, OrderLine]) -> tuple[LineDemand, ...]:
    return tuple(
        LineDemand(str(i), order_lines[i].sku, qty, order_lines[i].unit_price) for i, qty in units.items() if qty
    )


def _asked(request: SourcingRequest) -> SourcingPlan:
    """Asking the customer places nothing: the decision records the request and what is short."""
    return SourcingPlan(Rule.PICKUP_SHORT, (), (), unfilled={ln.line_key: ln.quantity for ln in request.lines})


def _feeders(aggregate: OrderAggregate, fo: FulfillmentOrder) -> list[FulfillmentOrder]:
    """Transfers still carrying stock to ``fo``: a pickup they feed is not moved whole."""
    live = {s.value for s in OPEN_STATES} | {Status.SHIPPED.value}
    return [f for f in aggregate.fulfillments if f.feeds_fulfillment_id == fo.id and f.status in live]


async def _let_go(
    aggregate: OrderAggregate,
    fo: FulfillmentOrder,
    ledger: StockLedger,
    to: str,
    trigger: ShortageTrigger,
    now: datetime,
) -> OrderEventDraft:
    """The pickup leaves ``fo``'s store: picked units back on its shelf, its reservations released,
    its lines cancelled and the fulfillment closed."""
    frm = aggregate.codes[fo.location_id]
    reason = f"pickup moved to {to} after {trigger.replace('_', ' ')} at {frm}"
    lines = aggregate.fulfillment_lines[fo.id]
    reservations = await ledger.reservations([ln.id for ln in lines])
    restocked = 0
    for line in lines:
        waiting = line.quantity_picked - line.quantity_handed_over
        ledger.restock(fo.location_id, line, waiting, reason)
        reserved = sum(r.quantity for r in reservations[line.id] if r.status == "active")
        if reserved:
            await ledger.release(line, reserved, reason)
        restocked += waiting
        line.quantity_picked = line.quantity_handed_over
        line.quantity_cancelled = line.quantity - line.quantity_handed_over
    fo.status, fo.closed_at, fo.updated_at, fo.close_reason = Status.CANCELLED.value, now, now, reason
    fo.version += 1
    return OrderEventDraft(
        EventType.FULFILLMENT_MOVED,
        {
            "fulfillment_id": str(fo.id),
            "location": frm,
            "method": fo.method,
            "from_location": frm,
            "to_location": to,
            "reason": reason,
            "units_restocked": restocked,
        },
    )


async def _place(
    session: AsyncSession,
    aggregate: OrderAggregate,
    fo: FulfillmentOrder,
    pickup_fo: FulfillmentOrder | None,
    shortages: Sequence[Shortage],
    trigger: ShortageTrigger,
    sourced: Sourced,
    units: Mapping[uuid.UUID, int],
    decision_id: uuid.UUID,
    actor: Actor,
    now: datetime,
    held: list[tuple[int, int]],
) -> OrderEventDraft:
    order, plan = aggregate.order, sourced.plan
    order_lines = {ln.id: ln for ln in aggregate.lines}
    fo_lines = {ln.id: ln for ln in aggregate.fulfillment_lines[fo.id]}
    customer_facing = pickup_fo if pickup_fo is not None else fo
    rows = materialise(
        sourced,
        order_id=order.id,
        method=Method(customer_facing.method),
        order_lines={str(i): (i, order_lines[i].product_id, order_lines[i].sku) for i in units if units[i]},
        ship_address=order.ship_address,
        decision_id=decision_id,
        now=now,
        pickup_fulfillment={"id": pickup_fo.id} if pickup_fo is not None else None,
        reason=f"re-sourced after {trigger.replace('_', ' ')}",
    )
    # The rows this step releases or restocks are locked in the same canonical pass as the new
    # reservations: two separate passes could lock out of order and deadlock.
    await reserve_onto(session, aggregate, sourced, rows, actor.label, held)
    if pickup_fo is not None:
        wait_longer(pickup_fo, rows)
    if pickup_fo is fo:
        # The pickup line waits for the units again; they come on the transfer.
        for s in shortages:
            fo_lines[s.line_id].quantity_cancelled -= s.quantity
    if plan.rule is Rule.PICKUP_MOVED:
        # The customer now collects where the new pickup is.
        order.pickup_location_id = sourced.location_ids[plan.locations[0]]
    return OrderEventDraft(
        EventType.ORDER_RESOURCED,
        {
            "trigger": trigger.value,
            "decision_id": str(decision_id),
            "rule": plan.rule.value,
            "from_location": aggregate.codes[fo.location_id],
            "locations": plan.locations,
            "fulfillment_orders": [str(i) for i in rows.fulfillment_ids()],
        },
    )
