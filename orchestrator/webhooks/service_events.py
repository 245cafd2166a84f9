"""Events about the service itself rather than an order — a subscription switched off after days
of failures (``webhook.subscription_disabled``), a connector's delivery it could not map
(``connector.receipt_unmapped``) — delivered to the subscriptions that take them: an admin's,
and those of the channel concerned. Written in the caller's transaction, sent like any delivery."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.webhooks.fanout import delivery_row
from orchestrator.webhooks.model import SUBSCRIPTION_DISABLED, matches
from orchestrator.webhooks.tables import WebhookDelivery, WebhookSubscription


async def announce(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
    *,
    channel: str | None,
    besides: uuid.UUID | None = None,
) -> int:
    """One delivery per enabled events subscription of an admin, or of ``channel``, that takes
    ``event_type`` (not to ``besides``); returns how many."""
    owners = [WebhookSubscription.owner_channel.is_(None)]  # type: ignore[union-attr]
    if channel is not None:
        owners.append(WebhookSubscription.owner_channel == channel)
    query = select(WebhookSubscription.id, WebhookSubscription.event_types).where(
        WebhookSubscription.enabled, WebhookSubscription.kind == "events", or_(*owners)
    )
    if besides is not None:
        query = query.where(WebhookSubscription.id != besides)
    event_id = uuid.uuid4()
    body = {"id": str(event_id), "type": event_type, "timestamp": now.isoformat(), "data": data}
    rows = [
        delivery_row(sub_id, event_id, event_type, None, body, now)
        for sub_id, patterns in (await session.execute(query)).all()
        if matches(patterns, event_type)
    ]
    if rows:
        await session.execute(insert(WebhookDelivery).values(rows))
    return len(rows)


async def announce_disabled(session: AsyncSession, subscription_id: uuid.UUID, reason: str, now: datetime) -> int:
    disabled = await session.get(WebhookSubscription, subscription_id)
    if disabled is None:
        return 0
    data = {"subscription_id": str(subscription_id), "url": disabled.url, "reason": reason}
    return await announce(
        session, SUBSCRIPTION_DISABLED, data, now, channel=disabled.owner_channel, besides=subscription_id
    )
