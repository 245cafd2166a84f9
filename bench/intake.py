"""Intake benchmark: orders/s and latency over HTTP against the real server, the same
transaction in raw asyncpg as the baseline (the ratio is the framework's cost), and the hot-sku
case (500 concurrent orders for 50 units: 0 oversell, 0 5xx).

    python bench/intake.py [--clients 32] [--duration 30] [--baseline-duration 15] [--workers 1]
    orchestrator bench intake --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import asyncpg
from common import bench_servers, calibration_ms, percentile, running_server

STORES = 20
PRODUCTS = 200
ADMIN = "bench-admin-token"


async def seed(url: str, hot_units: int = 50) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO locations (code, name, kind, address, lat, lon, timezone, capabilities, pickup_hold_days,"
            " active, created_at) VALUES ($1, $2, 'store', '{}', $3, $4, 'UTC', $5, 7, true, now())",
            [
                (f"B-{i:03d}", f"Bench store {i}", 40 + i * 0.05, -74 + i * 0.05, ["pickup", "curbside", "ship"])
                for i in range(STORES)
            ],
        )
        await conn.executemany(
            "INSERT INTO products (sku, name, active, created_at) VALUES ($1, $2, true, now())",
            [(f"P-{i:04d}", f"Bench product {i}") for i in range(PRODUCTS)] + [("HOT", "Hot sku")],
        )
        # Deep stock so the throughput run never runs out; one hot sku at one store.
        await conn.execute(
            """
            WITH levels AS (
                INSERT INTO stock_levels (location_id, product_id, on_hand, reserved, safety_stock)
                SELECT l.id, p.id, CASE WHEN p.sku = 'HOT' THEN CASE WHEN l.code = 'B-000' THEN $1 ELSE 0 END
                                   ELSE 1000000 END, 0, 0
                FROM locations l CROSS JOIN products p
                RETURNING location_id, product_id, on_hand
            )
            INSERT INTO inventory_movements (location_id, product_id, kind, on_hand_delta, reserved_delta, reason)
            SELECT location_id, product_id, 'receipt', on_hand, 0, 'bench seed' FROM levels
            """,
            hot_units,
        )
        await conn.execute(
            "INSERT INTO api_keys (id, name, secret_digest, prefix, role, channel, location_codes, scopes, created_at)"
            " VALUES ($1, 'bench', encode(sha256('bench-channel-key'::bytea), 'hex'), 'bench', 'channel', 'web',"
            " '{}', '{orders:read,orders:write,orders:read:all-channels,customers:read,customers:write}', now())",
            uuid.uuid4(),
        )
    finally:
        await conn.close()


def order_body(rng: random.Random) -> dict:
    skus = rng.sample(range(PRODUCTS), 3)
    return {
        "channel_order_ref": uuid.uuid4().hex,
        "customer": {"email": f"c{rng.randrange(5000)}@example.com", "name": "Bench"},
        "lines": [{"sku": f"P-{s:04d}", "quantity": rng.randint(1, 3), "unit_price": 1999} for s in skus],
        "currency": "USD",
        "fulfillment": {"method": "pickup", "location": f"B-{rng.randrange(STORES):03d}"},
    }


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(seconds)

    def merge(self, other: Tally) -> None:
        self.latencies.extend(other.latencies)
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n


async def http_load(server, clients: int, duration: float) -> tuple[Tally, float, float]:
    """Closed loop: ``clients`` connections, each sending the next order when the last answered.
    Returns the tally, the measured seconds and the server's CPU seconds in that window."""
    base = server.base
    tally = Tally()
    headers = {"Authorization": "Bearer bench-channel-key", "Content-Type": "application/json"}
    stop = time.perf_counter() + duration

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        rng = random.Random(i)
        while time.perf_counter() < stop:
            body = json.dumps(order_body(rng))
            started = time.perf_counter()
            async with session.post(
                f"{base}/v1/orders", data=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
            ) as r:
                await r.read()
                tally.add(r.status, time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up (prepared statements, pools, caches), then measure from a clean tally.
        stop = time.perf_counter() + 3
        await asyncio.gather(*(client(1000 + i, session) for i in range(clients)))
        tally.latencies.clear()
        tally.statuses.clear()
        stop = time.perf_counter() + duration
        started = time.perf_counter()
        cpu = server.cpu_seconds()
        await asyncio.gather(*(client(i, session) for i in range(clients)))
        elapsed = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu
    return tally, elapsed, cpu


async def open_loop(server, clients: int, rate: float, duration: float) -> Tally:
    """Open loop: orders arrive at ``rate`` per second whatever the server does, over at most
    ``clients`` connections. Latency counts from the moment an order was due, so a server that
    falls behind shows it (no coordinated omission)."""
    tally = Tally()
    headers = {"Authorization": "Bearer bench-channel-key", "Content-Type": "application/json"}
    rng = random.Random(99)
    slots = asyncio.Semaphore(clients)

    async def one(due: float, body: str, session: aiohttp.ClientSession) -> None:
        async with (
            slots,
            session.post(
                f"{server.base}/v1/orders", data=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
            ) as r,
        ):
            await r.read()
            tally.add(r.status, time.perf_counter() - due)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        start = time.perf_counter()
        tasks = []
        due = start
        while due < start + duration:
            due += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(due, json.dumps(order_body(rng)), session)))
        await asyncio.gather(*tasks)
    return tally


