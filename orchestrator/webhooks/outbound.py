"""What follows from a published batch, in the transaction that marks it published
(``platform/outbox_relay.FanOut``): event deliveries for the webhook subscriptions, and the
customers' notifications with their deliveries. Written with the mark or not at all."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.platform.outbox_relay import FanOut, OutboxMessageOut
from orchestrator.webhooks.fanout import event_deliveries
from orchestrator.webhooks.notifications import notify


def fan_out_at(clock: Callable[[], datetime]) -> FanOut:
    """The relay's fan-out, due at ``clock()`` when the batch is marked."""

    async def fan_out(session: AsyncSession, messages: list[OutboxMessageOut]) -> None:
        now = clock()
        await event_deliveries(session, messages, now)
        await notify(session, messages, now)

    return fan_out
