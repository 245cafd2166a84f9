"""arq worker: relays the outbox (woken by LISTEN/NOTIFY, polled as a fallback) and runs the
pickup timers (deferred jobs for promptness, a periodic sweep as the guarantee), and trims the
events stream to its retention every minute."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
import structlog
from arq import Worker, cron
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential, wait_random
from tenacity.wait import wait_base

from connectors.amazon.poller import poll_amazon_connectors
from orchestrator.connections import receipts as connector_receipts
from orchestrator.connections.handlers import processing as connector_processing
from orchestrator.fulfillment import timers as pickup_timers
from orchestrator.fulfillment.pickup import reminder_at
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.orders import action_deadlines, authorisation_timers, delays, payment_timers
from orchestrator.payments import captures as payment_captures
from orchestrator.payments.stripe_gateway import payment_gateway
from orchestrator.platform import metrics
from orchestrator.platform.clock import SystemClock
from orchestrator.platform.db import Database, committing
from orchestrator.platform.events import EventType
from orchestrator.platform.outbox_relay import PUBLISH_TIMEOUT_SECONDS, OutboxMessageOut, relay_outbox, trim_stream
from orchestrator.settings import Settings
from orchestrator.webhooks.dispatch import DeliveryLimits, Dispatcher, expire_stale
from orchestrator.webhooks.outbound import fan_out_at

log = structlog.get_logger("orchestrator.worker")
OUTBOX_CHANNEL = "orchestrator_outbox"  # NOTIFYed by the outbox trigger at commit
REDIS_OUTAGE = (RedisError, OSError, TimeoutError)
RECONNECT_MAX_SECONDS = 5.0


def _delay_until(moment: datetime, now: datetime) -> timedelta:
    """How long until ``moment`` by the injected clock; a moment already past runs now. Never
    an absolute time: arq would compare it with its own clock and give a past one a negative
    Redis expiry (``invalid expire time``)."""
    return max(moment - now, timedelta(0))


async def _schedule_timers_of(redis: ArqRedis, message: OutboxMessageOut, ahead: timedelta, now: datetime) -> None:
    data = message.payload["data"]
    fo_id = data["fulfillment_id"]
    deadline = datetime.fromisoformat(data["pickup_deadline"])
    ready_at = datetime.fromisoformat(message.payload["occurred_at"])
    await redis.enqueue_job(
        "remind_pickup",
        fo_id,
        _job_id=f"remind:{fo_id}:{deadline.isoformat()}",
        _defer_by=_delay_until(reminder_at(deadline, ahead, ready_at), now),
    )
    await redis.enqueue_job(
        "expire_pickup",
        fo_id,
        _job_id=f"expire:{fo_id}:{deadline.isoformat()}",
        _defer_by=_delay_until(deadline, now),
    )


async def schedule_pickup_timers(ctx: dict[str, Any], messages: list[OutboxMessageOut]) -> None:
    """A pickup became ready: defer its reminder and its expiry to their moments (now, if the
    event was relayed late). One message that cannot be scheduled does not cost the others
    their timers; the periodic sweep still runs its pickup's."""
    ahead = timedelta(hours=ctx["settings"].pickup_reminder_hours)
    now = ctx["clock"].now()
    ready = [m for m in messages if m.type == EventType.FULFILLMENT_READY_FOR_PICKUP]
    try:  # bounded: this runs under the relay lock, and a Redis that stopped answering would hold it
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            for m in ready:
                try:
                    await _schedule_timers_of(ctx["redis"], m, ahead, now)
                except Exception as exc:  # noqa: BLE001 - the sweep is the guarantee; log and go on
                    log.warning(
                        "pickup timers not scheduled; the sweep will run them", event_id=m.event_id, error=repr(exc)
                    )
    except TimeoutError:
        log.warning("Redis did not answer; the sweep will run the pickup timers", events=len(ready))


PAYMENT_DUE = (EventType.PAYMENT_CAPTURE_DUE, EventType.PAYMENT_VOID_DUE)


async def schedule_payment_operations(ctx: dict[str, Any], messages: list[OutboxMessageOut]) -> None:
    """A capture or void was queued: run it now. The sweep is the guarantee, as for the timers."""
    due = [m for m in messages if m.type in PAYMENT_DUE]
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            for m in due:
                payment_id = m.payload["data"]["payment_id"]
                await ctx["redis"].enqueue_job("run_payment_operations", payment_id, _job_id=f"payment:{m.event_id}")
    except Exception as exc:  # noqa: BLE001 - the sweep runs them; log and go on
        log.warning("payment operations not scheduled; the sweep will run them", error=repr(exc))


async def run_payment_operations(ctx: dict[str, Any], payment_id: str) -> int:
    return await payment_captures.run_payment_operations(ctx["db"], ctx["gateway"], ctx["clock"], uuid.UUID(payment_id))


async def sweep_payment_operations(ctx: dict[str, Any]) -> int:
    return await payment_captures.sweep(ctx["db"], ctx["gateway"], ctx["clock"])


