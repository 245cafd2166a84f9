"""Changes that send units somewhere: moving a pickup to another store (full stock there, part of
it, a pick already started at the old store), switching between pickup and shipping, adding lines
and raising quantities. Stock invariants after every step."""

from __future__ import annotations

from tests.e2e.conftest import Shop
from tests.e2e.support import CUSTOMER, act, assert_problem, events, get_order, on_hand_reserved, pickup_code, to_ready
from tests.e2e.test_order_changes import change, line
from tests.integration.invariants import all_violations, lifecycle_violations


async def placed(shop: Shop, lines=(("A", 2),), **kw) -> dict:
    r = await shop.place(shop.order_body(list(lines), **kw))
    assert r.status_code == 201, r.text
    return r.json()


def open_fulfillments(order: dict, method: str | None = None) -> list[dict]:
    done = {"cancelled", "rejected", "expired", "picked_up", "delivered"}
    return [
        f for f in order["fulfillment_orders"] if f["status"] not in done and (method is None or f["method"] == method)
    ]


async def stock_ok(shop: Shop, *, picked: bool = False) -> None:
    assert await (lifecycle_violations if picked else all_violations)(shop.db) == []


async def test_a_pickup_moves_whole_to_a_store_with_the_stock(two_stores):
    shop = two_stores
    order = await placed(shop)
    [fo] = order["fulfillment_orders"]
    dry = await change(shop, order, [{"type": "move_pickup", "location": "S2"}], dry=True)
    assert dry.status_code == 200, dry.text
    preview = dry.json()
    assert preview["accepted"] and preview["payment_difference"] == 0
    assert [(f["location"], f["location_after"], f["status_after"]) for f in preview["fulfillments"]] == [
        ("S1", "S2", "pending")
    ]
    assert [(s["locations"], s["transfers"]) for s in preview["sourcing"]] == [(["S2"], 0)]
    assert preview["expected_ready_at"] is not None
    assert await on_hand_reserved(shop, "S1", "A") == (5, 2)  # the dry run reserved nothing
    r = await change(shop, order, [{"type": "move_pickup", "location": "S2"}])
    assert r.status_code == 200, r.text
    after = r.json()["order"]
    [moved] = open_fulfillments(after)
    assert (moved["id"], moved["location"], moved["status"]) == (fo["id"], "S2", "pending")
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 2)
    kinds = [e["type"] for e in await events(shop, order["id"])]
    assert kinds[2:] == ["fulfillment.moved", "order.changed", "order.sourced"]
    await stock_ok(shop)


async def test_a_store_short_of_part_gets_the_rest_by_transfer_from_the_old_store(two_stores):
    shop = two_stores
    await shop.stock("S2", "A", 1)
    order = await placed(shop, (("A", 3),))
    r = await change(shop, order, [{"type": "move_pickup", "location": "S2"}])
    assert r.status_code == 200, r.text
    after = r.json()["order"]
    pickup = next(f for f in open_fulfillments(after) if f["method"] == "pickup")
    [transfer] = open_fulfillments(after, "transfer")
    assert (pickup["location"], transfer["location"]) == ("S2", "S1")
    assert await on_hand_reserved(shop, "S1", "A") == (5, 2)  # what travels is held at S1
    assert await on_hand_reserved(shop, "S2", "A") == (1, 1)
    await stock_ok(shop)


async def test_a_pick_already_started_at_the_old_store_goes_back_on_its_shelf(two_stores):
    shop = two_stores
    order = await placed(shop)
    [fo] = order["fulfillment_orders"]
    s1 = await shop.staff("S1")
    await act(shop, s1, fo["id"], "accept")
    await act(shop, s1, fo["id"], "start-picking")
    await act(shop, s1, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
    assert await on_hand_reserved(shop, "S1", "A") == (3, 0)
    current = await get_order(shop, order["id"])
    r = await change(shop, current, [{"type": "move_pickup", "location": "S2"}])
    assert r.status_code == 200, r.text
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)  # picked units back on S1's shelf
    assert await on_hand_reserved(shop, "S2", "A") == (5, 2)
    moved = next(e for e in await events(shop, order["id"]) if e["type"] == "fulfillment.moved")
    assert (moved["data"]["location"], moved["data"]["units_restocked"]) == ("S1", 2)
    await stock_ok(shop)


async def test_a_store_with_none_of_it_gets_it_all_by_transfer(two_stores):
    shop = two_stores
    order = await placed(shop, (("A", 5),))
    await shop.stock("S2", "A", 0)
    preview = (await change(shop, order, [{"type": "move_pickup", "location": "S2"}], dry=True)).json()
    assert [(s["rule"], s["locations"], s["transfers"]) for s in preview["sourcing"]] == [
        ("pickup_with_transfer", ["S1"], 1)
    ]
    r = await change(shop, order, [{"type": "move_pickup", "location": "S2"}])
    assert r.status_code == 200, r.text
    assert await on_hand_reserved(shop, "S1", "A") == (5, 5)  # held at S1 for the transfer
    await stock_ok(shop)


