"""``POST /v1/orders/{id}/cancel`` cancels what is not yet with the customer: every open quantity
goes through its fulfillment's own cancel (reservations released, picked units back on the
shelf), what was handed over stays fulfilled, and the card payment captures only the handed-over
goods (the rest released, or voided when nothing was handed over). Checked against the
Stripe-shaped test server's ledger and the stock and money invariants."""

from __future__ import annotations

from tests.e2e.conftest import Shop
from tests.e2e.support import act, assert_problem, events, fields_of, get_order, on_hand_reserved, pickup_code, to_ready
from tests.e2e.test_payments_capture import capture_requests, hand_over, money, ready_paid_order, run_jobs
from tests.integration.invariants import stock_violations
from tests.integration.money_invariants import money_violations


async def cancel(shop: Shop, order_id: str, body: dict | None = None, *, headers: dict | None = None):
    return await shop.client.post(
        f"/v1/orders/{order_id}/cancel", json=body or {"reason": "customer"}, headers=headers or shop.admin
    )


async def invariants_hold(shop: Shop, stripe_api) -> None:
    assert await stock_violations(shop.db) == []
    assert await money_violations(shop.db, stripe_api.ledger) == []


async def test_after_a_partial_pickup_cancel_keeps_the_handed_over_unit_and_captures_only_it(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid)  # 2 × A at 12.50 + 5.00 shipping, both picked
    await hand_over(paid, staff, fo, quantity=1)
    assert await run_jobs(paid, stripe_test_gateway) == 0  # held until the pickup closes

    r = await cancel(paid, order["id"], headers=await paid.channel())
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["status"] == "completed"  # something reached the customer: not "cancelled"
    [line] = shown["lines"]
    assert (line["quantity_fulfilled"], line["quantity_cancelled"]) == (1, 1)
    [closed] = shown["fulfillment_orders"]
    assert closed["status"] == "cancelled"
    assert [(ln["quantity_handed_over"], ln["quantity_cancelled"]) for ln in closed["lines"]] == [(1, 1)]
    # The picked unit not handed over is back on the shelf; nothing stays reserved.
    assert await on_hand_reserved(paid, "S1", "A") == (9, 0)
    types = [e["type"] for e in await events(paid, order["id"])]
    assert "fulfillment.cancelled" in types and "order.cancelled" in types

    assert await run_jobs(paid, stripe_test_gateway) == 1
    [sent] = capture_requests(stripe_api)
    assert sent.params["amount_to_capture"] == "1500"  # half the goods and half the shipping
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 1500)
    assert seen["intent"]["status"] == "succeeded" and seen["intent"]["amount_capturable"] == 0
    await invariants_hold(paid, stripe_api)


