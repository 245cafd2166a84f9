"""Reading fulfillments: one by id, or a store's queue by urgency."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import case, false, or_, select

from orchestrator.catalogue.tables import Location
from orchestrator.fulfillment.views import FulfillmentView, fulfillment_view
from orchestrator.order_record.aggregate import FULFILLMENT_NOT_FOUND, fulfillment_lines, location_codes
from orchestrator.order_record.states import OPEN_STATES, Status
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import FulfillmentOrder, Order
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import Database
from orchestrator.platform.errors import InvalidRequest, NotFound
from orchestrator.platform.pagination import Key, Keyset, Page

_WAITING_OUTSIDE = case(
    (FulfillmentOrder.arrived_at.is_not(None) & FulfillmentOrder.status.in_([s.value for s in OPEN_STATES]), 0),
    else_=1,
)
# Most urgent first: customers waiting outside, then the nearest pickup deadline, then the
# oldest; the id makes the order total, so a page never skips or repeats a tie.
URGENCY = Keyset(
    Key(_WAITING_OUTSIDE, int),
    Key(FulfillmentOrder.arrived_at, datetime, nulls_last=True),
    Key(FulfillmentOrder.pickup_deadline, datetime, nulls_last=True),
    Key(FulfillmentOrder.created_at, datetime),
    Key(FulfillmentOrder.id, uuid.UUID),
)


async def get_fulfillment(db: Database, fulfillment_id: uuid.UUID, actor: Actor) -> FulfillmentView:
    async with db.unit_of_work() as uow:
        session = uow.session
        row = (
            await session.execute(
                select(FulfillmentOrder, Order.number)
                .join(Order, Order.id == FulfillmentOrder.order_id)
                .where(FulfillmentOrder.id == fulfillment_id)
            )
        ).one_or_none()
        if row is None:
            raise NotFound(FULFILLMENT_NOT_FOUND)
        fo, number = row
        ids = {fo.location_id} | ({fo.destination_location_id} if fo.destination_location_id else set())
        codes = await location_codes(session, ids)
        if actor.is_staff and not (set(codes.values()) & actor.locations):
            raise NotFound(FULFILLMENT_NOT_FOUND)
        lines = await fulfillment_lines(session, [fo.id])
        return fulfillment_view(fo, lines.get(fo.id, []), codes, number)


def parse_statuses(status: str | None) -> list[str]:
    if not status:
        return sorted(s.value for s in OPEN_STATES)
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    known = {s.value for s in Status}
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise InvalidRequest(f"unknown status: {', '.join(unknown)}; one of {sorted(known)}", field="status")
    return wanted


async def fulfillment_queue(
    db: Database, code: str, actor: Actor, *, status: str | None, cursor: str | None, limit: int
) -> Page[FulfillmentView]:
    """By urgency (``URGENCY``). Transfers on their way to this store are listed too, for booking in."""
    statuses = parse_statuses(status)
    if not actor.may_see_location(code):
        raise NotFound(f"location {code} not found")
    async with db.unit_of_work() as uow:
        session = uow.session
        location_id = await session.scalar(select(Location.id).where(Location.code == code))
        if location_id is None:
            raise NotFound(f"location {code} not found")
        incoming = (
            (FulfillmentOrder.destination_location_id == location_id)
            & (FulfillmentOrder.status == Status.SHIPPED.value)
            if status is None or Status.SHIPPED.value in statuses
            else false()
        )
        query = (
            select(FulfillmentOrder, Order.number)
            .join(Order, Order.id == FulfillmentOrder.order_id)
            .where(or_((FulfillmentOrder.location_id == location_id) & FulfillmentOrder.status.in_(statuses), incoming))
            # An order still waiting for its payment (3-D Secure) is no store's work yet.
            .where(Order.status != OrderStatus.PENDING_PAYMENT.value)
        )
        page = URGENCY.page((await session.execute(URGENCY.query(query, cursor, limit))).all(), limit)
        lines = await fulfillment_lines(session, [fo.id for fo, _ in page.items])
        ids = {fo.location_id for fo, _ in page.items} | {
            fo.destination_location_id for fo, _ in page.items if fo.destination_location_id
        }
        codes = await location_codes(session, ids)
        views = [fulfillment_view(fo, lines.get(fo.id, []), codes, number) for fo, number in page.items]
        return Page(views, page.next_cursor)