async def drain_outbox(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]

    async def after(messages: list[OutboxMessageOut]) -> None:
        metrics.OUTBOX_PUBLISHED.inc(len(messages))
        await schedule_pickup_timers(ctx, messages)
        await schedule_payment_operations(ctx, messages)
        if "webhooks" in ctx:  # new deliveries: send them now, not at the next poll
            ctx["webhooks"].wake()

    async with ctx["relay_lock"]:
        return await relay_outbox(
            ctx["db"],
            ctx["redis"],
            stream=settings.events_stream,
            maxlen=settings.events_stream_maxlen,
            retention=timedelta(hours=settings.events_stream_retention_hours),
            batch=settings.outbox_batch_size,
            claim_seconds=settings.outbox_claim_seconds,
            after_publish=after,
            fan_out=fan_out_at(ctx["clock"].now),
        )


async def trim_events_stream(ctx: dict[str, Any]) -> int:
    """Every minute, whether or not anything was published: the stream keeps events (pickup codes
    among them) for its retention only, also on a quiet system."""
    settings: Settings = ctx["settings"]
    async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
        return await trim_stream(
            ctx["redis"], settings.events_stream, timedelta(hours=settings.events_stream_retention_hours)
        )


async def expire_pickup(ctx: dict[str, Any], fulfillment_id: str) -> bool:
    expire = partial(
        pickup_timers.expire_if_due,
        fulfillment_id=uuid.UUID(fulfillment_id),
        clock=ctx["clock"],
        settings=ctx["lifecycle"],
    )
    return await ctx["db"].run(committing(expire))


async def remind_pickup(ctx: dict[str, Any], fulfillment_id: str) -> bool:
    remind = partial(
        pickup_timers.remind_if_due,
        fulfillment_id=uuid.UUID(fulfillment_id),
        clock=ctx["clock"],
        settings=ctx["lifecycle"],
        ahead=timedelta(hours=ctx["settings"].pickup_reminder_hours),
    )
    return await ctx["db"].run(committing(remind))


async def sweep_timers(ctx: dict[str, Any]) -> tuple[int, int]:
    ahead = timedelta(hours=ctx["settings"].pickup_reminder_hours)
    return await pickup_timers.sweep(ctx["db"], ctx["clock"], ctx["lifecycle"], ahead)


async def sweep_payments(ctx: dict[str, Any]) -> payment_timers.Swept:
    """Orders waiting for their card payment: authorised at Stripe → to the stores; past
    ``payment_action_timeout_minutes`` → intent cancelled, order cancelled (``payment_timeout``)."""
    timers = payment_timers.PaymentTimers(
        ctx["db"],
        ctx["gateway"],
        ctx["clock"],
        ctx["lifecycle"],
        timeout=timedelta(minutes=ctx["settings"].payment_action_timeout_minutes),
    )
    return await payment_timers.sweep(timers)


async def sweep_authorisations(ctx: dict[str, Any]) -> authorisation_timers.Swept:
    """Card authorisations running out: ``authorisation_expiry_warning_hours`` before, orders with
    goods left are flagged (held captures run early); after, no capture is ever sent."""
    warning = timedelta(hours=ctx["settings"].authorisation_expiry_warning_hours)
    return await authorisation_timers.sweep(ctx["db"], ctx["gateway"], ctx["clock"], warning)


async def sweep_connector_receipts(ctx: dict[str, Any]) -> int:
    """Connector receipts a crash or an outage left pending: processed again."""
    flow = connector_processing(ctx["db"], ctx["clock"], ctx["lifecycle"], ctx["settings"], ctx["gateway"])
    return await connector_receipts.sweep(flow)


async def announce_delays(ctx: dict[str, Any]) -> int:
    return await delays.sweep(ctx["db"], ctx["clock"])


async def expire_webhook_deliveries(ctx: dict[str, Any]) -> int:
    now, keep = ctx["clock"].now(), timedelta(days=ctx["settings"].webhook_delivery_retention_days)
    return await ctx["db"].run(committing(lambda uow: expire_stale(uow, now, keep)))


async def sweep_action_deadlines(ctx: dict[str, Any]) -> action_deadlines.Swept:
    """Orders that waited for the customer past their deadline get the profile's fallback
    (a transfer into the pickup store, else the short units cancelled)."""
    return await action_deadlines.sweep(ctx["db"], ctx["clock"], ctx["lifecycle"])


def _backoff(cap_seconds: float) -> wait_base:
    return wait_exponential(multiplier=0.2, max=cap_seconds) + wait_random(0, 0.2)


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(f"{what}; retrying", error=repr(error), attempt=state.attempt_number, wait_s=round(wait, 2))

    return before_sleep


