"""Writing what happened: timeline rows and outbox messages, in the caller's transaction.

Every state change of an order goes through ``record_change``, and a new order's events through
``event_rows`` (intake writes them with the order's own rows), so the order's version, its
timeline and the outbox can never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.order_record.status import FulfillmentSummary, derive_order_status
from orchestrator.order_record.tables import Order, OrderEvent
from orchestrator.platform.actors import Actor
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.outbox import OutboxMessage


@dataclass(frozen=True, slots=True)
class OrderRef:
    id: uuid.UUID
    number: str
    channel: str


def event_rows(
    order: OrderRef, first_seq: int, drafts: Sequence[OrderEventDraft], actor: Actor, now: datetime, *, version: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(timeline rows, outbox rows) for ``drafts``, numbered from ``first_seq``; ``version`` is the
    order's version once they happened (a webhook receiver drops what is older than it has)."""
    events: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for offset, draft in enumerate(drafts):
        event_id = uuid.uuid4()
        seq = first_seq + offset
        events.append(
            {
                "id": event_id,
                "order_id": order.id,
                "seq": seq,
                "type": draft.type,
                "actor_kind": actor.kind,
                "actor_id": actor.id,
                "data": draft.data,
                "occurred_at": now,
            }
        )
        messages.append(
            {
                "event_id": event_id,
                "type": draft.type,
                "order_id": order.id,
                "payload": {
                    "id": str(event_id),
                    "type": draft.type,
                    "order_id": str(order.id),
                    "order_number": order.number,
                    "channel": order.channel,
                    "seq": seq,
                    "order_version": version,
                    "actor": actor.label,
                    "occurred_at": now.isoformat(),
                    "data": {**draft.data, **draft.private},
                },
                "created_at": now,
                "attempts": 0,
            }
        )
    return events, messages


async def write_events(
    session: AsyncSession,
    order: OrderRef,
    first_seq: int,
    drafts: Sequence[OrderEventDraft],
    actor: Actor,
    now: datetime,
    *,
    version: int,
) -> None:
    events, messages = event_rows(order, first_seq, drafts, actor, now, version=version)
    if events:
        await session.execute(insert(OrderEvent), events)
        await session.execute(insert(OutboxMessage), messages)


_BUMP = text(
    """
    UPDATE orders
    SET version = version + 1,
        last_event_seq = last_event_seq + :n,
        status = :status,
        attention_reason = :attention,
        updated_at = :now
    WHERE id = :id
    RETURNING last_event_seq, version
    """
)


async def record_change(
    session: AsyncSession,
    order: OrderRef,
    drafts: Sequence[OrderEventDraft],
    actor: Actor,
    now: datetime,
    *,
    status: str,
    attention_reason: str | None,
) -> int:
    """Bump the order's version, set its derived status and append the events. The caller holds
    the order's row lock. Returns the new version."""
    row = (
        await session.execute(
            _BUMP,
            {"n": len(drafts), "status": status, "attention": attention_reason, "now": now, "id": order.id},
        )
    ).one()
    last_seq, version = row
    await write_events(session, order, last_seq - len(drafts) + 1, drafts, actor, now, version=version)
    return version


async def record_order_events(
    session: AsyncSession,
    order: Order,
    drafts: Sequence[OrderEventDraft],
    actor: Actor,
    now: datetime,
    *,
    status: str,
    attention_reason: str | None,
) -> None:
    """``record_change`` for a loaded (locked) order row, which is kept in step with what it wrote."""
    ref = OrderRef(order.id, order.number, order.channel)
    order.version = await record_change(
        session, ref, drafts, actor, now, status=status, attention_reason=attention_reason
    )
    order.status, order.attention_reason = status, attention_reason


async def record_derived_status(
    session: AsyncSession,
    order: Order,
    fulfillments: Iterable[FulfillmentSummary],
    drafts: list[OrderEventDraft],
    actor: Actor,
    now: datetime,
    *,
    attention_reason: str | None,
    needs_attention: bool = False,
    awaiting_payment: bool = False,
) -> None:
    """The order takes the status its fulfillments give it (``order.status_changed`` appended to
    ``drafts`` when it moves), with its events."""
    status = derive_order_status(fulfillments, needs_attention=needs_attention, awaiting_payment=awaiting_payment)
    if status.value != order.status:
        drafts.append(OrderEventDraft(EventType.ORDER_STATUS_CHANGED, {"from": order.status, "to": status.value}))
    await record_order_events(
        session, order, drafts, actor, now, status=status.value, attention_reason=attention_reason
    )
