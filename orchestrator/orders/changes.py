"""Changes to a whole order rather than one fulfillment: the customer's arrival, cancelling what
is still open.
The model decides them (``fulfillment.order_transitions``); they are written the way every
fulfillment transition is (``fulfillment.persistence``), in the entry point's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment import order_transitions
from orchestrator.fulfillment.model import OrderOutcome
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
    """Cancel everything not yet with the customer and keep what was handed over or shipped
    (``cancel_open``); OrderNotCancellable when nothing is open any more."""
    session = uow.session
    aggregate = await load_order(session, order_id, actor, lock=True)
    order = aggregate.order
    if expected_version is not None and expected_version != order.version:
        raise VersionMismatch(expected_version, order.version)
    await cancel_open(session, aggregate, actor, clock.now(), settings, reason=reason)
    return aggregate


async def cancel_open(
    session: AsyncSession,
    aggregate: OrderAggregate,
    actor: Actor,
    now: datetime,
    settings: LifecycleSettings,
    *,
    reason: str,
) -> OrderOutcome:
    """The one cancel rule, for an order its caller loaded and locked (``load_order(lock=True)``)
    and written in the caller's transaction: every open fulfillment takes its own cancel
    transition (reservations released, picked but not handed-over units restocked, transfers
    feeding it cancelled), the lines' unsourced rest is cancelled, and the closing settles the
    card payment the way any fulfillment closing does (held captures of the handed-over goods
    queued, a multicapture rest released, an order with nothing handed over voided). Returns
    what it did; ``order_transitions.cancel_order`` decides the same without writing (dry runs)."""
    ledger = StockLedger(session, str(aggregate.order.id), now)
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
    return outcome
