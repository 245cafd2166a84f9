"""Payment follows a change whose total rises: a card order is authorised again for what is left
to pay before the change commits (the saved card, or a payment sent with the change; else 402),
the old authorisation released; a pay-in-store order owes more at the counter. Money and stock
invariants after each step."""

from __future__ import annotations

from tests.e2e.conftest import Shop
from tests.e2e.support import act, assert_problem, get_order, on_hand_reserved
from tests.e2e.test_order_changes import change, invariants, line, paid_order, ready_all
from tests.e2e.test_payments_capture import hand_over, run_jobs


async def payments(shop: Shop, order_id: str) -> list[dict]:
    return (await get_order(shop, order_id))["payments"]


async def test_a_higher_total_is_authorised_again_on_the_saved_card_and_the_old_hold_released(
    paid, stripe_api, stripe_test_gateway
):
    shop = paid
    order = await paid_order(shop, (("A", 2),))  # 20.00 + 5.00 shipping, saved card (web)
    raise_a = [{"type": "set_quantity", "line_id": line(order, "A"), "quantity": 3}]
    preview = (await change(shop, order, raise_a, dry=True)).json()
    assert preview["accepted"] and preview["payment_difference"] == 1000
    r = await change(shop, order, raise_a, key="raise-1")
    assert r.status_code == 200, r.text
    after = r.json()["order"]
    assert after["total"] == 3500 and r.headers["ETag"] == f'"{after["version"]}"'
    await run_jobs(shop, stripe_test_gateway)
    [new, old] = sorted(await payments(shop, order["id"]), key=lambda p: p["status"])
    assert (old["status"], new["status"], new["amount_authorised"]) == ("voided", "authorised", 3500)
    assert stripe_api.ledger.intent(old["external_id"])["status"] == "canceled"
    assert await on_hand_reserved(shop, "S1", "A") == (10, 3)
    await invariants(shop, stripe_api)
    # A replay is the first answer: nothing authorised again.
    again = await change(shop, order, raise_a, key="raise-1")
    assert (again.status_code, again.content) == (200, r.content)
    assert len(await payments(shop, order["id"])) == 2

    staff = await shop.staff("S1")
    ready = await ready_all(shop, staff, after["fulfillment_orders"][0])
    await hand_over(shop, staff, ready)
    await run_jobs(shop, stripe_test_gateway)
    by_intent = {p["external_id"]: p for p in await payments(shop, order["id"])}
    assert (by_intent[new["external_id"]]["amount_captured"], by_intent[old["external_id"]]["amount_captured"]) == (
        3500,
        0,
    )
    await invariants(shop, stripe_api, picked=True)


async def test_without_a_saved_card_the_change_needs_a_payment_else_402(paid, stripe_api, stripe_test_gateway):
    shop = paid
    body = {
        **shop.order_body([("A", 1)], price=1000),
        "payment": {"provider": "stripe", "payment_method": "pm_card_visa"},
    }
    r = await shop.place(body, headers=await shop.channel("kiosk"))  # not a channel that saves cards
    assert r.status_code == 201, r.text
    order = r.json()
    add = [{"type": "set_quantity", "line_id": line(order, "A"), "quantity": 2}]
    problem = assert_problem(await change(shop, order, add), 402, "additional-payment-required")
    assert (problem["context"]["amount"], problem["context"]["currency"]) == (1000, "EUR")
    assert (await get_order(shop, order["id"]))["version"] == order["version"]
    assert await on_hand_reserved(shop, "S1", "A") == (10, 1)

    declined = {"provider": "stripe", "payment_method": "pm_card_visa_chargeDeclined"}
    h = {**await shop.channel("app"), "If-Match": f'"{order["version"]}"'}
    r = await shop.client.post(
        f"/v1/orders/{order['id']}/changes", json={"actions": add, "payment": declined}, headers=h
    )
    assert_problem(r, 402, "payment-declined")
    assert len(await payments(shop, order["id"])) == 1

    card = {"provider": "stripe", "payment_method": "pm_card_visa"}
    r = await shop.client.post(f"/v1/orders/{order['id']}/changes", json={"actions": add, "payment": card}, headers=h)
    assert r.status_code == 200, r.text
    await run_jobs(shop, stripe_test_gateway)
    statuses = sorted((p["status"], p["amount_authorised"]) for p in await payments(shop, order["id"]))
    assert statuses == [("authorised", 2000), ("voided", 1000)]
    await invariants(shop, stripe_api)


async def test_a_payment_sent_with_a_change_that_needs_none_is_422(paid):
    shop = paid
    order = await paid_order(shop, (("A", 2),))
    lower = [{"type": "set_quantity", "line_id": line(order, "A"), "quantity": 1}]
    h = {**await shop.channel("app"), "If-Match": f'"{order["version"]}"'}
    card = {"provider": "stripe", "payment_method": "pm_card_visa"}
    r = await shop.client.post(f"/v1/orders/{order['id']}/changes", json={"actions": lower, "payment": card}, headers=h)
    assert_problem(r, 422, "invalid-request")


async def test_a_pay_in_store_order_owes_more_at_the_counter(paid, stripe_api):
    shop = paid
    body = {**shop.order_body([("A", 1)], price=1000), "payment": {"provider": "pos"}}
    r = await shop.place(body)
    assert r.status_code == 201, r.text
    order = r.json()
    r = await change(shop, order, [{"type": "set_quantity", "line_id": line(order, "A"), "quantity": 3}])
    assert r.status_code == 200, r.text
    staff = await shop.staff("S1")
    ready = await ready_all(shop, staff, r.json()["order"]["fulfillment_orders"][0])
    from tests.e2e.support import pickup_code

    code = await pickup_code(shop.db, ready["id"])
    short = {"code": code, "tender": {"amount": 1000, "method": "cash"}}
    problem = assert_problem(
        await shop.client.post(f"/v1/fulfillments/{ready['id']}/handover", json=short, headers=staff),
        422,
        "tender-insufficient",
    )
    assert problem["context"]["amount_due"] == 3000
    done = await act(shop, staff, ready["id"], "handover", {"code": code, "tender": {"amount": 3000, "method": "cash"}})
    assert done["status"] == "picked_up"
    await invariants(shop, stripe_api, picked=True)


async def test_a_line_added_after_everything_was_captured_is_authorised_anew(paid, stripe_api, stripe_test_gateway):
    shop = paid
    order = await paid_order(shop, (("A", 1),))  # 10.00 + 5.00 shipping
    staff = await shop.staff("S1")
    ready = await ready_all(shop, staff, order["fulfillment_orders"][0])
    await hand_over(shop, staff, ready)
    await run_jobs(shop, stripe_test_gateway)
    done = await get_order(shop, order["id"])
    assert (done["status"], done["payment"]["amount_captured"]) == ("completed", 1500)
    r = await change(shop, done, [{"type": "add_line", "sku": "A", "quantity": 2, "unit_price": 700}])
    assert r.status_code == 200, r.text
    assert sorted((p["status"], p["amount_authorised"]) for p in await payments(shop, order["id"])) == [
        ("authorised", 1400),
        ("captured", 1500),
    ]
    [pickup] = [f for f in r.json()["order"]["fulfillment_orders"] if f["status"] == "pending"]
    await hand_over(shop, staff, await ready_all(shop, staff, pickup))
    await run_jobs(shop, stripe_test_gateway)
    assert sum(p["amount_captured"] for p in await payments(shop, order["id"])) == 1500 + 1400
    await invariants(shop, stripe_api, picked=True)