BASELINE_SQL = {
    "lock": "SELECT s.location_id, s.product_id, s.on_hand - s.reserved - s.safety_stock FROM stock_levels s"
    " WHERE s.location_id = $1 AND s.product_id = ANY($2::int[]) ORDER BY s.product_id FOR UPDATE",
    "reserve": "UPDATE stock_levels SET reserved = reserved + q.q FROM unnest($2::int[], $3::int[]) q(p, q)"
    " WHERE location_id = $1 AND product_id = q.p",
    "ledger": "INSERT INTO inventory_movements (location_id, product_id, kind, on_hand_delta, reserved_delta,"
    " reason, reference) SELECT $1, p, 'reservation', 0, q, 'order placed', $4"
    " FROM unnest($2::int[], $3::int[]) x(p, q)",
    "customer": "INSERT INTO customers (id, email, name, created_at) VALUES ($1, $2, 'Bench', now())"
    " ON CONFLICT (email) WHERE email IS NOT NULL DO UPDATE SET name = EXCLUDED.name RETURNING id",
    "order": "INSERT INTO orders (id, number, channel, channel_order_ref, customer_id, currency, subtotal, status,"
    " fulfillment_method, pickup_location_id, sourcing_profile_version, version, last_event_seq,"
    " created_at, updated_at) VALUES ($1, $2, 'raw', $3, $4, 'USD', $5, 'received', 'pickup', $6, 0, 1, 2,"
    " now(), now())",
    "lines": "INSERT INTO order_lines (id, order_id, line_no, product_id, sku, quantity, unit_price,"
    " quantity_cancelled, quantity_fulfilled, quantity_returned, quantity_unsourced)"
    " SELECT i, $1, n, p, s, q, 1999, 0, 0, 0, 0 FROM unnest($2::uuid[], $3::int[], $4::int[], $5::text[],"
    " $6::int[]) x(i, n, p, s, q)",
    "decision": "INSERT INTO sourcing_decisions (id, order_id, trigger, rule, profile_channel, profile_version,"
    " request, candidates, plan, unfilled, created_at) VALUES ($1, $2, 'placement', 'pickup_at_store',"
    " 'raw', 0, '{}', '[]', '[]', '{}', now())",
    "fo": "INSERT INTO fulfillment_orders (id, order_id, location_id, method, status, version,"
    " sourcing_decision_id, pickup_failed_attempts, pickup_code_issue, created_at) VALUES ($1, $2, $3, 'pickup',"
    " 'pending', 1, $4, 0, 0, now())",
    "fo_lines": "INSERT INTO fulfillment_order_lines (id, fulfillment_order_id, order_line_id, product_id, sku,"
    " quantity, quantity_picked, quantity_handed_over, quantity_cancelled)"
    " SELECT i, $1, o, p, s, q, 0, 0, 0 FROM unnest($2::uuid[], $3::uuid[], $4::int[], $5::text[],"
    " $6::int[]) x(i, o, p, s, q)",
    "reservations": "INSERT INTO reservations (id, fulfillment_order_line_id, location_id, product_id, quantity,"
    " status, created_at) SELECT i, f, $1, p, q, 'active', now()"
    " FROM unnest($2::uuid[], $3::uuid[], $4::int[], $5::int[]) x(i, f, p, q)",
    "events": "INSERT INTO order_events (id, order_id, seq, type, actor_kind, actor_id, data, occurred_at)"
    " VALUES ($1, $3, 1, 'order.placed', 'channel', 'raw', '{}', now()),"
    " ($2, $3, 2, 'order.sourced', 'channel', 'raw', '{}', now())",
    "outbox": "INSERT INTO outbox (event_id, type, order_id, payload, created_at, attempts)"
    " VALUES ($1, 'order.placed', $3, '{}', now(), 0), ($2, 'order.sourced', $3, '{}', now(), 0)",
    "idem": "INSERT INTO idempotency_keys (principal, key, fingerprint, status_code, response_body, created_at)"
    " VALUES ('raw', $1, 'x', 201, $2, now())",
}


