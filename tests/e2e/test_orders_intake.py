"""Order intake over HTTP: idempotency, channel references, customer matching, sourcing and the
insufficient-stock answer."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from tests.e2e.support import assert_problem


async def count(db, table: str, where: str = "TRUE") -> int:
    async with db.unit_of_work() as uow:
        return int(await uow.session.scalar(text(f"SELECT count(*) FROM {table} WHERE {where}")))


async def stock_of(shop, code: str, sku: str) -> dict:
    r = await shop.client.get(f"/v1/locations/{code}/stock/{sku}", headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def one_store(shop, on_hand: int = 10, skus: tuple[str, ...] = ("A",)) -> None:
    await shop.location("S1")
    for sku in skus:
        await shop.product(sku)
        await shop.stock("S1", sku, on_hand)


# --- Idempotency-Key -------------------------------------------------------------------------


async def test_replay_with_same_key_and_body_returns_identical_response_and_reserves_once(shop, db):
    await one_store(shop)
    body = shop.order_body([("A", 2)])
    first = await shop.place(body, key="k-replay")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    second = await shop.place(body, key="k-replay")
    assert second.status_code == first.status_code
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert await count(db, "orders") == 1
    assert (await stock_of(shop, "S1", "A"))["reserved"] == 2
    assert await count(db, "inventory_movements", "kind = 'reservation'") == 1


async def test_replay_after_cancellation_returns_the_original_stored_response(shop, db):
    await one_store(shop)
    body = shop.order_body([("A", 1)])
    first = await shop.place(body, key="k-cancel")
    assert first.status_code == 201, first.text
    order_id = first.json()["id"]
    cancelled = await shop.client.post(f"/v1/orders/{order_id}/cancel", json={}, headers=await shop.channel())
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    replay = await shop.place(body, key="k-cancel")
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay.json()["status"] == "received"
    assert replay.headers["idempotent-replayed"] == "true"
    assert await count(db, "orders") == 1
    assert (await stock_of(shop, "S1", "A"))["reserved"] == 0


async def test_same_key_with_a_different_body_is_422_idempotency_key_reused(shop, db):
    await one_store(shop)
    body = shop.order_body([("A", 1)], ref="r-1")
    first = await shop.place(body, key="k-reuse")
    assert first.status_code == 201, first.text
    other = {**body, "lines": [{"sku": "A", "quantity": 3, "unit_price": 1000}]}
    r = await shop.place(other, key="k-reuse")
    assert_problem(r, 422, "idempotency-key-reused")
    assert await count(db, "orders") == 1
    assert (await stock_of(shop, "S1", "A"))["reserved"] == 1


async def test_concurrent_requests_with_one_key_create_exactly_one_order(shop, db):
    await one_store(shop, on_hand=100)
    body = shop.order_body([("A", 1)])
    headers = {**await shop.channel(), "Idempotency-Key": "k-race"}
    responses = await asyncio.gather(*[shop.client.post("/v1/orders", json=body, headers=headers) for _ in range(10)])
    assert await count(db, "orders") == 1
    assert (await stock_of(shop, "S1", "A"))["reserved"] == 1
    succeeded = [r for r in responses if r.status_code in (200, 201)]
    assert succeeded, [r.text for r in responses]
    assert len({r.content for r in succeeded}) == 1
    assert len({r.status_code for r in succeeded}) == 1
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "idempotency-key-in-flight")
        else:
            assert r.status_code in (200, 201), r.text


async def test_idempotency_keys_are_per_principal(shop, db):
    """The same key from two channels is two different requests, not a reuse."""
    await one_store(shop)
    web = await shop.place(shop.order_body([("A", 1)], ref="w"), key="shared", headers=await shop.channel("web"))
    app = await shop.place(shop.order_body([("A", 1)], ref="a"), key="shared", headers=await shop.channel("app"))
    assert (web.status_code, app.status_code) == (201, 201), app.text
    assert web.json()["id"] != app.json()["id"]


# --- channel_order_ref ------------------------------------------------------------------------


async def test_same_channel_and_ref_with_a_new_key_returns_the_existing_order_with_200(shop, db):
    await one_store(shop)
    first = await shop.place(shop.order_body([("A", 1)], ref="SHOP-1"), key="k1")
    assert first.status_code == 201, first.text
    again = await shop.place(shop.order_body([("A", 1)], ref="SHOP-1"), key="k2")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert "idempotent-replayed" not in again.headers
    assert await count(db, "orders") == 1
    assert (await stock_of(shop, "S1", "A"))["reserved"] == 1


async def test_concurrent_requests_for_one_channel_ref_with_different_keys_make_one_order(shop, db):
    await one_store(shop, on_hand=100)
    body = shop.order_body([("A", 1)], ref="SHOP-RACE")
    headers = await shop.channel()
    responses = await asyncio.gather(
        *[
            shop.client.post("/v1/orders", json=body, headers={**headers, "Idempotency-Key": f"race-{i}"})
            for i in range(8)
        ]
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count(db, "orders") == 1
    assert (await stock_of(shop, "S1", "A"))["reserved"] == 1


async def test_same_ref_on_a_different_channel_is_a_new_order(shop, db):
    await one_store(shop)
    web = await shop.place(shop.order_body([("A", 1)], ref="R-9"), headers=await shop.channel("web"))
    shopify = await shop.place(
        shop.order_body([("A", 1)], ref="R-9"), headers=await shop.channel("marketplace:shopify")
    )
    assert (web.status_code, shopify.status_code) == (201, 201), shopify.text
    assert web.json()["id"] != shopify.json()["id"]
    assert shopify.json()["channel"] == "marketplace:shopify"
    assert await count(db, "orders") == 2
    assert (await stock_of(shop, "S1", "A"))["reserved"] == 2


# --- customers --------------------------------------------------------------------------------


async def test_emails_differing_only_in_case_attach_to_one_customer(shop, db):
    await one_store(shop)
    a = await shop.place(shop.order_body([("A", 1)], email="Ann.Smith@Example.COM"))
    b = await shop.place(
        shop.order_body([("A", 1)], email="ann.smith@example.com"),
        headers=await shop.channel("app"),
    )
    assert (a.status_code, b.status_code) == (201, 201), b.text
    assert a.json()["customer"]["id"] == b.json()["customer"]["id"]
    assert a.json()["customer"]["email"] == "ann.smith@example.com"
    assert await count(db, "customers") == 1
    other = await shop.place(shop.order_body([("A", 1)], email="bob@example.com"))
    assert other.json()["customer"]["id"] != a.json()["customer"]["id"]
    assert await count(db, "customers") == 2


async def test_phone_numbers_are_normalised_so_formats_match_one_customer(shop, db):
    await one_store(shop)
    first = shop.order_body([("A", 1)])
    first["customer"] = {"phone": "(415) 555-0100", "name": "Ann"}
    second = shop.order_body([("A", 1)])
    second["customer"] = {"phone": "+14155550100"}
    a = await shop.place(first)
    b = await shop.place(second, headers=await shop.channel("pos:S1"))
    assert (a.status_code, b.status_code) == (201, 201), b.text
    assert a.json()["customer"]["phone"] == "+14155550100"
    assert a.json()["customer"]["id"] == b.json()["customer"]["id"]
    assert await count(db, "customers") == 1


# --- sourcing of ship orders ------------------------------------------------------------------

CUSTOMER = {"line1": "1 Main St", "city": "Berlin", "country": "DE", "lat": 52.50, "lon": 13.40}


async def test_ship_order_goes_to_the_nearest_ship_capable_store_covering_everything(shop):
    for sku in ("A", "B"):
        await shop.product(sku)
    # NEAR-PICKUP is nearest and covers all but cannot ship; NEAR-PART can ship but lacks B.
    await shop.location("NEAR-PICKUP", 52.501, 13.401, ("pickup",))
    await shop.location("NEAR-PART", 52.51, 13.41, ("ship",))
    await shop.location("MID", 52.60, 13.50, ("ship", "pickup"))
    await shop.location("FAR", 53.50, 14.40, ("ship",))
    for code in ("NEAR-PICKUP", "MID", "FAR"):
        await shop.stock(code, "A", 5)
        await shop.stock(code, "B", 5)
    await shop.stock("NEAR-PART", "A", 5)
    r = await shop.place(shop.order_body([("A", 1), ("B", 1)], method="ship", address=CUSTOMER))
    assert r.status_code == 201, r.text
    fos = r.json()["fulfillment_orders"]
    assert [(f["location"], f["method"]) for f in fos] == [("MID", "ship")]
    assert (await stock_of(shop, "MID", "A"))["reserved"] == 1
    assert (await stock_of(shop, "NEAR-PART", "A"))["reserved"] == 0


async def test_ship_order_no_single_store_covers_uses_fewest_locations(shop):
    for sku in ("A", "B", "C"):
        await shop.product(sku)
    await shop.location("X", 52.501, 13.401, ("ship",))  # nearest: only A
    await shop.location("Y", 52.55, 13.45, ("ship",))  # A and B
    await shop.location("Z", 52.70, 13.60, ("ship",))  # C
    await shop.stock("X", "A", 5)
    await shop.stock("Y", "A", 5)
    await shop.stock("Y", "B", 5)
    await shop.stock("Z", "C", 5)
    r = await shop.place(shop.order_body([("A", 1), ("B", 1), ("C", 1)], method="ship", address=CUSTOMER))
    assert r.status_code == 201, r.text
    fos = r.json()["fulfillment_orders"]
    assert sorted(f["location"] for f in fos) == ["Y", "Z"]
    by_location = {f["location"]: sorted(ln["sku"] for ln in f["lines"]) for f in fos}
    assert by_location == {"Y": ["A", "B"], "Z": ["C"]}
    assert (await stock_of(shop, "X", "A"))["reserved"] == 0


# --- insufficient stock -----------------------------------------------------------------------


async def test_insufficient_stock_names_each_short_sku_and_writes_nothing(shop, db):
    await shop.location("S1")
    for sku in ("A", "B", "C"):
        await shop.product(sku)
    await shop.stock("S1", "A", 1)  # wants 3: short
    await shop.stock("S1", "B", 5)  # wants 2: fine
    await shop.stock("S1", "C", 0)  # wants 1: short
    movements_before = await count(db, "inventory_movements")
    r = await shop.place(shop.order_body([("A", 3), ("B", 2), ("C", 1)]))
    problem = assert_problem(r, 409, "insufficient-stock")
    shortfalls = sorted(problem["shortfalls"], key=lambda s: s["sku"])
    assert shortfalls == [
        {"sku": "A", "requested": 3, "available": 1},
        {"sku": "C", "requested": 1, "available": 0},
    ]
    assert problem["suggested_locations"] == []
    for sku, on_hand in (("A", 1), ("B", 5), ("C", 0)):
        level = await stock_of(shop, "S1", sku)
        assert (level["on_hand"], level["reserved"]) == (on_hand, 0)
    listed = await shop.client.get("/v1/orders", headers=shop.admin)
    assert listed.json()["items"] == []
    assert await count(db, "orders") == 0
    assert await count(db, "outbox") == 0
    assert await count(db, "customers") == 0
    assert await count(db, "inventory_movements") == movements_before


async def test_insufficient_stock_suggests_at_most_five_whole_order_stores_nearest_first(shop):
    for sku in ("A", "B"):
        await shop.product(sku)
    await shop.location("HOME", 52.50, 13.40, ("pickup",))
    await shop.stock("HOME", "A", 1)
    # Seven stores hold everything, at increasing distance from HOME.
    for i in range(7):
        code = f"W{i}"
        await shop.location(code, 52.50 + 0.05 * (7 - i), 13.40, ("pickup", "ship"))
        await shop.stock(code, "A", 5)
        await shop.stock(code, "B", 5)
    # Nearer than all of them but not serving the whole order, or not offering pickup.
    await shop.location("PART", 52.501, 13.40, ("pickup",))
    await shop.stock("PART", "A", 5)
    await shop.location("SHIPONLY", 52.502, 13.40, ("ship",))
    await shop.stock("SHIPONLY", "A", 5)
    await shop.stock("SHIPONLY", "B", 5)
    r = await shop.place(shop.order_body([("A", 2), ("B", 1)], location="HOME"))
    problem = assert_problem(r, 409, "insufficient-stock")
    assert sorted(problem["shortfalls"], key=lambda s: s["sku"]) == [
        {"sku": "A", "requested": 2, "available": 1},
        {"sku": "B", "requested": 1, "available": 0},
    ]
    assert problem["suggested_locations"] == ["W6", "W5", "W4", "W3", "W2"]


async def test_safety_stock_is_not_sold(shop, db):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5, safety_stock=4)
    r = await shop.place(shop.order_body([("A", 2)]))
    problem = assert_problem(r, 409, "insufficient-stock")
    assert problem["shortfalls"] == [{"sku": "A", "requested": 2, "available": 1}]
    ok = await shop.place(shop.order_body([("A", 1)]))
    assert ok.status_code == 201, ok.text


# --- reading ----------------------------------------------------------------------------------


async def test_order_is_read_by_id_with_version_etag_and_by_number_in_any_case(shop):
    await one_store(shop)
    placed = (await shop.place(shop.order_body([("A", 2)]))).json()
    r = await shop.client.get(f"/v1/orders/{placed['id']}", headers=await shop.channel())
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == f'"{placed["version"]}"' == '"1"'
    order = r.json()
    assert order["id"] == placed["id"] and order["number"] == placed["number"]
    assert [(ln["sku"], ln["quantity"], ln["total"]) for ln in order["lines"]] == [("A", 2, 2000)]
    assert order["subtotal"] == 2000
    number = placed["number"]
    for asked in (number, number.lower(), f"  {number.lower()} "):
        r = await shop.client.get(f"/v1/orders/by-number/{asked}", headers=shop.admin)
        assert r.status_code == 200, (asked, r.text)
        assert r.json()["id"] == placed["id"]
        assert r.headers["etag"] == '"1"'
    missing = await shop.client.get("/v1/orders/by-number/ZZZ-ZZZZ", headers=shop.admin)
    assert_problem(missing, 404, "not-found")


async def test_order_list_pages_by_cursor_without_duplicates_or_gaps(shop):
    await one_store(shop, on_hand=100)
    placed = []
    for _ in range(7):
        r = await shop.place(shop.order_body([("A", 1)]))
        assert r.status_code == 201, r.text
        placed.append(r.json()["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        url = "/v1/orders?limit=3" + (f"&cursor={cursor}" if cursor else "")
        r = await shop.client.get(url, headers=await shop.channel())
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 3
        seen += [o["id"] for o in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 10
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(placed)


async def test_order_list_filters_by_customer_email_channel_and_status(shop):
    await one_store(shop, on_hand=100)
    web, app = await shop.channel("web"), await shop.channel("app")
    a = (await shop.place(shop.order_body(email="ann@example.com"), headers=web)).json()
    b = (await shop.place(shop.order_body(email="bob@example.com"), headers=app)).json()
    c = (await shop.place(shop.order_body(email="Ann@Example.com"), headers=app)).json()
    await shop.client.post(f"/v1/orders/{c['id']}/cancel", json={}, headers=app)

    async def ids(query: str) -> set[str]:
        r = await shop.client.get(f"/v1/orders?{query}", headers=web)
        assert r.status_code == 200, r.text
        return {o["id"] for o in r.json()["items"]}

    assert await ids("customer_email=ann@example.com") == {a["id"], c["id"]}
    assert await ids("customer_email=ANN@example.com") == {a["id"], c["id"]}
    assert await ids("channel=app") == {b["id"], c["id"]}
    assert await ids("status=cancelled") == {c["id"]}
    assert await ids("status=received&channel=app") == {b["id"]}
    assert await ids("") == {a["id"], b["id"], c["id"]}


async def test_any_channel_key_reads_orders_of_every_channel(shop):
    await one_store(shop)
    placed = (await shop.place(shop.order_body(), headers=await shop.channel("marketplace:amazon"))).json()
    other = await shop.channel("pos:S9")
    listed = (await shop.client.get("/v1/orders", headers=other)).json()
    assert [o["id"] for o in listed["items"]] == [placed["id"]]
    one = await shop.client.get(f"/v1/orders/{placed['id']}", headers=other)
    assert one.status_code == 200 and one.json()["channel"] == "marketplace:amazon"
    events = await shop.client.get(f"/v1/orders/{placed['id']}/events", headers=other)
    assert events.status_code == 200


async def test_timeline_is_oldest_first_numbered_from_one(shop):
    await one_store(shop)
    placed = (await shop.place(shop.order_body())).json()
    r = await shop.client.get(f"/v1/orders/{placed['id']}/events", headers=shop.admin)
    assert r.status_code == 200, r.text
    events = r.json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events][:2] == ["order.placed", "order.sourced"]
    assert events[0]["data"]["number"] == placed["number"]


# --- cancellation -----------------------------------------------------------------------------


async def test_cancel_releases_reservations_bumps_version_and_records_the_event(shop, db):
    await one_store(shop, skus=("A", "B"))
    placed = (await shop.place(shop.order_body([("A", 2), ("B", 3)]))).json()
    assert (await stock_of(shop, "S1", "A"))["reserved"] == 2
    r = await shop.client.post(
        f"/v1/orders/{placed['id']}/cancel",
        json={"reason": "customer changed mind"},
        headers={**await shop.channel(), "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["status"] == "cancelled"
    assert order["version"] > placed["version"]
    assert r.headers["etag"] == f'"{order["version"]}"'
    assert [ln["quantity_cancelled"] for ln in order["lines"]] == [2, 3]
    for sku in ("A", "B"):
        level = await stock_of(shop, "S1", sku)
        assert (level["on_hand"], level["reserved"], level["available"]) == (10, 0, 10)
        moves = (await shop.client.get(f"/v1/locations/S1/stock/{sku}/movements", headers=shop.admin)).json()
        releases = [m for m in moves["items"] if m["kind"] == "release"]
        assert len(releases) == 1 and releases[0]["reserved_delta"] < 0
    again = await shop.client.get(f"/v1/orders/{placed['id']}", headers=shop.admin)
    assert again.headers["etag"] == f'"{order["version"]}"'
    events = (await shop.client.get(f"/v1/orders/{placed['id']}/events", headers=shop.admin)).json()
    types = [e["type"] for e in events]
    assert types[:2] == ["order.placed", "order.sourced"]
    assert types.count("order.cancelled") == 1
    assert events[types.index("order.cancelled")]["data"]["reason"] == "customer changed mind"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert await count(db, "outbox", "type = 'order.cancelled'") == 1


async def test_second_cancel_is_409_and_changes_nothing(shop):
    await one_store(shop)
    placed = (await shop.place(shop.order_body([("A", 1)]))).json()
    first = await shop.client.post(f"/v1/orders/{placed['id']}/cancel", json={}, headers=await shop.channel())
    assert first.status_code == 200, first.text
    second = await shop.client.post(f"/v1/orders/{placed['id']}/cancel", json={}, headers=await shop.channel())
    assert_problem(second, 409, "order-not-cancellable")
    after = await shop.client.get(f"/v1/orders/{placed['id']}", headers=shop.admin)
    assert after.json()["version"] == first.json()["version"]
    moves = (await shop.client.get("/v1/locations/S1/stock/A/movements", headers=shop.admin)).json()
    assert [m["kind"] for m in moves["items"]].count("release") == 1


async def test_cancel_with_stale_if_match_is_412_with_current_version(shop):
    await one_store(shop)
    placed = (await shop.place(shop.order_body([("A", 1)]))).json()
    r = await shop.client.post(
        f"/v1/orders/{placed['id']}/cancel",
        json={},
        headers={**await shop.channel(), "If-Match": '"7"'},
    )
    problem = assert_problem(r, 412, "version-mismatch")
    assert problem["current_version"] == 1
    order = (await shop.client.get(f"/v1/orders/{placed['id']}", headers=shop.admin)).json()
    assert order["status"] == "received" and order["version"] == 1
    assert (await stock_of(shop, "S1", "A"))["reserved"] == 1
