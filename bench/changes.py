"""Order-change benchmark: ``POST /v1/orders/{id}/changes`` over HTTP against the real server, in
the intake benchmark's world (20 stores, 200 skus), next to intake measured in the same run.

Cases, each on its own fresh orders and each with its dry run (``?dry_run=true``, same orders,
just before): move_pickup to a store holding the whole order; move_pickup to a small store short
of one line (the rest comes by transfer from the old store); set_quantity raised on one line.
Then the contention cases: 32 concurrent move_pickup changes of orders holding one hot sku between
two stores (both ways, then one way; a quarter of them a second change on a version already
taken), with the stock checked afterwards. Prints figures; asserts nothing about time.

    python bench/changes.py [--changes 200] [--clients 32] [--workers 1]
    orchestrator bench changes --changes 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import asyncpg
from common import Server, bench_servers, calibration_ms, running_server
from intake import ADMIN, PRODUCTS, Tally, report, seed

HEADERS = {"Authorization": "Bearer bench-channel-key", "Content-Type": "application/json"}
FULL_STORES = [f"B-{i:03d}" for i in range(15)]  # every sku, deep
SMALL_STORES = [f"B-{i:03d}" for i in range(15, 20)]  # none of the odd-numbered skus
WARM_UP = 40  # changes of each kind before anything is measured


async def shape_world(url: str) -> None:
    """On top of intake's world: small stores without the odd skus (a move there is short), and
    two hot skus (HOT, HOT2) at two stores with safety stock: 50 at B-000, 20 at B-001, 2 kept
    back at each."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(
                """
                WITH emptied AS (
                    UPDATE stock_levels s SET on_hand = 0 FROM locations l, products p
                    WHERE l.id = s.location_id AND p.id = s.product_id AND l.code = ANY($1)
                      AND p.sku LIKE 'P-%' AND substr(p.sku, 3)::int % 2 = 1
                    RETURNING s.location_id, s.product_id
                )
                INSERT INTO inventory_movements (location_id, product_id, kind, on_hand_delta, reserved_delta, reason)
                SELECT location_id, product_id, 'adjustment', -1000000, 0, 'bench: small store' FROM emptied
                """,
                SMALL_STORES,
            )
            await conn.execute(
                "WITH p AS (INSERT INTO products (sku, name, active, created_at)"
                " VALUES ('HOT2', 'Hot sku, one way', true, now()) RETURNING id)"
                " INSERT INTO stock_levels (location_id, product_id, on_hand, reserved, safety_stock)"
                " SELECT l.id, p.id, 0, 0, 0 FROM locations l, p"
            )
            await conn.execute(
                """
                WITH before AS (
                    SELECT s.location_id, s.product_id, s.on_hand,
                           CASE l.code WHEN 'B-000' THEN 50 ELSE 20 END AS wanted
                    FROM stock_levels s JOIN locations l ON l.id = s.location_id
                    JOIN products p ON p.id = s.product_id
                    WHERE p.sku IN ('HOT', 'HOT2') AND l.code IN ('B-000', 'B-001')
                ), shaped AS (
                    UPDATE stock_levels s SET on_hand = b.wanted, safety_stock = 2 FROM before b
                    WHERE s.location_id = b.location_id AND s.product_id = b.product_id
                    RETURNING s.location_id, s.product_id, b.wanted - b.on_hand AS delta
                )
                INSERT INTO inventory_movements (location_id, product_id, kind, on_hand_delta, reserved_delta, reason)
                SELECT location_id, product_id, 'receipt', delta, 0, 'bench: hot sku' FROM shaped WHERE delta <> 0
                """
            )
    finally:
        await conn.close()


def order_body(rng: random.Random) -> dict:
    """A 3-line pickup order at a full store, no payment (paid at the counter); its first line an
    odd sku, so that a small store lacks it."""
    odd = rng.randrange(1, PRODUCTS, 2)
    others = rng.sample([s for s in range(PRODUCTS) if s != odd], 2)
    return {
        "channel_order_ref": uuid.uuid4().hex,
        "customer": {"email": f"c{rng.randrange(5000)}@example.com", "name": "Bench"},
        "lines": [{"sku": f"P-{s:04d}", "quantity": rng.randint(1, 3), "unit_price": 1999} for s in [odd, *others]],
        "currency": "USD",
        "fulfillment": {"method": "pickup", "location": rng.choice(FULL_STORES)},
    }


