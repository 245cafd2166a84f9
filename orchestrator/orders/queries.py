"""Reading orders: one shape for every channel, scoped for staff to their stores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.catalogue.tables import Location
from orchestrator.customers.identities import owns
from orchestrator.customers.model import normalise_email
from orchestrator.order_record.aggregate import ORDER_NOT_FOUND, OrderAggregate, load_order, load_orders
from orchestrator.order_record.numbers import normalise_order_number
from orchestrator.order_record.tables import FulfillmentOrder, Order, OrderEvent
from orchestrator.orders.views import OrderEventView, OrderView, event_view, view_of
from orchestrator.payments.service import all_order_payments, payment_operations
from orchestrator.payments.views import PaymentOperationView, operation_view, payment_view
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import Database
from orchestrator.platform.errors import NotFound
from orchestrator.platform.pagination import Key, Keyset, Page

# Newest first.
NEWEST_ORDERS = Keyset(Key(Order.created_at, datetime, descending=True), Key(Order.id, uuid.UUID, descending=True))


@dataclass(frozen=True)
class OrderFilter:
    customer_email: str | None = None
    channel: str | None = None
    status: str | None = None
    cursor: str | None = None
    limit: int = 50
    customer_phone: str | None = None  # E.164, normalised by the caller (it knows the default region)
    customer_id: uuid.UUID | None = None


async def order_id_by_number(session: AsyncSession, number: str) -> uuid.UUID:
    found = await session.scalar(select(Order.id).where(Order.number == number))
    if found is None:
        raise NotFound(ORDER_NOT_FOUND)
    return found


async def list_order_ids(session: AsyncSession, flt: OrderFilter, actor: Actor) -> Page[uuid.UUID]:
    query = select(Order.id)
    # Through identities: an email or phone an order used finds it after its customer was merged.
    if flt.customer_email:
        query = query.where(owns(Order.customer_id, "email", normalise_email(flt.customer_email)))
    if flt.customer_phone:
        query = query.where(owns(Order.customer_id, "phone", flt.customer_phone))
    if flt.customer_id:
        query = query.where(Order.customer_id == flt.customer_id)
    if flt.channel:
        query = query.where(Order.channel == flt.channel)
    if flt.status:
        query = query.where(Order.status == flt.status)
    if not actor.reads_all_channels:  # a marketplace's key: its own channel's orders only
        query = query.where(Order.channel == actor.channel)
    if actor.is_staff:
        mine = (
            select(FulfillmentOrder.order_id)
            .join(
                Location,
                or_(
                    Location.id == FulfillmentOrder.location_id, Location.id == FulfillmentOrder.destination_location_id
                ),
            )
            .where(Location.code.in_(sorted(actor.locations)))
        )
        query = query.where(Order.id.in_(mine))
    query = NEWEST_ORDERS.query(query, flt.cursor, flt.limit)
    return NEWEST_ORDERS.page((await session.execute(query)).all(), flt.limit)


async def paid_views(session: AsyncSession, aggregates: Sequence[OrderAggregate], now: datetime) -> list[OrderView]:
    """The orders' views with their payments, their customer status worded at ``now``."""
    payments = await all_order_payments(session, [a.order.id for a in aggregates])
    views = []
    for a in aggregates:
        paid = [payment_view(p) for p in payments.get(a.order.id, [])]
        views.append(msgspec.structs.replace(view_of(a, now), payment=paid[-1] if paid else None, payments=paid))
    return views


async def get_order(db: Database, order_id: uuid.UUID, actor: Actor, now: datetime) -> OrderView:
    """``now``: a staff key's live counter-lookup grant opens the order too (``lookup_grant``)."""
    async with db.unit_of_work() as uow:
        aggregate = await load_order(uow.session, order_id, actor, granted_at=now)
        return (await paid_views(uow.session, [aggregate], now))[0]


async def get_order_by_number(db: Database, number: str, actor: Actor, now: datetime) -> OrderView:
    async with db.unit_of_work() as uow:
        order_id = await order_id_by_number(uow.session, normalise_order_number(number))
        return (await paid_views(uow.session, [await load_order(uow.session, order_id, actor)], now))[0]


async def list_orders(db: Database, flt: OrderFilter, actor: Actor, now: datetime) -> Page[OrderView]:
    async with db.unit_of_work() as uow:
        ids = await list_order_ids(uow.session, flt, actor)
        views = await paid_views(uow.session, await load_orders(uow.session, ids.items), now)
        return Page(views, ids.next_cursor)


async def order_payment_operations(db: Database, order_id: uuid.UUID, actor: Actor) -> list[PaymentOperationView]:
    """Every operation on the order's payments, oldest first."""
    async with db.unit_of_work() as uow:
        await load_order(uow.session, order_id, actor)  # existence and staff scoping
        return [operation_view(p, op) for p, op in await payment_operations(uow.session, order_id)]


async def order_events(
    db: Database, order_id: uuid.UUID, actor: Actor, now: datetime | None = None
) -> list[OrderEventView]:
    async with db.unit_of_work() as uow:
        await load_order(uow.session, order_id, actor, granted_at=now)  # existence, staff scoping, grants
        rows = await uow.session.execute(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.seq)
        )
        return [event_view(e) for e in rows.scalars()]
