"""An order's totals over HTTP: shipping, tax and discount beside the subtotal, the total derived
from them, in the currency's own minor units."""

from __future__ import annotations

import msgspec
from sqlalchemy import text

from orchestrator.orders.schemas import CreateOrder
from orchestrator.platform.idempotency import request_fingerprint
from tests.e2e.support import assert_problem, events, fields_of, get_order

TOTALS = ("subtotal", "shipping_total", "tax_total", "discount_total", "total")


def totals_of(order: dict) -> dict:
    return {name: order[name] for name in TOTALS}


async def test_an_order_with_shipping_tax_and_discount_shows_its_total_everywhere(store):
    body = {**store.order_body([("A", 3)], price=1250), "shipping_total": 495, "tax_total": 712, "discount_total": 300}
    r = await store.place(body)
    assert r.status_code == 201, r.text
    expected = {"subtotal": 3750, "shipping_total": 495, "tax_total": 712, "discount_total": 300, "total": 4657}
    assert totals_of(r.json()) == expected
    order_id = r.json()["id"]
    assert totals_of(await get_order(store, order_id)) == expected
    listed = await store.client.get("/v1/orders", headers=store.admin)
    assert listed.status_code == 200, listed.text
    assert [totals_of(o) for o in listed.json()["items"] if o["id"] == order_id] == [expected]
    placed = next(e for e in await events(store, order_id) if e["type"] == "order.placed")
    assert {name: placed["data"][name] for name in TOTALS} == expected


async def test_a_discount_above_goods_shipping_and_tax_is_a_422_and_places_nothing(store):
    body = {**store.order_body([("A", 1)], price=1000), "shipping_total": 100, "tax_total": 50, "discount_total": 1151}
    problem = assert_problem(await store.place(body), 422, "invalid-request")
    assert fields_of(problem) == ["discount_total"]
    listed = await store.client.get("/v1/orders", headers=store.admin)
    assert listed.json()["items"] == []
    # The whole of it may be taken off: a free order.
    ok = await store.place({**body, "discount_total": 1150})
    assert ok.status_code == 201, ok.text
    assert ok.json()["total"] == 0


async def test_negative_or_huge_amounts_are_refused_by_the_body_schema(store):
    for name, value in (("shipping_total", -1), ("tax_total", 10**12 + 1), ("discount_total", "5")):
        problem = assert_problem(await store.place({**store.order_body(), name: value}), 422, "validation-error")
        assert name in str(fields_of(problem)), (name, problem)


async def test_omitted_totals_are_zero_and_the_total_is_the_subtotal(store):
    r = await store.place(store.order_body([("A", 2)], price=999))
    assert r.status_code == 201, r.text
    assert totals_of(r.json()) == {
        "subtotal": 1998,
        "shipping_total": 0,
        "tax_total": 0,
        "discount_total": 0,
        "total": 1998,
    }


async def test_a_yen_order_is_totalled_in_whole_yen(store):
    body = {
        **store.order_body([("A", 2)], price=1500),
        "currency": "jpy",
        "shipping_total": 500,
        "tax_total": 350,
        "discount_total": 200,
    }
    r = await store.place(body)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["currency"] == "JPY"
    assert (order["subtotal"], order["total"]) == (3000, 3650)  # ¥3,000 of goods, ¥3,650 to pay


async def test_totals_left_at_zero_do_not_change_a_requests_idempotency_fingerprint(store, db):
    """A body without totals fingerprints as before they existed (a retry across the upgrade is
    the same request); an explicit 0 is the same request as an omitted one; another total is not."""
    body = store.order_body([("A", 1)])
    first = await store.place(body, key="k-totals")
    assert first.status_code == 201, first.text
    decoded = msgspec.to_builtins(msgspec.convert(body, CreateOrder))
    # The body's fields then (before totals, and before the payment came after them).
    before_totals = {k: v for k, v in decoded.items() if not k.endswith("_total") and k != "payment"}
    async with db.unit_of_work() as uow:
        stored = await uow.session.scalar(text("SELECT fingerprint FROM idempotency_keys WHERE key = 'k-totals'"))
    assert stored == request_fingerprint("POST", "/v1/orders", before_totals)
    zeros = await store.place({**body, "shipping_total": 0, "tax_total": 0, "discount_total": 0}, key="k-totals")
    assert zeros.status_code == 201 and zeros.content == first.content
    assert zeros.headers["idempotent-replayed"] == "true"
    other = await store.place({**body, "tax_total": 1}, key="k-totals")
    assert other.status_code == 422, other.text
