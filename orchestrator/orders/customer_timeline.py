"""A customer's timeline: what was said to them (interactions) and what happened to their orders
(the orders' events), across channels, newest first, one keyset over (time, id) for both.

An event shows what a channel's stream would: never a pickup code (``order_stream``'s
``private_fields_of`` says which fields only the customer's notification may carry)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.customers.tables import Interaction
from orchestrator.order_record.tables import Order, OrderEvent
from orchestrator.orders.customer_views import reachable_orders
from orchestrator.orders.order_stream import private_fields_of
from orchestrator.platform.actors import Actor
from orchestrator.platform.pagination import Key, Keyset, Page, PageResponse


class InteractionItem(msgspec.Struct, kw_only=True, tag="interaction", tag_field="type"):
    id: uuid.UUID
    at: datetime
    kind: str
    channel: str
    summary: str
    order_id: uuid.UUID | None
    agent: str | None
    recorded_by: str


class OrderEventItem(msgspec.Struct, kw_only=True, tag="order_event", tag_field="type"):
    id: uuid.UUID
    at: datetime
    order_id: uuid.UUID
    order_number: str
    channel: str
    event: str  # the event's type (``fulfillment.ready_for_pickup``)
    seq: int
    actor: str
    data: dict[str, Any]


class TimelinePage(PageResponse, kw_only=True):
    items: list[InteractionItem | OrderEventItem]


def _entries(customer_id: uuid.UUID, actor: Actor) -> Any:
    """(kind, at, id) of every interaction and order event of the customer within reach."""
    reach = reachable_orders(actor)
    interactions = select(
        literal("interaction").label("kind"), Interaction.created_at.label("at"), Interaction.id.label("id")
    ).where(Interaction.customer_id == customer_id)
    events = (
        select(literal("order_event").label("kind"), OrderEvent.occurred_at.label("at"), OrderEvent.id.label("id"))
        .join(Order, Order.id == OrderEvent.order_id)
        .where(Order.customer_id == customer_id)
    )
    if reach is not None:
        # A key reaching only some orders sees only what was said about those.
        interactions = interactions.where(Interaction.order_id.in_(reach))
        events = events.where(Order.id.in_(reach))
    return union_all(interactions, events).subquery("entries")


async def timeline(
    session: AsyncSession, customer_id: uuid.UUID, actor: Actor, cursor: str | None, limit: int
) -> Page[InteractionItem | OrderEventItem]:
    entries = _entries(customer_id, actor)
    keyset = Keyset(Key(entries.c.at, datetime, descending=True), Key(entries.c.id, uuid.UUID, descending=True))
    rows = (await session.execute(keyset.query(select(entries.c.kind, entries.c.id), cursor, limit))).all()
    page = keyset.page(rows, limit)
    wanted = {kind: [i for k, i in page.items if k == kind] for kind in ("interaction", "order_event")}
    found: dict[uuid.UUID, InteractionItem | OrderEventItem] = {}
    if wanted["interaction"]:
        for i in await session.scalars(select(Interaction).where(Interaction.id.in_(wanted["interaction"]))):
            found[i.id] = InteractionItem(
                id=i.id,
                at=i.created_at,
                kind=i.kind,
                channel=i.channel,
                summary=i.summary,
                order_id=i.order_id,
                agent=i.agent,
                recorded_by=i.recorded_by,
            )
    if wanted["order_event"]:
        query = (
            select(OrderEvent, Order.number, Order.channel)
            .join(Order, Order.id == OrderEvent.order_id)
            .where(OrderEvent.id.in_(wanted["order_event"]))
        )
        for e, number, channel in (await session.execute(query)).all():
            private = private_fields_of(e.type)
            found[e.id] = OrderEventItem(
                id=e.id,
                at=e.occurred_at,
                order_id=e.order_id,
                order_number=number,
                channel=channel,
                event=e.type,
                seq=e.seq,
                actor=f"{e.actor_kind}:{e.actor_id}" if e.actor_id else e.actor_kind,
                data={k: v for k, v in (e.data or {}).items() if k not in private},
            )
    return Page([found[i] for _, i in page.items], page.next_cursor)