async def baseline(url: str, clients: int, duration: float) -> tuple[Tally, float]:
    """The same reservation + insert transaction with raw asyncpg: no HTTP, no ORM, no checks."""
    pool = await asyncpg.create_pool(url, min_size=clients, max_size=clients)
    ids = await pool.fetch("SELECT id, code FROM locations ORDER BY code")
    products = {r["sku"]: r["id"] for r in await pool.fetch("SELECT id, sku FROM products")}
    locations = [r["id"] for r in ids]
    tally = Tally()

    async def one(conn: asyncpg.Connection, rng: random.Random) -> None:
        body = order_body(rng)
        loc = locations[rng.randrange(len(locations))]
        lines = sorted((products[ln["sku"]], ln["quantity"], ln["sku"]) for ln in body["lines"])
        pids = [p for p, _, _ in lines]
        qtys = [q for _, q, _ in lines]
        order_id, fo_id, decision = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        line_ids = [uuid.uuid4() for _ in lines]
        fo_line_ids = [uuid.uuid4() for _ in lines]
        async with conn.transaction():
            rows = await conn.fetch(BASELINE_SQL["lock"], loc, pids)
            assert all(r[2] >= q for r, q in zip(rows, qtys, strict=True))
            await conn.execute(BASELINE_SQL["reserve"], loc, pids, qtys)
            await conn.execute(BASELINE_SQL["ledger"], loc, pids, qtys, str(order_id))
            customer = await conn.fetchval(BASELINE_SQL["customer"], uuid.uuid4(), body["customer"]["email"])
            await conn.execute(
                BASELINE_SQL["order"],
                order_id,
                uuid.uuid4().hex[:8],
                body["channel_order_ref"],
                customer,
                sum(q * 1999 for q in qtys),
                loc,
            )
            await conn.execute(
                BASELINE_SQL["lines"], order_id, line_ids, [1, 2, 3], pids, [s for _, _, s in lines], qtys
            )
            await conn.execute(BASELINE_SQL["decision"], decision, order_id)
            await conn.execute(BASELINE_SQL["fo"], fo_id, order_id, loc, decision)
            await conn.execute(
                BASELINE_SQL["fo_lines"], fo_id, fo_line_ids, line_ids, pids, [s for _, _, s in lines], qtys
            )
            await conn.execute(
                BASELINE_SQL["reservations"], loc, [uuid.uuid4() for _ in lines], fo_line_ids, pids, qtys
            )
            await conn.execute(BASELINE_SQL["events"], uuid.uuid4(), uuid.uuid4(), order_id)
            await conn.execute(BASELINE_SQL["outbox"], uuid.uuid4(), uuid.uuid4(), order_id)
            await conn.execute(BASELINE_SQL["idem"], uuid.uuid4().hex, b"{}")

    async def client(i: int, stop: float) -> None:
        rng = random.Random(10_000 + i)
        async with pool.acquire() as conn:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                await one(conn, rng)
                tally.add(201, time.perf_counter() - started)

    await asyncio.gather(*(client(i, time.perf_counter() + 2) for i in range(clients)))  # warm up
    tally = Tally()
    started = time.perf_counter()
    await asyncio.gather(*(client(i, started + duration) for i in range(clients)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return tally, elapsed


async def hot_sku(base: str, url: str, requests: int = 500, units: int = 50) -> dict:
    headers = {"Authorization": "Bearer bench-channel-key", "Content-Type": "application/json"}

    async def one(i: int, session: aiohttp.ClientSession) -> int:
        body = {
            "channel_order_ref": f"hot-{i}",
            "customer": {"email": f"hot{i}@example.com"},
            "lines": [{"sku": "HOT", "quantity": 1, "unit_price": 100}],
            "currency": "USD",
            "fulfillment": {"method": "pickup", "location": "B-000"},
        }
        async with session.post(
            f"{base}/v1/orders", data=json.dumps(body), headers={**headers, "Idempotency-Key": f"hot-{i}"}
        ) as r:
            await r.read()
            return r.status

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=requests)) as session:
        statuses = await asyncio.gather(*(one(i, session) for i in range(requests)))
    elapsed = time.perf_counter() - started
    conn = await asyncpg.connect(url)
    try:
        level = await conn.fetchrow(
            "SELECT on_hand, reserved FROM stock_levels s JOIN products p ON p.id = s.product_id"
            " JOIN locations l ON l.id = s.location_id WHERE p.sku = 'HOT' AND l.code = 'B-000'"
        )
        active = await conn.fetchval(
            "SELECT coalesce(sum(r.quantity), 0) FROM reservations r JOIN products p ON p.id = r.product_id"
            " WHERE p.sku = 'HOT' AND r.status = 'active'"
        )
    finally:
        await conn.close()
    counts: dict[int, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return {
        "statuses": counts,
        "created": counts.get(201, 0),
        "oversold": max(0, counts.get(201, 0) - units),
        "server_errors": sum(v for k, v in counts.items() if k >= 500),
        "on_hand": level["on_hand"],
        "reserved": level["reserved"],
        "active_reservations": active,
        "seconds": round(elapsed, 2),
    }


def report(name: str, tally: Tally, elapsed: float) -> dict:
    ok = sum(v for k, v in tally.statuses.items() if k in (200, 201))
    return {
        "name": name,
        "requests": len(tally.latencies),
        "ok": ok,
        "per_second": round(ok / elapsed, 1),
        "p50_ms": round(percentile(tally.latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(tally.latencies, 0.99) * 1000, 2),
        "statuses": tally.statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--baseline-duration", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--rounds", type=int, default=2, help="HTTP and baseline alternate this many times (this VM's speed drifts)"
    )
    parser.add_argument(
        "--rate", type=float, default=250.0, help="open-loop arrival rate (orders/s) for the latency figures"
    )
    parser.add_argument("--skip-hot", action="store_true")
    args = parser.parse_args()

    with bench_servers("orchestrator_bench_intake") as (url, redis_url):
        asyncio.run(seed(url))
        http, raw = Tally(), Tally()
        http_elapsed = raw_elapsed = server_cpu = 0.0
        with running_server(url, redis_url, ADMIN, workers=args.workers) as server:
            # Latency at a steady rate first, on a fresh database (warmed by a short closed run).
            asyncio.run(http_load(server, args.clients, 3))
            paced = asyncio.run(open_loop(server, args.clients, args.rate, min(args.duration, 20)))
            for _ in range(args.rounds):
                t, elapsed, cpu = asyncio.run(http_load(server, args.clients, args.duration / args.rounds))
                http.merge(t)
                http_elapsed += elapsed
                server_cpu += cpu
                t, elapsed = asyncio.run(baseline(url, args.clients, args.baseline_duration / args.rounds))
                raw.merge(t)
                raw_elapsed += elapsed
            hot = None if args.skip_hot else asyncio.run(hot_sku(server.base, url))

    h = report(f"HTTP POST /v1/orders ({args.clients} clients, {args.workers} worker)", http, http_elapsed)
    b = report(f"raw asyncpg, same transaction ({args.clients} connections)", raw, raw_elapsed)
    o = report(f"HTTP open loop at {args.rate:.0f} orders/s", paced, min(args.duration, 20))
    print(json.dumps({"http": h, "open_loop": o, "baseline": b, "hot_sku": hot}, indent=2))
    print()
    print(f"{'':44} {'orders/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for r in (h, o, b):
        print(f"{r['name'][:44]:44} {r['per_second']:>10} {r['p50_ms']:>8} {r['p99_ms']:>8}")
    print(f"machine speed: {calibration_ms()} ms for the calibration loop (lower is faster)")
    print(f"ratio HTTP / raw baseline: {h['per_second'] / b['per_second']:.2f}")
    print(f"server CPU per request: {server_cpu / max(1, len(http.latencies)) * 1000:.2f} ms")
    if hot:
        print(
            f"hot sku: {hot['created']} created of 500 for 50 units; oversold {hot['oversold']}; "
            f"5xx {hot['server_errors']}; reserved {hot['reserved']} = active reservations "
            f"{hot['active_reservations']}; {hot['seconds']} s"
        )


if __name__ == "__main__":
    main()
