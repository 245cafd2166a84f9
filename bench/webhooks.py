"""Webhook deliveries: events committed at a steady rate to the outbox, relayed and fanned out,
sent by the worker's dispatcher to two local subscribers — one healthy, one that never answers.
Latency is from the event's commit to its arrival at the healthy subscriber (one clock: this
process's); the baseline is the same run with the second subscriber healthy too.

The relay and the dispatcher are the worker's own (``relay_outbox`` with the webhook fan-out,
``webhooks.dispatch.Dispatcher`` with the settings' limits), run in this process as the worker
runs them; the subscribers are real HTTP servers on loopback ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
from common import ROOT, bench_servers, calibration_ms, percentile
from redis.asyncio import Redis

from orchestrator.platform.clock import SystemClock
from orchestrator.platform.db import Database
from orchestrator.platform.outbox_relay import relay_outbox
from orchestrator.webhooks.dispatch import DeliveryLimits, Dispatcher
from orchestrator.webhooks.outbound import fan_out_at
from orchestrator.webhooks.subscriptions import new_secret
from tests.e2e.webhook_receiver import Receiver, receiving


async def subscribe(conn: asyncpg.Connection, url: str) -> None:
    await conn.execute(
        "INSERT INTO webhook_subscriptions (id, kind, url, event_types, enabled, created_by, secret, created_at)"
        " VALUES ($1, 'events', $2, $3, true, 'bench', $4, now())",
        uuid.uuid4(),
        url,
        ["*"],
        new_secret(),
    )


async def produce(conn: asyncpg.Connection, rate: float, duration: float, committed: dict, wake: asyncio.Event) -> int:
    started, n = time.monotonic(), 0
    orders = [(uuid.uuid4(), f"B-{i:04d}") for i in range(100)]
    while (due := started + n / rate) < started + duration:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        order_id, number = orders[n % len(orders)]
        event_id = uuid.uuid4()
        payload = {
            "id": str(event_id),
            "type": "order.status_changed",
            "order_id": str(order_id),
            "order_number": number,
            "channel": "web",
            "seq": n,
            "order_version": n,
            "actor": "system:bench",
            "occurred_at": datetime.now(UTC).isoformat(),
            "data": {"from": "received", "to": "in_progress"},
        }
        await conn.execute(
            "INSERT INTO outbox (event_id, type, order_id, payload, created_at, attempts)"
            " VALUES ($1, $2, $3, $4::jsonb, now(), 0)",
            event_id,
            payload["type"],
            order_id,
            json.dumps(payload),
        )
        committed[str(event_id)] = time.time()
        wake.set()
        n += 1
    return n


async def phase(url: str, redis_url: str, rate: float, duration: float, hanging: bool) -> dict:
    db = Database(url, pool_size=10, max_overflow=0)
    redis = Redis.from_url(redis_url)
    conn = await asyncpg.connect(url)
    await conn.execute("TRUNCATE webhook_subscriptions CASCADE; DELETE FROM outbox")
    stack = contextlib.AsyncExitStack()
    healthy: Receiver = await stack.enter_async_context(receiving([200]))
    # The baseline's second subscriber answers too: both runs fan out the same rows.
    other: Receiver = await stack.enter_async_context(receiving([None] if hanging else [200]))
    for receiver in (healthy, other):
        await subscribe(conn, receiver.url)
    http = await stack.enter_async_context(httpx.AsyncClient())
    clock = SystemClock()
    dispatcher = Dispatcher(db, clock, DeliveryLimits(allow_private=True), http)
    wake, stop, committed = asyncio.Event(), asyncio.Event(), {}

    async def relay() -> None:
        while not stop.is_set():
            await wake.wait()
            wake.clear()
            if await relay_outbox(db, redis, stream=f"bench:webhooks:{os.getpid()}", fan_out=fan_out_at(clock.now)):
                dispatcher.wake()

    relaying = asyncio.create_task(relay())
    sending = asyncio.create_task(dispatcher.run(poll_seconds=0.5))
    produced = await produce(conn, rate, duration, committed, wake)
    with contextlib.suppress(TimeoutError):  # the last events in flight
        await healthy.wait_for(produced, seconds=10)
    stop.set()
    wake.set()
    latencies = []
    for r in healthy.received:
        at = committed.get(json.loads(r.body)["id"])
        if at is not None:
            latencies.append(r.at - at)
    sent_to_hung = len(other.received) if hanging else 0
    sending.cancel()
    await asyncio.gather(relaying, sending, return_exceptions=True)
    await dispatcher.aclose()
    await stack.aclose()
    await conn.close()
    await db.dispose()
    await redis.aclose()
    first, last = min(r.at for r in healthy.received), max(r.at for r in healthy.received)
    return {
        "hanging_subscriber": hanging,
        "events_committed": produced,
        "delivered_to_healthy": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "throughput_per_s": round(len(latencies) / max(1e-9, last - first), 1),
        "requests_sent_to_the_hanging_one": sent_to_hung,  # each held until the 10 s timeout
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="events committed per second")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--baseline-duration", type=float, default=10.0)
    args = parser.parse_args()
    os.chdir(ROOT)
    with bench_servers("orchestrator_bench_webhooks") as (url, redis_url):
        baseline = asyncio.run(phase(url, redis_url, args.rate, args.baseline_duration, hanging=False))
        measured = asyncio.run(phase(url, redis_url, args.rate, args.duration, hanging=True))
    ratio = measured["p99_ms"] / baseline["p99_ms"] if baseline["p99_ms"] else float("nan")
    print(json.dumps({"baseline": baseline, "with_hanging_subscriber": measured}, indent=2))
    print(f"p99 with a hanging subscriber / p99 without: {ratio:.2f}")
    print(f"machine speed: {calibration_ms()} ms for the calibration loop (lower is faster)")


if __name__ == "__main__":
    main()
