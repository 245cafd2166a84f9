"""Issue #4 — re-sourcing: a rejection or a short pick sends the remaining units to another
store (excluding the one that gave them up), or flags the order needs_attention with the reason;
the transfer policy moves stock to the pickup store, which is ready only when it has arrived."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.support import (
    FAR,
    MID,
    NEAR,
    act,
    decisions,
    events,
    get_order,
    movement_kinds,
    on_hand_reserved,
    pickup_code,
    place_ship,
    ship_through,
)


def open_at(order, code):
    return [f for f in order["fulfillment_orders"] if f["location"] == code and f["status"] == "pending"]


async def setup_two_stores(shop, near_stock=5, mid_stock=5, sku="A"):
    await shop.location("S1", lat=NEAR[0], lon=NEAR[1])
    await shop.location("S2", lat=MID[0], lon=MID[1])
    await shop.product(sku)
    if near_stock:
        await shop.stock("S1", sku, near_stock)
    if mid_stock:
        await shop.stock("S2", sku, mid_stock)
    return await shop.staff("S1"), await shop.staff("S2")


# --- rejection -------------------------------------------------------------------------------


async def test_rejection_resources_the_order_at_another_store_moving_the_reservation(shop, clock):
    s1, s2 = await setup_two_stores(shop)
    order = await place_ship(shop, [("A", 2)])
    fo = order["fulfillment_orders"][0]
    assert fo["location"] == "S1"
    assert await on_hand_reserved(shop, "S1", "A") == (5, 2)

    clock.advance(timedelta(minutes=3))
    rejected = await act(shop, s1, fo["id"], "reject", {"reason": "till broken"})
    assert rejected["status"] == "rejected" and rejected["close_reason"] == "till broken"

    after = await get_order(shop, order["id"])
    assert after["status"] == "received"
    new = open_at(after, "S2")
    assert len(new) == 1 and new[0]["method"] == "ship"
    assert [(ln["sku"], ln["quantity"]) for ln in new[0]["lines"]] == [("A", 2)]
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 2)
    assert "release" in await movement_kinds(shop, "S1", "A")
    assert "reservation" in await movement_kinds(shop, "S2", "A")

    ds = await decisions(shop, order["id"])
    assert [d["trigger"] for d in ds] == ["rejection", "placement"]
    assert "S1" in ds[0]["request"]["excluded"]
    assert [p["location"] for p in ds[0]["plan"]] == ["S2"]
    s1_candidate = next(c for c in ds[0]["candidates"] if c["location"] == "S1")
    assert s1_candidate["eligible"] is False and s1_candidate["reason"] == "excluded"

    timeline = await events(shop, order["id"])
    rej = [e for e in timeline if e["type"] == "fulfillment.rejected"]
    assert len(rej) == 1 and rej[0]["data"]["reason"] == "till broken"
    resourced = [e for e in timeline if e["type"] == "order.resourced"]
    assert len(resourced) == 1
    assert resourced[0]["data"]["trigger"] == "rejection" and resourced[0]["data"]["locations"] == ["S2"]
    assert resourced[0]["data"]["decision_id"] == ds[0]["id"]

    # The second store runs it to the end; the order completes.
    nf = new[0]
    await ship_through(shop, s2, nf, 2, "T")
    done = await get_order(shop, order["id"])
    assert done["status"] == "completed"
    assert done["lines"][0]["quantity_fulfilled"] == 2


async def test_rejected_store_staff_can_no_longer_act_and_a_second_rejection_excludes_both(shop):
    s1, s2 = await setup_two_stores(shop)
    await shop.location("S3", lat=FAR[0], lon=FAR[1])
    await shop.stock("S3", "A", 5)
    order = await place_ship(shop, [("A", 1)])
    await act(shop, s1, order["fulfillment_orders"][0]["id"], "reject", {"reason": "no staff"})
    again = await act(shop, s1, order["fulfillment_orders"][0]["id"], "accept", expect=409)
    assert again["state"] == "rejected" and again["allowed_actions"] == []

    at_s2 = open_at(await get_order(shop, order["id"]), "S2")[0]
    await act(shop, s2, at_s2["id"], "accept")
    await act(shop, s2, at_s2["id"], "reject", {"reason": "flooded"})
    after = await get_order(shop, order["id"])
    assert [f["location"] for f in after["fulfillment_orders"] if f["status"] == "pending"] == ["S3"]
    ds = await decisions(shop, order["id"])
    assert {"S1", "S2"} <= set(ds[0]["request"]["excluded"])
    assert await on_hand_reserved(shop, "S2", "A") == (5, 0)
    assert await on_hand_reserved(shop, "S3", "A") == (5, 1)


# --- short pick ------------------------------------------------------------------------------


async def test_short_pick_sends_the_missing_units_to_another_store(shop):
    s1, s2 = await setup_two_stores(shop, near_stock=3)
    order = await place_ship(shop, [("A", 3)])
    fo = order["fulfillment_orders"][0]
    assert fo["location"] == "S1"
    await act(shop, s1, fo["id"], "accept")
    await act(shop, s1, fo["id"], "start-picking")
    picked = await act(shop, s1, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 1}]})
    assert picked["status"] == "picking"
    assert (picked["lines"][0]["quantity_picked"], picked["lines"][0]["quantity_cancelled"]) == (1, 2)

    after = await get_order(shop, order["id"])
    new = open_at(after, "S2")
    assert len(new) == 1 and new[0]["lines"][0]["quantity"] == 2
    # S1: one unit left the shelf; the two it could not find are written off, not promised again.
    assert await on_hand_reserved(shop, "S1", "A") == (0, 0)
    assert (await movement_kinds(shop, "S1", "A"))[:3] == ["adjustment", "release", "pick"]
    assert await on_hand_reserved(shop, "S2", "A") == (5, 2)
    ds = await decisions(shop, order["id"])
    assert ds[0]["trigger"] == "short_pick" and "S1" in ds[0]["request"]["excluded"]
    picked_event = next(e for e in await events(shop, order["id"]) if e["type"] == "fulfillment.picked")
    assert picked_event["data"]["short"] == [{"sku": "A", "missing": 2}]

    # Both stores ship their part; the order line is fulfilled in full.
    await act(shop, s1, fo["id"], "pack")
    await act(shop, s1, fo["id"], "ship", {"carrier": "DHL", "tracking_number": "1"})
    assert (await get_order(shop, order["id"]))["status"] == "partially_fulfilled"
    nf = new[0]
    await ship_through(shop, s2, nf, 2, "2")
    done = await get_order(shop, order["id"])
    assert done["status"] == "completed"
    assert done["lines"][0]["quantity_fulfilled"] == 3


async def test_short_pick_of_nothing_rejects_the_store_and_resources_everything(shop):
    s1, _ = await setup_two_stores(shop)
    order = await place_ship(shop, [("A", 2)])
    fo = order["fulfillment_orders"][0]
    await act(shop, s1, fo["id"], "accept")
    await act(shop, s1, fo["id"], "start-picking")
    result = await act(shop, s1, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 0}]})
    assert result["status"] == "rejected"
    after = await get_order(shop, order["id"])
    assert len(open_at(after, "S2")) == 1
    # The two units S1 could not find are off its count.
    assert await on_hand_reserved(shop, "S1", "A") == (3, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 2)


async def test_picking_more_than_reserved_is_refused(shop):
    s1, _ = await setup_two_stores(shop)
    fo = (await place_ship(shop, [("A", 2)]))["fulfillment_orders"][0]
    await act(shop, s1, fo["id"], "accept")
    await act(shop, s1, fo["id"], "start-picking")
    await act(shop, s1, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 3}]}, expect=422)
    assert await on_hand_reserved(shop, "S1", "A") == (5, 2)


# --- nowhere left ----------------------------------------------------------------------------


async def test_rejection_with_no_other_store_puts_the_order_in_needs_attention_with_the_reason(shop):
    s1, _ = await setup_two_stores(shop, mid_stock=0)
    order = await place_ship(shop, [("A", 2)])
    fo = order["fulfillment_orders"][0]
    await act(shop, s1, fo["id"], "reject", {"reason": "shelf empty"})

    statuses = {
        (await get_order(shop, order["id"]))["status"],
        (await get_order(shop, order["id"], await shop.channel("app")))["status"],
        (await shop.client.get(f"/v1/orders/by-number/{order['number']}", headers=shop.admin)).json()["status"],
        next(
            o["status"]
            for o in (await shop.client.get("/v1/orders", headers=shop.admin)).json()["items"]
            if o["id"] == order["id"]
        ),
    }
    assert statuses == {"needs_attention"}
    after = await get_order(shop, order["id"])
    assert after["attention_reason"] and "A" in after["attention_reason"]
    assert after["lines"][0]["quantity_unsourced"] == 2
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)

    flagged = [e for e in await events(shop, order["id"]) if e["type"] == "order.needs_attention"]
    assert len(flagged) == 1
    data = flagged[0]["data"]
    assert data["reason"] == after["attention_reason"]
    assert data["trigger"] == "rejection" and data["lines"] == [{"sku": "A", "quantity": 2}]
    assert "S1" in data["excluded"]
    ds = await decisions(shop, order["id"])
    assert ds[0]["trigger"] == "rejection" and ds[0]["plan"] == [] and sum(ds[0]["unfilled"].values()) == 2


async def test_short_pick_with_nowhere_else_flags_needs_attention_but_keeps_what_was_found(shop):
    s1, _ = await setup_two_stores(shop, near_stock=3, mid_stock=0)
    order = await place_ship(shop, [("A", 3)])
    fo = order["fulfillment_orders"][0]
    await act(shop, s1, fo["id"], "accept")
    await act(shop, s1, fo["id"], "start-picking")
    await act(shop, s1, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
    after = await get_order(shop, order["id"])
    assert after["status"] == "needs_attention"
    assert "short pick" in after["attention_reason"]
    assert after["lines"][0]["quantity_unsourced"] == 1
    # The two found units can still go out.
    await act(shop, s1, fo["id"], "pack")
    await act(shop, s1, fo["id"], "ship", {"carrier": "DHL", "tracking_number": "1"})
    assert (await get_order(shop, order["id"]))["lines"][0]["quantity_fulfilled"] == 2


# --- transfer policy -------------------------------------------------------------------------


async def test_transfer_policy_moves_short_units_to_the_pickup_store_which_is_ready_only_after_arrival(shop, db):
    r = await shop.client.put("/v1/sourcing-profiles/web", json={"on_pickup_shortfall": "transfer"}, headers=shop.admin)
    assert r.status_code == 200, r.text
    s1, s2 = await setup_two_stores(shop, near_stock=1, mid_stock=5)
    await shop.location("S3")
    s3 = await shop.staff("S3")
    r = await shop.place(shop.order_body([("A", 3)], location="S1"))
    assert r.status_code == 201, r.text
    order = r.json()
    pickup = next(f for f in order["fulfillment_orders"] if f["method"] == "pickup")
    transfer = next(f for f in order["fulfillment_orders"] if f["method"] == "transfer")
    assert pickup["location"] == "S1" and pickup["lines"][0]["quantity"] == 3
    assert (transfer["location"], transfer["destination"]) == ("S2", "S1")
    assert transfer["feeds_fulfillment_id"] == pickup["id"]
    assert transfer["lines"][0]["quantity"] == 2
    assert await on_hand_reserved(shop, "S1", "A") == (1, 1)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 2)
    assert (await decisions(shop, order["id"]))[0]["rule"] == "pickup_with_transfer"

    # The pickup store picks what it has; ready is refused while the transfer travels.
    await act(shop, s1, pickup["id"], "accept")
    await act(shop, s1, pickup["id"], "start-picking")
    await act(shop, s1, pickup["id"], "pick", {"lines": [{"line_id": pickup["lines"][0]["id"], "quantity": 1}]})
    await act(shop, s1, pickup["id"], "ready", expect=409)

    for action, body in [
        ("accept", None),
        ("start-picking", None),
        ("pick", {"lines": [{"line_id": transfer["lines"][0]["id"], "quantity": 2}]}),
        ("pack", None),
        ("ship", {"carrier": "van", "tracking_number": "V1"}),
    ]:
        await act(shop, s2, transfer["id"], action, body)
    assert await on_hand_reserved(shop, "S2", "A") == (3, 0)
    assert "transfer_out" in await movement_kinds(shop, "S2", "A")
    await act(shop, s1, pickup["id"], "ready", expect=409)
    assert (await get_order(shop, order["id"]))["status"] == "in_progress"

    # The destination store sees the incoming transfer and books it in; a third store may not.
    queue = (await shop.client.get("/v1/locations/S1/fulfillments", headers=s1)).json()["items"]
    assert transfer["id"] in [f["id"] for f in queue]
    assert (await shop.client.get(f"/v1/fulfillments/{transfer['id']}", headers=s1)).status_code == 200
    await act(shop, s3, transfer["id"], "deliver", expect=404)
    # Only the receiving store confirms arrival; the sender cannot book stock in at another store.
    await act(shop, s2, transfer["id"], "deliver", expect=404)
    assert await on_hand_reserved(shop, "S1", "A") == (0, 0)
    delivered = await act(shop, s1, transfer["id"], "deliver")
    assert delivered["status"] == "delivered"
    # S1 had picked its own unit (0 left); the two arrivals are shelved and held for the order.
    assert await on_hand_reserved(shop, "S1", "A") == (2, 2)
    assert "transfer_in" in await movement_kinds(shop, "S1", "A")

    await act(shop, s1, pickup["id"], "pick", {"lines": [{"line_id": pickup["lines"][0]["id"], "quantity": 2}]})
    ready = await act(shop, s1, pickup["id"], "ready")
    assert ready["status"] == "ready_for_pickup"
    assert (await get_order(shop, order["id"]))["status"] == "ready_for_pickup"
    done = await act(shop, s1, pickup["id"], "handover", {"code": await pickup_code(db, pickup["id"])})
    assert done["status"] == "picked_up"
    final = await get_order(shop, order["id"])
    assert final["status"] == "completed" and final["lines"][0]["quantity_fulfilled"] == 3
    assert await on_hand_reserved(shop, "S1", "A") == (0, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (3, 0)


async def test_suggest_policy_refuses_a_short_pickup_with_stores_that_could_serve_it(shop):
    await setup_two_stores(shop, near_stock=1, mid_stock=5)
    r = await shop.place(shop.order_body([("A", 3)], location="S1"))
    assert r.status_code == 409, r.text
    assert r.json()["suggested_locations"] == ["S2"]
    assert await on_hand_reserved(shop, "S1", "A") == (1, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 0)


async def test_transfer_source_rejecting_resources_the_transfer_from_another_store(shop):
    r = await shop.client.put("/v1/sourcing-profiles/web", json={"on_pickup_shortfall": "transfer"}, headers=shop.admin)
    assert r.status_code == 200, r.text
    s1, s2 = await setup_two_stores(shop, near_stock=1, mid_stock=5)
    await shop.location("S3", lat=FAR[0], lon=FAR[1])
    await shop.stock("S3", "A", 5)
    order = (await shop.place(shop.order_body([("A", 3)], location="S1"))).json()
    pickup = next(f for f in order["fulfillment_orders"] if f["method"] == "pickup")
    transfer = next(f for f in order["fulfillment_orders"] if f["method"] == "transfer")
    assert transfer["location"] == "S2"
    await act(shop, s2, transfer["id"], "reject", {"reason": "no driver"})
    after = await get_order(shop, order["id"])
    new = [f for f in after["fulfillment_orders"] if f["method"] == "transfer" and f["status"] == "pending"]
    assert len(new) == 1
    assert (new[0]["location"], new[0]["destination"], new[0]["feeds_fulfillment_id"]) == ("S3", "S1", pickup["id"])
    assert new[0]["lines"][0]["quantity"] == 2
    assert await on_hand_reserved(shop, "S2", "A") == (5, 0)
    assert await on_hand_reserved(shop, "S3", "A") == (5, 2)
    assert after["status"] != "needs_attention"
    assert (await decisions(shop, order["id"]))[0]["trigger"] == "rejection"


async def test_short_pick_at_the_pickup_store_under_transfer_policy_brings_the_units_from_another_store(shop):
    r = await shop.client.put("/v1/sourcing-profiles/web", json={"on_pickup_shortfall": "transfer"}, headers=shop.admin)
    assert r.status_code == 200, r.text
    s1, _ = await setup_two_stores(shop, near_stock=3, mid_stock=5)
    order = (await shop.place(shop.order_body([("A", 3)], location="S1"))).json()
    pickup = order["fulfillment_orders"][0]
    assert len(order["fulfillment_orders"]) == 1
    await act(shop, s1, pickup["id"], "accept")
    await act(shop, s1, pickup["id"], "start-picking")
    await act(shop, s1, pickup["id"], "pick", {"lines": [{"line_id": pickup["lines"][0]["id"], "quantity": 1}]})
    after = await get_order(shop, order["id"])
    transfers = [f for f in after["fulfillment_orders"] if f["method"] == "transfer"]
    assert len(transfers) == 1
    assert (transfers[0]["location"], transfers[0]["destination"]) == ("S2", "S1")
    assert transfers[0]["lines"][0]["quantity"] == 2
    assert await on_hand_reserved(shop, "S2", "A") == (5, 2)
    # The pickup waits for them.
    await act(shop, s1, pickup["id"], "ready", expect=409)
    assert after["status"] == "in_progress"


async def test_transfer_to_a_pickup_store_that_never_stocked_the_sku_books_it_in_and_hands_over(shop, db):
    r = await shop.client.put("/v1/sourcing-profiles/web", json={"on_pickup_shortfall": "transfer"}, headers=shop.admin)
    assert r.status_code == 200, r.text
    s1, s2 = await setup_two_stores(shop, near_stock=0, mid_stock=5)
    order = (await shop.place(shop.order_body([("A", 2)], location="S1"))).json()
    pickup = next(f for f in order["fulfillment_orders"] if f["method"] == "pickup")
    transfer = next(f for f in order["fulfillment_orders"] if f["method"] == "transfer")
    assert (pickup["location"], transfer["location"], transfer["lines"][0]["quantity"]) == ("S1", "S2", 2)
    for action, body in [
        ("accept", None),
        ("start-picking", None),
        ("pick", {"lines": [{"line_id": transfer["lines"][0]["id"], "quantity": 2}]}),
        ("pack", None),
        ("ship", {"carrier": "van", "tracking_number": "V"}),
    ]:
        await act(shop, s2, transfer["id"], action, body)
    await act(shop, s1, transfer["id"], "deliver")
    assert await on_hand_reserved(shop, "S1", "A") == (2, 2)
    await act(shop, s1, pickup["id"], "accept")
    await act(shop, s1, pickup["id"], "start-picking")
    await act(shop, s1, pickup["id"], "pick", {"lines": [{"line_id": pickup["lines"][0]["id"], "quantity": 2}]})
    await act(shop, s1, pickup["id"], "ready")
    await act(shop, s1, pickup["id"], "handover", {"code": await pickup_code(db, pickup["id"])})
    assert (await get_order(shop, order["id"]))["status"] == "completed"
    assert await on_hand_reserved(shop, "S1", "A") == (0, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (3, 0)
