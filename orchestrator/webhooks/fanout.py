"""From the outbox to event deliveries: every published event becomes one delivery per enabled
subscription that takes its type and may read its order (``outbound.fan_out_at`` runs it in the
relay's transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.platform.events import PRIVATE_FIELDS
from orchestrator.platform.outbox_relay import OutboxMessageOut
from orchestrator.webhooks.model import envelope, matches
from orchestrator.webhooks.tables import WebhookDelivery, WebhookSubscription


def delivery_row(subscription_id: uuid.UUID, event_id: uuid.UUID, event_type: str, order_id, payload, now) -> dict:
    return {
        "id": uuid.uuid4(),
        "subscription_id": subscription_id,
        "event_id": event_id,
        "event_type": event_type,
        "order_id": order_id,
        "payload": payload,
        "redacted_payload": None,
        "notification_id": None,
        "status": "pending",
        "attempts": 0,
        "due_since": now,
        "next_attempt_at": now,
        "claimed_until": None,
        "last_status_code": None,
        "last_error": None,
        "last_duration_ms": None,
        "attempt_log": [],
        "created_at": now,
        "delivered_at": None,
    }


async def event_deliveries(session: AsyncSession, messages: Sequence[OutboxMessageOut], now: datetime) -> None:
    """One delivery per message and enabled events subscription that takes its type and may read its order."""
    query = select(WebhookSubscription.id, WebhookSubscription.event_types, WebhookSubscription.orders_channel)
    enabled = query.where(WebhookSubscription.enabled, WebhookSubscription.kind == "events")
    subscriptions = (await session.execute(enabled)).all()
    rows = [
        delivery_row(sub_id, uuid.UUID(m.event_id), m.type, m.order_id, envelope(m.payload, PRIVATE_FIELDS), now)
        for m in messages
        for sub_id, patterns, channel in subscriptions
        if matches(patterns, m.type) and channel in (None, m.payload.get("channel"))
    ]
    if rows:
        statement = insert(WebhookDelivery).values(rows)
        await session.execute(statement.on_conflict_do_nothing(constraint="uq_webhook_deliveries_event"))
