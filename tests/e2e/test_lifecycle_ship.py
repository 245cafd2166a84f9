"""Issue #4 — ship-from-store: the lifecycle to delivered, and the ship sourcing rules (fewest
locations, then distance, then capacity headroom; capacity, capability, safety stock and
min_split_line_value respected)."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.support import (
    CUSTOMER,
    FAR,
    MID,
    NEAR,
    act,
    decisions,
    get_order,
    get_stock,
    place_ship,
)

# Customer in Berlin Mitte; NEAR is ~1 km away, MID ~30 km, FAR ~250 km (Hamburg).


def where(order) -> dict[str, dict[str, int]]:
    """location → sku → units, over the order's fulfillments."""
    out: dict[str, dict[str, int]] = {}
    for fo in order["fulfillment_orders"]:
        for ln in fo["lines"]:
            out.setdefault(fo["location"], {})[ln["sku"]] = ln["quantity"]
    return out


async def loc(shop, code, at, **extra):
    return await shop.location(code, lat=at[0], lon=at[1], **extra)


# --- lifecycle -------------------------------------------------------------------------------


async def test_ship_from_store_runs_accepted_picked_packed_shipped_delivered(shop):
    await loc(shop, "S1", NEAR)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    staff = await shop.staff("S1")
    order = await place_ship(shop, [("A", 2)])
    fo = order["fulfillment_orders"][0]
    assert (fo["location"], fo["method"], fo["status"]) == ("S1", "ship", "pending")
    assert order["status"] == "received"

    await act(shop, staff, fo["id"], "accept")
    assert (await get_order(shop, order["id"]))["status"] == "in_progress"
    await act(shop, staff, fo["id"], "start-picking")
    await act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
    # A shipment is never "ready for pickup".
    r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/ready", headers=staff)
    assert r.status_code == 409 and r.json()["state"] == "picking"
    await act(shop, staff, fo["id"], "pack")
    shipped = await act(shop, staff, fo["id"], "ship", {"carrier": "DHL", "tracking_number": "JD0001"})
    assert (shipped["status"], shipped["carrier"], shipped["tracking_number"]) == ("shipped", "DHL", "JD0001")
    assert shipped["shipped_at"]
    o = await get_order(shop, order["id"])
    assert o["lines"][0]["quantity_fulfilled"] == 2
    assert o["status"] == "completed"
    delivered = await act(shop, staff, fo["id"], "deliver")
    assert delivered["status"] == "delivered" and delivered["allowed_actions"] == []
    stock = await get_stock(shop, "S1", "A")
    assert (stock["on_hand"], stock["reserved"]) == (3, 0)

    timeline = (await shop.client.get(f"/v1/orders/{order['id']}/events", headers=shop.admin)).json()
    shipped_events = [e for e in timeline if e["type"] == "fulfillment.shipped"]
    assert len(shipped_events) == 1 and shipped_events[0]["data"]["tracking_number"] == "JD0001"
    for t in (
        "fulfillment.accepted",
        "fulfillment.picking_started",
        "fulfillment.picked",
        "fulfillment.packed",
        "fulfillment.delivered",
    ):
        assert [e["type"] for e in timeline].count(t) == 1, t


async def test_pack_before_anything_is_picked_is_409(shop):
    await loc(shop, "S1", NEAR)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    staff = await shop.staff("S1")
    fo = (await place_ship(shop, [("A", 2)]))["fulfillment_orders"][0]
    await act(shop, staff, fo["id"], "accept")
    await act(shop, staff, fo["id"], "start-picking")
    await act(shop, staff, fo["id"], "pack", expect=409)
    await act(shop, staff, fo["id"], "ship", {"carrier": "DHL", "tracking_number": "1"}, expect=409)
    assert (await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=staff)).json()["status"] == "picking"


