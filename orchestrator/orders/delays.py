"""Telling the customer a fulfillment is late: past its ``expected_ready_at`` and not ready, it
gets ``fulfillment.delayed`` (which the customer's notification and every channel's webhook
follow) — once per promised time. The order's customer-facing status says "Delayed" from that
moment by the same rule (``order_record/customer_status``: open, not ready, not a transfer).

The worker sweeps every minute; each order in a transaction of its own, its row locked, the
fulfillment checked again under the lock (it may have become ready meanwhile)."""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from orchestrator.order_record.aggregate import load_order
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.order_record.tables import FulfillmentDelay, FulfillmentOrder
from orchestrator.order_record.timeline import record_order_events
from orchestrator.platform.actors import SYSTEM
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.events import EventType, OrderEventDraft

log = structlog.get_logger("orchestrator.orders")
BATCH = 100
WAITING = sorted(s.value for s in OPEN_STATES - {Status.READY_FOR_PICKUP})


def _late(fo: FulfillmentOrder, now: datetime) -> bool:
    return (
        fo.method != Method.TRANSFER
        and fo.status in WAITING
        and fo.expected_ready_at is not None
        and fo.expected_ready_at < now
    )


async def _due(uow: UnitOfWork, now: datetime, limit: int) -> list[uuid.UUID]:
    announced = select(FulfillmentDelay.fulfillment_id).where(
        FulfillmentDelay.fulfillment_id == FulfillmentOrder.id,
        FulfillmentDelay.expected_ready_at == FulfillmentOrder.expected_ready_at,
    )
    query = (
        select(FulfillmentOrder.order_id)
        .where(
            FulfillmentOrder.method != Method.TRANSFER.value,
            FulfillmentOrder.status.in_(WAITING),  # type: ignore[attr-defined]
            FulfillmentOrder.expected_ready_at < now,  # type: ignore[operator]
            ~announced.exists(),
        )
        .distinct()
        .limit(limit)
    )
    return list((await uow.session.execute(query)).scalars())


async def announce(uow: UnitOfWork, order_id: uuid.UUID, now: datetime) -> int:
    """The order's late fulfillments announced; returns how many."""
    aggregate = await load_order(uow.session, order_id, SYSTEM, lock=True)
    late = [fo for fo in aggregate.fulfillments if _late(fo, now)]
    if not late:
        return 0
    rows = [{"fulfillment_id": fo.id, "expected_ready_at": fo.expected_ready_at, "announced_at": now} for fo in late]
    statement = (
        insert(FulfillmentDelay).values(rows).on_conflict_do_nothing().returning(FulfillmentDelay.fulfillment_id)
    )
    new = set((await uow.session.execute(statement)).scalars())
    drafts = [
        OrderEventDraft(
            EventType.FULFILLMENT_DELAYED,
            {
                "fulfillment_id": str(fo.id),
                "location": aggregate.codes[fo.location_id],
                "method": fo.method,
                "expected_ready_at": fo.expected_ready_at.isoformat(),  # type: ignore[union-attr]
            },
        )
        for fo in late
        if fo.id in new
    ]
    if drafts:
        order = aggregate.order
        await record_order_events(
            uow.session, order, drafts, SYSTEM, now, status=order.status, attention_reason=order.attention_reason
        )
    return len(drafts)


async def sweep(db: Database, clock: Clock, *, limit: int = BATCH) -> int:
    now = clock.now()
    announced = 0
    for order_id in await db.run(lambda uow: _due(uow, now, limit)):
        try:
            announced += await db.run(committing(lambda uow, i=order_id: announce(uow, i, now)))
        except Exception:  # one order's failure must not stop the sweep; the next one retries it
            log.exception("delay not announced", order_id=str(order_id))
    return announced
