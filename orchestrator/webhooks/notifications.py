"""Customer notifications from published events, written in the relay's transaction with the
webhook fan-out: one notification per customer-facing event, rendered, routed to the customer's
channel and queued as a delivery to that channel's notification subscription. The pickup code is
in the body sent and in no copy kept after it: ``redacted`` (and the delivery's
``redacted_payload``) replace what was sent once it is delivered or dead (``dispatch.record``),
and at once when there is nowhere to send it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.platform.outbox_relay import OutboxMessageOut
from orchestrator.webhooks import notification_rules as rules
from orchestrator.webhooks.fanout import delivery_row
from orchestrator.webhooks.notification_templates import render
from orchestrator.webhooks.tables import Notification, WebhookDelivery, WebhookSubscription

_FACTS = text(
    """
    SELECT o.id, o.number, o.currency, o.subtotal + o.shipping_total + o.tax_total - o.discount_total,
           c.id, c.name, c.email, c.phone, c.preferred_channel, c.preferred_identity,
           (SELECT n.channel FROM notifications n WHERE n.customer_id = c.id AND n.status = 'delivered'
            ORDER BY n.created_at DESC LIMIT 1)
    FROM orders o JOIN customers c ON c.id = o.customer_id
    WHERE o.id = ANY(CAST(:ids AS uuid[]))
    """
)
_STORES = text(
    "SELECT code, name, address, timezone, opening_hours FROM locations WHERE code = ANY(CAST(:codes AS text[]))"
)


async def _senders(session: AsyncSession) -> dict[str, uuid.UUID]:
    """The notification subscription of each channel (the oldest enabled, if several)."""
    query = (
        select(WebhookSubscription.kind, WebhookSubscription.id)
        .where(WebhookSubscription.enabled, WebhookSubscription.kind.in_(rules.CHANNELS))
        .order_by(WebhookSubscription.created_at.desc())
    )
    return {kind: sub_id for kind, sub_id in (await session.execute(query)).all()}


def _envelope(notification_id: uuid.UUID, order: dict, template: str, channel: str, to: str, body: dict, now):
    return {
        "id": str(notification_id),
        "type": f"notification.{channel}",
        "timestamp": now.isoformat(),
        "data": {
            "notification_id": str(notification_id),
            "order_id": str(order["id"]),
            "order_number": order["number"],
            "template": template,
            "channel": channel,
            "to": to,
            **body,
        },
    }


async def notify(session: AsyncSession, messages: Sequence[OutboxMessageOut], now: datetime) -> int:
    """Notifications (and their deliveries) for the customer-facing events among ``messages``."""
    due = [(m, t) for m in messages if m.order_id and (t := rules.template_for(m.type, m.payload.get("data") or {}))]
    if not due:
        return 0
    senders = await _senders(session)
    facts = await session.execute(_FACTS, {"ids": sorted({m.order_id for m, _ in due})})
    orders: dict[str, dict[str, Any]] = {}
    for oid, number, currency, total, cid, name, email, phone, pref, pref_id, last in facts.all():
        contact = rules.Contact(str(cid), email, phone, pref, pref_id, last)
        orders[str(oid)] = {
            "id": oid,
            "number": number,
            "currency": currency,
            "total": total,
            "customer_name": name,
            "customer_id": cid,
            "contact": contact,
        }
    codes = sorted({str(m.payload["data"]["location"]) for m, _ in due if m.payload["data"].get("location")})
    stores = {r[0]: dict(r._mapping) for r in (await session.execute(_STORES, {"codes": codes})).all()}
    notifications, deliveries = [], []
    for message, template in due:
        order = orders.get(message.order_id)
        if order is None:
            continue
        data = message.payload.get("data") or {}
        store = stores.get(str(data.get("location")))
        code = data.get("pickup_code")
        rendered = render(template, rules.context_of(template, data, order, store, code))
        masked = render(template, rules.context_of(template, data, order, store, rules.MASK)) if code else None
        routed = rules.route(order["contact"], senders)
        notification_id = uuid.uuid4()
        row = {
            "id": notification_id,
            "order_id": order["id"],
            "customer_id": order["customer_id"],
            "event_id": uuid.UUID(message.event_id),
            "template": template,
            "channel": routed[0] if routed else None,
            "recipient": routed[1] if routed else None,
            "body": rules.body_for(routed[0], rendered) if routed else (masked or rendered),
            "redacted": rules.body_for(routed[0], masked) if routed and masked else None,
            "status": "pending" if routed else "unroutable",
            "created_at": now,
            "sent_at": None,
        }
        notifications.append(row)
        if routed:
            channel, to = routed
            delivery = delivery_row(
                senders[channel],
                notification_id,
                f"notification.{channel}",
                order["id"],
                _envelope(notification_id, order, template, channel, to, row["body"], now),
                now,
            )
            if row["redacted"] is not None:
                delivery["redacted_payload"] = _envelope(
                    notification_id, order, template, channel, to, row["redacted"], now
                )
            delivery["notification_id"] = notification_id
            deliveries.append(delivery)
    if not notifications:
        return 0
    statement = insert(Notification).values(notifications).on_conflict_do_nothing(constraint="uq_notifications_event")
    written = set((await session.execute(statement.returning(Notification.id))).scalars())
    kept = [d for d in deliveries if d["notification_id"] in written]
    if kept:
        await session.execute(insert(WebhookDelivery).values(kept))
    return len(written)
