"""Events about the webhooks themselves: a subscription switched off after days of failures is
announced as ``webhook.subscription_disabled`` to the other subscriptions that take it (an
admin's, or its own channel's), so someone hears of it while the failing one cannot."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.webhooks.fanout import delivery_row
from orchestrator.webhooks.model import SUBSCRIPTION_DISABLED, matches
from orchestrator.webhooks.tables import WebhookDelivery, WebhookSubscription


async def announce_disabled(session: AsyncSession, subscription_id: uuid.UUID, reason: str, now: datetime) -> int:
    """Deliveries of the announcement; returns to how many subscriptions."""
    disabled = await session.get(WebhookSubscription, subscription_id)
    if disabled is None:
        return 0
    listeners = await session.execute(
        select(WebhookSubscription.id, WebhookSubscription.event_types).where(
            WebhookSubscription.enabled,
            WebhookSubscription.kind == "events",
            WebhookSubscription.id != subscription_id,
            or_(
                WebhookSubscription.owner_channel.is_(None),  # type: ignore[union-attr]
                WebhookSubscription.owner_channel == disabled.owner_channel,
            ),
        )
    )
    event_id = uuid.uuid4()
    body = {
        "id": str(event_id),
        "type": SUBSCRIPTION_DISABLED,
        "timestamp": now.isoformat(),
        "data": {"subscription_id": str(subscription_id), "url": disabled.url, "reason": reason},
    }
    rows = [
        delivery_row(sub_id, event_id, SUBSCRIPTION_DISABLED, None, body, now)
        for sub_id, patterns in listeners.all()
        if matches(patterns, SUBSCRIPTION_DISABLED)
    ]
    if rows:
        await session.execute(insert(WebhookDelivery).values(rows))
    return len(rows)
