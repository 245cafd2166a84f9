"""Issue #10 — ``POST /v1/orders/{id}/re-source``: once stock arrived, the unsourced units are
placed (a pickup's into its pickup store, a shipment's anywhere), all or nothing, through the one
lock helper; 409 ``nothing-to-source`` and 409 ``insufficient-stock`` change nothing."""

from __future__ import annotations

import asyncio

from tests.e2e.support import (
    MID,
    NEAR,
    act,
    assert_problem,
    decisions,
    events,
    get_order,
    on_hand_reserved,
    place_ship,
)
from tests.e2e.test_pickup_shortfall import short_pick
from tests.integration.invariants import lifecycle_violations


async def stores(shop, s1=3, s2=None):
    await shop.location("S1", lat=NEAR[0], lon=NEAR[1])
    await shop.location("S2", lat=MID[0], lon=MID[1])
    await shop.product("A")
    if s1:
        await shop.stock("S1", "A", s1)
    if s2:
        await shop.stock("S2", "A", s2)
    return await shop.staff("S1")


async def re_source(shop, order_id, headers=None):
    return await shop.client.post(f"/v1/orders/{order_id}/re-source", headers=headers or shop.admin)


async def rejected_pickup(shop, qty=3) -> dict:
    s1 = await stores(shop, s1=qty)
    r = await shop.place(shop.order_body([("A", qty)], location="S1"))
    assert r.status_code == 201, r.text
    order = r.json()
    await act(shop, s1, order["fulfillment_orders"][0]["id"], "reject", {"reason": "shelf empty"})
    return order


async def clean(shop):
    assert await lifecycle_violations(shop.db) == []


