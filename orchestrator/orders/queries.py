"""Reading orders: one shape for every channel, scoped for staff to their stores."""

from __future__ import annotations

import base64
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.catalogue.tables import Location
from orchestrator.customers.model import normalise_email
from orchestrator.fulfillment.model import Method, Status, allowed_actions
from orchestrator.orders.numbers import normalise_order_number
from orchestrator.orders.tables import (
    Customer,
    FulfillmentOrder,
    FulfillmentOrderLine,
    Order,
    OrderEvent,
    OrderLine,
)
from orchestrator.orders.views import (
    ArrivalView,
    CustomerView,
    FulfillmentChoice,
    FulfillmentLineView,
    FulfillmentView,
    OrderEventView,
    OrderLineView,
    OrderView,
)
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import Database
from orchestrator.platform.errors import InvalidRequest, NotFound

# One wording whether the order does not exist or this key may not see it: a 404 must not tell
# another store which orders exist (nor name an internal id the caller did not send).
ORDER_NOT_FOUND = "order not found"
FULFILLMENT_NOT_FOUND = "fulfillment not found"


async def location_codes(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Location.id, Location.code).where(Location.id.in_(ids)))
    return dict(rows.all())


def fulfillment_view(
    fo: FulfillmentOrder, lines: Sequence[FulfillmentOrderLine], codes: dict[int, str], number: str
) -> FulfillmentView:
    arrival = None
    if fo.arrived_at is not None:
        info = fo.arrival or {}
        arrival = ArrivalView(
            arrived_at=fo.arrived_at, parking_spot=info.get("parking_spot"), vehicle=info.get("vehicle")
        )
    return FulfillmentView(
        id=fo.id,
        order_id=fo.order_id,
        order_number=number,
        location=codes[fo.location_id],
        method=fo.method,
        status=fo.status,
        version=fo.version,
        lines=[
            FulfillmentLineView(
                id=line.id,
                order_line_id=line.order_line_id,
                sku=line.sku,
                quantity=line.quantity,
                quantity_picked=line.quantity_picked,
                quantity_handed_over=line.quantity_handed_over,
                quantity_cancelled=line.quantity_cancelled,
            )
            for line in lines
        ],
        allowed_actions=allowed_actions(Status(fo.status), Method(fo.method)),
        destination=codes.get(fo.destination_location_id) if fo.destination_location_id else None,
        feeds_fulfillment_id=fo.feeds_fulfillment_id,
        ready_at=fo.ready_at,
        pickup_deadline=fo.pickup_deadline,
        pickup_locked_until=fo.pickup_locked_until,
        arrival=arrival,
        carrier=fo.carrier,
        tracking_number=fo.tracking_number,
        shipped_at=fo.shipped_at,
        closed_at=fo.closed_at,
        close_reason=fo.close_reason,
        created_at=fo.created_at,
        updated_at=fo.updated_at,
    )


