"""Changes to a whole order rather than one fulfillment: the customer's arrival, cancellation."""

from __future__ import annotations

import uuid

from orchestrator.fulfillment.model import FULFILLED_STATES, OPEN_STATES, Method, Status
from orchestrator.fulfillment.service import LifecycleSettings, Step, record_order_change
from orchestrator.fulfillment.steps import cancel_with
from orchestrator.fulfillment.stock_moves import StockLedger
from orchestrator.orders.queries import OrderAggregate, fulfillment_view, load_order
from orchestrator.orders.timeline import OrderRef, record_change
from orchestrator.orders.views import FulfillmentView
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork
from orchestrator.platform.errors import Conflict, OrderNotCancellable, VersionMismatch
from orchestrator.platform.events import OrderEventDraft


async def record_arrival(
    db: Database, order_id: uuid.UUID, actor: Actor, clock: Clock, parking_spot: str | None, vehicle: str | None
) -> list[FulfillmentView]:
    """The customer is outside (curbside) or at the counter: every open pickup of the order shows it."""

    async def attempt(uow: UnitOfWork) -> list[FulfillmentView]:
        session = uow.session
        aggregate = await load_order(session, order_id, actor, lock=True)
        now = clock.now()
        waiting = [f for f in aggregate.fulfillments if Method(f.method).is_pickup and Status(f.status) in OPEN_STATES]
        if not waiting:
            raise Conflict("this order has no open pickup to arrive for")
        for fo in waiting:
            fo.arrived_at = now
            fo.arrival = {"parking_spot": parking_spot, "vehicle": vehicle}
            fo.version += 1
            fo.updated_at = now
        await session.flush()
        order = aggregate.order
        draft = OrderEventDraft(
            "order.customer_arrived",
            {
                "parking_spot": parking_spot,
                "vehicle": vehicle,
                "fulfillments": [str(f.id) for f in waiting],
                "locations": sorted({aggregate.codes[f.location_id] for f in waiting}),
            },
        )
        order.version = await record_change(
            session,
            OrderRef(order.id, order.number, order.channel),
            [draft],
            actor,
            now,
            status=order.status,
            attention_reason=order.attention_reason,
        )
        await uow.commit()
        return [
            fulfillment_view(f, aggregate.fulfillment_lines.get(f.id, []), aggregate.codes, order.number)
            for f in waiting
        ]

    return await db.run(attempt)


async def cancel_order(
    db: Database,
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

    async def attempt(uow: UnitOfWork) -> OrderAggregate:
        session = uow.session
        aggregate = await load_order(session, order_id, actor, lock=True)
        order = aggregate.order
        if expected_version is not None and expected_version != order.version:
            raise VersionMismatch(expected_version, order.version)
        if order.status == "cancelled":
            raise OrderNotCancellable("the order is already cancelled", status=order.status)
        delivered = [
            str(f.id)
            for f in aggregate.fulfillments
            if f.method != Method.TRANSFER
            and (
                Status(f.status) in FULFILLED_STATES
                or any(ln.quantity_handed_over for ln in aggregate.fulfillment_lines.get(f.id, []))
            )
        ]
        if delivered:
            raise OrderNotCancellable(
                "part of the order is already with the customer", fulfillments=delivered, status=order.status
            )
        now = clock.now()
        ledger = StockLedger(session, str(order.id), now)
        drafts: list[OrderEventDraft] = []
        for fo in list(aggregate.fulfillments):
            if fo.method == Method.TRANSFER or Status(fo.status) not in OPEN_STATES:
                continue
            step = Step(
                aggregate,
                fo,
                aggregate.fulfillment_lines.get(fo.id, []),
                Status.CANCELLED,
                actor,
                now,
                ledger,
                settings,
                drafts,
            )
            await cancel_with(reason)(step)
            fo.status = Status.CANCELLED.value
            fo.version += 1
            fo.closed_at = now
            fo.updated_at = now
        for line in aggregate.lines:
            line.quantity_cancelled = line.quantity - line.quantity_fulfilled
            line.quantity_unsourced = 0
        drafts.append(OrderEventDraft("order.cancelled", {"reason": reason}))
        await ledger.apply(actor.label)
        await session.flush()
        await record_order_change(session, aggregate, drafts, actor, now)
        await uow.commit()
        return aggregate

    return await db.run(attempt)
