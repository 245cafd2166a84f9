"""Uncollected pickups: a reminder before the deadline, expiry (and restock) at it.

Deferred arq jobs make them prompt; a periodic sweep over the database makes them certain, so a
restart or a lost Redis never misses one. Both paths run the same idempotent use cases, each in a
transaction of its own (``db.run(committing(...))``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial

from sqlalchemy import select

from orchestrator.fulfillment.requests import Expire, NotDue, Remind
from orchestrator.fulfillment.service import LifecycleSettings, transition
from orchestrator.order_record.states import Status
from orchestrator.order_record.tables import FulfillmentOrder
from orchestrator.platform.actors import SYSTEM
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.errors import IllegalTransition, NotFound


async def expire_if_due(uow: UnitOfWork, fulfillment_id: uuid.UUID, clock: Clock, settings: LifecycleSettings) -> bool:
    """Whether the pickup expired now (False: not due, no longer ready, or gone)."""
    try:
        await transition(uow, fulfillment_id, Expire(), SYSTEM, clock, settings)
    except (NotDue, IllegalTransition, NotFound):
        return False
    return True


async def remind_if_due(
    uow: UnitOfWork, fulfillment_id: uuid.UUID, clock: Clock, settings: LifecycleSettings, ahead: timedelta
) -> bool:
    """Whether the reminder went out now (False: not due, already sent, or no longer ready)."""
    try:
        await transition(uow, fulfillment_id, Remind(ahead), SYSTEM, clock, settings)
    except (NotDue, IllegalTransition, NotFound):
        return False
    return True


async def due_pickups(uow: UnitOfWork, clock: Clock, ahead: timedelta) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """(to expire, to remind) as of now."""
    now = clock.now()
    ready = FulfillmentOrder.status == Status.READY_FOR_PICKUP.value
    expired = list(
        (
            await uow.session.execute(select(FulfillmentOrder.id).where(ready, FulfillmentOrder.pickup_deadline <= now))
        ).scalars()
    )
    remind = list(
        (
            await uow.session.execute(
                select(FulfillmentOrder.id).where(
                    ready,
                    FulfillmentOrder.reminder_sent_at.is_(None),
                    FulfillmentOrder.pickup_deadline <= now + ahead,
                    FulfillmentOrder.pickup_deadline > now,
                )
            )
        ).scalars()
    )
    return expired, remind


async def sweep(db: Database, clock: Clock, settings: LifecycleSettings, ahead: timedelta) -> tuple[int, int]:
    """The periodic job (an entry point, like the deferred ones in ``worker.py``): what is due, then
    each pickup in a transaction of its own, as its deferred job would run it."""
    expired_ids, remind_ids = await db.run(lambda uow: due_pickups(uow, clock, ahead))
    expire = partial(expire_if_due, clock=clock, settings=settings)
    remind = partial(remind_if_due, clock=clock, settings=settings, ahead=ahead)
    expired = sum([await db.run(committing(partial(expire, fulfillment_id=i))) for i in expired_ids])
    reminded = sum([await db.run(committing(partial(remind, fulfillment_id=i))) for i in remind_ids])
    return expired, reminded
