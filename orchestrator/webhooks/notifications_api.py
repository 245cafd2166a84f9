"""``GET /v1/orders/{id}/notifications``: what was sent to the customer, where and when — never a
pickup code (what is shown is the copy without it)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from litestar import Controller, get
from litestar.params import FromPath
from sqlalchemy import select

from orchestrator.order_record.aggregate import load_order
from orchestrator.order_record.tables import OrderEvent
from orchestrator.platform.auth import READ_ORDERS
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep
from orchestrator.platform.problems import problems
from orchestrator.webhooks.tables import Notification


class NotificationView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    event_id: uuid.UUID
    template: str
    channel: str | None  # none: the customer could not be reached on any channel sent through
    recipient: str | None
    status: str  # pending | delivered | dead | unroutable
    subject: str | None
    text: str | None
    created_at: datetime
    sent_at: datetime | None


def view_of(n: Notification) -> NotificationView:
    shown = n.redacted or n.body  # while pending, ``redacted`` is the copy without the code
    return NotificationView(
        id=n.id,
        event_id=n.event_id,
        template=n.template,
        channel=n.channel,
        recipient=n.recipient,
        status=n.status,
        subject=shown.get("subject") or shown.get("title"),
        text=shown.get("text"),
        created_at=n.created_at,
        sent_at=n.sent_at,
    )


class OrderNotificationController(Controller):
    path = "/v1/orders/{order_id:uuid}/notifications"
    tags = ["orders"]
    guards = [READ_ORDERS]

    @get(
        "/",
        operation_id="listOrderNotifications",
        summary="What the customer was sent about the order, where and when, in event order (never a pickup code)",
        responses=problems(401, 403, 404),
    )
    async def list_all(
        self, order_id: FromPath[uuid.UUID], actor: ActorDep, db: DB, clock: ClockDep
    ) -> list[NotificationView]:
        now = clock.now()

        async def read(uow) -> list[NotificationView]:  # type: ignore[no-untyped-def]
            await load_order(uow.session, order_id, actor, granted_at=now)  # reach: the order's 404
            # In the order of the events they tell of (one relay batch writes several at one time).
            query = (
                select(Notification)
                .outerjoin(OrderEvent, OrderEvent.id == Notification.event_id)
                .where(Notification.order_id == order_id)
                .order_by(OrderEvent.seq.nulls_last(), Notification.created_at)  # type: ignore[union-attr]
            )
            return [view_of(n) for n in (await uow.session.scalars(query)).all()]

        return await db.run(read)