@dataclass
class OrderAggregate:
    """An order with everything it owns, as loaded (optionally locked) from the database."""

    order: Order
    customer: Customer
    lines: list[OrderLine]
    fulfillments: list[FulfillmentOrder]
    fulfillment_lines: dict[uuid.UUID, list[FulfillmentOrderLine]]
    codes: dict[int, str]

    def visible_to(self, actor: Actor) -> bool:
        if not actor.is_staff:
            return True
        sites = {self.codes[f.location_id] for f in self.fulfillments}
        sites |= {self.codes[f.destination_location_id] for f in self.fulfillments if f.destination_location_id}
        return bool(sites & actor.locations)

    def view(self) -> OrderView:
        o = self.order
        c = self.customer
        return OrderView(
            id=o.id,
            number=o.number,
            channel=o.channel,
            channel_order_ref=o.channel_order_ref,
            status=o.status,
            version=o.version,
            currency=o.currency,
            subtotal=o.subtotal,
            customer=CustomerView(id=c.id, email=c.email, phone=c.phone, name=c.name),
            fulfillment=FulfillmentChoice(
                method=o.fulfillment_method,
                location=self.codes.get(o.pickup_location_id) if o.pickup_location_id else None,
                address=o.ship_address,
            ),
            lines=[
                OrderLineView(
                    id=line.id,
                    line_no=line.line_no,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    total=line.quantity * line.unit_price,
                    quantity_cancelled=line.quantity_cancelled,
                    quantity_fulfilled=line.quantity_fulfilled,
                    quantity_returned=line.quantity_returned,
                    quantity_unsourced=line.quantity_unsourced,
                )
                for line in self.lines
            ],
            fulfillment_orders=[
                fulfillment_view(f, self.fulfillment_lines.get(f.id, []), self.codes, o.number)
                for f in self.fulfillments
            ],
            attention_reason=o.attention_reason,
            sourcing_profile_version=o.sourcing_profile_version,
            created_at=o.created_at,
            updated_at=o.updated_at,
        )


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
    codes = await location_codes(session, ids)
    return [
        OrderAggregate(
            orders[i],
            customers[orders[i].customer_id],
            lines.get(i, []),
            fulfillments.get(i, []),
            {f.id: fo_lines.get(f.id, []) for f in fulfillments.get(i, [])},
            codes,
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


async def load_order(session: AsyncSession, order_id: uuid.UUID, actor: Actor, *, lock: bool = False) -> OrderAggregate:
    """The whole order, or NotFound (also when a staff key may not see it). With ``lock`` the
    order row and then its fulfillment rows are locked: the order-first lock order."""
    if lock:
        locked = await session.scalar(select(Order.id).where(Order.id == order_id).with_for_update())
        if locked is None:
            raise NotFound(ORDER_NOT_FOUND)
        await session.execute(
            select(FulfillmentOrder.id)
            .where(FulfillmentOrder.order_id == order_id)
            .order_by(FulfillmentOrder.id)
            .with_for_update()
        )
    found = await load_orders(session, [order_id])
    if not found or not found[0].visible_to(actor):
        raise NotFound(ORDER_NOT_FOUND)
    return found[0]


async def order_id_by_number(session: AsyncSession, number: str) -> uuid.UUID:
    found = await session.scalar(select(Order.id).where(Order.number == number))
    if found is None:
        raise NotFound(ORDER_NOT_FOUND)
    return found


def encode_cursor(created_at: datetime, order_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{order_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, ident = raw.split("|")
        at = datetime.fromisoformat(stamp)
        at.astimezone(UTC)  # OverflowError when it falls outside the years a timestamp can hold
        return at, uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise InvalidRequest("cursor is not one this API returned", field="cursor") from None


@dataclass(frozen=True)
class OrderFilter:
    customer_email: str | None = None
    channel: str | None = None
    status: str | None = None
    cursor: str | None = None
    limit: int = 50
    customer_phone: str | None = None  # E.164, normalised by the caller (it knows the default region)
    customer_id: uuid.UUID | None = None


async def list_order_ids(session: AsyncSession, flt: OrderFilter, actor: Actor) -> tuple[list[uuid.UUID], str | None]:
    """Newest first; keyset pagination on (created_at, id)."""
    query = select(Order.id, Order.created_at)
    if flt.customer_email:
        query = query.join(Customer, Customer.id == Order.customer_id).where(
            Customer.email == normalise_email(flt.customer_email)
        )
    if flt.customer_phone:
        query = query.where(Order.customer_id.in_(select(Customer.id).where(Customer.phone == flt.customer_phone)))
    if flt.customer_id:
        query = query.where(Order.customer_id == flt.customer_id)
    if flt.channel:
        query = query.where(Order.channel == flt.channel)
    if flt.status:
        query = query.where(Order.status == flt.status)
    if flt.cursor:
        stamp, ident = decode_cursor(flt.cursor)
        query = query.where(tuple_(Order.created_at, Order.id) < tuple_(stamp, ident))
    if actor.is_staff:
        mine = (
            select(FulfillmentOrder.order_id)
            .join(
                Location,
                or_(
                    Location.id == FulfillmentOrder.location_id, Location.id == FulfillmentOrder.destination_location_id
                ),
            )
            .where(and_(Location.code.in_(sorted(actor.locations))))
        )
        query = query.where(Order.id.in_(mine))
    query = query.order_by(Order.created_at.desc(), Order.id.desc()).limit(flt.limit + 1)
    rows = (await session.execute(query)).all()
    next_cursor = encode_cursor(rows[flt.limit - 1][1], rows[flt.limit - 1][0]) if len(rows) > flt.limit else None
    return [r[0] for r in rows[: flt.limit]], next_cursor


async def get_order(db: Database, order_id: uuid.UUID, actor: Actor) -> OrderView:
    async with db.unit_of_work() as uow:
        return (await load_order(uow.session, order_id, actor)).view()


async def get_order_by_number(db: Database, number: str, actor: Actor) -> OrderView:
    async with db.unit_of_work() as uow:
        order_id = await order_id_by_number(uow.session, normalise_order_number(number))
        return (await load_order(uow.session, order_id, actor)).view()


async def list_orders(db: Database, flt: OrderFilter, actor: Actor) -> tuple[list[OrderView], str | None]:
    async with db.unit_of_work() as uow:
        ids, next_cursor = await list_order_ids(uow.session, flt, actor)
        return [a.view() for a in await load_orders(uow.session, ids)], next_cursor


async def order_events(db: Database, order_id: uuid.UUID, actor: Actor) -> list[OrderEventView]:
    async with db.unit_of_work() as uow:
        return await _order_events(uow.session, order_id, actor)


async def _order_events(session: AsyncSession, order_id: uuid.UUID, actor: Actor) -> list[OrderEventView]:
    await load_order(session, order_id, actor)  # existence and staff scoping
    rows = await session.execute(select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.seq))
    return [
        OrderEventView(
            id=e.id,
            seq=e.seq,
            type=e.type,
            actor=f"{e.actor_kind}:{e.actor_id}" if e.actor_id else e.actor_kind,
            data=e.data,
            occurred_at=e.occurred_at,
        )
        for e in rows.scalars()
    ]


def new_order_view(
    order: dict[str, Any],
    customer: Any,
    lines: list[dict[str, Any]],
    fulfillments: list[dict[str, Any]],
    fulfillment_lines: list[dict[str, Any]],
    location_ids: dict[str, int],
) -> OrderView:
    """A new order as it will read back, built from the rows about to be written (intake's hot
    path: no read-back; rows become plain attribute objects, an ORM object costs ~100 µs)."""
    by_fulfillment: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for line in sorted(fulfillment_lines, key=lambda x: x["id"]):
        by_fulfillment[line["fulfillment_order_id"]].append(_as_row(FulfillmentOrderLine, line))
    aggregate = OrderAggregate(
        order=_as_row(Order, order),
        customer=customer,
        lines=[_as_row(OrderLine, line) for line in lines],
        fulfillments=[_as_row(FulfillmentOrder, f) for f in fulfillments],
        fulfillment_lines=dict(by_fulfillment),
        codes={i: code for code, i in location_ids.items()},
    )
    return aggregate.view()


_COLUMNS = {
    t: {c.name: None for c in t.__table__.columns}  # type: ignore[attr-defined]
    for t in (Order, OrderLine, FulfillmentOrder, FulfillmentOrderLine)
}


def _as_row(table: type, values: dict[str, Any]) -> Any:
    return SimpleNamespace(**{**_COLUMNS[table], **values})