@dataclass
class Order:
    id: str
    version: int
    location: str
    line_id: str  # the first line (the odd sku)
    quantity: int


def order_of(view: dict) -> Order:
    first = view["lines"][0]
    return Order(view["id"], view["version"], view["fulfillment"]["location"], first["id"], first["quantity"])


Request = tuple[str, dict[str, str], dict]  # path, extra headers (If-Match), JSON body


async def closed_loop(
    server: Server, clients: int, jobs: list[Callable[[], Request]], on_answer: Callable[[int, int, dict], None]
) -> tuple[Tally, float, float]:
    """``clients`` connections, each taking the next job as soon as its last one answered, until
    every job ran. ``on_answer(job index, status, body)`` sees each answer. Returns the tally, the
    seconds it took and the server's CPU seconds in them."""
    tally = Tally()
    pending = iter(enumerate(jobs))

    async def client(session: aiohttp.ClientSession) -> None:
        for index, job in pending:
            path, extra, body = job()
            headers = {**HEADERS, **extra, "Idempotency-Key": uuid.uuid4().hex}
            started = time.perf_counter()
            async with session.post(f"{server.base}{path}", data=json.dumps(body), headers=headers) as r:
                raw = await r.read()
                tally.add(r.status, time.perf_counter() - started)
            on_answer(index, r.status, json.loads(raw) if raw else {})

    started, cpu = time.perf_counter(), server.cpu_seconds()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return tally, time.perf_counter() - started, server.cpu_seconds() - cpu


async def place(server: Server, clients: int, count: int, seed_: int) -> tuple[list[Order], Tally, float, float]:
    rng = random.Random(seed_)
    bodies = [order_body(rng) for _ in range(count)]
    placed: list[Order] = []

    def answered(_: int, status: int, body: dict) -> None:
        if status == 201:
            placed.append(order_of(body))

    jobs = [lambda b=b: ("/v1/orders", {}, b) for b in bodies]
    tally, elapsed, cpu = await closed_loop(server, clients, jobs, answered)
    return placed, tally, elapsed, cpu


def change_job(order: Order, action: dict, *, dry: bool) -> Callable[[], Request]:
    def job() -> Request:
        path = f"/v1/orders/{order.id}/changes" + ("?dry_run=true" if dry else "")
        return path, {"If-Match": f'"{order.version}"'}, {"actions": [action]}

    return job


def move_to(order: Order, rng: random.Random, short: bool) -> dict:
    stores = SMALL_STORES if short else [s for s in FULL_STORES if s != order.location]
    return {"type": "move_pickup", "location": rng.choice(stores)}


def raise_quantity(order: Order) -> dict:
    return {"type": "set_quantity", "line_id": order.line_id, "quantity": order.quantity + 2}


async def run_case(
    server: Server, clients: int, orders: list[Order], action: Callable[[Order], dict], dry: bool
) -> dict:
    """One change per order; the applied ones bring each order's version forward. Counts the
    answers that moved or sent stock by transfer, and keeps the first unexpected answer."""
    seen = {"accepted": 0, "with_transfer": 0, "first_unexpected": None}
    actions = [action(o) for o in orders]

    def answered(index: int, status: int, body: dict) -> None:
        if status != 200:
            seen["first_unexpected"] = seen["first_unexpected"] or {"status": status, "body": body}
            return
        if dry:
            seen["accepted"] += body["accepted"]
            seen["with_transfer"] += any(s["transfers"] for s in body["sourcing"])
            return
        seen["accepted"] += 1
        view = body["order"]
        orders[index].version = view["version"]
        fulfillments = view["fulfillment_orders"]
        seen["with_transfer"] += any(f["method"] == "transfer" and f["status"] != "cancelled" for f in fulfillments)

    jobs = [change_job(o, a, dry=dry) for o, a in zip(orders, actions, strict=True)]
    tally, elapsed, cpu = await closed_loop(server, clients, jobs, answered)
    return {"tally": tally, "elapsed": elapsed, "cpu": cpu, **seen}


HOT_CASES = {
    # sku: how many 2-unit orders start at each store; every order moves to the other store.
    "both_ways": ("HOT", {"B-000": 16, "B-001": 8}),
    "one_way": ("HOT2", {"B-000": 24}),
}
OTHER_STORE = {"B-000": "B-001", "B-001": "B-000"}


