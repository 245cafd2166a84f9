"""Live order streams: many SSE clients on one server process following orders while events
commit at a steady rate; latency from commit to receipt, and the server's memory per stream.

The server is ``orchestrator serve`` (one process) in a subprocess. Events are outbox rows this
script commits at ``--rate`` per second, round robin over the followed orders (an order's real
transitions run out after a handful of events); each commit wakes the outbox relay running in
this process, as the worker's LISTEN/NOTIFY would, and the relay publishes to the stream the
server follows. Latency is from the commit returning to the client parsing the event, on one
clock (this process's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import psutil
from common import ROOT, bench_servers, calibration_ms, percentile, running_server
from intake import ADMIN, order_body, seed
from redis.asyncio import Redis

from orchestrator.platform.db import Database
from orchestrator.platform.outbox_relay import relay_outbox
from orchestrator.settings import Settings

CHANNEL_KEY = "bench-channel-key"  # seeded by intake.seed


async def place_orders(base: str, count: int) -> list[dict]:
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {CHANNEL_KEY}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        orders = []
        for i in range(count):
            r = await client.post(
                "/v1/orders", json=order_body(rng), headers={**headers, "Idempotency-Key": f"stream-{i}"}
            )
            r.raise_for_status()
            orders.append(r.json())
    return orders


class Run:
    def __init__(self) -> None:
        self.committed: dict[str, float] = {}  # event id -> when its commit returned
        self.latencies: list[float] = []
        self.connected = 0
        self.errors: list[str] = []
        self.all_connected = asyncio.Event()


async def follow(client: httpx.AsyncClient, order_id: str, run: Run, clients: int, stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {CHANNEL_KEY}"}
    try:
        async with client.stream("GET", f"/v1/orders/{order_id}/stream", headers=headers) as response:
            if response.status_code != 200:
                run.errors.append(f"{response.status_code} {(await response.aread())[:200]!r}")
                return
            run.connected += 1
            if run.connected == clients:
                run.all_connected.set()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    event_id = json.loads(line[6:])["id"]
                    committed = run.committed.get(event_id)
                    if committed is not None:
                        run.latencies.append(time.time() - committed)
                if stop.is_set():
                    return
    except (httpx.HTTPError, asyncio.CancelledError) as exc:
        if not stop.is_set():
            run.errors.append(repr(exc))


async def produce(url: str, orders: list[dict], rate: float, duration: float, run: Run, wake: asyncio.Event) -> int:
    """Commit ``rate`` outbox rows a second (each a whole event envelope) for ``duration`` s."""
    conn = await asyncpg.connect(url)
    try:
        started = time.monotonic()
        n = 0
        while (due := started + n / rate) < started + duration:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            order = orders[n % len(orders)]
            event_id = uuid.uuid4()
            payload = {
                "id": str(event_id),
                "type": "fulfillment.pickup_reminder",
                "order_id": order["id"],
                "order_number": order["number"],
                "channel": order["channel"],
                "seq": 1000 + n,
                "actor": "system:bench",
                "occurred_at": datetime.now(UTC).isoformat(),
                "data": {
                    "fulfillment_id": order["fulfillment_orders"][0]["id"],
                    "pickup_deadline": "2030-01-01T00:00:00Z",
                },
            }
            await conn.execute(
                "INSERT INTO outbox (event_id, type, order_id, payload, created_at, attempts)"
                " VALUES ($1, $2, $3, $4::jsonb, now(), 0)",
                event_id,
                payload["type"],
                uuid.UUID(order["id"]),
                json.dumps(payload),
            )
            run.committed[str(event_id)] = time.time()
            wake.set()
            n += 1
        return n
    finally:
        await conn.close()


async def relay_loop(url: str, redis_url: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    settings = Settings()
    db = Database(url, pool_size=2, max_overflow=0)
    redis = Redis.from_url(redis_url)
    try:
        while not stop.is_set():
            await wake.wait()
            wake.clear()
            await relay_outbox(db, redis, stream=settings.events_stream)
    finally:
        await db.dispose()
        await redis.aclose()


async def measure(server, url: str, redis_url: str, args) -> dict:
    orders = await place_orders(server.base, args.orders)
    proc = psutil.Process(server.pid)
    rss_before = proc.memory_info().rss
    run, stop, wake = Run(), asyncio.Event(), asyncio.Event()
    relay = asyncio.create_task(relay_loop(url, redis_url, wake, stop))
    wake.set()  # publish the orders' own events first
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=httpx.Timeout(60.0)) as client:
        connecting = time.monotonic()
        followers = []
        for i in range(args.clients):
            followers.append(
                asyncio.create_task(follow(client, orders[i % len(orders)]["id"], run, args.clients, stop))
            )
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # a ramp, not a SYN flood on the listen backlog
        with contextlib.suppress(TimeoutError):  # the report says how many connected
            await asyncio.wait_for(run.all_connected.wait(), timeout=120)
        connect_seconds = time.monotonic() - connecting
        await asyncio.sleep(2)
        rss_connected = proc.memory_info().rss
        cpu_before = sum(proc.cpu_times()[:2])
        produced = await produce(url, orders, args.rate, args.duration, run, wake)
        await asyncio.sleep(2)  # the last events in flight
        cpu_used = sum(proc.cpu_times()[:2]) - cpu_before
        stop.set()
        wake.set()
        for f in followers:
            f.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
    await relay
    expected = produced * args.clients // len(orders)
    return {
        "clients": args.clients,
        "connected": run.connected,
        "connect_seconds": round(connect_seconds, 1),
        "orders": len(orders),
        "events_committed": produced,
        "rate_per_s": args.rate,
        "deliveries_expected": expected,
        "deliveries_received": len(run.latencies),
        "p50_ms": round(percentile(run.latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(run.latencies, 0.99) * 1000, 1),
        "max_ms": round(max(run.latencies, default=float("nan")) * 1000, 1),
        "server_rss_mb_before": round(rss_before / 2**20, 1),
        "server_rss_mb_connected": round(rss_connected / 2**20, 1),
        "server_kib_per_stream": round((rss_connected - rss_before) / max(1, run.connected) / 1024, 1),
        "server_cpu_percent_while_producing": round(cpu_used / args.duration * 100, 1),
        "errors": run.errors[:5],
        "error_count": len(run.errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0, help="events committed per second")
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    os.environ.setdefault("ORCHESTRATOR_ORDER_STREAM_MAX_PER_KEY", str(args.clients))
    os.environ.setdefault("ORCHESTRATOR_ORDER_STREAM_MAX_CONNECTIONS", str(args.clients))
    os.chdir(ROOT)
    with bench_servers("orchestrator_bench_stream") as (url, redis_url):
        asyncio.run(seed(url))
        with running_server(url, redis_url, ADMIN) as server:
            result = asyncio.run(measure(server, url, redis_url, args))
    print(json.dumps(result, indent=2))
    print(f"machine speed: {calibration_ms()} ms for the calibration loop (lower is faster)")


if __name__ == "__main__":
    main()
