"""Relay the outbox to the Redis stream: claim a batch (short transaction), publish, mark.

At-least-once: a worker that dies after publishing but before marking leaves the claim to expire
and the batch is published again; every message carries its stable event id for deduplication.
No row lock is held while Redis is called.

What only the notification needs (``PRIVATE_FIELDS`` of the event catalogue, e.g. a pickup code)
leaves the outbox row in the statement that marks it published, and the stream keeps events for
a retention period only: neither a database dump nor an old stream entry reveals it later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.platform.db import Database
from orchestrator.platform.events import PRIVATE_FIELDS

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
# A batch of XADDs takes milliseconds; this long without an answer, Redis is taken for gone.
PUBLISH_TIMEOUT_SECONDS = 5.0
_MARK = text(
    """
    UPDATE outbox SET published_at = now(),
                      payload = CASE WHEN jsonb_typeof(payload -> 'data') = 'object'
                                     THEN jsonb_set(payload, '{data}', (payload -> 'data') - CAST(:private AS text[]))
                                     ELSE payload END
    WHERE id = ANY(CAST(:ids AS bigint[]))
    """
)
# A batch that could not be published is claimable again at once (no wait for the claim to lapse).
_RELEASE = text("UPDATE outbox SET claimed_until = NULL WHERE id = ANY(CAST(:ids AS bigint[]))")


@dataclass(frozen=True)
class OutboxMessageOut:
    id: int
    event_id: str
    type: str  # an EventType's value; kept as written, so a type this version does not know still relays
    order_id: str | None
    payload: dict[str, Any]


async def claim_batch(db: Database, batch: int, claim_seconds: int) -> list[OutboxMessageOut]:
    async with db.unit_of_work() as uow:
        rows = (await uow.session.execute(_CLAIM, {"batch": batch, "claim_seconds": claim_seconds})).all()
        await uow.commit()
    messages = [OutboxMessageOut(r[0], str(r[1]), r[2], str(r[3]) if r[3] else None, r[4]) for r in rows]
    return sorted(messages, key=lambda m: m.id)


# Run in the transaction that marks a batch published, before its private fields are scrubbed:
# what must follow from a published message (a webhook delivery per subscription) is written
# with the mark or not at all, and a crash between the two cannot lose it.
FanOut = Callable[[AsyncSession, list["OutboxMessageOut"]], Awaitable[None]]


async def mark_published(db: Database, messages: list[OutboxMessageOut], fan_out: FanOut | None = None) -> None:
    """Published, and scrubbed of what only the notification needed, in one statement."""
    async with db.unit_of_work() as uow:
        if fan_out is not None:
            await fan_out(uow.session, messages)
        await uow.session.execute(_MARK, {"ids": [m.id for m in messages], "private": list(PRIVATE_FIELDS)})
        await uow.commit()


async def release_claim(db: Database, ids: list[int]) -> None:
    async with db.unit_of_work() as uow:
        await uow.session.execute(_RELEASE, {"ids": ids})
        await uow.commit()


async def _retention_cutoff(redis: Redis, retention: timedelta) -> int:
    """The oldest entry id to keep. Entry ids carry Redis's clock, so the cut-off is taken from
    Redis's clock too (TIME), not from this process's."""
    seconds, micros = await redis.time()
    return max(0, seconds * 1000 + micros // 1000 - int(retention.total_seconds() * 1000))


async def publish(
    redis: Redis, stream: str, maxlen: int, messages: list[OutboxMessageOut], retention: timedelta | None = None
) -> None:
    """XADD each message (``maxlen`` caps the stream approximately), then drop the entries older
    than ``retention``."""
    min_id = None if retention is None else await _retention_cutoff(redis, retention)
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
        if min_id is not None:
            pipe.xtrim(stream, minid=min_id, approximate=False)
        await pipe.execute()


async def trim_stream(redis: Redis, stream: str, retention: timedelta) -> int:
    """Drop the entries older than ``retention``; returns how many. ``publish`` trims only when
    there is something to publish: on a quiet system the worker calls this on a schedule, so an
    old entry (and a pickup code in it) does not outlive the retention."""
    return int(await redis.xtrim(stream, minid=await _retention_cutoff(redis, retention), approximate=False))


async def relay_outbox(
    db: Database,
    redis: Redis,
    *,
    stream: str,
    maxlen: int = 1_000_000,
    retention: timedelta | None = None,
    batch: int = 200,
    claim_seconds: int = 30,
    publish_timeout: float = PUBLISH_TIMEOUT_SECONDS,
    after_publish: Callable[[list[OutboxMessageOut]], Awaitable[None]] | None = None,
    fan_out: FanOut | None = None,
) -> int:
    """Drain until nothing is left to claim; returns how many messages were published. A publish
    that does not finish within ``publish_timeout`` seconds fails with ``TimeoutError`` and
    releases its claim: a Redis that stopped answering without closing the connection would
    otherwise hold the relay until TCP gives up."""
    total = 0
    while True:
        messages = await claim_batch(db, batch, claim_seconds)
        if not messages:
            return total
        try:
            async with asyncio.timeout(publish_timeout):
                await publish(redis, stream, maxlen, messages, retention)
        except Exception:
            with contextlib.suppress(Exception):  # the database may be gone too: the claim lapses
                await release_claim(db, [m.id for m in messages])
            raise
        await mark_published(db, messages, fan_out)
        if after_publish is not None:
            await after_publish(messages)
        total += len(messages)
