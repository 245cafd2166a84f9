"""Uncollected pickups: a reminder before the deadline, expiry (and restock) at it.

Deferred arq jobs make them prompt; a periodic sweep over the database makes them certain, so a
restart or a lost Redis never misses one. Both paths call the same idempotent use cases.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from orchestrator.fulfillment.requests import Expire, NotDue, Remind
from orchestrator.fulfillment.service import LifecycleSettings, transition
from orchestrator.order_record.states import Status
from orchestrator.order_record.tables import FulfillmentOrder
from orchestrator.platform.actors import SYSTEM
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database
from orchestrator.platform.errors import IllegalTransition, NotFound


async def expire_if_due(db: Database, fulfillment_id: uuid.UUID, clock: Clock, settings: LifecycleSettings) -> bool:
    """Whether the pickup expired now (False: not due, no longer ready, or gone)."""
    try:
        await transition(db, fulfillment_id, Expire(), SYSTEM, clock, settings)
    except (NotDue, IllegalTransition, NotFound):
        return False
    return True


async def remind_if_due(
    db: Database, fulfillment_id: uuid.UUID, clock: Clock, settings: LifecycleSettings, ahead: timedelta
) -> bool:
    """Whether the reminder went out now (False: not due, already sent, or no longer ready)."""
    try:
        await transition(db, fulfillment_id, Remind(ahead), SYSTEM, clock, settings)
    except (NotDue, IllegalTransition, NotFound):
        return False
    return True


async def due_pickups(db: Database, clock: Clock, ahead: timedelta) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """(to expire, to remind) as of now."""
    now = clock.now()
    async with db.unit_of_work() as uow:
        ready = FulfillmentOrder.status == Status.READY_FOR_PICKUP.value
        expired = list(
            (
                await uow.session.execute(
                    select(FulfillmentOrder.id).where(ready, FulfillmentOrder.pickup_deadline <= now)
                )
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
    expired_ids, remind_ids = await due_pickups(db, clock, ahead)
    expired = sum([await expire_if_due(db, i, clock, settings) for i in expired_ids])
    reminded = sum([await remind_if_due(db, i, clock, settings, ahead) for i in remind_ids])
    return expired, reminded
