"""Pay in store at handover: a ``pos`` order (or one whose card authorisation ended) is handed over
only against a tender of what its goods make due (``payments/tenders.py``); the tender is recorded
in the handover's transaction, once, and a refused one leaves nothing written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from orchestrator.payments import captures
from tests.e2e.conftest import Shop
from tests.e2e.support import assert_problem, events, get_order, payment_rows, pickup_code, to_ready


async def ready_order(shop: Shop, payment: dict | None, *, quantity: int = 2, price: int = 1250, **totals: int):
    """``quantity`` × A at ``price`` (+ ``totals``: shipping_total, tax_total...), ready at S1."""
    body = {**shop.order_body([("A", quantity)], price=price), **totals}
    if payment is not None:
        body["payment"] = payment
    r = await shop.place(body)
    assert r.status_code == 201, r.text
    order = r.json()
    staff = await shop.staff("S1")
    fo = await to_ready(shop, staff, order["fulfillment_orders"][0])
    return order, fo, staff


async def handover(shop: Shop, staff: dict, fo: dict, tender: dict | None, *, quantity: int | None = None, key=None):
    body: dict = {"code": await pickup_code(shop.db, fo["id"])}
    if quantity is not None:
        body["lines"] = [{"line_id": fo["lines"][0]["id"], "quantity": quantity}]
    if tender is not None:
        body["tender"] = tender
    headers = {**staff, "Idempotency-Key": key} if key else staff
    return await shop.client.post(f"/v1/fulfillments/{fo['id']}/handover", json=body, headers=headers)


async def operations(shop: Shop, order_id: str) -> list[dict]:
    r = await shop.client.get(f"/v1/orders/{order_id}/payments", headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def payments(shop: Shop, order_id: str) -> list[dict]:
    return await payment_rows(shop, order_id, "provider, status, amount_authorised, amount_captured")


async def paid_for_goods(shop: Shop, order: dict) -> dict:
    """The money invariants of a handover: captured ≤ authorised on every payment, and the goods
    handed over are paid exactly what the split rule makes due for them (tendered or captured)."""
    shown = await get_order(shop, order["id"])
    rows = await payments(shop, order["id"])
    assert all(p["amount_captured"] <= p["amount_authorised"] for p in rows)
    handed = sum(ln["quantity_fulfilled"] * ln["unit_price"] for ln in shown["lines"])
    subtotal = sum(ln["quantity"] * ln["unit_price"] for ln in shown["lines"])
    ops = await operations(shop, order["id"])
    tendered = sum(op["amount"] for op in ops if op["kind"] == "tender")
    assert tendered + sum(p["amount_captured"] for p in rows if p["provider"] == "stripe") == (
        handed * shown["total"] // subtotal
    )
    assert tendered == sum(p["amount_captured"] for p in rows if p["provider"] == "pos")
    return {"order": shown, "operations": ops, "tendered": tendered}


async def state(shop: Shop, order: dict, fo: dict) -> dict:
    """Everything a handover could write: the fulfillment, the order, its payments, operations
    and timeline."""
    r = await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=shop.admin)
    return {
        "fulfillment": r.json(),
        "order": await get_order(shop, order["id"]),
        "payments": await payments(shop, order["id"]),
        "operations": await operations(shop, order["id"]),
        "events": [e["id"] for e in await events(shop, order["id"])],
    }


async def refused(shop: Shop, staff: dict, order: dict, fo: dict, slug: str, tender: dict | None, **kw) -> dict:
    """A handover refused with 422 ``slug`` that leaves nothing written; its problem."""
    before = await state(shop, order, fo)
    problem = assert_problem(await handover(shop, staff, fo, tender, **kw), 422, slug)
    assert await state(shop, order, fo) == before
    await paid_for_goods(shop, order)
    return problem


POS = {"provider": "pos"}


async def test_exact_cash_pays_the_pos_order_and_hands_it_over(store):
    order, fo, staff = await ready_order(store, POS, shipping_total=500)  # 2 × 12.50 + 5.00 = 30.00
    r = await handover(store, staff, fo, {"amount": 3000, "method": "cash", "reference": "till-7"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "picked_up"
    seen = await paid_for_goods(store, order)
    payment = seen["order"]["payment"]
    assert (payment["provider"], payment["status"]) == ("pos", "captured")
    assert (payment["amount_authorised"], payment["amount_captured"]) == (3000, 3000)
    [tender] = [op for op in seen["operations"] if op["kind"] == "tender"]
    assert (tender["amount"], tender["status"], tender["tender_method"]) == (3000, "succeeded", "cash")
    assert (tender["tender_reference"], tender["change_given"], tender["fulfillment_id"]) == ("till-7", 0, fo["id"])
    [event] = [e["data"] for e in await events(store, order["id"]) if e["type"] == "payment.tendered"]
    assert (event["amount"], event["method"], event["change_given"], event["fulfillments"]) == (
        3000,
        "cash",
        0,
        [fo["id"]],
    )


async def test_more_cash_is_accepted_and_the_change_given_recorded(store):
    order, fo, staff = await ready_order(store, POS, shipping_total=500)
    r = await handover(store, staff, fo, {"amount": 5000, "method": "cash"})
    assert r.status_code == 200, r.text
    seen = await paid_for_goods(store, order)
    [tender] = [op for op in seen["operations"] if op["kind"] == "tender"]
    assert (tender["amount"], tender["change_given"]) == (3000, 2000)
    assert seen["order"]["payment"]["amount_captured"] == 3000  # the change is not the shop's money


@pytest.mark.parametrize("method", ["card", "other"])
async def test_more_by_card_or_other_is_refused(store, method):
    order, fo, staff = await ready_order(store, POS, shipping_total=500)
    problem = await refused(store, staff, order, fo, "tender-exceeds-due", {"amount": 3001, "method": method})
    assert problem["context"]["amount_due"] == 3000
    assert (await handover(store, staff, fo, {"amount": 3000, "method": method})).status_code == 200


async def test_less_is_refused_naming_the_amount_due(store):
    order, fo, staff = await ready_order(store, POS, shipping_total=500)
    problem = await refused(store, staff, order, fo, "tender-insufficient", {"amount": 2999, "method": "cash"})
    assert problem["context"]["amount_due"] == 3000 and "3000" in problem["detail"]
    assert problem["errors"][0]["field"] == "tender"


async def test_a_pos_order_without_a_tender_is_not_handed_over(store):
    order, fo, staff = await ready_order(store, POS, shipping_total=500)
    problem = await refused(store, staff, order, fo, "tender-required", None)
    assert problem["context"]["amount_due"] == 3000 and "3000" in problem["detail"]
    assert (await get_order(store, order["id"]))["payment"]["status"] == "pending"


async def test_a_partial_pickup_pays_only_its_units_and_their_share_of_shipping_and_tax(store):
    # 3 × 9.99 = 29.97 goods, + 5.00 shipping + 1.01 tax = 35.98; one unit owes ⌊999 × 3598 / 2997⌋.
    order, fo, staff = await ready_order(store, POS, quantity=3, price=999, shipping_total=500, tax_total=101)
    missing = await refused(store, staff, order, fo, "tender-required", None, quantity=1)
    assert missing["context"]["amount_due"] == 1199
    r = await handover(store, staff, fo, {"amount": 1199, "method": "card", "reference": "pos-tx-1"}, quantity=1)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready_for_pickup"
    first = await paid_for_goods(store, order)
    assert (first["order"]["payment"]["status"], first["tendered"]) == ("partially_captured", 1199)
    # The rest pays what is left of the total, rounding included: never more, never twice.
    store.clock.advance(timedelta(days=1))  # the customer comes back for the rest
    rest = await refused(store, staff, order, fo, "tender-exceeds-due", {"amount": 2400, "method": "card"})
    assert rest["context"]["amount_due"] == 2399
    assert (await handover(store, staff, fo, {"amount": 2399, "method": "card"})).status_code == 200
    done = await paid_for_goods(store, order)
    payment = done["order"]["payment"]
    assert (payment["status"], payment["amount_authorised"], payment["amount_captured"]) == ("captured", 3598, 3598)
    assert [op["amount"] for op in done["operations"] if op["kind"] == "tender"] == [1199, 2399]


async def test_a_replayed_handover_records_one_tender(store):
    order, fo, staff = await ready_order(store, POS, shipping_total=500)
    tender = {"amount": 3000, "method": "cash"}
    first = await handover(store, staff, fo, tender, key="counter-1")
    assert first.status_code == 200, first.text
    again = await handover(store, staff, fo, tender, key="counter-1")
    assert again.status_code == 200 and again.json() == first.json()
    after = await handover(store, staff, fo, tender)  # the same request once more, without the key
    assert_problem(after, 409, "illegal-transition")
    seen = await paid_for_goods(store, order)
    assert [op["amount"] for op in seen["operations"] if op["kind"] == "tender"] == [3000]
    assert seen["order"]["payment"]["amount_captured"] == 3000
    types = [e["type"] for e in await events(store, order["id"])]
    assert types.count("payment.tendered") == 1


async def test_a_tender_on_a_card_authorised_order_is_refused(paid):
    order, fo, staff = await ready_order(paid, {"provider": "stripe", "payment_method": "pm_card_visa"})
    problem = await refused(paid, staff, order, fo, "tender-not-needed", {"amount": 2500, "method": "cash"})
    assert problem["errors"][0]["field"] == "tender"
    assert "payment.capture_due" not in [e["type"] for e in await events(paid, order["id"])]
    assert (await handover(paid, staff, fo, None)).status_code == 200  # the card pays, as before


async def test_an_order_without_a_payment_is_handed_over_as_before_or_pays_a_tender_given(store):
    order, fo, staff = await ready_order(store, None)
    r = await handover(store, staff, fo, None)
    assert r.status_code == 200 and r.json()["status"] == "picked_up"
    assert await payments(store, order["id"]) == [] and (await get_order(store, order["id"]))["payment"] is None

    order, fo, staff = await ready_order(store, None)
    assert (
        await handover(store, staff, fo, {"amount": 2500, "method": "other", "reference": "voucher-9"})
    ).status_code == 200
    seen = await paid_for_goods(store, order)
    payment = seen["order"]["payment"]
    assert (payment["provider"], payment["status"], payment["amount_captured"]) == ("pos", "captured", 2500)


async def test_an_order_whose_card_authorisation_ended_is_paid_at_the_counter(paid):
    order, fo, staff = await ready_order(paid, {"provider": "stripe", "payment_method": "pm_card_visa"})
    async with paid.db.unit_of_work() as uow:  # as the expiry leaves it: no authorisation to capture
        await uow.session.execute(text("UPDATE payments SET status = 'voided' WHERE order_id = :o"), {"o": order["id"]})
        await uow.commit()
    paid.clock.advance(timedelta(hours=1))  # the customer comes later
    problem = await refused(paid, staff, order, fo, "tender-required", None, quantity=1)
    assert problem["context"]["amount_due"] == 1250
    assert (await handover(paid, staff, fo, {"amount": 1250, "method": "card"}, quantity=1)).status_code == 200
    seen = await paid_for_goods(paid, order)
    assert [(p["provider"], p["status"]) for p in await payments(paid, order["id"])] == [
        ("stripe", "voided"),
        ("pos", "partially_captured"),
    ]
    assert seen["order"]["payment"]["provider"] == "pos"  # the order shows the payment that pays it now
    assert "payment.capture_due" not in [e["type"] for e in await events(paid, order["id"])]


async def test_after_the_card_captured_part_and_ran_out_the_counter_pays_only_the_rest(paid, stripe_test_gateway):
    card = {"provider": "stripe", "payment_method": "pm_card_visa_multicapture"}
    order, fo, staff = await ready_order(paid, card, shipping_total=500)  # 30.00 authorised
    assert (await handover(paid, staff, fo, None, quantity=1)).status_code == 200
    assert await captures.sweep(paid.db, stripe_test_gateway, paid.clock) == 1  # 15.00 captured
    async with paid.db.unit_of_work() as uow:  # as the expiry records it: partially captured, not live
        await uow.session.execute(
            text(
                "INSERT INTO payment_operations (id, payment_id, kind, amount, status, occurred_at) "
                "SELECT gen_random_uuid(), id, 'expire', 1500, 'recorded', now() FROM payments WHERE order_id = :o"
            ),
            {"o": order["id"]},
        )
        await uow.commit()
    paid.clock.advance(timedelta(hours=1))  # the customer comes later
    problem = await refused(paid, staff, order, fo, "tender-required", None)
    assert problem["context"]["amount_due"] == 1500
    assert (await handover(paid, staff, fo, {"amount": 2000, "method": "cash"})).status_code == 200
    seen = await paid_for_goods(paid, order)
    [tender] = [op for op in seen["operations"] if op["kind"] == "tender"]
    assert (tender["amount"], tender["change_given"]) == (1500, 500)
    assert [(p["provider"], p["status"], p["amount_captured"]) for p in await payments(paid, order["id"])] == [
        ("stripe", "partially_captured", 1500),
        ("pos", "captured", 1500),
    ]
    assert await captures.sweep(paid.db, stripe_test_gateway, paid.clock) == 0  # nothing more asked of the card


async def test_a_wrong_pickup_code_on_a_pos_order_is_counted_and_asks_no_tender(store):
    order, fo, staff = await ready_order(store, POS)
    body = {"code": "000000", "tender": {"amount": 2500, "method": "cash"}}  # the code is checked first
    r = await store.client.post(f"/v1/fulfillments/{fo['id']}/handover", json=body, headers=staff)
    assert_problem(r, 422, "wrong-pickup-code")
    async with store.db.unit_of_work() as uow:  # the failed attempt was counted and kept
        failures = await uow.session.scalar(
            text("SELECT pickup_failed_attempts FROM fulfillment_orders WHERE id = :f"), {"f": fo["id"]}
        )
    assert failures == 1
    assert [op for op in await operations(store, order["id"]) if op["kind"] == "tender"] == []
