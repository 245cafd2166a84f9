"""The journey the product exists for, through HTTP with several channels' keys: ordered on the
web, changed in the app (dry run first), a line added by a chat agent, picked up at another store
than the one chosen, handed over there with the code the customer was sent; the card is captured
for exactly what was handed over. Stock and money invariants after every step."""

from __future__ import annotations

from tests.e2e.support import act, events, on_hand_reserved, pickup_code
from tests.e2e.test_order_changes import change, invariants, line, paid_order, ready_all
from tests.e2e.test_payments_capture import run_jobs


async def test_web_order_changed_in_the_app_and_by_an_agent_picked_up_at_another_store(
    paid, stripe_api, stripe_test_gateway
):
    shop = paid
    await shop.location("S2", 48.14, 11.58, capabilities=("pickup",))
    await shop.product("B")
    for code, sku, units in (("S1", "B", 5), ("S2", "A", 10), ("S2", "B", 5)):
        await shop.stock(code, sku, units)
    order = await paid_order(shop, (("A", 3),))  # web, 30.00 + 5.00 shipping, saved card
    app, agent = await shop.channel("app"), await shop.channel("agent")
    s1, s2 = await shop.staff("S1"), await shop.staff("S2")

    lower = [{"type": "set_quantity", "line_id": line(order, "A"), "quantity": 2}]
    preview = (await change(shop, order, lower, dry=True, headers=app)).json()
    assert preview["accepted"] and preview["payment_difference"] == -1000
    r = await change(shop, order, lower, headers=app, key="app-1")
    assert r.status_code == 200, r.text
    order = r.json()["order"]
    assert order["total"] == preview["totals_after"]["total"] == 2500
    await invariants(shop, stripe_api)

    add = [{"type": "add_line", "sku": "B", "quantity": 1, "unit_price": 800}]
    r = await change(shop, order, add, headers=agent, key="agent-1")
    assert r.status_code == 200, r.text
    order = r.json()["order"]
    assert order["total"] == 3300
    await run_jobs(shop, stripe_test_gateway)  # the replaced authorisation is released
    await invariants(shop, stripe_api)

    [fo] = order["fulfillment_orders"]
    await ready_all(shop, s1, fo)
    code = await pickup_code(shop.db, fo["id"])
    await invariants(shop, stripe_api, picked=True)

    found = await shop.client.post("/v1/pickup-lookup", json={"number": order["number"], "verify": code}, headers=s2)
    assert found.status_code == 200, found.text
    move = [{"type": "move_pickup", "location": "S2"}]
    dry = (await change(shop, found.json(), move, dry=True, headers=s2)).json()
    assert [(f["location"], f["location_after"]) for f in dry["fulfillments"]] == [("S1", "S2")]
    assert dry["sourcing"][0]["locations"] == ["S2"] and dry["expected_ready_at"]
    r = await change(shop, found.json(), move, headers=s2, key="s2-1")
    assert r.status_code == 200, r.text
    assert await on_hand_reserved(shop, "S1", "A") == (10, 0) and await on_hand_reserved(shop, "S1", "B") == (5, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (10, 2) and await on_hand_reserved(shop, "S2", "B") == (5, 1)
    told = [e for e in await events(shop, order["id"]) if e["type"] == "fulfillment.moved"]
    assert [(e["data"]["from_location"], e["data"]["to_location"]) for e in told] == [("S1", "S2")]
    await invariants(shop, stripe_api)

    moved = r.json()["order"]["fulfillment_orders"][0]
    await ready_all(shop, s2, moved)
    assert await pickup_code(shop.db, fo["id"]) == code
    done = await act(shop, s2, moved["id"], "handover", {"code": code})
    assert done["status"] == "picked_up"
    await run_jobs(shop, stripe_test_gateway)
    payments = (await shop.client.get(f"/v1/orders/{order['id']}", headers=app)).json()["payments"]
    captured = sum(p["amount_captured"] for p in payments)
    assert captured == 2 * 1000 + 800 + 500  # the handed-over goods and the shipping, no more
    assert sum(i["amount_received"] for i in stripe_api.ledger.intents.values()) == captured
    await invariants(shop, stripe_api, picked=True)