async def test_re_source_after_a_rejection_places_the_pickup_again_at_its_store_once_stock_arrived(shop):
    order = await rejected_pickup(shop)
    assert (await get_order(shop, order["id"]))["status"] == "needs_attention"
    # The shelf was empty indeed, and one unit elsewhere is not enough: refused, nothing changes.
    await shop.stock("S1", "A", 0)
    await shop.stock("S2", "A", 1)
    before = await get_order(shop, order["id"])
    r = await re_source(shop, order["id"])
    assert_problem(r, 409, "insufficient-stock")
    after_refusal = await get_order(shop, order["id"])
    assert after_refusal["version"] == before["version"]
    assert after_refusal["lines"][0]["quantity_unsourced"] == 3
    assert await on_hand_reserved(shop, "S2", "A") == (1, 0)

    await shop.stock("S2", "A", 5)
    r = await re_source(shop, order["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "received"
    assert body["attention_reason"] is None and body["action_required"] is None
    assert body["lines"][0]["quantity_unsourced"] == 0
    pickup = next(f for f in body["fulfillment_orders"] if f["method"] == "pickup" and f["status"] == "pending")
    transfer = next(f for f in body["fulfillment_orders"] if f["method"] == "transfer")
    # Into the pickup store (a new pickup: the old one was rejected), fed from S2.
    assert pickup["location"] == "S1" and pickup["lines"][0]["quantity"] == 3
    assert (transfer["location"], transfer["destination"]) == ("S2", "S1")
    assert transfer["feeds_fulfillment_id"] == pickup["id"] and transfer["lines"][0]["quantity"] == 3
    assert await on_hand_reserved(shop, "S2", "A") == (5, 3)
    resourced = [e for e in await events(shop, order["id"]) if e["type"] == "order.resourced"]
    assert resourced[-1]["data"]["trigger"] == "re_source"
    assert (await decisions(shop, order["id"]))[0]["trigger"] == "re_source"
    await clean(shop)


async def test_re_source_after_a_short_pick_transfers_into_the_pickup_that_is_already_picking(shop):
    s1 = await stores(shop, s1=3)
    order = (await shop.place(shop.order_body([("A", 3)], location="S1"))).json()
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    waiting = await get_order(shop, order["id"])
    assert waiting["status"] == "needs_attention"  # nobody else holds any
    await shop.stock("S2", "A", 4)
    r = await re_source(shop, order["id"], await shop.channel("web"))
    assert r.status_code == 200, r.text
    body = r.json()
    transfers = [f for f in body["fulfillment_orders"] if f["method"] == "transfer"]
    assert len(transfers) == 1
    assert (transfers[0]["location"], transfers[0]["destination"]) == ("S2", "S1")
    assert transfers[0]["feeds_fulfillment_id"] == fo["id"] and transfers[0]["lines"][0]["quantity"] == 2
    pickup = next(f for f in body["fulfillment_orders"] if f["id"] == fo["id"])
    # The pickup's line waits for the two again.
    assert pickup["lines"][0]["quantity_cancelled"] == 0
    assert body["status"] == "in_progress" and body["action_required"] is None
    assert await on_hand_reserved(shop, "S2", "A") == (4, 2)
    await clean(shop)


async def test_re_source_of_a_shipment_takes_the_units_from_anywhere(shop):
    s1 = await stores(shop, s1=2)
    order = await place_ship(shop, [("A", 2)])
    await act(shop, s1, order["fulfillment_orders"][0]["id"], "reject", {"reason": "no boxes"})
    assert (await get_order(shop, order["id"]))["status"] == "needs_attention"
    await shop.stock("S2", "A", 2)
    r = await re_source(shop, order["id"])
    assert r.status_code == 200, r.text
    ships = [f for f in r.json()["fulfillment_orders"] if f["status"] == "pending"]
    assert [(f["location"], f["method"]) for f in ships] == [("S2", "ship")]
    assert r.json()["status"] == "received"
    await clean(shop)


async def test_nothing_to_source_is_a_409_and_only_admin_or_the_orders_channel_may_ask(shop):
    await stores(shop, s1=5)
    order = (await shop.place(shop.order_body([("A", 1)], location="S1"))).json()
    assert_problem(await re_source(shop, order["id"]), 409, "nothing-to-source")
    assert (await re_source(shop, order["id"], await shop.channel("app"))).status_code == 404
    assert (await re_source(shop, order["id"], await shop.staff("S1"))).status_code == 403


async def test_two_waiting_orders_and_stock_for_one_never_oversell(shop):
    s1 = await stores(shop, s1=4)
    ids = []
    for _ in range(2):
        order = (await shop.place(shop.order_body([("A", 2)], location="S1"))).json()
        ids.append(order["id"])
    for order_id in ids:
        fo = (await get_order(shop, order_id))["fulfillment_orders"][0]
        await act(shop, s1, fo["id"], "reject", {"reason": "shelf empty"})
    # S1's own four units are free again; only two of them are left to sell after a count.
    await shop.stock("S1", "A", 2)
    results = await asyncio.gather(*(re_source(shop, i) for i in ids))
    assert sorted(r.status_code for r in results) == [200, 409]
    assert await on_hand_reserved(shop, "S1", "A") == (2, 2)
    await clean(shop)


async def test_re_source_of_an_order_waiting_for_the_customer_takes_what_arrived_at_its_store(shop):
    s1 = await stores(shop, s1=3)
    # S4 can hand the order over but sends no stock: the customer is offered a move there.
    await shop.location("S4", lat=MID[0], lon=MID[1], capabilities=("pickup",))
    await shop.stock("S4", "A", 5)
    order = (await shop.place(shop.order_body([("A", 3)], location="S1"))).json()
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    waiting = await get_order(shop, order["id"])
    assert waiting["status"] == "action_required" and waiting["action_required"]["deadline"]
    # A delivery reaches S1's shelf: the pickup that is being picked takes the two from there.
    await shop.stock("S1", "A", 2)
    r = await re_source(shop, order["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["action_required"] is None and body["attention_reason"] is None
    assert body["status"] == "in_progress"
    assert [f["method"] for f in body["fulfillment_orders"]] == ["pickup"]
    assert await on_hand_reserved(shop, "S1", "A") == (2, 2)
    # Staff at S1 pick the two and the pickup is ready.
    await act(shop, s1, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
    ready = await act(shop, s1, fo["id"], "ready")
    assert ready["status"] == "ready_for_pickup"
    await clean(shop)
