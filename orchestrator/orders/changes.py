"""Changes to a whole order rather than one fulfillment: the customer's arrival, cancellation.
The model decides them (``fulfillment.order_transitions``); they are written the way every
fulfillment transition is (``fulfillment.persistence``), in the entry point's transaction."""

from __future__ import annotations

import uuid

from orchestrator.fulfillment import order_transitions
from orchestrator.fulfillment.persistence import order_snapshot, persist
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.fulfillment.stock_moves import StockLedger
from orchestrator.fulfillment.views import FulfillmentView, fulfillment_view
from orchestrator.order_record.aggregate import OrderAggregate, load_order
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import VersionMismatch


async def record_arrival(
    uow: UnitOfWork, order_id: uuid.UUID, actor: Actor, clock: Clock, parking_spot: str | None, vehicle: str | None
) -> list[FulfillmentView]:
    """The customer is outside (curbside) or at the counter: every open pickup of the order shows it."""
    session = uow.session
    aggregate = await load_order(session, order_id, actor, lock=True)
    now = clock.now()
    ledger = StockLedger(session, str(order_id), now)
    outcome = order_transitions.arrive(await order_snapshot(aggregate, ledger), parking_spot, vehicle, now)
    await persist(session, aggregate, ledger, outcome.fulfillments, actor, now, order_events=outcome.events)
    arrived = {o.fulfillment_id for o in outcome.fulfillments}
    return [
        fulfillment_view(f, aggregate.fulfillment_lines.get(f.id, []), aggregate.codes, aggregate.order.number)
        for f in aggregate.fulfillments
        if f.id in arrived
    ]


async def cancel_order(
    uow: UnitOfWork,
    order_id: uuid.UUID,
    actor: Actor,
    clock: Clock,
    settings: LifecycleSettings,
    *,
    reason: str,
    expected_version: int | None = None,
) -> OrderAggregate:
    """Cancel everything not yet with the customer: reservations released, picked goods restocked.
    An order of which something was already handed over or shipped cannot be cancelled whole."""
    session = uow.session
    aggregate = await load_order(session, order_id, actor, lock=True)
    order = aggregate.order
    if expected_version is not None and expected_version != order.version:
        raise VersionMismatch(expected_version, order.version)
    now = clock.now()
    ledger = StockLedger(session, str(order.id), now)
    snapshot = await order_snapshot(aggregate, ledger)
    outcome = order_transitions.cancel_order(snapshot, reason, settings.context(actor, now))
    await persist(
        session,
        aggregate,
        ledger,
        outcome.fulfillments,
        actor,
        now,
        order_lines=outcome.order_lines,
        order_events=outcome.events,
    )
    return aggregate
