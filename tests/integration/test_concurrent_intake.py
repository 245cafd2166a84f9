"""Order intake under concurrency, through the real app over HTTP: no oversell, no deadlock that
reaches a client, and the levels, the reservations and the ledger agree afterwards."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from orchestrator.app import create_app
from tests.e2e.support import assert_problem
from tests.integration.invariants import all_violations
from tests.integration.lock_waits import backend_pid, holds_advisory_lock, queued_behind, record_retries

INSUFFICIENT = "https://orchestrator.example/problems/insufficient-stock"

Post = Callable[[str, dict, dict], Awaitable[httpx.Response]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _reserved_total(db) -> int:
    async with db.unit_of_work() as uow:
        return int(await uow.session.scalar(text("SELECT coalesce(sum(reserved), 0) FROM stock_levels")))


async def _open_units(db) -> int:
    """Units of every order that is not cancelled (nothing is picked in these tests)."""
    async with db.unit_of_work() as uow:
        return int(
            await uow.session.scalar(
                text(
                    "SELECT coalesce(sum(l.quantity - l.quantity_cancelled - l.quantity_unsourced), 0) "
                    "FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE o.status <> 'cancelled'"
                )
            )
        )


async def _level(shop, code: str, sku: str) -> dict:
    r = await shop.client.get(f"/v1/locations/{code}/stock/{sku}", headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def _race_for_fifty_units(shop, post: Post, requests: int = 200) -> None:
    await shop.location("S1")
    await shop.product("HOT")
    await shop.stock("S1", "HOT", 50)
    key = await shop.channel()
    bodies = [shop.order_body([("HOT", 1)], email=f"buyer{i % 37}@example.com") for i in range(requests)]
    responses = await asyncio.gather(
        *[post("/v1/orders", body, {**key, "Idempotency-Key": f"race-{i}"}) for i, body in enumerate(bodies)]
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 50, 409: requests - 50}, statuses
    refused = [r.json() for r in responses if r.status_code == 409]
    assert all(p["type"] == INSUFFICIENT for p in refused), {p["type"] for p in refused}
    assert all(p["shortfalls"] == [{"sku": "HOT", "requested": 1, "available": 0}] for p in refused)
    level = await _level(shop, "S1", "HOT")
    assert (level["on_hand"], level["reserved"], level["available"]) == (50, 50, 0)
    assert await all_violations(shop.db) == []


@pytest.mark.slow
async def test_two_hundred_buyers_of_fifty_units_in_process_exactly_fifty_win_none_see_5xx(shop):
    async def post(path: str, body: dict, headers: dict) -> httpx.Response:
        return await shop.client.post(path, json=body, headers=headers)

    await _race_for_fifty_units(shop, post)


@pytest.mark.slow
async def test_two_hundred_buyers_of_fifty_units_over_a_real_server_exactly_fifty_win(shop, settings, db, redis, clock):
    app = create_app(settings, db=db, redis=redis, clock=clock)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_level="warning",
            access_log=False,
            log_config=None,
            timeout_keep_alive=30,
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.025)
        assert server.started, "uvicorn did not start"
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=httpx.Timeout(60.0)
        ) as real:

            async def post(path: str, body: dict, headers: dict) -> httpx.Response:
                return await real.post(path, json=body, headers=headers)

            await _race_for_fifty_units(shop, post)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=15)


@pytest.mark.slow
async def test_orders_naming_skus_in_opposite_orders_across_stores_never_deadlock(shop, monkeypatch):
    # db.run retries a deadlock, so no client would see one: the test counts the retries.
    retried = record_retries(monkeypatch)
    # Every store holds only part of the range, so ship orders split across stores and lock
    # several stock rows each; half the baskets list the skus A,B,C and half C,B,A.
    await shop.location("S1", lat=52.52, lon=13.40)
    await shop.location("S2", lat=52.40, lon=13.05)
    await shop.location("S3", lat=52.60, lon=13.60)
    for sku in "ABC":
        await shop.product(sku)
    for code, sku, qty in [
        ("S1", "A", 30),
        ("S1", "B", 10),
        ("S2", "B", 30),
        ("S2", "C", 10),
        ("S3", "C", 30),
        ("S3", "A", 10),
    ]:
        await shop.stock(code, sku, qty)
    key = await shop.channel()
    rng = random.Random(7)
    bodies = []
    for i in range(150):
        skus = ["A", "B", "C"] if i % 2 else ["C", "B", "A"]
        lines = [(s, rng.randint(1, 2)) for s in skus[: rng.randint(2, 3)]]
        if i % 3 == 0:
            bodies.append(shop.order_body(lines, method="pickup", location=f"S{1 + i % 3}", email=f"p{i}@example.com"))
        else:
            bodies.append(shop.order_body(lines, method="ship", email=f"s{i % 11}@example.com"))
    responses = await asyncio.gather(
        *[
            shop.client.post("/v1/orders", json=b, headers={**key, "Idempotency-Key": f"x-{i}"})
            for i, b in enumerate(bodies)
        ]
    )
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code not in (201, 409)][:3]
    assert statuses[201] > 0 and statuses[409] > 0, statuses  # the stock ran out part-way
    assert all(r.json()["type"] == INSUFFICIENT for r in responses if r.status_code == 409)
    spanning = [
        r.json()
        for r in responses
        if r.status_code == 201 and len({f["location"] for f in r.json()["fulfillment_orders"]}) > 1
    ]
    assert spanning, "no order was split across stores; the test would not exercise multi-row locking"
    accepted_units = sum(ln["quantity"] for r in responses if r.status_code == 201 for ln in r.json()["lines"])
    assert await _reserved_total(shop.db) == accepted_units
    assert await all_violations(shop.db) == []
    assert "40P01" not in retried, f"{retried.count('40P01')} deadlocks, hidden from clients by db.run's retry"


@pytest.mark.slow
async def test_cancels_racing_placements_release_exactly_what_they_held(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 100)
    key = await shop.channel()
    placed = []
    for i in range(60):
        r = await shop.place(shop.order_body([("A", 1)], email=f"early{i}@example.com"))
        assert r.status_code == 201, r.text
        placed.append(r.json()["id"])
    # 40 units are left; 30 orders are cancelled (10 of them twice at once) while 100 new
    # single-unit orders arrive.
    to_cancel = placed[:30]
    cancels = [
        shop.client.post(f"/v1/orders/{oid}/cancel", json={"reason": "changed mind"}, headers=key) for oid in to_cancel
    ]
    cancels += [
        shop.client.post(f"/v1/orders/{oid}/cancel", json={"reason": "again"}, headers=key) for oid in to_cancel[:10]
    ]
    placements = [
        shop.client.post(
            "/v1/orders",
            json=shop.order_body([("A", 1)], email=f"late{i}@example.com"),
            headers={**key, "Idempotency-Key": f"late-{i}"},
        )
        for i in range(100)
    ]
    jobs = [*cancels, *placements]
    order = list(range(len(jobs)))
    random.Random(3).shuffle(order)
    results = await asyncio.gather(*[jobs[i] for i in order])
    by_job = dict(zip(order, results, strict=True))
    cancel_results = [by_job[i] for i in range(len(cancels))]
    placement_results = [by_job[i] for i in range(len(cancels), len(jobs))]

    assert all(r.status_code < 500 for r in results), [r.text for r in results if r.status_code >= 500][:3]
    per_order = Counter()
    for oid, r in zip([*to_cancel, *to_cancel[:10]], cancel_results, strict=True):
        assert r.status_code in (200, 409), r.text
        if r.status_code == 200:
            per_order[oid] += 1
        else:
            assert r.json()["type"].endswith("/order-not-cancellable"), r.text
    assert per_order == Counter({oid: 1 for oid in to_cancel}), "each order is cancelled exactly once"

    won = sum(r.status_code == 201 for r in placement_results)
    assert {r.status_code for r in placement_results} <= {201, 409}
    assert 40 <= won <= 70, won
    level = await _level(shop, "S1", "A")
    assert level["on_hand"] == 100
    assert level["reserved"] == 30 + won
    assert await _open_units(shop.db) == level["reserved"]
    assert await all_violations(shop.db) == []


@pytest.mark.slow
async def test_pickups_at_two_stores_each_needing_transfers_from_the_other_never_deadlock(shop, monkeypatch):
    retried = record_retries(monkeypatch)
    # A pickup locks its own store's rows first; one that falls short then also locks the other
    # store's rows for a transfer. Two such pickups at the two stores lock in opposite orders.
    r = await shop.client.put("/v1/sourcing-profiles/web", json={"on_pickup_shortfall": "transfer"}, headers=shop.admin)
    assert r.status_code == 200, r.text
    await shop.location("S1", lat=52.52, lon=13.40)
    await shop.location("S2", lat=52.50, lon=13.35)
    for sku in "AB":
        await shop.product(sku)
    for code, sku, qty in [("S1", "A", 60), ("S1", "B", 0), ("S2", "A", 0), ("S2", "B", 60)]:
        await shop.stock(code, sku, qty)
    key = await shop.channel()
    bodies = [
        shop.order_body(
            [("A", 1), ("B", 1)] if i % 2 else [("B", 1), ("A", 1)],
            location="S1" if i % 2 else "S2",
            email=f"t{i}@example.com",
        )
        for i in range(150)
    ]
    responses = await asyncio.gather(
        *[
            shop.client.post("/v1/orders", json=b, headers={**key, "Idempotency-Key": f"t-{i}"})
            for i, b in enumerate(bodies)
        ]
    )
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, (
        statuses,
        [r.text for r in responses if r.status_code >= 500][:2],
    )
    assert statuses[201] == 60, statuses  # 60 of each sku: exactly 60 baskets can be served
    transfers = sum(
        f["method"] == "transfer" for r in responses if r.status_code == 201 for f in r.json()["fulfillment_orders"]
    )
    assert transfers == 60
    assert await _reserved_total(shop.db) == 120
    assert await all_violations(shop.db) == []
    assert "40P01" not in retried, f"{retried.count('40P01')} deadlocks, hidden from clients by db.run's retry"


@pytest.mark.slow
async def test_stock_write_downs_racing_placements_never_take_units_promised_to_orders(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 50)
    key, staff = await shop.channel(), await shop.staff("S1")
    orders = [
        shop.client.post(
            "/v1/orders",
            json=shop.order_body([("A", 1)], email=f"w{i}@example.com"),
            headers={**key, "Idempotency-Key": f"w-{i}"},
        )
        for i in range(100)
    ]
    write_downs = [
        shop.client.post(
            "/v1/locations/S1/stock/A/adjustments",
            json={"delta": -1, "reason": "damaged"},
            headers=staff,
        )
        for _ in range(30)
    ]
    jobs = [*orders, *write_downs]
    order = list(range(len(jobs)))
    random.Random(5).shuffle(order)
    results = dict(zip(order, await asyncio.gather(*[jobs[i] for i in order]), strict=True))
    placed = [results[i] for i in range(len(orders))]
    adjusted = [results[i] for i in range(len(orders), len(jobs))]
    assert {r.status_code for r in placed} <= {201, 409}, [r.text for r in placed if r.status_code >= 500][:2]
    assert {r.status_code for r in adjusted} <= {200, 409}, [r.text for r in adjusted if r.status_code >= 500][:2]
    assert all(r.json()["type"].endswith("/stock-would-go-negative") for r in adjusted if r.status_code == 409)
    won = sum(r.status_code == 201 for r in placed)
    written_down = sum(r.status_code == 200 for r in adjusted)
    assert won + written_down == 50, (won, written_down)  # every unit went one way, none twice
    level = await _level(shop, "S1", "A")
    assert (level["on_hand"], level["reserved"], level["available"]) == (50 - written_down, won, 0)
    assert await all_violations(shop.db) == []


async def test_a_second_request_with_a_key_whose_first_request_is_still_in_flight_gets_409(shop, db):
    """The first request holds its key (an advisory lock) for its whole transaction; a second one
    with the same key arriving meanwhile is told so at once (409 idempotency-key-in-flight) instead
    of waiting or placing a second order, and the first completes and is replayed afterwards."""
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 10)
    # Ann is a known customer: a new one's row, still uncommitted, would hold the second request
    # on the customer index until the first commits (and only then answer 409).
    assert (await shop.place(shop.order_body([("A", 1)]))).status_code == 201
    body = shop.order_body([("A", 1)])
    headers = {**await shop.channel(), "Idempotency-Key": "k-in-flight"}
    async with db.unit_of_work() as holder:
        # Hold the stock row the first request must lock: it stops inside its transaction, key held.
        await holder.session.execute(text("SELECT 1 FROM stock_levels FOR UPDATE"))
        first = asyncio.create_task(shop.client.post("/v1/orders", json=body, headers=headers))
        first_pid = await queued_behind(db, await backend_pid(holder.session), first)
        assert await holds_advisory_lock(db, first_pid)

        second = await asyncio.wait_for(shop.client.post("/v1/orders", json=body, headers=headers), timeout=10)
        assert_problem(second, 409, "idempotency-key-in-flight")
        assert not first.done()
        await holder.session.rollback()
    placed = await asyncio.wait_for(first, timeout=10)
    assert placed.status_code == 201, placed.text
    replay = await shop.client.post("/v1/orders", json=body, headers=headers)
    assert (replay.status_code, replay.content) == (201, placed.content)
    assert replay.headers["idempotent-replayed"] == "true"
    assert (await _level(shop, "S1", "A"))["reserved"] == 2
    assert await all_violations(db) == []
