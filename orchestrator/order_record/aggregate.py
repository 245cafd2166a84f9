"""An order with everything it owns, loaded (and locked, for a writer) in one place: the writers
change it, the readers turn it into its view."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import DateTime, String, Uuid, column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.catalogue.tables import Location
from orchestrator.customers.tables import Customer
from orchestrator.order_record.states import Method, Status
from orchestrator.order_record.status import FulfillmentSummary
from orchestrator.order_record.tables import FulfillmentOrder, FulfillmentOrderLine, Order, OrderLine
from orchestrator.platform.actors import Actor
from orchestrator.platform.errors import NotFound

# One wording whether the order does not exist or this key may not see it: a 404 must not tell
# another store which orders exist (nor name an internal id the caller did not send).
ORDER_NOT_FOUND = "order not found"
FULFILLMENT_NOT_FOUND = "fulfillment not found"

# The counter lookups' grants (``fulfillment/counter_tables.py``), named by table: fulfillment
# builds on the order record, so the record cannot import its model.
_GRANTS = table(
    "pickup_lookup_grants",
    column("api_key_id", Uuid),
    column("order_id", Uuid),
    column("location_code", String),
    column("expires_at", DateTime(timezone=True)),
)


async def location_codes(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Location.id, Location.code).where(Location.id.in_(ids)))
    return dict(rows.all())


async def locations_by_id(session: AsyncSession, ids: set[int]) -> dict[int, Location]:
    if not ids:
        return {}
    rows = (await session.execute(select(Location).where(Location.id.in_(ids)))).scalars()
    return {loc.id: loc for loc in rows if loc.id is not None}


async def load_missing_sites(session: AsyncSession, aggregate: OrderAggregate) -> None:
    """The locations a change added to ``codes`` after loading, whole: its answer shows the
    customer the new store as a later read does."""
    aggregate.sites.update(await locations_by_id(session, set(aggregate.codes) - set(aggregate.sites)))


@dataclass
class OrderAggregate:
    """An order with everything it owns, as loaded (optionally locked) from the database."""

    order: Order
    customer: Customer
    lines: list[OrderLine]
    fulfillments: list[FulfillmentOrder]
    fulfillment_lines: dict[uuid.UUID, list[FulfillmentOrderLine]]
    codes: dict[int, str]
    # The locations ``codes`` names, whole: what the customer-facing status shows of a store.
    sites: dict[int, Location] = field(default_factory=dict)

    def visible_to(self, actor: Actor) -> bool:
        if not actor.reaches_channel(self.order.channel):
            return False
        if not actor.is_staff:
            return True
        sites = {self.codes[f.location_id] for f in self.fulfillments}
        sites |= {self.codes[f.destination_location_id] for f in self.fulfillments if f.destination_location_id}
        return bool(sites & actor.locations)


async def load_orders(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> list[OrderAggregate]:
    """Several whole orders in five queries, in the order asked."""
    if not order_ids:
        return []
    orders = {o.id: o for o in (await session.execute(select(Order).where(Order.id.in_(order_ids)))).scalars()}
    fulfillments: dict[uuid.UUID, list[FulfillmentOrder]] = {}
    rows = await session.execute(
        select(FulfillmentOrder)
        .where(FulfillmentOrder.order_id.in_(order_ids))
        .order_by(FulfillmentOrder.created_at, FulfillmentOrder.id)
    )
    for fo in rows.scalars():
        fulfillments.setdefault(fo.order_id, []).append(fo)
    lines: dict[uuid.UUID, list[OrderLine]] = {}
    rows = await session.execute(
        select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.order_id, OrderLine.line_no)
    )
    for line in rows.scalars():
        lines.setdefault(line.order_id, []).append(line)
    fo_lines = await fulfillment_lines(session, [f.id for fos in fulfillments.values() for f in fos])
    customers = {
        c.id: c
        for c in (
            await session.execute(select(Customer).where(Customer.id.in_({o.customer_id for o in orders.values()})))
        ).scalars()
    }
    ids: set[int] = set()
    for fos in fulfillments.values():
        for f in fos:
            ids.add(f.location_id)
            if f.destination_location_id:
                ids.add(f.destination_location_id)
    ids |= {o.pickup_location_id for o in orders.values() if o.pickup_location_id}
    sites = await locations_by_id(session, ids)
    codes = {i: loc.code for i, loc in sites.items()}
    return [
        OrderAggregate(
            orders[i],
            customers[orders[i].customer_id],
            lines.get(i, []),
            fulfillments.get(i, []),
            {f.id: fo_lines.get(f.id, []) for f in fulfillments.get(i, [])},
            codes,
            sites,
        )
        for i in order_ids
        if i in orders
    ]


async def fulfillment_lines(
    session: AsyncSession, fulfillment_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[FulfillmentOrderLine]]:
    out: dict[uuid.UUID, list[FulfillmentOrderLine]] = {}
    if fulfillment_ids:
        rows = await session.execute(
            select(FulfillmentOrderLine)
            .where(FulfillmentOrderLine.fulfillment_order_id.in_(fulfillment_ids))
            .order_by(FulfillmentOrderLine.id)
        )
        for line in rows.scalars():
            out.setdefault(line.fulfillment_order_id, []).append(line)
    return out


def fulfillment_summaries(
    fulfillments: Sequence[FulfillmentOrder], lines: dict[uuid.UUID, list[FulfillmentOrderLine]]
) -> list[FulfillmentSummary]:
    """What the order's derived status is computed from: each fulfillment and what it handed over."""
    return [
        FulfillmentSummary(
            Status(f.status), Method(f.method), sum(ln.quantity_handed_over for ln in lines.get(f.id, ()))
        )
        for f in fulfillments
    ]