async def test_store_cancel_releases_the_reservation_and_a_shipped_fulfillment_cannot_be_cancelled(shop):
    await loc(shop, "S1", NEAR)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    staff = await shop.staff("S1")
    first = await place_ship(shop, [("A", 2)])
    fo = first["fulfillment_orders"][0]
    await act(shop, staff, fo["id"], "accept")
    cancelled = await act(shop, staff, fo["id"], "cancel", {"reason": "damaged in store"})
    assert cancelled["status"] == "cancelled"
    assert (await get_order(shop, first["id"]))["status"] == "cancelled"
    stock = await get_stock(shop, "S1", "A")
    assert (stock["on_hand"], stock["reserved"]) == (5, 0)

    second = (await place_ship(shop, [("A", 1)]))["fulfillment_orders"][0]
    for action, body in [
        ("accept", None),
        ("start-picking", None),
        ("pick", {"lines": [{"line_id": second["lines"][0]["id"], "quantity": 1}]}),
        ("pack", None),
        ("ship", {"carrier": "UPS", "tracking_number": "9"}),
    ]:
        await act(shop, staff, second["id"], action, body)
    problem = await act(shop, staff, second["id"], "cancel", expect=409)
    assert problem["state"] == "shipped" and problem["allowed_actions"] == ["deliver"]


# --- ship sourcing rules ---------------------------------------------------------------------


async def test_ship_prefers_one_location_over_a_nearer_split(shop):
    await loc(shop, "NEAR", NEAR)
    await loc(shop, "FAR", FAR)
    for sku in ("A", "B"):
        await shop.product(sku)
        await shop.stock("FAR", sku, 5)
    await shop.stock("NEAR", "A", 5)
    order = await place_ship(shop, [("A", 1), ("B", 1)])
    assert where(order) == {"FAR": {"A": 1, "B": 1}}
    assert (await decisions(shop, order["id"]))[0]["rule"] == "ship_single_location"


async def test_ship_among_single_locations_takes_the_nearest(shop):
    await loc(shop, "FAR", FAR)
    await loc(shop, "MID", MID)
    await loc(shop, "NEAR", NEAR)
    await shop.product("A")
    for code in ("FAR", "MID", "NEAR"):
        await shop.stock(code, "A", 5)
    order = await place_ship(shop, [("A", 2)])
    assert where(order) == {"NEAR": {"A": 2}}
    decision = (await decisions(shop, order["id"]))[0]
    chosen = [c["location"] for c in decision["candidates"] if c["chosen"]]
    assert chosen == ["NEAR"]
    distances = {c["location"]: c["distance_km"] for c in decision["candidates"]}
    assert distances["NEAR"] < distances["MID"] < distances["FAR"]


async def test_ship_at_equal_distance_takes_more_capacity_headroom(shop):
    # Same place; S1 would win a tie on code, so only headroom can pick S2.
    await loc(shop, "S1", NEAR, daily_capacity=3)
    await loc(shop, "S2", NEAR, daily_capacity=50)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    await shop.stock("S2", "A", 5)
    order = await place_ship(shop, [("A", 1)])
    assert where(order) == {"S2": {"A": 1}}


async def test_store_at_daily_capacity_is_skipped_for_ship(shop):
    await loc(shop, "NEAR", NEAR, daily_capacity=1)
    await loc(shop, "FAR", FAR)
    await shop.product("A")
    await shop.stock("NEAR", "A", 10)
    await shop.stock("FAR", "A", 10)
    first = await place_ship(shop, [("A", 1)])
    assert where(first) == {"NEAR": {"A": 1}}
    second = await place_ship(shop, [("A", 1)])
    assert where(second) == {"FAR": {"A": 1}}
    near = next(c for c in (await decisions(shop, second["id"]))[0]["candidates"] if c["location"] == "NEAR")
    assert near["eligible"] is False and near["reason"] == "at capacity"
    assert (await get_stock(shop, "NEAR", "A"))["reserved"] == 1

    # Once its open fulfillment closes, the store has room again.
    staff = await shop.staff("NEAR")
    await act(shop, staff, first["fulfillment_orders"][0]["id"], "cancel", {"reason": "test"})
    third = await place_ship(shop, [("A", 1)])
    assert where(third) == {"NEAR": {"A": 1}}


async def test_store_without_ship_capability_is_skipped(shop):
    await loc(shop, "NEAR", NEAR, capabilities=("pickup",))
    await loc(shop, "FAR", FAR)
    await shop.product("A")
    await shop.stock("NEAR", "A", 10)
    await shop.stock("FAR", "A", 10)
    order = await place_ship(shop, [("A", 1)])
    assert where(order) == {"FAR": {"A": 1}}
    near = next(c for c in (await decisions(shop, order["id"]))[0]["candidates"] if c["location"] == "NEAR")
    assert near["eligible"] is False and "ship" in near["reason"]


