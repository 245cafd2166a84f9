"""Bad input is a clear 4xx problem+json, never a 500, and nothing is half-written."""

from __future__ import annotations

import base64
import json

from sqlalchemy import text

from tests.e2e.support import BASE, PROBLEM, assert_problem, fields_of

WRITTEN = (
    "orders",
    "order_lines",
    "customers",
    "fulfillment_orders",
    "reservations",
    "order_events",
    "outbox",
    "idempotency_keys",
    "sourcing_decisions",
)


async def nothing_written(shop, db) -> None:
    async with db.unit_of_work() as uow:
        for table in WRITTEN:
            n = await uow.session.scalar(text(f"SELECT count(*) FROM {table}"))
            assert n == 0, f"{table} has {n} rows"
        movements = await uow.session.scalar(text("SELECT count(*) FROM inventory_movements WHERE kind <> 'count'"))
        assert movements == 0
    level = (await shop.client.get("/v1/locations/S1/stock/A", headers=shop.admin)).json()
    assert (level["on_hand"], level["reserved"]) == (10, 0)


async def post_raw(shop, content: bytes, key: str = "k") -> object:
    headers = {**await shop.channel(), "Idempotency-Key": key, "Content-Type": "application/json"}
    return await shop.client.post("/v1/orders", content=content, headers=headers)


async def test_missing_idempotency_key_is_a_problem_naming_the_header(store, db):
    shop = store
    r = await shop.client.post("/v1/orders", json=shop.order_body(), headers=await shop.channel())
    problem = assert_problem(r, 422, "validation-error")
    assert "idempotency-key" in json.dumps(problem).lower()
    await nothing_written(shop, db)


async def test_malformed_json_body_is_400_and_json_that_is_not_an_object_is_422(store, db):
    r = await post_raw(store, b'{"channel_order_ref": "x", ')
    assert_problem(r, 400, "malformed-request")
    r = await post_raw(store, b"\xff\xfe not json")
    assert_problem(r, 400, "malformed-request")
    r = await post_raw(store, b"[1, 2, 3]")
    assert_problem(r, 422, "validation-error")
    await nothing_written(store, db)


async def test_body_over_256_kib_is_413(store, db):
    body = store.order_body()
    body["customer"]["name"] = "x" * 100
    padding = json.dumps(body).encode()[:-1] + b', "pad": "' + b"x" * (257 * 1024) + b'"}'
    r = await post_raw(store, padding)
    assert_problem(r, 413, "request-too-large")
    await nothing_written(store, db)


async def test_unknown_sku_is_422_naming_the_sku(store, db):
    r = await store.place(store.order_body([("A", 1), ("NOPE-1", 1), ("NOPE-2", 2)]))
    problem = assert_problem(r, 422, "unknown-sku")
    assert "NOPE-1" in problem["detail"] and "NOPE-2" in problem["detail"]
    assert "lines" in fields_of(problem)
    await nothing_written(store, db)


async def test_zero_or_negative_quantity_is_422_listing_the_field(store, db):
    for quantity in (0, -1):
        r = await store.place(store.order_body([("A", 1), ("A", quantity)]))
        problem = assert_problem(r, 422, "validation-error")
        assert "lines[1].quantity" in fields_of(problem), (quantity, problem)
    await nothing_written(store, db)


async def test_unknown_location_is_422(store, db):
    r = await store.place(store.order_body([("A", 1)], location="NOWHERE"))
    problem = assert_problem(r, 422, "unknown-location")
    assert "fulfillment.location" in fields_of(problem)
    await nothing_written(store, db)


async def test_location_without_the_capability_or_no_location_is_422(store, db):
    r = await store.place(store.order_body([("A", 1)], method="curbside", location="S1"))
    problem = assert_problem(r, 422, "location-lacks-capability")
    assert "fulfillment.location" in fields_of(problem)
    body = store.order_body([("A", 1)])
    del body["fulfillment"]["location"]
    problem = assert_problem(await store.place(body), 422, "invalid-request")
    assert "fulfillment.location" in fields_of(problem)
    await nothing_written(store, db)


async def test_missing_fields_are_422_naming_the_field_path(store, db):
    for missing in ("channel_order_ref", "customer", "lines", "currency", "fulfillment"):
        body = store.order_body()
        del body[missing]
        r = await store.place(body)
        problem = assert_problem(r, 422, "validation-error")
        assert missing in fields_of(problem), problem
    body = store.order_body()
    del body["lines"][0]["unit_price"]
    problem = assert_problem(await store.place(body), 422, "validation-error")
    assert "lines[0].unit_price" in fields_of(problem), problem
    body = store.order_body()
    del body["fulfillment"]["method"]
    problem = assert_problem(await store.place(body), 422, "validation-error")
    assert "fulfillment.method" in fields_of(problem), problem
    await nothing_written(store, db)