async def _listen_for_outbox(ctx: dict[str, Any]) -> None:
    """Drain as soon as a transaction that wrote to the outbox commits. Right after (re)connecting
    it drains what committed while nobody listened; ``outbox_poll_seconds`` is the fallback."""
    url = ctx["db"].url.replace("postgresql+asyncpg://", "postgresql://")
    poll = ctx["settings"].outbox_poll_seconds
    wake = asyncio.Event()
    async for attempt in AsyncRetrying(  # through database and Redis outages, for ever
        retry=retry_if_exception_type(Exception), wait=_backoff(5.0), before_sleep=_log_retry("outbox listener failed")
    ):
        with attempt:
            conn = await asyncpg.connect(url, timeout=5)
            try:
                await conn.add_listener(OUTBOX_CHANNEL, lambda *_: wake.set())
                conn.add_termination_listener(lambda _: wake.set())
                while not conn.is_closed():
                    wake.clear()
                    await drain_outbox(ctx)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=poll)
                raise ConnectionError("the listening connection to PostgreSQL was closed")
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)


async def startup(ctx: dict[str, Any]) -> None:
    """``ctx`` may arrive with ``settings``, ``clock`` or ``db`` already set (dev mode, tests)."""
    settings = ctx.setdefault("settings", Settings())
    ctx.setdefault("clock", SystemClock())
    ctx["owns_db"] = "db" not in ctx
    if ctx["owns_db"]:
        ctx["db"] = Database(settings.database_url or "", pool_size=5, max_overflow=5)
    ctx["lifecycle"] = LifecycleSettings.from_settings(settings)
    ctx["owns_gateway"] = "gateway" not in ctx
    if ctx["owns_gateway"]:
        ctx["gateway"] = payment_gateway(settings)
    ctx["relay_lock"] = asyncio.Lock()
    ctx["webhooks"] = Dispatcher.started(ctx["db"], ctx["clock"], DeliveryLimits.from_settings(settings))
    ctx["listener"] = asyncio.create_task(_listen_for_outbox(ctx))


async def shutdown(ctx: dict[str, Any]) -> None:
    """Idempotent: also called for a worker whose ``close()`` could not reach Redis."""
    listener = ctx.pop("listener", None)
    if listener is not None:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    if "webhooks" in ctx:
        await ctx.pop("webhooks").aclose()
    if ctx.pop("owns_db", False):
        await ctx["db"].dispose()
    if ctx.pop("owns_gateway", False):
        await ctx["gateway"].aclose()


def worker_settings(settings: Settings, **ctx: Any) -> dict[str, Any]:
    """Keyword arguments for ``arq.Worker``; ``ctx`` seeds the jobs' context."""
    redis = RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1:6379/0")
    return {
        "ctx": {"settings": settings, **ctx},
        "functions": [expire_pickup, remind_pickup, run_payment_operations],
        "cron_jobs": [
            cron(drain_outbox, second=set(range(0, 60, 10)), run_at_startup=True, unique=True),
            cron(sweep_timers, second={30}, run_at_startup=True, unique=True),
            cron(sweep_payments, second={20}, run_at_startup=True, unique=True),
            cron(trim_events_stream, second={45}, run_at_startup=True, unique=True),
            cron(sweep_payment_operations, second={15}, run_at_startup=True, unique=True),
            cron(sweep_authorisations, second={50}, run_at_startup=True, unique=True),
            cron(sweep_action_deadlines, second={35}, run_at_startup=True, unique=True),
            cron(expire_webhook_deliveries, second={40}, run_at_startup=True, unique=True),
            cron(announce_delays, second={25}, run_at_startup=True, unique=True),
            cron(sweep_connector_receipts, second={5}, run_at_startup=True, unique=True),
            cron(poll_amazon_connectors, second=set(range(2, 60, 10)), run_at_startup=True, unique=True),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        # One connection attempt per start: run_worker owns the retrying, with backoff.
        "redis_settings": dataclasses.replace(redis, conn_retries=0),
        "queue_name": "orchestrator:jobs",
        "handle_signals": False,
        "max_jobs": 20,
        "job_timeout": 120,
    }


async def _stop(worker: Worker) -> None:
    """``Worker.close()`` talks to Redis before it calls ``on_shutdown``; with Redis gone the
    listener and the pools are released here instead."""
    jobs = list(worker.tasks.values())
    for job in jobs:  # idempotent jobs: the sweep or a redelivery finishes what is cut short
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    worker.tasks.clear()
    try:
        await worker.close()
    except REDIS_OUTAGE:
        await shutdown(worker.ctx)
        with contextlib.suppress(Exception):
            await worker.pool.aclose(close_connection_pool=True)


async def run_worker(settings: Settings, **ctx: Any) -> None:
    """``orchestrator worker``: arq lets a lost Redis connection out of its poll loop, so each
    outage ends one arq worker and a new one starts once Redis answers (backoff up to
    ``RECONNECT_MAX_SECONDS``). The outbox stays in PostgreSQL meanwhile; the new worker's
    listener drains the backlog and its sweep runs the timers that fell due. A PostgreSQL outage
    only fails jobs (arq logs them) and the listener reconnects on its own."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(REDIS_OUTAGE),
        wait=_backoff(RECONNECT_MAX_SECONDS),
        before_sleep=_log_retry("worker lost Redis"),
    ):
        with attempt:
            worker = Worker(**worker_settings(settings, **ctx))
            try:
                await worker.main()
            finally:
                await _stop(worker)