async def hot_contention(base: str, url: str, case: str) -> dict:
    """24 orders of 2 hot units, each moved to the other store at once (``both_ways``: from both
    stores; ``one_way``: all from B-000), and 8 of them changed a second time on the same
    version: 32 concurrent changes. Afterwards: no stock row oversold, every hot row's reserved
    equal to its active reservations, and each order where exactly its one 200 put it."""
    sku, start = HOT_CASES[case]
    bodies = [
        {
            "channel_order_ref": f"{case}-{store}-{i}",
            "customer": {"email": f"{case}{i}@example.com"},
            "lines": [{"sku": sku, "quantity": 2, "unit_price": 100}],
            "currency": "USD",
            "fulfillment": {"method": "pickup", "location": store},
        }
        for store, n in start.items()
        for i in range(n)
    ]
    orders: list[Order] = []
    async with aiohttp.ClientSession() as session:
        for b in bodies:
            async with session.post(
                f"{base}/v1/orders", data=json.dumps(b), headers={**HEADERS, "Idempotency-Key": uuid.uuid4().hex}
            ) as r:
                assert r.status == 201, await r.text()
                orders.append(order_of(await r.json()))
    targets = orders + orders[:8]
    barrier = asyncio.Event()
    problems: dict[int, str] = {}

    async def move(order: Order, session: aiohttp.ClientSession) -> int:
        await barrier.wait()
        body = {"actions": [{"type": "move_pickup", "location": OTHER_STORE[order.location]}]}
        headers = {**HEADERS, "If-Match": f'"{order.version}"', "Idempotency-Key": uuid.uuid4().hex}
        async with session.post(f"{base}/v1/orders/{order.id}/changes", data=json.dumps(body), headers=headers) as r:
            text = await r.text()
            if r.status != 200:
                problems.setdefault(r.status, text[:300])
            return r.status

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=len(targets))) as session:
        tasks = [asyncio.create_task(move(o, session)) for o in targets]
        await asyncio.sleep(0.2)  # every request sent and waiting on the barrier
        barrier.set()
        statuses = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    counts: dict[int, int] = {}
    applied: dict[str, int] = {}
    for order, status in zip(targets, statuses, strict=True):
        counts[status] = counts.get(status, 0) + 1
        applied[order.id] = applied.get(order.id, 0) + (status == 200)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT l.code, s.on_hand, s.reserved, s.safety_stock,"
            " (SELECT coalesce(sum(r.quantity), 0) FROM reservations r WHERE r.location_id = s.location_id"
            "   AND r.product_id = s.product_id AND r.status = 'active') AS active"
            " FROM stock_levels s JOIN products p ON p.id = s.product_id JOIN locations l ON l.id = s.location_id"
            " WHERE p.sku = $1 AND l.code IN ('B-000', 'B-001') ORDER BY l.code",
            sku,
        )
        oversold = await conn.fetchval("SELECT count(*) FROM stock_levels WHERE reserved > on_hand - safety_stock")
        now_at = dict(
            await conn.fetch(
                "SELECT o.id::text, l.code FROM orders o JOIN locations l ON l.id = o.pickup_location_id"
                " WHERE o.id = ANY($1::uuid[])",
                [o.id for o in orders],
            )
        )
    finally:
        await conn.close()
    misplaced = sum(
        now_at[o.id] != (OTHER_STORE[o.location] if applied[o.id] else o.location) or applied[o.id] > 1 for o in orders
    )
    return {
        "case": case,
        "changes": len(targets),
        "statuses": counts,
        "server_errors": sum(v for k, v in counts.items() if k >= 500),
        "hot_rows": [dict(r) for r in rows],
        "oversold_rows": oversold,
        "reserved_is_reservations": all(r["reserved"] == r["active"] for r in rows),
        "orders_misplaced": misplaced,
        "first_problem_per_status": problems,
        "seconds": round(elapsed, 2),
    }


CASES = [
    ("move_pickup, new store has it", "move_full", lambda rng: lambda o: move_to(o, rng, short=False)),
    ("move_pickup, short -> transfer", "move_short", lambda rng: lambda o: move_to(o, rng, short=True)),
    ("set_quantity +2 on one line", "raise", lambda rng: raise_quantity),
]