WRONG_TYPES = [
    (("lines", 0, "quantity"), "two", "lines[0].quantity"),
    (("lines", 0, "quantity"), 1.5, "lines[0].quantity"),
    (("lines", 0, "unit_price"), 9.99, "lines[0].unit_price"),
    (("lines", 0, "unit_price"), -1, "lines[0].unit_price"),
    (("lines",), {"sku": "A"}, "lines"),
    (("lines",), [], "lines"),
    (("customer",), "ann@example.com", "customer"),
    (("fulfillment", "method"), "drone", "fulfillment.method"),
    (("currency",), 978, "currency"),
    (("channel_order_ref",), None, "channel_order_ref"),
]


async def test_wrong_types_are_422_naming_the_field(store, db):
    for path, value, field in WRONG_TYPES:
        body = store.order_body()
        target = body
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        r = await store.place(body)
        problem = assert_problem(r, 422, "validation-error")
        assert field in fields_of(problem), (path, value, problem)
    await nothing_written(store, db)


async def test_unknown_currency_is_422(store, db):
    for currency in ("XYZ", "EUE"):
        r = await store.place({**store.order_body(), "currency": currency})
        problem = assert_problem(r, 422, "invalid-request")
        assert "currency" in fields_of(problem)
    await nothing_written(store, db)
    r = await store.place({**store.order_body(), "currency": "eur"})
    assert r.status_code == 201, r.text
    assert r.json()["currency"] == "EUR"


async def test_customer_needs_a_valid_email_or_phone(store, db):
    r = await store.place(store.order_body(email="not-an-email"))
    problem = assert_problem(r, 422, "invalid-request")
    assert "customer.email" in fields_of(problem)
    body = store.order_body()
    body["customer"] = {"phone": "12"}
    problem = assert_problem(await store.place(body), 422, "invalid-request")
    assert "customer.phone" in fields_of(problem)
    body["customer"] = {"name": "Nobody"}
    problem = assert_problem(await store.place(body), 422, "invalid-request")
    assert "customer" in fields_of(problem)
    await nothing_written(store, db)


async def test_unknown_route_is_404_and_wrong_method_is_405_problem(store):
    r = await store.client.get("/v1/no-such-thing", headers=store.admin)
    assert_problem(r, 404, "not-found")
    r = await store.client.get("/v1/no-such-thing")
    assert_problem(r, 404, "not-found")
    r = await store.client.delete("/v1/orders", headers=store.admin)
    assert_problem(r, 405, "method-not-allowed")
    r = await store.client.put("/v1/availability", headers=store.admin)
    assert_problem(r, 405, "method-not-allowed")


async def test_unknown_order_id_is_a_404_problem_and_a_bad_id_is_not_500(store):
    r = await store.client.get("/v1/orders/00000000-0000-0000-0000-000000000000", headers=store.admin)
    assert_problem(r, 404, "not-found")
    r = await store.client.post(
        "/v1/orders/00000000-0000-0000-0000-000000000000/cancel",
        json={},
        headers=await store.channel(),
    )
    assert_problem(r, 404, "not-found")
    r = await store.client.get("/v1/orders/not-a-uuid", headers=store.admin)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith(PROBLEM)


async def test_bad_query_parameters_are_4xx_problems(store):
    for url in (
        "/v1/orders?limit=0",
        "/v1/orders?limit=abc",
        "/v1/orders?cursor=%%%garbage",
        "/v1/locations?limit=100000",
        "/v1/availability?skus=A&radius_km=-1&near=1,1",
        "/v1/availability?skus=A&method=teleport",
        "/v1/locations/S1/stock/A/movements?cursor=0",
        "/v1/locations/S1/stock/A/movements?cursor=99999999999999999999",
        "/v1/orders?cursor=" + base64.urlsafe_b64encode(b"x|y|z").decode(),
    ):
        r = await store.client.get(url, headers=store.admin)
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
        assert r.headers["content-type"].startswith(PROBLEM), url
        assert r.json()["type"].startswith(BASE)


async def test_bad_if_match_is_a_4xx_problem(store):
    r = await store.place(store.order_body())
    order_id = r.json()["id"]
    bad = await store.client.post(
        f"/v1/orders/{order_id}/cancel",
        json={},
        headers={**await store.channel(), "If-Match": "banana"},
    )
    problem = assert_problem(bad, 422, "invalid-request")
    assert "If-Match" in fields_of(problem)
    order = (await store.client.get(f"/v1/orders/{order_id}", headers=store.admin)).json()
    assert order["status"] == "received"
