"""Relay the outbox to the Redis stream: claim a batch (short transaction), publish, mark.

At-least-once: a worker that dies after publishing but before marking leaves the claim to expire
and the batch is published again; every message carries its stable event id for deduplication.
No row lock is held while Redis is called.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text

from orchestrator.db.engine import Database

_CLAIM = text(
    """
    UPDATE outbox o SET claimed_until = now() + make_interval(secs => :claim_seconds),
                        attempts = o.attempts + 1
    WHERE o.id IN (
        SELECT id FROM outbox
        WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
        ORDER BY id
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    RETURNING o.id, o.event_id, o.type, o.order_id, o.payload
    """
)
_MARK = text("UPDATE outbox SET published_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))")


@dataclass(frozen=True)
class OutboxMessageOut:
    id: int
    event_id: str
    type: str
    order_id: str | None
    payload: dict[str, Any]


async def claim_batch(db: Database, batch: int, claim_seconds: int) -> list[OutboxMessageOut]:
    async with db.unit_of_work() as uow:
        rows = (await uow.session.execute(_CLAIM, {"batch": batch, "claim_seconds": claim_seconds})).all()
        await uow.commit()
    messages = [OutboxMessageOut(r[0], str(r[1]), r[2], str(r[3]) if r[3] else None, r[4]) for r in rows]
    return sorted(messages, key=lambda m: m.id)


async def mark_published(db: Database, ids: list[int]) -> None:
    async with db.unit_of_work() as uow:
        await uow.session.execute(_MARK, {"ids": ids})
        await uow.commit()


async def publish(redis: Redis, stream: str, maxlen: int, messages: list[OutboxMessageOut]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for m in messages:
            pipe.xadd(
                stream,
                {
                    "id": m.event_id,
                    "type": m.type,
                    "order_id": m.order_id or "",
                    "payload": json.dumps(m.payload, separators=(",", ":")),
                },
                maxlen=maxlen,
                approximate=True,
            )
        await pipe.execute()


async def relay_outbox(
    db: Database,
    redis: Redis,
    *,
    stream: str,
    maxlen: int = 1_000_000,
    batch: int = 200,
    claim_seconds: int = 30,
    after_publish: Callable[[list[OutboxMessageOut]], Awaitable[None]] | None = None,
) -> int:
    """Drain until nothing is left to claim; returns how many messages were published."""
    total = 0
    while True:
        messages = await claim_batch(db, batch, claim_seconds)
        if not messages:
            return total
        await publish(redis, stream, maxlen, messages)
        await mark_published(db, [m.id for m in messages])
        if after_publish is not None:
            await after_publish(messages)
        total += len(messages)