async def bench(server: Server, url: str, clients: int, changes: int, skip_hot: bool) -> dict:
    warm, _, _, _ = await place(server, clients, WARM_UP * len(CASES), 1)
    orders, intake, elapsed, cpu = await place(server, clients, changes * len(CASES), 2)
    results: dict = {"intake": measured(f"POST /v1/orders ({clients} clients)", intake, elapsed, cpu)}
    rng = random.Random(3)
    for n, (_, _key, make) in enumerate(CASES):  # warm-up: every route and plan once over
        chunk = warm[n * WARM_UP : (n + 1) * WARM_UP]
        await run_case(server, clients, chunk, make(rng), dry=True)
        await run_case(server, clients, chunk, make(rng), dry=False)
    for n, (label, key, make) in enumerate(CASES):
        chunk = orders[n * changes : (n + 1) * changes]
        for dry in (True, False):  # the same change on the same orders: answered, then applied
            case = await run_case(server, clients, chunk, make(random.Random(n)), dry=dry)
            results[f"{key}{'_dry' if dry else ''}"] = {
                **measured(f"{'dry run ' if dry else ''}{label}", case["tally"], case["elapsed"], case["cpu"]),
                "accepted": case["accepted"],
                "with_transfer": case["with_transfer"],
                "first_unexpected": case["first_unexpected"],
            }
    results["hot_contention"] = [] if skip_hot else [await hot_contention(server.base, url, c) for c in HOT_CASES]
    return results


def measured(name: str, tally: Tally, elapsed: float, cpu: float) -> dict:
    return {**report(name, tally, elapsed), "server_cpu_ms": round(cpu / max(1, len(tally.latencies)) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=200, help="changes per case (each on its own fresh order)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--skip-hot", action="store_true", help="leave out the contention case")
    args = parser.parse_args()

    speed_before = calibration_ms()
    with bench_servers("orchestrator_bench_changes") as (url, redis_url):
        asyncio.run(seed(url))
        asyncio.run(shape_world(url))
        with running_server(url, redis_url, ADMIN, workers=args.workers) as server:
            results = asyncio.run(bench(server, url, args.clients, args.changes, args.skip_hot))
    speed_after = calibration_ms()

    print(json.dumps(results, indent=2, default=str))
    print()
    intake = results["intake"]
    print(f"{'':40} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>7} {'/ intake':>9} {'ok':>5} {'transfer':>9}")
    print(
        f"{intake['name'][:40]:40} {intake['per_second']:>8} {intake['p50_ms']:>8} {intake['p99_ms']:>8}"
        f" {intake['server_cpu_ms']:>7}"
    )
    for key, r in results.items():
        if key in ("intake", "hot_contention"):
            continue
        ratio = r["per_second"] / intake["per_second"] if intake["per_second"] else float("nan")
        print(
            f"{r['name'][:40]:40} {r['per_second']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['server_cpu_ms']:>7}"
            f" {ratio:>9.2f} {r['accepted']:>5} {r['with_transfer']:>9}"
        )
    print("cpu ms: the server's CPU per request; / intake: changes/s over intake orders/s, same run")
    print(f"machine speed: {speed_before} ms before, {speed_after} ms after (calibration loop, lower is faster)")
    for hot in results["hot_contention"]:
        s = hot["statuses"]
        rows = "; ".join(
            f"{r['code']} on_hand {r['on_hand']} reserved {r['reserved']} safety {r['safety_stock']}"
            f" active reservations {r['active']}"
            for r in hot["hot_rows"]
        )
        other = {k: v for k, v in s.items() if k not in (200, 409, 412) and k < 500}
        print(
            f"hot sku, {hot['case'].replace('_', ' ')}: {hot['changes']} concurrent move_pickup -> "
            f"200: {s.get(200, 0)}, 409: {s.get(409, 0)}, 412: {s.get(412, 0)}, 5xx: {hot['server_errors']}"
            f"{f', other: {other}' if other else ''}; stock rows oversold: {hot['oversold_rows']}; "
            f"reserved = active reservations: {hot['reserved_is_reservations']}; orders not where their 200 put "
            f"them: {hot['orders_misplaced']}; {rows}; {hot['seconds']} s"
        )


if __name__ == "__main__":
    main()
