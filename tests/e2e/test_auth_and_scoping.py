"""API keys: who may call what, and what a staff key may see (other stores are 404, not 403)."""

from __future__ import annotations

import re
import uuid

from tests.e2e.support import assert_problem

# --- authentication ---------------------------------------------------------------------------


async def test_request_without_authorization_is_401_problem_with_www_authenticate(shop):
    for method, url in (("GET", "/v1/orders"), ("GET", "/v1/locations"), ("POST", "/v1/orders")):
        r = await shop.client.request(method, url, json={} if method == "POST" else None)
        assert_problem(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"].lower().startswith("bearer")


async def test_bad_or_malformed_key_is_401(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    r = await shop.client.post(
        "/v1/orders",
        json=shop.order_body(),
        headers={"Authorization": "Bearer nope", "Idempotency-Key": "k"},
    )
    assert_problem(r, 401, "unauthenticated")
    assert (await shop.client.get("/v1/orders", headers=shop.admin)).json()["items"] == []
    for header in (
        "Bearer not-a-real-key",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "test-admin-token",
        "Bearer test-admin-token-but-longer",
        "Bearer oo_c_" + "x" * 43,
    ):
        r = await shop.client.get("/v1/orders", headers={"Authorization": header})
        assert_problem(r, 401, "unauthenticated")
        assert "www-authenticate" in r.headers, header


async def test_health_and_metrics_need_no_key(shop):
    live = await shop.client.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    ready = await shop.client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert (ready.json()["status"], ready.json()["database"], ready.json()["redis"]) == (
        "ok",
        "ok",
        "ok",
    )
    metrics = await shop.client.get("/metrics")
    assert metrics.status_code == 200
    assert "# TYPE" in metrics.text


async def test_metrics_count_created_orders_per_channel(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    channel = f"metrics-{uuid.uuid4().hex[:8]}"
    key = await shop.channel(channel)
    pattern = re.compile(
        r'^orchestrator_orders_created_total\{channel="' + re.escape(channel) + r'"\} (\S+)$',
        re.MULTILINE,
    )
    assert not pattern.search((await shop.client.get("/metrics")).text)
    body = shop.order_body([("A", 1)])
    r = await shop.place(body, key="metrics-1", headers=key)
    assert r.status_code == 201, r.text
    await shop.place(body, key="metrics-1", headers=key)  # a replay is not a new order
    text = (await shop.client.get("/metrics")).text
    assert "orchestrator_orders_created_total" in text
    found = pattern.search(text)
    assert found and float(found.group(1)) == 1.0, text[:2000]


# --- roles ------------------------------------------------------------------------------------


async def test_channel_key_may_not_use_admin_or_stock_changing_endpoints(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    key = await shop.channel("web")
    attempts = [
        ("POST", "/v1/locations", {"code": "S9", "name": "Nine"}),
        ("PATCH", "/v1/locations/S1", {"name": "Renamed"}),
        ("DELETE", "/v1/locations/S1", None),
        ("POST", "/v1/products", {"sku": "B", "name": "Bee"}),
        ("PATCH", "/v1/products/A", {"name": "Renamed"}),
        ("DELETE", "/v1/products/A", None),
        ("PUT", "/v1/sourcing-profiles/x", {"on_pickup_shortfall": "transfer"}),
        ("PUT", "/v1/sourcing-profiles/web", {"on_pickup_shortfall": "transfer"}),
        ("PUT", "/v1/locations/S1/stock/A", {"on_hand": 99, "reason": "x"}),
        ("POST", "/v1/locations/S1/stock/A/adjustments", {"delta": 1, "reason": "x"}),
    ]
    for method, url, body in attempts:
        r = await shop.client.request(method, url, json=body, headers=key)
        assert_problem(r, 403, "forbidden")
    loc = (await shop.client.get("/v1/locations/S1", headers=shop.admin)).json()
    assert loc["name"] == "Store S1" and loc["active"] is True
    assert (await shop.client.get("/v1/products/B", headers=shop.admin)).status_code == 404
    level = (await shop.client.get("/v1/locations/S1/stock/A", headers=shop.admin)).json()
    assert level["on_hand"] == 5


async def test_staff_key_may_not_place_or_cancel_orders(two_stores):
    shop = two_stores
    r = await shop.place(shop.order_body([("A", 1)], location="S1"), headers=await shop.staff("S1"))
    assert_problem(r, 403, "forbidden")
    assert (await shop.client.get("/v1/orders", headers=shop.admin)).json()["items"] == []
    placed = (await shop.place(shop.order_body([("A", 1)], location="S1"))).json()
    r = await shop.client.post(f"/v1/orders/{placed['id']}/cancel", json={}, headers=await shop.staff("S1"))
    assert_problem(r, 403, "forbidden")


async def test_order_channel_is_the_keys_and_an_admin_must_name_one(two_stores):
    shop = two_stores
    r = await shop.place(
        {**shop.order_body([("A", 1)], location="S1"), "channel": "app"},
        headers=await shop.channel("web"),
    )
    assert_problem(r, 403, "forbidden")
    r = await shop.place(shop.order_body([("A", 1)], location="S1"), headers=shop.admin)
    problem = assert_problem(r, 422, "invalid-request")
    assert [e["field"] for e in problem["errors"]] == ["channel"]
    ok = await shop.place({**shop.order_body([("A", 1)], location="S1"), "channel": "phone"}, headers=shop.admin)
    assert ok.status_code == 201, ok.text
    assert ok.json()["channel"] == "phone"


# --- staff scoping ----------------------------------------------------------------------------


async def test_staff_sees_only_own_locations_in_the_list(two_stores):
    shop = two_stores
    await shop.location("S3")
    staff = await shop.staff("S1", "S3")
    r = await shop.client.get("/v1/locations", headers=staff)
    assert r.status_code == 200, r.text
    assert [loc["code"] for loc in r.json()["items"]] == ["S1", "S3"]
    everyone = await shop.client.get("/v1/locations", headers=await shop.channel())
    assert [loc["code"] for loc in everyone.json()["items"]] == ["S1", "S2", "S3"]


async def test_staff_reads_own_store_and_gets_404_for_another(two_stores):
    shop = two_stores
    staff = await shop.staff("S1")
    for url in (
        "/v1/locations/S1",
        "/v1/locations/S1/stock",
        "/v1/locations/S1/stock/A",
        "/v1/locations/S1/stock/A/movements",
    ):
        assert (await shop.client.get(url, headers=staff)).status_code == 200, url
    for url in (
        "/v1/locations/S2",
        "/v1/locations/S2/stock",
        "/v1/locations/S2/stock/A",
        "/v1/locations/S2/stock/A/movements",
    ):
        assert_problem(await shop.client.get(url, headers=staff), 404, "not-found")


async def test_staff_may_not_change_another_stores_stock(two_stores):
    shop = two_stores
    staff = await shop.staff("S1")
    r = await shop.client.put("/v1/locations/S2/stock/A", json={"on_hand": 0, "reason": "x"}, headers=staff)
    assert_problem(r, 404, "not-found")
    r = await shop.client.post("/v1/locations/S2/stock/A/adjustments", json={"delta": -1, "reason": "x"}, headers=staff)
    assert_problem(r, 404, "not-found")
    assert (await shop.client.get("/v1/locations/S2/stock/A", headers=shop.admin)).json()["on_hand"] == 5
    own = await shop.client.post(
        "/v1/locations/S1/stock/A/adjustments",
        json={"delta": -1, "reason": "broken"},
        headers=staff,
    )
    assert own.status_code == 200 and own.json()["on_hand"] == 4


async def test_staff_reads_orders_of_own_store_only(two_stores):
    shop = two_stores
    mine = (await shop.place(shop.order_body([("A", 1)], location="S1"))).json()
    theirs = (await shop.place(shop.order_body([("A", 1)], location="S2"))).json()
    staff = await shop.staff("S1")
    ok = await shop.client.get(f"/v1/orders/{mine['id']}", headers=staff)
    assert ok.status_code == 200 and ok.json()["id"] == mine["id"]
    assert (await shop.client.get(f"/v1/orders/by-number/{mine['number']}", headers=staff)).status_code == 200
    assert_problem(await shop.client.get(f"/v1/orders/{theirs['id']}", headers=staff), 404, "not-found")
    assert_problem(
        await shop.client.get(f"/v1/orders/by-number/{theirs['number']}", headers=staff),
        404,
        "not-found",
    )
    assert_problem(await shop.client.get(f"/v1/orders/{theirs['id']}/events", headers=staff), 404, "not-found")
    listed = (await shop.client.get("/v1/orders", headers=staff)).json()
    assert [o["id"] for o in listed["items"]] == [mine["id"]]
    other = await shop.staff("S2")
    listed = (await shop.client.get("/v1/orders", headers=other)).json()
    assert [o["id"] for o in listed["items"]] == [theirs["id"]]
