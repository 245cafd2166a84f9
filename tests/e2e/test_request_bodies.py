"""Every JSON request body is read strictly: JSON only (415 otherwise), UTF-8 and shallow (400
otherwise), no field the schema does not know and no type coercion (422 naming the field).

The operations that take a body come from the served OpenAPI document, so an endpoint added
later is covered without touching this file."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.e2e.support import assert_problem, fields_of

PLACEHOLDERS = {"uuid": "00000000-0000-4000-8000-000000000000"}
DEEP = b"[" * 1000 + b"]" * 1000  # ~2 KB: RecursionError in litestar's decoder before the fix
NOT_JSON = [
    ("text/plain", b'{"reason": "x"}'),
    ("application/xml", b"<reason>x</reason>"),
    ("application/x-www-form-urlencoded", b"reason=x"),
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="reason"\r\n\r\nx\r\n--b--\r\n'),
    (None, b'{"reason": "x"}'),
    ("application/json; charset=latin-1", b'{"reason": "x"}'),
]


async def body_operations(shop) -> list[tuple[str, str]]:
    spec = (await shop.client.get("/schema/openapi.json")).json()
    found = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "requestBody" in op:
                params = {
                    p["name"]: PLACEHOLDERS.get(p["schema"].get("format"), "x")
                    for p in op.get("parameters", [])
                    if p["in"] == "path"
                }
                found.append((method.upper(), path.format(**params)))
    assert len(found) >= 16, found  # the endpoints with a body when this test was written
    return found


async def send(shop, method: str, url: str, content: bytes, content_type: str | None = "application/json"):
    headers = {**shop.admin, "Idempotency-Key": uuid.uuid4().hex}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await shop.client.request(method, url, content=content, headers=headers)


async def test_deeply_nested_json_is_a_400_problem_on_every_body_endpoint(shop):
    for method, url in await body_operations(shop):
        for body in (DEEP, b'{"reason": ' + DEEP + b"}"):
            r = await send(shop, method, url, body)
            assert r.status_code == 400, (method, url, r.status_code, r.text)
            assert_problem(r, 400, "malformed-request")


async def test_invalid_utf8_is_a_400_problem_on_every_body_endpoint(shop):
    for method, url in await body_operations(shop):
        for body in (b'{"on_hand":1,"reason":"\xff"}', b'{"\xff": 1}', b"\xff\xfe"):
            r = await send(shop, method, url, body)
            assert r.status_code == 400, (method, url, body, r.status_code, r.text)
            assert_problem(r, 400, "malformed-request")


async def test_a_body_that_is_not_json_is_a_415_problem_on_every_body_endpoint(shop):
    for method, url in await body_operations(shop):
        for content_type, body in NOT_JSON:
            r = await send(shop, method, url, body, content_type)
            assert r.status_code == 415, (method, url, content_type, r.status_code, r.text)
            assert_problem(r, 415, "unsupported-media-type")


async def test_unknown_fields_are_a_422_naming_them_on_every_body_endpoint(shop):
    for method, url in await body_operations(shop):
        r = await send(shop, method, url, b'{"zz_not_a_field": 1}')
        problem = assert_problem(r, 422, "validation-error")
        assert "zz_not_a_field" in fields_of(problem), (method, url, problem)


async def test_cancel_naming_lines_is_refused_and_cancels_nothing(store):
    placed = (await store.place(store.order_body([("A", 2)]))).json()
    r = await store.client.post(
        f"/v1/orders/{placed['id']}/cancel",
        json={"lines": [{"line_id": placed["lines"][0]["id"], "quantity": 1}]},
        headers=await store.channel(),
    )
    problem = assert_problem(r, 422, "validation-error")
    assert fields_of(problem) == ["lines"], problem
    order = (await store.client.get(f"/v1/orders/{placed['id']}", headers=store.admin)).json()
    assert order["status"] == "received"
    stock = (await store.client.get("/v1/locations/S1/stock/A", headers=store.admin)).json()
    assert stock["reserved"] == 2


async def test_nested_unknown_fields_are_named_with_their_path(store):
    body = store.order_body()
    body["lines"][0]["discount"] = 5
    body["customer"]["nickname"] = "A"
    problem = assert_problem(await store.place(body), 422, "validation-error")
    assert fields_of(problem)[0] in ("lines[0].discount", "customer.nickname"), problem


STRICT = [
    (("lines", 0, "quantity"), "1", "lines[0].quantity"),
    (("lines", 0, "quantity"), 1.0, "lines[0].quantity"),
    (("lines", 0, "unit_price"), "1000", "lines[0].unit_price"),
    (("channel_order_ref",), 12345, "channel_order_ref"),
]


async def test_types_are_strict_no_string_or_float_for_an_integer(store):
    for path, value, field in STRICT:
        body: Any = store.order_body()
        target = body
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        problem = assert_problem(await store.place(body), 422, "validation-error")
        assert field in fields_of(problem), (path, value, problem)
    r = await store.client.put(
        "/v1/locations/S1/stock/A", json={"on_hand": "7", "reason": "count"}, headers=store.admin
    )
    assert "on_hand" in fields_of(assert_problem(r, 422, "validation-error"))
    r = await store.client.patch("/v1/products/A", json={"active": 0}, headers=store.admin)
    assert "active" in fields_of(assert_problem(r, 422, "validation-error"))


async def test_bodyless_actions_and_an_absent_optional_body_need_no_content_type(store):
    placed = (await store.place(store.order_body())).json()
    fo = placed["fulfillment_orders"][0]
    staff = await store.staff("S1")
    r = await store.client.post(f"/v1/fulfillments/{fo['id']}/accept", content=b"ignored", headers=staff)
    assert r.status_code == 200, r.text
    r = await store.client.post(f"/v1/orders/{placed['id']}/cancel", headers=await store.channel())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"


async def test_json_with_a_json_suffix_or_utf8_charset_is_accepted(store):
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        r = await store.client.patch(
            "/v1/products/A", content=b'{"name": "Renamed"}', headers={**store.admin, "Content-Type": content_type}
        )
        assert r.status_code == 200, (content_type, r.text)


BARE_NAME = re.compile(r"^'[^']*'$")  # str() of a KeyError: the name of what was missing


async def test_an_empty_body_is_no_fields_or_a_422_saying_a_body_is_required(shop):
    for method, url in await body_operations(shop):
        for content_type in ("application/json", None):
            r = await send(shop, method, url, b"", content_type)
            assert r.status_code < 500, (method, url, r.status_code, r.text)
            if r.status_code != 422:
                continue
            problem = r.json()
            messages = [e.get("message", "") for e in problem.get("errors") or []]
            assert not [m for m in messages if BARE_NAME.match(m)], (method, url, problem)
            assert problem.get("errors"), (method, url, problem)


async def test_an_empty_body_reads_as_no_fields_when_every_field_is_optional(shop):
    order = "/v1/orders/00000000-0000-4000-8000-000000000000/arrival"
    r = await send(shop, "POST", order, b"")
    assert_problem(r, 404, "not-found")  # past the body: the (placeholder) order is looked up
    r = await send(shop, "POST", "/v1/orders", b"")
    problem = assert_problem(r, 422, "validation-error")
    assert [e["message"] for e in problem["errors"]] == ["a JSON body is required"], problem
