"""A customer as a channel sees them: identities, how they are contacted, and their orders from
every channel within the key's reach, each with the status sentence the customer sees.

Here rather than in ``customers``: the orders, their reach and their customer status are the
orders layer's. Reach: a key reading every channel sees every customer; a channel key that does
not (a marketplace given ``customers:read``) only customers with an order on its channel, and of
them only those orders and no other platform's accounts; a staff key customers with an order at
its stores. A customer outside reach is the same 404 as an unknown one."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from sqlalchemy import Select, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.catalogue.tables import Location
from orchestrator.customers import identities, records
from orchestrator.customers.model import CUSTOMER_NOT_FOUND, CustomerMerged, IdentityKind
from orchestrator.order_record.aggregate import load_orders
from orchestrator.order_record.customer_status import CustomerStatus
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import FulfillmentOrder, Order
from orchestrator.orders.views import view_of
from orchestrator.platform.actors import Actor
from orchestrator.platform.errors import NotFound

# How many of a customer's orders the view lists: the open ones first, then the newest.
ORDERS_SHOWN = 100
_CLOSED = (OrderStatus.COMPLETED.value, OrderStatus.CANCELLED.value)


class IdentityView(msgspec.Struct, kw_only=True):
    kind: str
    value: str
    created_at: datetime


class PreferredContactView(msgspec.Struct, kw_only=True):
    channel: str
    identity: str


class CustomerOrderView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    number: str
    channel: str
    status: str
    customer_status: CustomerStatus
    total: int
    currency: str
    created_at: datetime


class CustomerFullView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str | None
    email: str | None
    phone: str | None
    identities: list[IdentityView]
    # Where notifications go; null: the channel of their latest order (``last_channel``).
    preferred_contact: PreferredContactView | None
    last_channel: str | None
    # At most ``ORDERS_SHOWN``: open orders first, then the newest.
    orders: list[CustomerOrderView]
    created_at: datetime


def reachable_orders(actor: Actor) -> Select | None:
    """The ids of the orders ``actor`` may see, as a subquery; ``None``: every order."""
    if actor.is_staff:
        at = or_(Location.id == FulfillmentOrder.location_id, Location.id == FulfillmentOrder.destination_location_id)
        return select(FulfillmentOrder.order_id).join(Location, at).where(Location.code.in_(sorted(actor.locations)))
    if not actor.reads_all_channels:
        return select(Order.id).where(Order.channel == actor.channel)
    return None


def _orders_of(customer_id: uuid.UUID, actor: Actor) -> Select:
    query = select(Order.id).where(Order.customer_id == customer_id)
    reach = reachable_orders(actor)
    return query if reach is None else query.where(Order.id.in_(reach))


async def in_reach(session: AsyncSession, customer_id: uuid.UUID, actor: Actor) -> bool:
    if reachable_orders(actor) is None:
        return True
    return bool(await session.scalar(select(exists(_orders_of(customer_id, actor)))))


async def reached_customer(
    session: AsyncSession, customer_id: uuid.UUID, actor: Actor, *, lock: bool = False
) -> records.CustomerRow:
    """The customer, if within ``actor``'s reach; else ``NotFound``. A merged-away id within reach
    (its survivor's) is ``CustomerMerged``."""
    try:
        customer = await records.load_customer(session, customer_id, lock=lock)
    except CustomerMerged as moved:
        if not await in_reach(session, moved.survivor, actor):
            raise NotFound(CUSTOMER_NOT_FOUND) from None
        raise
    if not await in_reach(session, customer_id, actor):
        raise NotFound(CUSTOMER_NOT_FOUND)
    return customer


def _platform(channel: str | None) -> str:
    """``marketplace:shopify`` and ``shopify`` are both Shopify's."""
    return (channel or "").rsplit(":", 1)[-1].lower()


def shown(kind: str, value: str, actor: Actor) -> bool:
    """A key that does not read every channel sees no other platform's account of the customer
    (nor finds a customer by one)."""
    if kind != IdentityKind.ACCOUNT or actor.is_staff or actor.reads_all_channels:
        return True
    return value.split(":", 1)[0] == _platform(actor.channel)


async def customer_view(
    session: AsyncSession, customer: records.CustomerRow, actor: Actor, now: datetime
) -> CustomerFullView:
    orders = _orders_of(customer.id, actor).subquery()
    ids = list(
        await session.scalars(
            select(Order.id)
            .where(Order.id.in_(select(orders.c.id)))
            .order_by(Order.status.in_(_CLOSED), Order.created_at.desc(), Order.id.desc())
            .limit(ORDERS_SHOWN)
        )
    )
    last_channel = await session.scalar(
        select(Order.channel).where(Order.id.in_(select(orders.c.id))).order_by(Order.created_at.desc()).limit(1)
    )
    listed = []
    for aggregate in await load_orders(session, ids):
        o, view = aggregate.order, view_of(aggregate, now)
        listed.append(
            CustomerOrderView(
                id=o.id,
                number=o.number,
                channel=o.channel,
                status=o.status,
                customer_status=view.customer_status,
                total=view.total,
                currency=o.currency,
                created_at=o.created_at,
            )
        )
    contact = None
    if customer.preferred_channel and customer.preferred_identity:
        contact = PreferredContactView(channel=customer.preferred_channel, identity=customer.preferred_identity)
    return CustomerFullView(
        id=customer.id,
        name=customer.name,
        email=customer.email,
        phone=customer.phone,
        identities=[
            IdentityView(kind=i.kind, value=i.value, created_at=i.created_at)
            for i in await identities.identities_of(session, customer.id)
            if shown(i.kind, i.value, actor)
        ],
        preferred_contact=contact,
        last_channel=last_channel,
        orders=listed,
        created_at=customer.created_at,
    )


async def view_in_reach(session: AsyncSession, customer_id: uuid.UUID, actor: Actor, now: datetime) -> CustomerFullView:
    return await customer_view(session, await reached_customer(session, customer_id, actor), actor, now)
