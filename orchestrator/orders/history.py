"""An order's history for an operator (``orchestrator events``): its timeline and the outbox
messages written about it, published or still waiting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from orchestrator.order_record.numbers import normalise_order_number
from orchestrator.order_record.tables import Order
from orchestrator.orders.queries import order_events
from orchestrator.orders.views import OrderEventView
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import Database
from orchestrator.platform.errors import NotFound
from orchestrator.platform.events import PRIVATE_FIELDS
from orchestrator.platform.outbox import OutboxMessage

OPERATOR = Actor(kind="admin", id="cli")


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    event_id: uuid.UUID
    type: str
    created_at: datetime
    published_at: datetime | None
    attempts: int
    data: dict[str, Any]


@dataclass(frozen=True)
class OrderHistory:
    order_id: uuid.UUID
    number: str
    channel: str
    status: str
    timeline: list[OrderEventView]
    outbox: list[OutboxEntry]  # the latest ones, oldest first


def _shown(payload: dict[str, Any]) -> dict[str, Any]:
    """What an operator may see of a message: not what only the customer's notification needs (a
    pickup code), which a message still waiting to be relayed carries."""
    data = payload.get("data", {})
    if not isinstance(data, dict):
        return {}
    return {name: value for name, value in data.items() if name not in PRIVATE_FIELDS}


async def order_history(db: Database, ref: str, *, outbox_limit: int = 20) -> OrderHistory:
    """``ref`` is the order's id or its number (as the customer reads it out)."""
    try:
        where = Order.id == uuid.UUID(ref)
    except ValueError:
        where = Order.number == normalise_order_number(ref)
    async with db.unit_of_work() as uow:
        order = (
            await uow.session.execute(select(Order.id, Order.number, Order.channel, Order.status).where(where))
        ).first()
        if order is None:
            raise NotFound(f"no order {ref}")
        rows = await uow.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.order_id == order.id)
            .order_by(OutboxMessage.id.desc())
            .limit(outbox_limit)
        )
        outbox = [
            OutboxEntry(m.id or 0, m.event_id, m.type, m.created_at, m.published_at, m.attempts, _shown(m.payload))
            for m in reversed(list(rows))
        ]
    timeline = await order_events(db, order.id, OPERATOR)
    return OrderHistory(order.id, order.number, order.channel, order.status, timeline, outbox)
