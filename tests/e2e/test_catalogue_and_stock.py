"""Locations, products and stock over HTTP; every stock change is a ledger row."""

from __future__ import annotations

from tests.e2e.support import PROBLEM, assert_problem


async def movements(shop, code: str, sku: str) -> list[dict]:
    out, cursor = [], None
    while True:
        url = f"/v1/locations/{code}/stock/{sku}/movements?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = await shop.client.get(url, headers=shop.admin)
        assert r.status_code == 200, r.text
        out += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return out


async def level(shop, code: str, sku: str) -> dict:
    r = await shop.client.get(f"/v1/locations/{code}/stock/{sku}", headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


# --- locations --------------------------------------------------------------------------------


async def test_location_create_get_patch_and_duplicate(shop):
    body = {
        "code": "STORE-012",
        "name": "Mitte",
        "kind": "store",
        "lat": 52.52,
        "lon": 13.40,
        "timezone": "Europe/Berlin",
        "capabilities": ["ship", "pickup", "pickup"],
        "daily_capacity": 40,
        "pickup_hold_days": 5,
        "address": {"line1": "Alexanderplatz 1", "city": "Berlin", "country": "DE"},
    }
    r = await shop.client.post("/v1/locations", json=body, headers=shop.admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["code"] == "STORE-012" and created["active"] is True
    assert sorted(created["capabilities"]) == ["pickup", "ship"]
    assert created["address"]["city"] == "Berlin"

    dup = await shop.client.post("/v1/locations", json={**body, "name": "Other"}, headers=shop.admin)
    assert_problem(dup, 409, "already-exists")

    got = await shop.client.get("/v1/locations/STORE-012", headers=shop.admin)
    assert got.status_code == 200 and got.json()["name"] == "Mitte"

    patched = await shop.client.patch(
        "/v1/locations/STORE-012",
        json={"name": "Mitte II", "capabilities": ["curbside"]},
        headers=shop.admin,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Mitte II"
    assert patched.json()["capabilities"] == ["curbside"]
    assert patched.json()["daily_capacity"] == 40  # untouched fields stay
    again = (await shop.client.get("/v1/locations/STORE-012", headers=shop.admin)).json()
    assert (again["name"], again["capabilities"], again["timezone"]) == (
        "Mitte II",
        ["curbside"],
        "Europe/Berlin",
    )
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        r = await shop.client.request(method, "/v1/locations/NOPE", json=body, headers=shop.admin)
        assert_problem(r, 404, "not-found")


async def test_invalid_location_or_product_is_422_and_not_created(shop):
    for body in (
        {"code": "has space", "name": "x"},
        {"code": "S1"},
        {"code": "S1", "name": "x", "lat": 91},
        {"code": "S1", "name": "x", "capabilities": ["teleport"]},
        {"code": "S1", "name": "x", "kind": "castle"},
    ):
        r = await shop.client.post("/v1/locations", json=body, headers=shop.admin)
        assert_problem(r, 422, "validation-error")
    assert (await shop.client.get("/v1/locations", headers=shop.admin)).json()["items"] == []
    for body in (
        {"sku": "has space", "name": "x"},
        {"sku": "A"},
        {"sku": "A", "name": "x", "gtin": "12"},
    ):
        r = await shop.client.post("/v1/products", json=body, headers=shop.admin)
        assert_problem(r, 422, "validation-error")
    assert (await shop.client.get("/v1/products", headers=shop.admin)).json()["items"] == []


async def test_deleted_location_is_inactive_and_takes_no_new_orders(shop):
    await shop.location("S1")
    await shop.location("S2", 52.60, 13.50)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    r = await shop.client.delete("/v1/locations/S1", headers=shop.admin)
    assert r.status_code == 204
    assert r.content == b""
    loc = (await shop.client.get("/v1/locations/S1", headers=shop.admin)).json()
    assert loc["active"] is False
    pickup = await shop.place(shop.order_body([("A", 1)], location="S1"))
    assert_problem(pickup, 422, "unknown-location")
    # A shipment does not come from it either: the only stock is there, so it is short.
    ship = await shop.place(shop.order_body([("A", 1)], method="ship"))
    assert_problem(ship, 409, "insufficient-stock")
    assert (await level(shop, "S1", "A"))["reserved"] == 0


async def test_location_and_product_lists_page_by_code_and_sku(shop):
    for i in range(5):
        await shop.location(f"L{i}")
    for sku in ("C", "A", "E", "B", "D"):
        await shop.product(sku)
    seen, cursor = [], None
    for _ in range(5):
        url = "/v1/locations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await shop.client.get(url, headers=shop.admin)).json()
        seen += [x["code"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["L0", "L1", "L2", "L3", "L4"]
    seen, cursor = [], None
    for _ in range(5):
        url = "/v1/products?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await shop.client.get(url, headers=shop.admin)).json()
        seen += [x["sku"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["A", "B", "C", "D", "E"]


# --- products ---------------------------------------------------------------------------------


async def test_product_create_get_patch_delete_and_duplicate(shop):
    r = await shop.client.post(
        "/v1/products",
        json={"sku": "SKU-1", "name": "Mug", "gtin": "4006381333931"},
        headers=shop.admin,
    )
    assert r.status_code == 201, r.text
    assert r.json()["active"] is True and r.json()["gtin"] == "4006381333931"
    dup = await shop.client.post("/v1/products", json={"sku": "SKU-1", "name": "Other"}, headers=shop.admin)
    assert_problem(dup, 409, "already-exists")
    got = await shop.client.get("/v1/products/SKU-1", headers=await shop.channel())
    assert got.status_code == 200 and got.json()["name"] == "Mug"
    patched = await shop.client.patch("/v1/products/SKU-1", json={"name": "Big mug"}, headers=shop.admin)
    assert patched.status_code == 200 and patched.json()["name"] == "Big mug"
    assert patched.json()["gtin"] == "4006381333931"
    gone = await shop.client.delete("/v1/products/SKU-1", headers=shop.admin)
    assert gone.status_code == 204
    assert (await shop.client.get("/v1/products/SKU-1", headers=shop.admin)).json()["active"] is False
    assert_problem(await shop.client.get("/v1/products/NOPE", headers=shop.admin), 404, "not-found")


async def test_deactivated_product_takes_no_new_orders(shop, db):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    assert (await shop.client.delete("/v1/products/A", headers=shop.admin)).status_code == 204
    r = await shop.place(shop.order_body([("A", 1)]))
    problem = assert_problem(r, 422, "unknown-sku")
    assert "A" in problem["detail"]
    assert (await level(shop, "S1", "A"))["reserved"] == 0


# --- stock ------------------------------------------------------------------------------------


async def test_put_stock_sets_the_absolute_level_and_writes_a_count_row(shop):
    await shop.location("S1")
    await shop.product("A")
    r = await shop.client.put(
        "/v1/locations/S1/stock/A", json={"on_hand": 7, "reason": "cycle count"}, headers=shop.admin
    )
    assert r.status_code == 200, r.text
    assert (r.json()["on_hand"], r.json()["reserved"], r.json()["available"]) == (7, 0, 7)
    r = await shop.client.put("/v1/locations/S1/stock/A", json={"on_hand": 4, "reason": "recount"}, headers=shop.admin)
    assert r.json()["on_hand"] == 4
    moves = await movements(shop, "S1", "A")
    assert [(m["kind"], m["on_hand_delta"], m["reason"]) for m in moves] == [
        ("count", -3, "recount"),
        ("count", 7, "cycle count"),
    ]
    assert all(m["actor"] for m in moves)
    r = await shop.client.put(
        "/v1/locations/S1/stock/A",
        json={"on_hand": 5, "safety_stock": 2, "reason": "x"},
        headers=shop.admin,
    )
    assert (r.json()["on_hand"], r.json()["safety_stock"], r.json()["available"]) == (5, 2, 3)
    r = await shop.client.put(
        "/v1/locations/S1/stock/A",
        json={"on_hand": 5, "safety_stock": 9, "reason": "x"},
        headers=shop.admin,
    )
    assert r.json()["available"] == 0


async def test_adjustment_moves_on_hand_by_delta_with_reason(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 10)
    staff = await shop.staff("S1")
    r = await shop.client.post(
        "/v1/locations/S1/stock/A/adjustments",
        json={"delta": -3, "reason": "damaged", "reference": "INC-1"},
        headers=staff,
    )
    assert r.status_code == 200, r.text
    assert r.json()["on_hand"] == 7
    r = await shop.client.post(
        "/v1/locations/S1/stock/A/adjustments",
        json={"delta": 5, "reason": "delivery", "kind": "receipt"},
        headers=staff,
    )
    assert r.json()["on_hand"] == 12
    moves = await movements(shop, "S1", "A")
    assert [(m["kind"], m["on_hand_delta"], m["reason"]) for m in moves[:2]] == [
        ("receipt", 5, "delivery"),
        ("adjustment", -3, "damaged"),
    ]
    assert moves[1]["reference"] == "INC-1"


async def test_adjustment_needs_a_reason(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 10)
    for body in ({"delta": 1}, {"delta": 1, "reason": ""}, {"delta": 1, "reason": "   "}):
        r = await shop.client.post("/v1/locations/S1/stock/A/adjustments", json=body, headers=shop.admin)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
    assert (await level(shop, "S1", "A"))["on_hand"] == 10


async def test_stock_may_not_go_below_reserved_or_zero(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    assert (await shop.place(shop.order_body([("A", 3)]))).status_code == 201
    before = len(await movements(shop, "S1", "A"))
    r = await shop.client.post(
        "/v1/locations/S1/stock/A/adjustments",
        json={"delta": -3, "reason": "lost"},
        headers=shop.admin,
    )
    assert_problem(r, 409, "stock-would-go-negative")
    r = await shop.client.put("/v1/locations/S1/stock/A", json={"on_hand": 2, "reason": "count"}, headers=shop.admin)
    assert_problem(r, 409, "stock-would-go-negative")
    r = await shop.client.post(
        "/v1/locations/S1/stock/A/adjustments",
        json={"delta": -2, "reason": "lost"},
        headers=shop.admin,
    )
    assert r.status_code == 200 and r.json()["on_hand"] == 3
    await shop.location("S2")
    r = await shop.client.post(
        "/v1/locations/S2/stock/A/adjustments",
        json={"delta": -1, "reason": "x"},
        headers=shop.admin,
    )
    assert_problem(r, 409, "stock-would-go-negative")
    assert (await level(shop, "S1", "A"))["reserved"] == 3
    assert len(await movements(shop, "S1", "A")) == before + 1


async def test_stock_of_unknown_location_or_sku_is_404_and_never_stocked_reads_zero(shop):
    await shop.location("S1")
    await shop.product("A")
    assert await level(shop, "S1", "A") == {
        "location": "S1",
        "sku": "A",
        "on_hand": 0,
        "reserved": 0,
        "safety_stock": 0,
        "available": 0,
        "updated_at": None,
    }
    for url in (
        "/v1/locations/NOPE/stock/A",
        "/v1/locations/S1/stock/NOPE",
        "/v1/locations/NOPE/stock",
    ):
        assert_problem(await shop.client.get(url, headers=shop.admin), 404, "not-found")
    r = await shop.client.put("/v1/locations/S1/stock/NOPE", json={"on_hand": 1, "reason": "x"}, headers=shop.admin)
    assert_problem(r, 404, "not-found")


async def test_stock_list_pages_by_sku_without_duplicates_or_gaps(shop):
    await shop.location("S1")
    skus = [f"P{i:02d}" for i in range(7)]
    for i, sku in enumerate(skus):
        await shop.product(sku)
        await shop.stock("S1", sku, i + 1)
    seen, cursor, pages = [], None, 0
    while True:
        url = "/v1/locations/S1/stock?limit=3" + (f"&cursor={cursor}" if cursor else "")
        r = await shop.client.get(url, headers=shop.admin)
        assert r.status_code == 200, r.text
        seen += [(x["sku"], x["on_hand"]) for x in r.json()["items"]]
        pages += 1
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert seen == [(sku, i + 1) for i, sku in enumerate(skus)]


async def test_ledger_sums_equal_on_hand_and_reserved(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 10)
    await shop.client.post(
        "/v1/locations/S1/stock/A/adjustments",
        json={"delta": 4, "reason": "delivery", "kind": "receipt"},
        headers=shop.admin,
    )
    first = (await shop.place(shop.order_body([("A", 3)]))).json()
    await shop.place(shop.order_body([("A", 2)]))
    await shop.client.post(f"/v1/orders/{first['id']}/cancel", json={}, headers=await shop.channel())
    await shop.client.put("/v1/locations/S1/stock/A", json={"on_hand": 12, "reason": "recount"}, headers=shop.admin)
    await shop.client.post(
        "/v1/locations/S1/stock/A/adjustments",
        json={"delta": -1, "reason": "broken"},
        headers=shop.admin,
    )
    now = await level(shop, "S1", "A")
    assert (now["on_hand"], now["reserved"]) == (11, 2)
    moves = await movements(shop, "S1", "A")
    assert sum(m["on_hand_delta"] for m in moves) == now["on_hand"]
    assert sum(m["reserved_delta"] for m in moves) == now["reserved"]
    assert {m["kind"] for m in moves} == {
        "count",
        "receipt",
        "reservation",
        "release",
        "adjustment",
    }
    ids = [m["id"] for m in moves]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