async def test_no_stock_anywhere_refuses_the_change_whole_and_changes_nothing(two_stores):
    shop = two_stores
    await shop.product("C")
    order = await placed(shop)
    actions = [
        {"type": "set_quantity", "line_id": line(order, "A"), "quantity": 1},
        {"type": "add_line", "sku": "C", "quantity": 1, "unit_price": 100},
    ]
    dry = await change(shop, order, actions, dry=True)
    assert dry.status_code == 200 and not dry.json()["accepted"], dry.text
    assert [a["reason"] for a in dry.json()["actions"]] == [None, "insufficient_stock"]
    assert dry.json()["shortfalls"] == [{"sku": "C", "requested": 1, "available": 0}]
    r = await change(shop, order, actions)
    problem = assert_problem(r, 409, "change-refused")
    assert [a["reason"] for a in problem["actions"]] == [None, "insufficient_stock"]
    assert (await get_order(shop, order["id"]))["version"] == order["version"]
    assert await on_hand_reserved(shop, "S1", "A") == (5, 2)
    await stock_ok(shop)


async def test_switch_pickup_to_ship_and_back(two_stores):
    shop = two_stores
    order = await placed(shop)
    r = await change(shop, order, [{"type": "switch_to_ship", "address": CUSTOMER}])
    assert r.status_code == 200, r.text
    shipped = r.json()["order"]
    [parcel] = open_fulfillments(shipped)
    assert parcel["method"] == "ship"
    r = await change(shop, shipped, [{"type": "switch_to_pickup", "location": "S2"}])
    assert r.status_code == 200, r.text
    back = r.json()["order"]
    [pickup] = open_fulfillments(back)
    assert (pickup["method"], pickup["location"]) == ("pickup", "S2")
    reserved = [(await on_hand_reserved(shop, code, "A"))[1] for code in ("S1", "S2")]
    assert sum(reserved) == 2
    await stock_ok(shop)


async def test_an_added_line_and_a_raised_quantity_are_reserved_and_priced(two_stores):
    shop = two_stores
    await shop.product("B")
    await shop.stock("S1", "B", 4)
    order = await placed(shop)
    actions = [
        {"type": "set_quantity", "line_id": line(order, "A"), "quantity": 3},
        {"type": "add_line", "sku": "B", "quantity": 2, "unit_price": 250},
    ]
    dry = (await change(shop, order, actions, dry=True)).json()
    assert dry["accepted"] and dry["payment_difference"] == 1000 + 500, dry
    r = await change(shop, order, actions, headers=await shop.channel("agent"))
    assert r.status_code == 200, r.text
    after = r.json()["order"]
    assert after["subtotal"] == order["subtotal"] + 1500
    [pickup] = open_fulfillments(after)  # the additions joined the pickup nobody picks yet
    assert sorted((ln["sku"], ln["quantity"]) for ln in pickup["lines"]) == [("A", 3), ("B", 2)]
    assert await on_hand_reserved(shop, "S1", "A") == (5, 3)
    assert await on_hand_reserved(shop, "S1", "B") == (4, 2)
    r = await change(shop, after, [{"type": "add_line", "sku": "NOPE", "quantity": 1, "unit_price": 1}])
    assert_problem(r, 422, "unknown-sku")
    await stock_ok(shop)


async def test_staff_at_another_store_move_a_found_order_and_hand_it_over_with_the_original_code(two_stores):
    shop = two_stores
    order = await placed(shop)
    [fo] = order["fulfillment_orders"]
    s1, s2 = await shop.staff("S1"), await shop.staff("S2")
    await to_ready(shop, s1, fo)
    code = await pickup_code(shop.db, fo["id"])
    move = [{"type": "move_pickup", "location": "S2"}]
    # Without a lookup, S2's staff cannot see the order, let alone move it.
    assert_problem(await change(shop, order, move, headers=s2), 404, "not-found")
    found = await shop.client.post("/v1/pickup-lookup", json={"number": order["number"], "verify": code}, headers=s2)
    assert found.status_code == 200, found.text
    current = found.json()
    # Staff move a pickup to their own store and change nothing else.
    assert_problem(
        await change(shop, current, [{"type": "move_pickup", "location": "S1"}], headers=s2), 403, "forbidden"
    )
    cancel = [{"type": "cancel_line", "line_id": line(current, "A"), "quantity": 1}]
    assert_problem(await change(shop, current, cancel, headers=s2), 403, "forbidden")
    r = await change(shop, current, move, headers=s2)
    assert r.status_code == 200, r.text
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)  # ready units back on S1's shelf
    await stock_ok(shop)
    [moved] = open_fulfillments(r.json()["order"])
    for action in ("accept", "start-picking"):
        await act(shop, s2, moved["id"], action)
    await act(shop, s2, moved["id"], "pick", {"lines": [{"line_id": moved["lines"][0]["id"], "quantity": 2}]})
    await act(shop, s2, moved["id"], "ready")
    assert await pickup_code(shop.db, fo["id"]) == code
    done = await act(shop, s2, moved["id"], "handover", {"code": code})
    assert done["status"] == "picked_up"
    assert await on_hand_reserved(shop, "S2", "A") == (3, 0)
    await stock_ok(shop, picked=True)