async def lock_order_row(session: AsyncSession, order_id: uuid.UUID) -> Order | None:
    """The order row, locked: the first lock every change of an order takes (order first, then
    its fulfillments, payments and stock)."""
    return await session.scalar(select(Order).where(Order.id == order_id).with_for_update())


async def lookup_grant(session: AsyncSession, actor: Actor, order_id: uuid.UUID, now: datetime) -> str | None:
    """The store whose counter this staff key found the order at (``POST /v1/pickup-lookup``),
    while that grant lives; else None. The one check for everything a lookup opens up: reading the
    order and its timeline, and moving its pickup to that store."""
    if not actor.is_staff or actor.key_id is None:
        return None
    try:
        key_id = uuid.UUID(actor.key_id)
    except ValueError:
        return None
    return await session.scalar(
        select(_GRANTS.c.location_code)
        .where(_GRANTS.c.api_key_id == key_id, _GRANTS.c.order_id == order_id, _GRANTS.c.expires_at > now)
        .order_by(_GRANTS.c.expires_at.desc())
        .limit(1)
    )


async def load_order(
    session: AsyncSession,
    order_id: uuid.UUID,
    actor: Actor,
    *,
    lock: bool = False,
    granted_at: datetime | None = None,
) -> OrderAggregate:
    """The whole order, or NotFound (also when a staff key may not see it). With ``lock`` the
    order row and then its fulfillment rows are locked: the order-first lock order. With
    ``granted_at`` (the time now) a staff key also sees an order its live counter-lookup grant
    names (``lookup_grant``); only the reads and changes a lookup opens up pass it."""
    if lock:
        if await lock_order_row(session, order_id) is None:
            raise NotFound(ORDER_NOT_FOUND)
        await session.execute(
            select(FulfillmentOrder.id)
            .where(FulfillmentOrder.order_id == order_id)
            .order_by(FulfillmentOrder.id)
            .with_for_update()
        )
    found = await load_orders(session, [order_id])
    if not found:
        raise NotFound(ORDER_NOT_FOUND)
    if not found[0].visible_to(actor) and (
        granted_at is None or await lookup_grant(session, actor, order_id, granted_at) is None
    ):
        raise NotFound(ORDER_NOT_FOUND)
    return found[0]
