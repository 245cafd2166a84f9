async def test_pickup_order_reserves_stock_and_is_readable_by_every_channel(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    r = await shop.place(shop.order_body([("A", 2)]))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "received"
    assert r.headers["etag"] == '"1"'
    stock = (await shop.client.get("/v1/locations/S1/stock/A", headers=shop.admin)).json()
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (5, 2, 3)
    app_key = await shop.channel("app")
    seen = await shop.client.get(f"/v1/orders/{order['id']}", headers=app_key)
    assert seen.status_code == 200 and seen.json()["number"] == order["number"]


async def _act(shop, staff, fo_id, action, body=None):
    r = await shop.client.post(f"/v1/fulfillments/{fo_id}/{action}", json=body, headers=staff)
    assert r.status_code == 200, (action, r.text)
    return r.json()


async def test_ship_from_store_runs_to_delivered(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    r = await shop.place(shop.order_body([("A", 2)], method="ship"))
    assert r.status_code == 201, r.text
    fo = r.json()["fulfillment_orders"][0]
    staff = await shop.staff("S1")
    await _act(shop, staff, fo["id"], "accept")
    await _act(shop, staff, fo["id"], "start-picking")
    await _act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
    await _act(shop, staff, fo["id"], "pack")
    await _act(shop, staff, fo["id"], "ship", {"carrier": "DHL", "tracking_number": "1Z"})
    done = await _act(shop, staff, fo["id"], "deliver")
    assert done["status"] == "delivered"
    order = (await shop.client.get(f"/v1/orders/{r.json()['id']}", headers=shop.admin)).json()
    assert order["status"] == "completed"
    stock = (await shop.client.get("/v1/locations/S1/stock/A", headers=shop.admin)).json()
    assert (stock["on_hand"], stock["reserved"]) == (3, 0)


async def test_pickup_ready_and_handover_with_code(shop, db):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    r = await shop.place(shop.order_body([("A", 1)]))
    fo = r.json()["fulfillment_orders"][0]
    staff = await shop.staff("S1")
    await _act(shop, staff, fo["id"], "accept")
    await _act(shop, staff, fo["id"], "start-picking")
    await _act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 1}]})
    ready = await _act(shop, staff, fo["id"], "ready")
    assert ready["status"] == "ready_for_pickup" and ready["pickup_deadline"]
    from sqlalchemy import text

    async with db.unit_of_work() as uow:
        payload = (
            await uow.session.execute(text("SELECT payload FROM outbox WHERE type = 'fulfillment.ready_for_pickup'"))
        ).scalar_one()
    code = payload["data"]["pickup_code"]
    bad = await shop.client.post(
        f"/v1/fulfillments/{fo['id']}/handover",
        json={"code": "000000" if code != "000000" else "111111"},
        headers=staff,
    )
    assert bad.status_code == 422, bad.text
    done = await _act(shop, staff, fo["id"], "handover", {"code": code})
    assert done["status"] == "picked_up"
    events = (await shop.client.get(f"/v1/orders/{r.json()['id']}/events", headers=shop.admin)).json()
    assert not any("pickup_code" in e["data"] for e in events)
    assert events[-1]["data"] == {"from": "ready_for_pickup", "to": "completed"}
