"""The fallback of an order that waited for the customer too long (``action_required`` past its
``action_deadline``): the profile's ``ask_customer_fallback`` applies, as a change the system
makes through the same use case a channel's change goes through (``order_changes.apply``):

- ``transfer``: ``move_pickup`` to the store the pickup is already at, which sources the short
  units by transfer into it; if that is refused (no store can send them any more), the short
  units are cancelled instead;
- ``cancel``: the short units are cancelled (``cancel_line``), the rest stays for pickup.

The worker sweeps every minute; each order is settled in a transaction of its own, its row
locked first, so a customer choosing at the same moment either wins (the order no longer waits)
or finds the fallback applied (its ``If-Match`` is stale: 412)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import select

from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.order_record.aggregate import load_order
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import Order, OrderEvent
from orchestrator.orders import change_rules, order_changes
from orchestrator.platform.actors import SYSTEM
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.errors import ChangeRefused, InsufficientStock
from orchestrator.platform.events import EventType
from orchestrator.sourcing.model import ShortfallFallback
from orchestrator.sourcing.profiles import current_profile

log = structlog.get_logger("orchestrator.orders")

BATCH = 100


@dataclass
class Swept:
    transferred: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def sweep(db: Database, clock: Clock, lifecycle: LifecycleSettings, *, limit: int = BATCH) -> Swept:
    """Apply the fallback to every order whose deadline passed (at most ``limit`` per sweep)."""
    now = clock.now()
    due = await db.run(lambda uow: _due(uow, now, limit))
    swept = Swept()
    for order_id in due:
        try:
            applied = await db.run(committing(lambda uow, i=order_id: fall_back_if_due(uow, i, clock, lifecycle)))
        except Exception as exc:  # one order's failure must not stop the sweep; the next retries it
            log.exception("action deadline fallback failed", order_id=str(order_id))
            swept.errors.append(f"{order_id}: {exc!r}")
            continue
        if applied == ShortfallFallback.TRANSFER:
            swept.transferred.append(order_id)
        elif applied == ShortfallFallback.CANCEL:
            swept.cancelled.append(order_id)
    return swept


async def _due(uow: UnitOfWork, now: datetime, limit: int) -> list[uuid.UUID]:
    rows = await uow.session.execute(
        select(Order.id)
        .where(Order.action_deadline.is_not(None), Order.action_deadline <= now)  # type: ignore[union-attr,operator]
        .order_by(Order.action_deadline)
        .limit(limit)
    )
    return list(rows.scalars())


async def fall_back_if_due(
    uow: UnitOfWork, order_id: uuid.UUID, clock: Clock, lifecycle: LifecycleSettings
) -> ShortfallFallback | None:
    """The fallback applied (transfer, or cancel when that is what was done), or None when the
    order no longer waits (the customer chose, or the deadline moved)."""
    session = uow.session
    now = clock.now()
    aggregate = await load_order(session, order_id, SYSTEM, lock=True)
    order = aggregate.order
    if order.action_deadline is None or order.action_deadline > now or order.status != OrderStatus.ACTION_REQUIRED:
        return None
    fallback = await _fallback_told(uow, order)
    if fallback is ShortfallFallback.TRANSFER:
        store = aggregate.codes.get(order.pickup_location_id or 0)
        if store is not None:
            try:
                async with session.begin_nested():  # released on success, rolled back on a refusal
                    move = (change_rules.MovePickup(location=store),)
                    await _apply(uow, order_id, order.version, move, clock, lifecycle)
            except (ChangeRefused, InsufficientStock):
                pass  # no store can send the units any more: the customer goes without them
            else:
                return ShortfallFallback.TRANSFER
        aggregate = await load_order(session, order_id, SYSTEM, lock=True)
    cancels = tuple(
        change_rules.CancelLine(line_id=ln.id, quantity=ln.quantity_unsourced)
        for ln in aggregate.lines
        if ln.quantity_unsourced > 0
    )
    if cancels:
        await _apply(uow, order_id, aggregate.order.version, cancels, clock, lifecycle)
    return ShortfallFallback.CANCEL


async def _apply(
    uow: UnitOfWork,
    order_id: uuid.UUID,
    version: int,
    actions: tuple[change_rules.ChangeAction, ...],
    clock: Clock,
    lifecycle: LifecycleSettings,
) -> None:
    request = order_changes.ChangeRequest(
        order_id, actions, expected_version=version, actor=SYSTEM, clock=clock, lifecycle=lifecycle
    )
    await order_changes.apply(uow, request)


async def _fallback_told(uow: UnitOfWork, order: Order) -> ShortfallFallback:
    """The fallback the customer was told when the order started waiting (its last
    ``order.action_required``); the channel's current profile should that event be missing."""
    told = await uow.session.scalar(
        select(OrderEvent.data)
        .where(OrderEvent.order_id == order.id, OrderEvent.type == EventType.ORDER_ACTION_REQUIRED.value)
        .order_by(OrderEvent.seq.desc())  # type: ignore[attr-defined]
        .limit(1)
    )
    if told and told.get("fallback"):
        return ShortfallFallback(told["fallback"])
    return (await current_profile(uow.session, order.channel)).ask_customer_fallback
