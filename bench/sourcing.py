"""Sourcing benchmark: 1,000 stores, a 1,000,000-row stock table, 20-line orders.

Prints p50/p99 of (a) the engine alone, (b) sourcing as intake runs it (candidate query + engine),
(c) the availability query for a 20-sku basket; and the engine's split count against the
exhaustive optimum on small scenarios.

    python bench/sourcing.py [--orders 300] [--stores 1000] [--skus 1000]
    orchestrator bench sourcing
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import random
import time

import asyncpg
from common import bench_servers, calibration_ms, percentile

from orchestrator.inventory.availability import AvailabilityQuery, availability
from orchestrator.order_record.states import Method
from orchestrator.platform.db import Database
from orchestrator.platform.geo import Coordinates
from orchestrator.sourcing.candidates import source, sourcing_candidates
from orchestrator.sourcing.engine import plan_sourcing
from orchestrator.sourcing.model import Candidate, LineDemand, SourcingProfile, SourcingRequest


async def seed(url: str, stores: int, skus: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await conn.execute(
            """
            INSERT INTO locations (code, name, kind, address, lat, lon, timezone, capabilities, daily_capacity,
                                   pickup_hold_days, active, created_at)
            SELECT format('L-%s', lpad(i::text, 4, '0')), format('Location %s', i), 'store', '{}',
                   25 + random() * 23, -124 + random() * 57, 'UTC',
                   CASE WHEN i % 10 = 0 THEN ARRAY['pickup'] ELSE ARRAY['pickup', 'curbside', 'ship'] END,
                   CASE WHEN i % 7 = 0 THEN 0 ELSE 100 END, 7, true, now()
            FROM generate_series(1, $1) i
            """,
            stores,
        )
        await conn.execute(
            "INSERT INTO products (sku, name, active, created_at)"
            " SELECT format('S-%s', lpad(i::text, 5, '0')), format('Sku %s', i), true, now()"
            " FROM generate_series(1, $1) i",
            skus,
        )
        # Every store holds every sku (1M rows); a third of them at zero, the rest 1-8 units.
        await conn.execute(
            """
            INSERT INTO stock_levels (location_id, product_id, on_hand, reserved, safety_stock)
            SELECT l.id, p.id, CASE WHEN random() < 0.33 THEN 0 ELSE 1 + (random() * 7)::int END, 0,
                   CASE WHEN random() < 0.05 THEN 1 ELSE 0 END
            FROM locations l CROSS JOIN products p
            """
        )
        await conn.execute("UPDATE stock_levels SET safety_stock = 0 WHERE safety_stock > on_hand")
        await conn.execute("VACUUM ANALYZE stock_levels")  # what autovacuum does for a live table
        rows = await conn.fetchval("SELECT count(*) FROM stock_levels")
        print(f"seeded {stores} locations, {skus} skus, {rows} stock rows in {time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()


def random_order(rng: random.Random, skus: int, lines: int = 20) -> SourcingRequest:
    chosen = rng.sample(range(1, skus + 1), lines)
    return SourcingRequest(
        lines=tuple(
            LineDemand(str(i), f"S-{s:05d}", rng.randint(1, 3), rng.randint(500, 5000)) for i, s in enumerate(chosen)
        ),
        method=Method.SHIP,
        destination=Coordinates(25 + rng.random() * 23, -124 + rng.random() * 57),
    )


async def measure(url: str, orders: int, skus: int) -> dict:
    db = Database(url, pool_size=4)
    rng = random.Random(3)
    profile = SourcingProfile()
    end_to_end, engine, avail, avail_radius, splits = [], [], [], [], []
    async with db.unit_of_work() as uow:
        products = dict(
            (await uow.session.execute(__import__("sqlalchemy").text("SELECT sku, id FROM products"))).all()
        )
        for i in range(orders + 20):
            if i == 20:
                gc.collect()
                gc.freeze()  # as the server does after start-up: long-lived objects leave the GC's scans
            request = random_order(rng, skus)
            wanted = {line.sku: products[line.sku] for line in request.lines}
            started = time.perf_counter()
            sourced = await source(uow.session, request, profile, wanted)
            e2e = time.perf_counter() - started
            # The engine alone, on every location holding any of the basket (not just the 300 intake reads).
            need = {wanted[line.sku]: line.quantity for line in request.lines}
            candidates, _ = await sourcing_candidates(
                uow.session, {v: k for k, v in wanted.items()}, need=need, near=request.destination, limit=None
            )
            started = time.perf_counter()
            plan = plan_sourcing(request, candidates, profile)
            pure = time.perf_counter() - started
            basket = [line.sku for line in request.lines]
            started = time.perf_counter()
            await availability(uow, AvailabilityQuery(basket, "ship", request.destination, None, 100))
            av = time.perf_counter() - started
            started = time.perf_counter()
            await availability(uow, AvailabilityQuery(basket, "pickup", request.destination, 50.0, 100))
            av_r = time.perf_counter() - started
            if i >= 20:  # warm-up excluded
                end_to_end.append(e2e)
                engine.append(pure)
                avail.append(av)
                avail_radius.append(av_r)
                splits.append(len(plan.locations) if plan.complete else -1)
            assert sourced.plan.complete == plan.complete
    await db.dispose()
    complete = [s for s in splits if s > 0]
    return {
        "orders": orders,
        "engine_ms": {"p50": _ms(engine, 0.5), "p99": _ms(engine, 0.99)},
        "sourcing_with_candidate_query_ms": {"p50": _ms(end_to_end, 0.5), "p99": _ms(end_to_end, 0.99)},
        "availability_20_skus_nearest_100_ms": {"p50": _ms(avail, 0.5), "p99": _ms(avail, 0.99)},
        "availability_20_skus_within_50km_ms": {"p50": _ms(avail_radius, 0.5), "p99": _ms(avail_radius, 0.99)},
        "complete_plans": len(complete),
        "mean_locations_per_order": round(sum(complete) / max(1, len(complete)), 2),
    }


def _ms(samples: list[float], q: float) -> float:
    return round(percentile(samples, q) * 1000, 2)


def optimum_locations(request: SourcingRequest, candidates: list[Candidate]) -> int | None:
    """Fewest locations that can serve everything together (no min split value), exhaustively."""
    eligible = [c for c in candidates if "ship" in c.capabilities and (c.headroom is None or c.headroom > 0)]
    need: dict[str, int] = {}
    for line in request.lines:
        need[line.sku] = need.get(line.sku, 0) + line.quantity
    for k in range(1, len(eligible) + 1):
        for combo in itertools.combinations(eligible, k):
            if all(sum(c.available.get(s, 0) for c in combo) >= q for s, q in need.items()):
                return k
    return None


def split_quality(scenarios: int = 300) -> dict:
    rng = random.Random(11)
    worse, total, extra = 0, 0, 0
    for _ in range(scenarios):
        skus = [f"X{i}" for i in range(8)]
        candidates = [
            Candidate(
                f"C{i}",
                Coordinates(40 + rng.random(), -74 + rng.random()),
                frozenset({"ship"}),
                {s: rng.choice([0, 0, 1, 2, 3]) for s in skus},
            )
            for i in range(10)
        ]
        request = SourcingRequest(
            lines=tuple(LineDemand(str(i), s, rng.randint(1, 3), 1000) for i, s in enumerate(rng.sample(skus, 6))),
            method=Method.SHIP,
            destination=Coordinates(40.5, -73.5),
        )
        best = optimum_locations(request, candidates)
        plan = plan_sourcing(request, candidates, SourcingProfile())
        if best is None:
            assert not plan.complete
            continue
        assert plan.complete, "engine missed a feasible plan"
        total += 1
        got = len(plan.locations)
        if got > best:
            worse += 1
            extra += got - best
    return {
        "scenarios_feasible": total,
        "engine_above_optimum": worse,
        "extra_locations_total": extra,
        "share_optimal": round(1 - worse / max(1, total), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--skus", type=int, default=1000)
    args = parser.parse_args()
    quality = split_quality()
    with bench_servers("orchestrator_bench_sourcing") as (url, _):
        asyncio.run(seed(url, args.stores, args.skus))
        figures = asyncio.run(measure(url, args.orders, args.skus))
    print(json.dumps({"latency": figures, "split_quality": quality}, indent=2))
    print()
    print(
        f"engine alone, 20 lines x {args.stores} stores   p50 {figures['engine_ms']['p50']} ms"
        f"  p99 {figures['engine_ms']['p99']} ms"
    )
    print(
        f"sourcing incl. candidate query             p50 {figures['sourcing_with_candidate_query_ms']['p50']} ms"
        f"  p99 {figures['sourcing_with_candidate_query_ms']['p99']} ms   (target p99 <= 20 ms)"
    )
    print(
        f"availability, 20 skus, nearest 100 stores p50 {figures['availability_20_skus_nearest_100_ms']['p50']}"
        f" ms  p99 {figures['availability_20_skus_nearest_100_ms']['p99']} ms   (target p99 <= 10 ms)"
    )
    print(
        f"availability, 20-sku basket, 50 km radius p50 {figures['availability_20_skus_within_50km_ms']['p50']}"
        f" ms  p99 {figures['availability_20_skus_within_50km_ms']['p99']} ms"
    )
    print(f"machine speed: {calibration_ms()} ms for the calibration loop (lower is faster)")
    print(
        f"split count vs exhaustive optimum: optimal in {quality['share_optimal']:.1%} of "
        f"{quality['scenarios_feasible']} feasible scenarios; {quality['extra_locations_total']} extra locations"
    )


if __name__ == "__main__":
    main()
