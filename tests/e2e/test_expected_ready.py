"""Issue 10 — expected ready time: now + the fulfilling location's ``prep_minutes``, plus the
profile's ``transfer_hours`` when a pickup waits for stock to travel; on every fulfillment, on the
order (the latest open pickup or shipment), in the what-if simulation; a location's preparation
time is changed for new orders only."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.e2e.support import MID, NEAR, act, assert_problem, fields_of, get_order, place_ship, to_ready

TRANSFER_HOURS = 24  # the profile's default


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def of_method(order: dict, method: str) -> list[dict]:
    return [f for f in order["fulfillment_orders"] if f["method"] == method]


async def place_pickup(shop, lines, location="S1") -> dict:
    r = await shop.place(shop.order_body(lines, location=location))
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_pickup_from_the_store_shelf_is_expected_after_the_store_prep_time(shop, clock):
    created = await shop.location("S1", capabilities=("pickup",), prep_minutes=30)
    assert created["prep_minutes"] == 30
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    now = clock.now()

    order = await place_pickup(shop, [("A", 2)])
    (pickup,) = order["fulfillment_orders"]
    assert at(pickup["expected_ready_at"]) == now + timedelta(minutes=30)
    assert at(order["expected_ready_at"]) == now + timedelta(minutes=30)
    # What intake answered is what reads back.
    again = await get_order(shop, order["id"])
    assert at(again["expected_ready_at"]) == now + timedelta(minutes=30)
    assert at(again["fulfillment_orders"][0]["expected_ready_at"]) == now + timedelta(minutes=30)

    # Ready later than expected: the expectation stays (history), ready_at says when it was.
    clock.advance(timedelta(hours=3))
    ready = await to_ready(shop, await shop.staff("S1"), pickup)
    assert at(ready["expected_ready_at"]) == now + timedelta(minutes=30)
    assert at(ready["ready_at"]) == now + timedelta(hours=3)


async def test_a_location_starts_with_two_hours_of_preparation(shop, clock):
    created = await shop.location("S1", capabilities=("pickup",))
    assert created["prep_minutes"] == 120
    assert (await shop.client.get("/v1/locations/S1", headers=shop.admin)).json()["prep_minutes"] == 120
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    order = await place_pickup(shop, [("A", 1)])
    assert at(order["expected_ready_at"]) == clock.now() + timedelta(minutes=120)


async def test_a_pickup_fed_by_a_transfer_waits_for_the_transfer_hours_and_the_store_prep(shop, clock):
    r = await shop.client.put("/v1/sourcing-profiles/web", json={"on_pickup_shortfall": "transfer"}, headers=shop.admin)
    assert r.status_code == 200, r.text
    assert r.json()["transfer_hours"] == TRANSFER_HOURS
    profile = (await shop.client.get("/v1/sourcing-profiles/web", headers=shop.admin)).json()
    assert profile["transfer_hours"] == TRANSFER_HOURS
    await shop.location("S1", lat=NEAR[0], lon=NEAR[1], prep_minutes=30)
    await shop.location("S2", lat=MID[0], lon=MID[1], prep_minutes=45)
    await shop.product("A")
    await shop.stock("S1", "A", 1)
    await shop.stock("S2", "A", 5)
    now = clock.now()

    order = await place_pickup(shop, [("A", 3)])
    (pickup,) = of_method(order, "pickup")
    (transfer,) = of_method(order, "transfer")
    assert (transfer["location"], transfer["destination"]) == ("S2", "S1")
    # The transfer leaves once its source prepared it; the pickup once it travelled and S1 prepared it.
    assert at(transfer["expected_ready_at"]) == now + timedelta(minutes=45)
    expected = now + timedelta(hours=TRANSFER_HOURS, minutes=30)
    assert at(pickup["expected_ready_at"]) == expected
    # The customer waits for the pickup, not for the transfer that feeds it.
    assert at(order["expected_ready_at"]) == expected
    assert at((await get_order(shop, order["id"]))["expected_ready_at"]) == expected

    # S2 rejects the transfer an hour later: S3 (slow to prepare) sends the units, and the pickup
    # waits longer.
    await shop.location("S3", lat=MID[0] + 0.1, lon=MID[1], prep_minutes=2000)
    await shop.stock("S3", "A", 5)
    clock.advance(timedelta(hours=1))
    later = clock.now()
    await act(shop, await shop.staff("S2"), transfer["id"], "reject", {"reason": "no van"})
    after = await get_order(shop, order["id"])
    (new_transfer,) = [f for f in of_method(after, "transfer") if f["status"] == "pending"]
    assert new_transfer["location"] == "S3"
    assert at(new_transfer["expected_ready_at"]) == later + timedelta(minutes=2000)
    (pickup_after,) = of_method(after, "pickup")
    assert at(pickup_after["expected_ready_at"]) == later + timedelta(hours=TRANSFER_HOURS, minutes=30)
    # Still the pickup's time, though the transfer's own is later: the customer waits at S1.
    assert at(after["expected_ready_at"]) == later + timedelta(hours=TRANSFER_HOURS, minutes=30)


async def test_a_shipment_from_a_store_is_expected_after_that_store_prep(shop, clock):
    await shop.location("S1", lat=NEAR[0], lon=NEAR[1], prep_minutes=60)
    await shop.location("S2", lat=MID[0], lon=MID[1], prep_minutes=200)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    await shop.stock("S2", "A", 5)
    now = clock.now()

    order = await place_ship(shop, [("A", 2)])
    (ship,) = order["fulfillment_orders"]
    assert ship["location"] == "S1"
    assert at(ship["expected_ready_at"]) == now + timedelta(minutes=60)
    assert at(order["expected_ready_at"]) == now + timedelta(minutes=60)

    # Re-sourced after a rejection: the new store's prep, from the moment it was re-sourced.
    clock.advance(timedelta(minutes=20))
    await act(shop, await shop.staff("S1"), ship["id"], "reject", {"reason": "till broken"})
    after = await get_order(shop, order["id"])
    (resourced,) = [f for f in after["fulfillment_orders"] if f["status"] == "pending"]
    assert resourced["location"] == "S2"
    assert at(resourced["expected_ready_at"]) == clock.now() + timedelta(minutes=200)
    # The rejected one is no longer open: only the new one counts for the order.
    assert at(after["expected_ready_at"]) == clock.now() + timedelta(minutes=200)


async def test_changing_a_location_prep_time_changes_new_orders_only(shop, clock):
    await shop.location("S1", capabilities=("pickup",))
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    first_at = clock.now()
    first = await place_pickup(shop, [("A", 1)])

    clock.advance(timedelta(minutes=10))
    r = await shop.client.patch("/v1/locations/S1", json={"prep_minutes": 15}, headers=shop.admin)
    assert r.status_code == 200, r.text
    assert r.json()["prep_minutes"] == 15
    second = await place_pickup(shop, [("A", 1)])

    assert at((await get_order(shop, first["id"]))["expected_ready_at"]) == first_at + timedelta(minutes=120)
    assert at(second["expected_ready_at"]) == clock.now() + timedelta(minutes=15)
    # Other fields of a PATCH leave the prep time alone.
    r = await shop.client.patch("/v1/locations/S1", json={"name": "Renamed"}, headers=shop.admin)
    assert r.json()["prep_minutes"] == 15


async def test_an_order_with_nothing_open_expects_nothing(shop, clock):
    await shop.location("S1", capabilities=("pickup",), prep_minutes=5)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    order = await place_pickup(shop, [("A", 1)])
    r = await shop.client.post(f"/v1/orders/{order['id']}/cancel", json={}, headers=await shop.channel())
    assert r.status_code == 200, r.text
    after = await get_order(shop, order["id"])
    assert after["expected_ready_at"] is None
    # The cancelled fulfillment keeps what was expected of it.
    assert at(after["fulfillment_orders"][0]["expected_ready_at"]) is not None


async def test_bad_prep_times_are_422_problems(shop):
    for bad in (-1, 43_201, "soon", 1.5, None):
        body = {"code": "BAD", "name": "Bad", "prep_minutes": bad}
        r = await shop.client.post("/v1/locations", json=body, headers=shop.admin)
        assert fields_of(assert_problem(r, 422, "validation-error")) == ["prep_minutes"], (bad, r.text)
    await shop.location("S1", prep_minutes=0)
    for bad in (-5, None, "x"):
        r = await shop.client.patch("/v1/locations/S1", json={"prep_minutes": bad}, headers=shop.admin)
        assert fields_of(assert_problem(r, 422, "validation-error")) == ["prep_minutes"], (bad, r.text)
    assert (await shop.client.get("/v1/locations/S1", headers=shop.admin)).json()["prep_minutes"] == 0


async def test_the_simulation_answers_each_planned_fulfillment_expected_ready_time(shop, clock):
    await shop.client.put("/v1/sourcing-profiles/sim", json={"on_pickup_shortfall": "transfer"}, headers=shop.admin)
    await shop.location("S1", lat=NEAR[0], lon=NEAR[1], prep_minutes=30)
    await shop.location("S2", lat=MID[0], lon=MID[1], prep_minutes=45)
    await shop.product("A")
    await shop.stock("S1", "A", 1)
    await shop.stock("S2", "A", 5)
    now = clock.now()

    body = {
        "channel": "sim",
        "method": "pickup",
        "location": "S1",
        "lines": [{"sku": "A", "quantity": 3, "unit_price": 100}],
    }
    r = await shop.client.post("/v1/sourcing/simulate", json=body, headers=shop.admin)
    assert r.status_code == 200, r.text
    planned = [
        (f["location"], f["method"], f["destination"], at(f["expected_ready_at"])) for f in r.json()["fulfillments"]
    ]
    assert planned == [
        ("S1", "pickup", None, now + timedelta(hours=TRANSFER_HOURS, minutes=30)),
        ("S2", "transfer", "S1", now + timedelta(minutes=45)),
    ]

    ship = {**body, "method": "ship", "location": None, "lat": MID[0], "lon": MID[1]}
    r = await shop.client.post("/v1/sourcing/simulate", json=ship, headers=shop.admin)
    assert [(f["location"], at(f["expected_ready_at"])) for f in r.json()["fulfillments"]] == [
        ("S2", now + timedelta(minutes=45))
    ]

    # Nothing is planned when the stock is not there.
    short = {**body, "lines": [{"sku": "A", "quantity": 50, "unit_price": 100}]}
    r = await shop.client.post("/v1/sourcing/simulate", json=short, headers=shop.admin)
    assert r.json()["complete"] is False and r.json()["fulfillments"] == []


async def test_a_profile_sets_its_own_transfer_hours_for_new_orders(shop, clock):
    body = {"on_pickup_shortfall": "transfer", "transfer_hours": 6}
    r = await shop.client.put("/v1/sourcing-profiles/web", json=body, headers=shop.admin)
    assert r.status_code == 200, r.text
    assert r.json()["transfer_hours"] == 6
    await shop.location("S1", lat=NEAR[0], lon=NEAR[1], prep_minutes=30)
    await shop.location("S2", lat=MID[0], lon=MID[1], prep_minutes=45)
    await shop.product("A")
    await shop.stock("S2", "A", 5)
    now = clock.now()
    (pickup,) = of_method(await place_pickup(shop, [("A", 2)]), "pickup")
    assert at(pickup["expected_ready_at"]) == now + timedelta(hours=6, minutes=30)
    bad = await shop.client.put("/v1/sourcing-profiles/web", json={"transfer_hours": -1}, headers=shop.admin)
    assert "transfer_hours" in fields_of(assert_problem(bad, 422, "validation-error"))
