"""Issue #4 — sourcing profiles per channel (versioned; orders keep the version they used),
sourcing decisions per order (newest first, with candidates, rule and profile version), the
pickup `suggest` answer, and simulation (a plan, nothing reserved)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from tests.e2e.support import CUSTOMER, FAR, MID, NEAR, decisions


async def put_profile(shop, channel, body, headers=None):
    return await shop.client.put(f"/v1/sourcing-profiles/{channel}", json=body, headers=headers or shop.admin)


async def get_profile(shop, channel, headers=None):
    return await shop.client.get(f"/v1/sourcing-profiles/{channel}", headers=headers or shop.admin)


async def stores(shop):
    await shop.location("NEAR", lat=NEAR[0], lon=NEAR[1])
    await shop.location("MID", lat=MID[0], lon=MID[1])
    await shop.location("FAR", lat=FAR[0], lon=FAR[1])
    await shop.product("A")
    await shop.product("B")


async def table_count(db, table):
    async with db.unit_of_work() as uow:
        return (await uow.session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()


# --- profiles --------------------------------------------------------------------------------


async def test_unset_profile_reads_as_version_0_defaults(shop):
    r = await get_profile(shop, "web")
    assert r.status_code == 200, r.text
    p = r.json()
    assert (p["channel"], p["version"], p["on_pickup_shortfall"], p["min_split_line_value"]) == (
        "web",
        0,
        "ask_customer",
        0,
    )


async def test_each_put_makes_a_new_profile_version(shop, clock):
    r1 = await put_profile(shop, "web", {"on_pickup_shortfall": "transfer", "min_split_line_value": 500})
    assert r1.status_code == 200, r1.text
    assert (r1.json()["version"], r1.json()["on_pickup_shortfall"], r1.json()["min_split_line_value"]) == (
        1,
        "transfer",
        500,
    )
    clock.advance(timedelta(minutes=1))
    r2 = await put_profile(shop, "web", {"on_pickup_shortfall": "ask_customer"})
    assert r2.status_code == 200, r2.text
    assert (r2.json()["version"], r2.json()["on_pickup_shortfall"], r2.json()["min_split_line_value"]) == (
        2,
        "ask_customer",
        0,
    )
    current = (await get_profile(shop, "web")).json()
    assert (current["version"], current["on_pickup_shortfall"]) == (2, "ask_customer")
    assert current["created_by"] and current["created_by"].startswith("admin")
    # Another channel's versions are its own.
    r3 = await put_profile(shop, "app", {"on_pickup_shortfall": "transfer"})
    assert r3.json()["version"] == 1
    assert (await get_profile(shop, "web")).json()["version"] == 2


async def test_profile_put_validates_its_body(shop):
    r = await put_profile(shop, "web", {"on_pickup_shortfall": "teleport"})
    assert r.status_code in (400, 422), r.text
    r = await put_profile(shop, "web", {"min_split_line_value": -1})
    assert r.status_code in (400, 422), r.text
    # The old field is gone: unknown, like any other unknown field.
    r = await put_profile(shop, "web", {"pickup_policy": "transfer"})
    assert r.status_code in (400, 422), r.text
    for bad in ({"ask_customer_timeout_hours": 0}, {"ask_customer_fallback": "move"}):
        r = await put_profile(shop, "web", bad)
        assert r.status_code in (400, 422), r.text
    assert (await get_profile(shop, "web")).json()["version"] == 0
    r = await put_profile(
        shop, "web", {"on_pickup_shortfall": "move", "ask_customer_fallback": "cancel", "ask_customer_timeout_hours": 6}
    )
    assert r.status_code == 200, r.text
    got = (await get_profile(shop, "web")).json()
    assert (got["on_pickup_shortfall"], got["ask_customer_fallback"], got["ask_customer_timeout_hours"]) == (
        "move",
        "cancel",
        6,
    )


async def test_channel_key_reads_only_its_own_profile_and_changes_none(shop):
    await put_profile(shop, "web", {"on_pickup_shortfall": "transfer"})
    await put_profile(shop, "app", {"on_pickup_shortfall": "ask_customer"})
    web = await shop.channel("web")
    r = await get_profile(shop, "web", web)
    assert r.status_code == 200 and r.json()["on_pickup_shortfall"] == "transfer"
    assert (await get_profile(shop, "app", web)).status_code in (403, 404)
    assert (await put_profile(shop, "web", {"on_pickup_shortfall": "ask_customer"}, web)).status_code == 403
    await shop.location("NEAR")
    staff = await shop.staff("NEAR")
    assert (await get_profile(shop, "web", staff)).status_code == 403
    assert (await get_profile(shop, "web")).json()["version"] == 1


async def test_an_order_records_the_profile_version_it_was_sourced_with(shop, clock):
    await stores(shop)
    await shop.stock("NEAR", "A", 10)
    await put_profile(shop, "web", {"min_split_line_value": 0})
    first = await shop.place(shop.order_body([("A", 1)], method="ship", address=CUSTOMER))
    assert first.status_code == 201, first.text
    assert first.json()["sourcing_profile_version"] == 1
    clock.advance(timedelta(minutes=1))
    await put_profile(shop, "web", {"min_split_line_value": 100})
    second = await shop.place(shop.order_body([("A", 1)], method="ship", address=CUSTOMER))
    assert second.json()["sourcing_profile_version"] == 2
    # The first order keeps the version it used.
    again = (await shop.client.get(f"/v1/orders/{first.json()['id']}", headers=shop.admin)).json()
    assert again["sourcing_profile_version"] == 1
    assert (await decisions(shop, first.json()["id"]))[0]["profile_version"] == 1
    assert (await decisions(shop, second.json()["id"]))[0]["profile_version"] == 2
    # Another channel without a profile uses the defaults, version 0.
    app = await shop.place(
        shop.order_body([("A", 1)], method="ship", address=CUSTOMER), headers=await shop.channel("app")
    )
    assert app.status_code == 201, app.text
    assert app.json()["sourcing_profile_version"] == 0
    d = (await decisions(shop, app.json()["id"]))[0]
    assert (d["profile_channel"], d["profile_version"]) == ("app", 0)


async def test_the_profile_of_the_orders_channel_decides_the_pickup_policy(shop):
    await stores(shop)
    await shop.stock("NEAR", "A", 1)
    await shop.stock("MID", "A", 5)
    await put_profile(shop, "app", {"on_pickup_shortfall": "transfer"})
    web = await shop.place(shop.order_body([("A", 2)], location="NEAR"))
    assert web.status_code == 409, web.text
    app = await shop.place(shop.order_body([("A", 2)], location="NEAR"), headers=await shop.channel("app"))
    assert app.status_code == 201, app.text
    assert sorted(f["method"] for f in app.json()["fulfillment_orders"]) == ["pickup", "transfer"]


# --- pickup: suggest -------------------------------------------------------------------------


async def test_short_pickup_under_suggest_is_409_with_the_nearest_stores_that_can_serve_the_whole_order(shop):
    await stores(shop)
    await shop.location("SHORT", lat=52.531, lon=13.411)  # nearest, but holds only part of it
    for code, qty in (("NEAR", 1), ("MID", 5), ("FAR", 5), ("SHORT", 1)):
        await shop.stock(code, "A", qty)
    await shop.stock("FAR", "B", 5)
    await shop.stock("MID", "B", 5)
    await shop.stock("SHORT", "B", 5)
    r = await shop.place(shop.order_body([("A", 3), ("B", 1)], location="NEAR"))
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"].endswith("insufficient-stock")
    assert problem["suggested_locations"] == ["MID", "FAR"]
    assert {"sku": "A", "requested": 3, "available": 1} in problem["shortfalls"]
    for code in ("NEAR", "MID", "FAR", "SHORT"):
        s = (await shop.client.get(f"/v1/locations/{code}/stock/A", headers=shop.admin)).json()
        assert s["reserved"] == 0


async def test_pickup_is_sourced_at_the_chosen_store_when_it_can_serve_everything(shop):
    await stores(shop)
    await shop.stock("FAR", "A", 5)
    await shop.stock("NEAR", "A", 50)
    r = await shop.place(shop.order_body([("A", 2)], location="FAR"))
    assert r.status_code == 201, r.text
    assert [(f["location"], f["method"]) for f in r.json()["fulfillment_orders"]] == [("FAR", "pickup")]
    d = (await decisions(shop, r.json()["id"]))[0]
    assert d["rule"] == "pickup_at_store" and d["trigger"] == "placement"


# --- decisions -------------------------------------------------------------------------------


async def test_decisions_are_listed_newest_first_with_candidates_rule_and_profile_version(shop):
    await stores(shop)
    for code in ("NEAR", "MID", "FAR"):
        await shop.stock(code, "A", 5)
    await put_profile(shop, "web", {"min_split_line_value": 0})
    placed = await shop.place(shop.order_body([("A", 1)], method="ship", address=CUSTOMER))
    order = placed.json()
    staff = {code: await shop.staff(code) for code in ("NEAR", "MID")}

    # Two rejections in a row, at the same instant of the (frozen) clock.
    fo = order["fulfillment_orders"][0]
    assert fo["location"] == "NEAR"
    r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/reject", json={"reason": "r1"}, headers=staff["NEAR"])
    assert r.status_code == 200, r.text
    o = (await shop.client.get(f"/v1/orders/{order['id']}", headers=shop.admin)).json()
    fo2 = next(f for f in o["fulfillment_orders"] if f["status"] == "pending")
    assert fo2["location"] == "MID"
    r = await shop.client.post(f"/v1/fulfillments/{fo2['id']}/reject", json={"reason": "r2"}, headers=staff["MID"])
    assert r.status_code == 200, r.text

    ds = await decisions(shop, order["id"])
    assert [d["trigger"] for d in ds] == ["rejection", "rejection", "placement"]
    assert [[p["location"] for p in d["plan"]] for d in ds] == [["FAR"], ["MID"], ["NEAR"]]
    assert sorted(ds[0]["request"]["excluded"]) == ["MID", "NEAR"]
    for d in ds:
        assert d["rule"] == "ship_single_location"
        assert d["profile_version"] == 1 and d["profile_channel"] == "web"
        assert d["id"] and d["created_at"]
        locations = {c["location"] for c in d["candidates"]}
        assert locations == {"NEAR", "MID", "FAR"}
        chosen = [c for c in d["candidates"] if c["chosen"]]
        assert len(chosen) == 1 and chosen[0]["eligible"] and chosen[0]["covers_all"]
        assert all("distance_km" in c for c in d["candidates"])
    placement = ds[-1]
    near = next(c for c in placement["candidates"] if c["location"] == "NEAR")
    far = next(c for c in placement["candidates"] if c["location"] == "FAR")
    assert near["distance_km"] < far["distance_km"]
    # The timeline points at the decisions.
    timeline = (await shop.client.get(f"/v1/orders/{order['id']}/events", headers=shop.admin)).json()
    referenced = {e["data"]["decision_id"] for e in timeline if "decision_id" in e["data"]}
    assert referenced == {d["id"] for d in ds}


async def test_channel_and_store_staff_read_decisions_of_orders_they_may_see(shop):
    await stores(shop)
    await shop.stock("NEAR", "A", 5)
    order = (await shop.place(shop.order_body([("A", 1)], location="NEAR"))).json()
    assert len(await decisions(shop, order["id"], await shop.channel("web"))) == 1
    assert len(await decisions(shop, order["id"], await shop.staff("NEAR"))) == 1
    r = await shop.client.get(f"/v1/orders/{order['id']}/sourcing", headers=await shop.staff("FAR"))
    assert r.status_code == 404


# --- simulation ------------------------------------------------------------------------------


async def test_simulate_returns_a_plan_and_reserves_nothing(shop, db):
    await stores(shop)
    await shop.stock("NEAR", "A", 5)
    await shop.stock("FAR", "A", 5)
    await shop.stock("FAR", "B", 5)
    movements = await table_count(db, "inventory_movements")
    body = {
        "channel": "web",
        "method": "ship",
        "lat": CUSTOMER["lat"],
        "lon": CUSTOMER["lon"],
        "lines": [{"sku": "A", "quantity": 2, "unit_price": 1000}, {"sku": "B", "quantity": 1, "unit_price": 500}],
    }
    r = await shop.client.post("/v1/sourcing/simulate", json=body, headers=shop.admin)
    assert r.status_code == 200, r.text
    sim = r.json()
    assert sim["complete"] is True and sim["rule"] == "ship_single_location"
    assert {(p["location"], p["sku"], p["quantity"]) for p in sim["plan"]} == {("FAR", "A", 2), ("FAR", "B", 1)}
    assert {c["location"] for c in sim["candidates"]} >= {"NEAR", "FAR"}
    assert sim["profile_version"] == 0

    for code in ("NEAR", "FAR"):
        for sku in ("A", "B"):
            s = (await shop.client.get(f"/v1/locations/{code}/stock/{sku}", headers=shop.admin)).json()
            assert s["reserved"] == 0
    assert await table_count(db, "inventory_movements") == movements
    assert await table_count(db, "reservations") == 0
    assert await table_count(db, "sourcing_decisions") == 0
    assert await table_count(db, "orders") == 0
    assert await table_count(db, "outbox") == 0


async def test_simulate_uses_the_channels_current_profile_and_exclusions(shop):
    await stores(shop)
    await shop.stock("NEAR", "A", 1)
    await shop.stock("MID", "A", 5)
    await put_profile(shop, "web", {"on_pickup_shortfall": "transfer"})
    body = {
        "channel": "web",
        "method": "pickup",
        "location": "NEAR",
        "lines": [{"sku": "A", "quantity": 3, "unit_price": 100}],
    }
    sim = (await shop.client.post("/v1/sourcing/simulate", json=body, headers=shop.admin)).json()
    assert sim["rule"] == "pickup_with_transfer" and sim["complete"] and sim["profile_version"] == 1
    assert {(p["location"], p["quantity"], p["transfer_to"]) for p in sim["plan"]} == {
        ("NEAR", 1, None),
        ("MID", 2, "NEAR"),
    }

    short = (
        await shop.client.post("/v1/sourcing/simulate", json={**body, "channel": "app"}, headers=shop.admin)
    ).json()
    assert short["complete"] is False and short["suggestions"] == ["MID"] and short["plan"] == []

    ship = {
        "channel": "web",
        "method": "ship",
        "lat": CUSTOMER["lat"],
        "lon": CUSTOMER["lon"],
        "lines": [{"sku": "A", "quantity": 1, "unit_price": 100}],
        "exclude": ["NEAR"],
    }
    sim = (await shop.client.post("/v1/sourcing/simulate", json=ship, headers=shop.admin)).json()
    assert [p["location"] for p in sim["plan"]] == ["MID"]
    near = next(c for c in sim["candidates"] if c["location"] == "NEAR")
    assert near["reason"] == "excluded"


async def test_simulate_is_admin_only_and_rejects_unknown_skus(shop):
    await stores(shop)
    body = {"method": "ship", "lat": 52.5, "lon": 13.4, "lines": [{"sku": "A", "quantity": 1, "unit_price": 1}]}
    for headers in (await shop.channel("web"), await shop.staff("NEAR")):
        r = await shop.client.post("/v1/sourcing/simulate", json=body, headers=headers)
        assert r.status_code == 403, r.text
    r = await shop.client.post(
        "/v1/sourcing/simulate",
        json={**body, "lines": [{"sku": "NOPE", "quantity": 1, "unit_price": 1}]},
        headers=shop.admin,
    )
    assert r.status_code == 422, r.text