async def test_with_multicapture_the_cancel_releases_the_rest_after_the_captured_part(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid, card="pm_card_visa_multicapture")
    await hand_over(paid, staff, fo, quantity=1)
    assert await run_jobs(paid, stripe_test_gateway) == 1  # 15.00 captured, not final

    r = await cancel(paid, order["id"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    assert await run_jobs(paid, stripe_test_gateway) == 1
    seen = await money(paid, stripe_api, order)
    assert (seen["intent"]["amount_received"], seen["intent"]["amount_capturable"]) == (1500, 0)
    assert seen["intent"]["status"] == "canceled"  # the rest of the authorisation let go
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"], seen["payment"]["amount_refunded"]) == (
        "captured",
        1500,
        0,
    )
    await invariants_hold(paid, stripe_api)


async def test_cancel_with_nothing_handed_over_restocks_the_picked_units_and_voids(
    paid, stripe_api, stripe_test_gateway
):
    order, _, _ = await ready_paid_order(paid)
    assert await on_hand_reserved(paid, "S1", "A") == (8, 0)  # both picked off the shelf
    r = await cancel(paid, order["id"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert [ln["quantity_cancelled"] for ln in r.json()["lines"]] == [2]
    assert await on_hand_reserved(paid, "S1", "A") == (10, 0)
    assert await run_jobs(paid, stripe_test_gateway) == 1
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("voided", 0)
    assert seen["intent"]["status"] == "canceled" and capture_requests(stripe_api) == []
    await invariants_hold(paid, stripe_api)


async def test_of_two_lines_the_one_handed_over_stays_and_only_it_is_captured(paid, stripe_api, stripe_test_gateway):
    await paid.product("B")
    await paid.stock("S1", "B", 5)
    body = paid.order_body([("A", 1), ("B", 2)], price=1000)  # 30.00, no shipping
    r = await paid.place({**body, "payment": {"provider": "stripe", "payment_method": "pm_card_visa"}})
    assert r.status_code == 201, r.text
    order = r.json()
    staff = await paid.staff("S1")
    fo = await to_ready(paid, staff, order["fulfillment_orders"][0])
    a = next(ln for ln in fo["lines"] if ln["sku"] == "A")
    await act(
        paid, staff, fo["id"], "handover", {"code": await pickup_code(paid.db, fo["id"]), "lines": [line_of(a, 1)]}
    )

    r = await cancel(paid, order["id"])
    assert r.status_code == 200, r.text
    lines = {ln["sku"]: (ln["quantity_fulfilled"], ln["quantity_cancelled"]) for ln in r.json()["lines"]}
    assert lines == {"A": (1, 0), "B": (0, 2)}
    assert await on_hand_reserved(paid, "S1", "A") == (9, 0)
    assert await on_hand_reserved(paid, "S1", "B") == (5, 0)
    await run_jobs(paid, stripe_test_gateway)
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 1000)
    await invariants_hold(paid, stripe_api)


async def test_a_cancel_naming_one_line_of_two_is_refused_and_cancels_nothing(paid, stripe_api):
    """The cancel takes all that is open; single lines are a change (``cancel_line``), so a body
    naming ``lines`` is 422, never a cancel of both."""
    await paid.product("B")
    await paid.stock("S1", "B", 5)
    placed = (await paid.place(paid.order_body([("A", 1), ("B", 2)]))).json()
    b = next(ln for ln in placed["lines"] if ln["sku"] == "B")
    r = await cancel(paid, placed["id"], {"lines": [{"line_id": b["id"], "quantity": 1}]})
    assert fields_of(assert_problem(r, 422, "validation-error")) == ["lines"]
    shown = await get_order(paid, placed["id"])
    assert shown["status"] == "received" and shown["version"] == placed["version"]
    assert [ln["quantity_cancelled"] for ln in shown["lines"]] == [0, 0]
    assert await on_hand_reserved(paid, "S1", "A") == (10, 1)
    assert await on_hand_reserved(paid, "S1", "B") == (5, 2)


async def test_nothing_open_left_is_409_and_changes_nothing(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo, quantity=1)
    assert (await cancel(paid, order["id"])).status_code == 200
    before = await get_order(paid, order["id"])
    again = assert_problem(await cancel(paid, order["id"]), 409, "order-not-cancellable")
    assert again["context"]["fulfillments"] == [fo["id"]]  # what is with the customer
    assert (await get_order(paid, order["id"]))["version"] == before["version"]

    whole, fo2, _ = await ready_paid_order(paid)
    await hand_over(paid, staff, fo2)
    assert_problem(await cancel(paid, whole["id"]), 409, "order-not-cancellable")
    assert (await get_order(paid, whole["id"]))["status"] == "completed"

    voided, _, _ = await ready_paid_order(paid)
    assert (await cancel(paid, voided["id"])).status_code == 200
    assert_problem(await cancel(paid, voided["id"]), 409, "order-not-cancellable")
    await run_jobs(paid, stripe_test_gateway)
    await invariants_hold(paid, stripe_api)


def line_of(line: dict, quantity: int) -> dict:
    return {"line_id": line["id"], "quantity": quantity}
