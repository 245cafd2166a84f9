"""A query string says only what the operation declares: unknown parameters and values outside a
declared set are a 422 listing what is allowed, on every GET (read from the served document, so
a new list endpoint is covered too); the order list filters by customer phone and id."""

from __future__ import annotations

from tests.e2e.support import assert_problem

UUID = "00000000-0000-4000-8000-000000000000"


def errors_of(problem: dict) -> dict[str, str]:
    return {e.get("field"): e.get("message", "") for e in problem.get("errors") or []}


async def get_operations(shop) -> tuple[dict, list[tuple[str, dict]]]:
    spec = (await shop.client.get("/schema/openapi.json")).json()
    found = []
    for path, item in spec["paths"].items():
        if "get" in item and path.startswith("/v1/"):
            op = item["get"]
            params = {p["name"]: UUID if p["schema"].get("format") == "uuid" else "x" for p in op.get("parameters", [])}
            found.append((path.format(**params), op))
    assert len(found) >= 14, found
    return spec, found


def enum_of(spec: dict, schema: dict) -> list[str] | None:
    for branch in schema.get("oneOf") or [schema]:
        if "$ref" in branch:
            branch = spec["components"]["schemas"][branch["$ref"].rsplit("/", 1)[1]]
        if "enum" in branch:
            return [v for v in branch["enum"] if v is not None]
    return None


async def test_unknown_query_parameters_are_422_listing_the_allowed_ones_on_every_get(shop):
    _, operations = await get_operations(shop)
    for url, op in operations:
        r = await shop.client.get(url, params={"zz_unknown": "1"}, headers=shop.admin)
        problem = assert_problem(r, 422, "validation-error")
        message = errors_of(problem).get("zz_unknown")
        assert message is not None, (url, problem)
        for declared in (p["name"] for p in op.get("parameters", []) if p["in"] == "query"):
            assert declared in message, (url, declared, message)


async def test_values_outside_a_declared_set_are_422_listing_the_allowed_values_on_every_get(shop):
    spec, operations = await get_operations(shop)
    checked = []
    for url, op in operations:
        for parameter in (p for p in op.get("parameters", []) if p["in"] == "query"):
            allowed = enum_of(spec, parameter["schema"])
            if not allowed:
                continue
            query = {"skus": "A"} if "/availability" in url else {}
            r = await shop.client.get(url, params={**query, parameter["name"]: "bogus"}, headers=shop.admin)
            problem = assert_problem(r, 422, "validation-error")
            message = errors_of(problem).get(parameter["name"], "")
            assert all(value in message for value in allowed), (url, parameter["name"], problem)
            checked.append(parameter["name"])
    assert {"status", "method", "capability"} <= set(checked), checked


async def test_orders_filter_by_customer_phone_in_any_spelling_and_by_customer_id(store):
    ann = store.order_body()
    ann["customer"] = {"phone": "+1 617 555 0100", "name": "Ann"}
    ann_order = (await store.place(ann)).json()
    bob = (await store.place(store.order_body(email="bob@example.com"))).json()
    for spelling in ("+16175550100", "(617) 555-0100", "+1 617 555 0100"):
        r = await store.client.get("/v1/orders", params={"customer_phone": spelling}, headers=store.admin)
        assert r.status_code == 200, r.text
        assert [o["id"] for o in r.json()["items"]] == [ann_order["id"]], spelling
    r = await store.client.get("/v1/orders", params={"customer_id": bob["customer"]["id"]}, headers=store.admin)
    assert [o["id"] for o in r.json()["items"]] == [bob["id"]]
    r = await store.client.get("/v1/orders", params={"customer_phone": "12"}, headers=store.admin)
    assert "customer_phone" in errors_of(assert_problem(r, 422, "invalid-request"))
    r = await store.client.get("/v1/orders", params={"customer_id": "not-a-uuid"}, headers=store.admin)
    assert 400 <= r.status_code < 500


async def test_order_status_filter_names_the_statuses(store):
    await store.place(store.order_body())
    r = await store.client.get("/v1/orders", params={"status": "bogus"}, headers=store.admin)
    message = errors_of(assert_problem(r, 422, "validation-error"))["status"]
    assert "received" in message and "needs_attention" in message
    r = await store.client.get("/v1/orders", params={"status": "received"}, headers=store.admin)
    assert len(r.json()["items"]) == 1


async def test_a_single_valued_parameter_given_twice_is_a_422_naming_it_on_every_get(shop):
    _, operations = await get_operations(shop)
    for url, op in operations:
        for parameter in op.get("parameters", []):
            if parameter["in"] != "query" or parameter["schema"].get("type") == "array":
                continue
            if any(b.get("type") == "array" for b in parameter["schema"].get("oneOf") or []):
                continue
            name = parameter["name"]
            r = await shop.client.get(url, params=[(name, "1"), (name, "2")], headers=shop.admin)
            problem = assert_problem(r, 422, "validation-error")
            assert "more than once" in errors_of(problem).get(name, ""), (url, name, problem)


async def test_order_status_given_twice_is_a_422_not_the_last_value(shop):
    r = await shop.client.get("/v1/orders?status=received&status=cancelled", headers=shop.admin)
    problem = assert_problem(r, 422, "validation-error")
    assert "status" in errors_of(problem), problem


async def test_docs_and_health_take_any_query_string_as_a_cache_buster(shop):
    for url in ("/schema/openapi.json?v=1", "/health/ready?x=1", "/health/live?_=123", "/schema/swagger?v=2"):
        r = await shop.client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text)