async def test_safety_stock_is_never_sourced(shop):
    await loc(shop, "NEAR", NEAR)
    await loc(shop, "FAR", FAR)
    await shop.product("A")
    await shop.stock("NEAR", "A", 3, safety_stock=2)  # available 1
    await shop.stock("FAR", "A", 3)
    order = await place_ship(shop, [("A", 2)])
    assert where(order) == {"FAR": {"A": 2}}
    # Pickup at the store: only one unit is above the safety stock.
    r = await shop.place(shop.order_body([("A", 2)], location="NEAR"))
    assert r.status_code == 409, r.text
    assert r.json()["shortfalls"] == [{"sku": "A", "requested": 2, "available": 1}]
    ok = await shop.place(shop.order_body([("A", 1)], location="NEAR"))
    assert ok.status_code == 201, ok.text
    stock = await get_stock(shop, "NEAR", "A")
    assert (stock["on_hand"], stock["reserved"], stock["safety_stock"], stock["available"]) == (3, 1, 2, 0)
    # One unit is left above safety stock anywhere (FAR's last): two more cannot ship.
    r = await shop.place(shop.order_body([("A", 2)], method="ship", address=CUSTOMER))
    assert r.status_code == 409, r.text


async def test_min_split_line_value_forbids_splitting_a_line_into_a_cheaper_part(shop):
    await loc(shop, "S1", NEAR)
    await loc(shop, "S2", MID)
    await shop.product("A")
    await shop.stock("S1", "A", 2)
    await shop.stock("S2", "A", 2)
    r = await shop.client.put("/v1/sourcing-profiles/web", json={"min_split_line_value": 1500}, headers=shop.admin)
    assert r.status_code == 200, r.text
    # 3 × 10.00 can only come as 2 + 1; the part worth 10.00 is below 15.00.
    refused = await shop.place(shop.order_body([("A", 3)], method="ship", address=CUSTOMER, price=1000))
    assert refused.status_code == 409, refused.text
    for code in ("S1", "S2"):
        assert (await get_stock(shop, code, "A"))["reserved"] == 0

    r = await shop.client.put("/v1/sourcing-profiles/web", json={"min_split_line_value": 1000}, headers=shop.admin)
    assert r.status_code == 200, r.text
    split = await place_ship(shop, [("A", 3)], price=1000)
    assert where(split) == {"S1": {"A": 2}, "S2": {"A": 1}}
    d = (await decisions(shop, split["id"]))[0]
    assert d["rule"] == "ship_split_fewest_locations" and d["profile_version"] == 2


async def test_min_split_line_value_does_not_stop_different_lines_coming_from_different_stores(shop):
    await loc(shop, "S1", NEAR)
    await loc(shop, "S2", MID)
    await shop.product("A")
    await shop.product("B")
    await shop.stock("S1", "A", 5)
    await shop.stock("S2", "B", 5)
    r = await shop.client.put("/v1/sourcing-profiles/web", json={"min_split_line_value": 100_000}, headers=shop.admin)
    assert r.status_code == 200, r.text
    order = await place_ship(shop, [("A", 1), ("B", 1)], price=10)
    assert where(order) == {"S1": {"A": 1}, "S2": {"B": 1}}


async def test_ship_split_uses_the_fewest_locations(shop, clock):
    # Three stores each hold one sku; a fourth holds two of them. Best: 2 locations, not 3.
    await loc(shop, "SA", NEAR)
    await loc(shop, "SB", NEAR)
    await loc(shop, "SC", NEAR)
    await loc(shop, "SAB", FAR)
    for sku in ("A", "B", "C"):
        await shop.product(sku)
    await shop.stock("SA", "A", 5)
    await shop.stock("SB", "B", 5)
    await shop.stock("SC", "C", 5)
    await shop.stock("SAB", "A", 5)
    await shop.stock("SAB", "B", 5)
    clock.advance(timedelta(seconds=1))
    order = await place_ship(shop, [("A", 1), ("B", 1), ("C", 1)])
    assert len(order["fulfillment_orders"]) == 2
    assert where(order) == {"SAB": {"A": 1, "B": 1}, "SC": {"C": 1}}
