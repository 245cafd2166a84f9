"""arq worker: relays the outbox (woken by LISTEN/NOTIFY, polled as a fallback) and runs the
pickup timers (deferred jobs for promptness, a periodic sweep as the guarantee)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog
from arq import cron
from arq.connections import RedisSettings

from orchestrator import metrics
from orchestrator.config import Settings
from orchestrator.db.engine import Database
from orchestrator.domain.pickup import PickupGuard, reminder_at
from orchestrator.services import pickup_timers
from orchestrator.services.clock import SystemClock
from orchestrator.services.fulfillment import LifecycleSettings
from orchestrator.services.outbox_relay import OutboxMessageOut, relay_outbox

log = structlog.get_logger("orchestrator.worker")
READY_EVENT = "fulfillment.ready_for_pickup"


def lifecycle_settings(settings: Settings) -> LifecycleSettings:
    return LifecycleSettings(
        secret=settings.secret_key.get_secret_value(),
        guard=PickupGuard(settings.pickup_max_failed_attempts, timedelta(minutes=settings.pickup_lockout_minutes)),
    )


async def schedule_pickup_timers(ctx: dict[str, Any], messages: list[OutboxMessageOut]) -> None:
    """A pickup became ready: defer its reminder and its expiry to their moments."""
    ahead = timedelta(hours=ctx["settings"].pickup_reminder_hours)
    for m in messages:
        if m.type != READY_EVENT:
            continue
        fo_id = m.payload["data"]["fulfillment_id"]
        deadline = datetime.fromisoformat(m.payload["data"]["pickup_deadline"])
        ready_at = datetime.fromisoformat(m.payload["occurred_at"])
        await ctx["redis"].enqueue_job(
            "remind_pickup",
            fo_id,
            _job_id=f"remind:{fo_id}:{deadline.isoformat()}",
            _defer_until=reminder_at(deadline, ahead, ready_at),
        )
        await ctx["redis"].enqueue_job(
            "expire_pickup", fo_id, _job_id=f"expire:{fo_id}:{deadline.isoformat()}", _defer_until=deadline
        )


async def drain_outbox(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]

    async def after(messages: list[OutboxMessageOut]) -> None:
        metrics.OUTBOX_PUBLISHED.inc(len(messages))
        await schedule_pickup_timers(ctx, messages)

    async with ctx["relay_lock"]:
        return await relay_outbox(
            ctx["db"],
            ctx["redis"],
            stream=settings.events_stream,
            maxlen=settings.events_stream_maxlen,
            batch=settings.outbox_batch_size,
            claim_seconds=settings.outbox_claim_seconds,
            after_publish=after,
        )


async def expire_pickup(ctx: dict[str, Any], fulfillment_id: str) -> bool:
    return await pickup_timers.expire_if_due(ctx["db"], uuid.UUID(fulfillment_id), ctx["clock"], ctx["lifecycle"])


async def remind_pickup(ctx: dict[str, Any], fulfillment_id: str) -> bool:
    ahead = timedelta(hours=ctx["settings"].pickup_reminder_hours)
    return await pickup_timers.remind_if_due(
        ctx["db"], uuid.UUID(fulfillment_id), ctx["clock"], ctx["lifecycle"], ahead
    )


async def sweep_timers(ctx: dict[str, Any]) -> tuple[int, int]:
    ahead = timedelta(hours=ctx["settings"].pickup_reminder_hours)
    return await pickup_timers.sweep(ctx["db"], ctx["clock"], ctx["lifecycle"], ahead)


async def _listen_for_outbox(ctx: dict[str, Any]) -> None:
    """Drain as soon as a transaction that wrote to the outbox commits."""
    url = ctx["db"].url.replace("postgresql+asyncpg://", "postgresql://")
    wake = asyncio.Event()
    while True:
        try:
            conn = await asyncpg.connect(url)
            await conn.add_listener("orchestrator_outbox", lambda *_: wake.set())
            try:
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=5)
                    wake.clear()
                    await drain_outbox(ctx)
            finally:
                await conn.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep listening through database restarts
            log.warning("outbox listener failed; retrying", error=repr(exc))
            await asyncio.sleep(1)


async def startup(ctx: dict[str, Any]) -> None:
    """``ctx`` may arrive with ``settings``, ``clock`` or ``db`` already set (dev mode, tests)."""
    settings = ctx.setdefault("settings", Settings())
    ctx.setdefault("clock", SystemClock())
    ctx["owns_db"] = "db" not in ctx
    if ctx["owns_db"]:
        ctx["db"] = Database(settings.database_url or "", pool_size=5, max_overflow=5)
    ctx["lifecycle"] = lifecycle_settings(settings)
    ctx["relay_lock"] = asyncio.Lock()
    ctx["listener"] = asyncio.create_task(_listen_for_outbox(ctx))


async def shutdown(ctx: dict[str, Any]) -> None:
    listener = ctx.get("listener")
    if listener is not None:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    if ctx.get("owns_db"):
        await ctx["db"].dispose()


def worker_settings(settings: Settings, **ctx: Any) -> dict[str, Any]:
    """Keyword arguments for ``arq.Worker``; ``ctx`` seeds the jobs' context."""
    return {
        "ctx": {"settings": settings, **ctx},
        "functions": [expire_pickup, remind_pickup],
        "cron_jobs": [
            cron(drain_outbox, second=set(range(0, 60, 10)), run_at_startup=True, unique=True),
            cron(sweep_timers, second={30}, run_at_startup=True, unique=True),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1:6379/0"),
        "queue_name": "orchestrator:jobs",
        "handle_signals": False,
        "max_jobs": 20,
        "job_timeout": 120,
    }
