"""The authorisation-expiry timer through the service, on the injected clock: the warning at
capture_before − 24 h (once, never before), the held captures of a partial pickup run before the
money is released, the rest authorised again off-session with a saved card, and after
capture_before never a capture — whatever is handed over (the Stripe-shaped server's ledger
shows what moved)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from orchestrator.orders import authorisation_timers
from orchestrator.settings import Settings
from orchestrator.worker import sweep_authorisations, worker_settings
from tests.e2e.conftest import Shop, stripe_shop
from tests.e2e.support import act, events, get_order, payment_rows, pickup_code, to_ready
from tests.e2e.test_payments_capture import capture_requests, hand_over, operations, ready_paid_order, run_jobs

WARNING = timedelta(hours=24)
SAVING = "app"  # the one channel here whose card is kept: other orders' rest is paid at the counter


@pytest.fixture
async def paid(database_url, redis_url, db, redis, clock, stripe_api) -> AsyncIterator[Shop]:
    async with stripe_shop(
        database_url, redis_url, db, redis, clock, stripe_api, payment_save_method_channels=[SAVING]
    ) as shop:
        yield shop


async def sweep(shop: Shop, gateway) -> authorisation_timers.Swept:
    """The worker's expiry sweep, as it runs every minute."""
    return await authorisation_timers.sweep(shop.db, gateway, shop.clock, WARNING)


def move_to(shop: Shop, moment: datetime) -> None:
    shop.clock.advance(moment - shop.clock.now())


def deadline(order: dict) -> datetime:
    return datetime.fromisoformat(order["payment"]["capture_before"])


def of_type(found: list[dict], type_: str) -> list[dict]:
    return [e["data"] for e in found if e["type"] == type_]


async def saved_card_order(
    shop: Shop, stripe_api, card: str = "pm_card_visa", *, storefront: bool = False
) -> tuple[dict, dict, dict]:
    """An order (2 × A at 12.50 + 5.00 shipping) on the channel that keeps the card, ready at S1:
    the service authorises the card itself (it creates the Stripe Customer the card is kept on),
    or, ``storefront``, the storefront confirmed a PaymentIntent for its own Customer (a card
    that needs 3-D Secure is authenticated in the browser before the order is placed)."""
    body = {**shop.order_body([("A", 2)], price=1250), "shipping_total": 500}
    payment = {"provider": "stripe", "payment_method": card}
    if storefront:
        cus = stripe_api.ledger.create_customer({"email": "ann@example.com"})["id"]
        intent = stripe_api.ledger.create_intent(
            {
                "amount": "3000",
                "currency": "eur",
                "payment_method": card,
                "customer": cus,
                "setup_future_usage": "off_session",
                "capture_method": "manual",
                "confirm": "true",
            }
        )
        if intent["status"] == "requires_action":
            stripe_api.ledger.complete_authentication(intent["id"])
        payment = {"provider": "stripe", "payment_intent": intent["id"]}
    r = await shop.place({**body, "payment": payment}, headers=await shop.channel(SAVING))
    assert r.status_code == 201, r.text
    order = r.json()
    staff = await shop.staff("S1")
    fo = await to_ready(shop, staff, order["fulfillment_orders"][0])
    return order, fo, staff


async def payments_of(shop: Shop, order_id: str) -> list[dict]:
    return await payment_rows(shop, order_id, "id, external_id, status, amount_authorised, amount_captured")


async def money(shop: Shop, stripe_api, order_id: str) -> dict:
    """The money invariants over all the order's card payments: each captured ≤ authorised and
    equal to what Stripe took; together never more than the handed-over goods made due."""
    shown = await get_order(shop, order_id)
    cards = [p for p in await payments_of(shop, order_id) if p["external_id"] and p["external_id"].startswith("pi_")]
    for p in cards:
        assert p["amount_captured"] <= p["amount_authorised"]
        assert stripe_api.ledger.intent(p["external_id"])["amount_received"] == p["amount_captured"]
    handed = sum(ln["quantity_fulfilled"] * ln["unit_price"] for ln in shown["lines"])
    subtotal = sum(ln["quantity"] * ln["unit_price"] for ln in shown["lines"])
    captured = sum(p["amount_captured"] for p in cards)
    assert captured <= handed * shown["total"] // subtotal
    return {"order": shown, "cards": cards, "captured": captured}


async def hand_over_paying(shop: Shop, staff: dict, fo: dict, amount: int) -> dict:
    """The rest handed over at the counter, paid in cash (the card no longer holds it)."""
    body = {"code": await pickup_code(shop.db, fo["id"]), "tender": {"amount": amount, "method": "cash"}}
    return await act(shop, staff, fo["id"], "handover", body)


async def test_the_warning_comes_24_hours_before_capture_before_once(paid, stripe_api, stripe_test_gateway):
    order, _, _ = await ready_paid_order(paid)
    move_to(paid, deadline(order) - WARNING - timedelta(minutes=1))
    assert (await sweep(paid, stripe_test_gateway)).warned == 0
    assert of_type(await events(paid, order["id"]), "payment.expiring") == []
    assert (await get_order(paid, order["id"]))["status"] == "ready_for_pickup"

    paid.clock.advance(timedelta(minutes=1))
    assert (await sweep(paid, stripe_test_gateway)).warned == 1
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["attention_reason"]) == ("needs_attention", "authorisation_expiring")
    [warned] = of_type(await events(paid, order["id"]), "payment.expiring")
    assert warned["amount"] == 3000 and datetime.fromisoformat(warned["capture_before"]) == deadline(order)
    assert [op["kind"] for op in await operations(paid, order["id"])].count("expiring") == 1

    paid.clock.advance(timedelta(hours=1))
    assert (await sweep(paid, stripe_test_gateway)).warned == 0  # once only
    assert len(of_type(await events(paid, order["id"]), "payment.expiring")) == 1
    assert capture_requests(stripe_api) == []  # nothing handed over: nothing captured
    await money(paid, stripe_api, order["id"])


async def test_the_worker_sweep_runs_the_timer_with_the_configured_warning(paid, stripe_test_gateway):
    order, _, _ = await ready_paid_order(paid)
    config = Settings(authorisation_expiry_warning_hours=48)
    assert sweep_authorisations in [c.coroutine for c in worker_settings(config)["cron_jobs"]]
    ctx = {"db": paid.db, "gateway": stripe_test_gateway, "clock": paid.clock, "settings": config}
    move_to(paid, deadline(order) - timedelta(hours=47))
    assert (await sweep_authorisations(ctx)).warned == 1


async def test_a_partial_pickup_without_multicapture_is_captured_before_the_authorisation_lapses(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid)
    assert order["payment"]["multicapture"] is False
    await hand_over(paid, staff, fo, quantity=1)
    assert await run_jobs(paid, stripe_test_gateway) == 0  # held for the last part

    move_to(paid, deadline(order) - WARNING)
    swept = await sweep(paid, stripe_test_gateway)
    assert (swept.warned, swept.reauthorised) == (1, 0)  # no saved card: the rest is paid at the counter
    assert await run_jobs(paid, stripe_test_gateway) == 1
    [sent] = capture_requests(stripe_api)
    assert sent.params["amount_to_capture"] == "1500" and "final_capture" not in sent.params
    seen = await money(paid, stripe_api, order["id"])
    assert seen["captured"] == 1500 and len(stripe_api.ledger.intents) == 1
    assert stripe_api.ledger.intent(order["payment"]["external_id"])["status"] == "succeeded"
    assert (seen["order"]["status"], seen["order"]["attention_reason"]) == ("needs_attention", "authorisation_expiring")

    # The rest leaves paid at the counter; the card is never asked again.
    move_to(paid, deadline(order) + timedelta(hours=1))
    assert (await sweep(paid, stripe_test_gateway)).expired == 0  # captured: nothing left to lapse
    await hand_over_paying(paid, staff, fo, 1500)
    assert await run_jobs(paid, stripe_test_gateway) == 0
    assert len(capture_requests(stripe_api)) == 1
    await money(paid, stripe_api, order["id"])


async def test_with_a_saved_card_the_rest_is_authorised_again_off_session(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await saved_card_order(paid, stripe_api)
    first = order["payment"]
    # At intake the service made the Customer the card is kept on; Stripe attached the card to it.
    [customer] = stripe_api.ledger.customers.values()
    intake = stripe_api.ledger.intent(first["external_id"])
    assert intake["customer"] == customer["id"] and customer["metadata"] == {"order_id": order["id"]}
    saved = stripe_api.ledger.methods[intake["payment_method"]]
    assert saved["customer"] == customer["id"]
    await hand_over(paid, staff, fo, quantity=1)
    move_to(paid, deadline(order) - WARNING)
    assert (await sweep(paid, stripe_test_gateway)).reauthorised == 1
    [_, created] = [r for r in stripe_api.state.requests if r.method == "POST" and r.path == "/v1/payment_intents"]
    assert (created.params["amount"], created.params["off_session"], created.params["customer"]) == (
        "1500",
        "true",
        customer["id"],
    )
    assert created.params["payment_method"] == saved["id"] and "setup_future_usage" not in created.params
    assert created.idempotency_key == f"order:{order['id']}:authorise:reauthorise:{first['id']}"
    assert len(stripe_api.ledger.customers) == 1  # off-session with the customer it has: none made

    assert await run_jobs(paid, stripe_test_gateway) == 1  # the handed-over part, on the first intent
    shown = await get_order(paid, order["id"])
    assert shown["status"] == "partially_fulfilled" and shown["attention_reason"] is None
    again = shown["payment"]
    assert (again["status"], again["amount_authorised"]) == ("authorised", 1500)
    assert again["external_id"] == created_intent(stripe_api, first["external_id"])

    await hand_over(paid, staff, fo)  # the new authorisation pays the rest
    assert await run_jobs(paid, stripe_test_gateway) == 1
    seen = await money(paid, stripe_api, order["id"])
    assert [(p["amount_captured"], p["status"]) for p in seen["cards"]] == [(1500, "captured"), (1500, "captured")]
    assert seen["captured"] == seen["order"]["total"] == 3000
    assert seen["order"]["status"] == "completed"
    move_to(paid, deadline(order) + timedelta(days=1))
    assert (await sweep(paid, stripe_test_gateway)).expired == 0


def created_intent(stripe_api, other_than: str) -> str:
    [found] = [i for i in stripe_api.ledger.intents if i != other_than]
    return found


async def test_a_card_used_without_a_stripe_customer_is_never_charged_off_session(
    paid, stripe_api, stripe_test_gateway
):
    """As at Stripe: a method a PaymentIntent without Customer used is spent, so the expiring
    payment's rest is left to the counter (and the test server refuses the reuse outright)."""
    from tests.stripe_server.ledger import StripeFailure

    intent = stripe_api.ledger.create_intent(
        {
            "amount": "3000",
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "setup_future_usage": "off_session",
            "capture_method": "manual",
            "confirm": "true",
        }
    )
    with pytest.raises(StripeFailure) as refused:
        stripe_api.ledger.create_intent(
            {"amount": "1500", "currency": "eur", "payment_method": intent["payment_method"], "confirm": "true"}
            | {"off_session": "true", "capture_method": "manual"}
        )
    assert refused.value.status == 400 and refused.value.error["type"] == "invalid_request_error"
    assert refused.value.error["message"].startswith("The provided PaymentMethod was previously used")
    body = {**paid.order_body([("A", 2)], price=1250), "shipping_total": 500}
    r = await paid.place({**body, "payment": {"provider": "stripe", "payment_intent": intent["id"]}})
    assert r.status_code == 201, r.text
    order = r.json()
    staff = await paid.staff("S1")
    fo = await to_ready(paid, staff, order["fulfillment_orders"][0])
    await hand_over(paid, staff, fo, quantity=1)
    move_to(paid, deadline(order) - WARNING)
    assert (await sweep(paid, stripe_test_gateway)).reauthorised == 0  # no customer: nothing to charge
    assert len(stripe_api.ledger.intents) == 1 and stripe_api.ledger.customers == {}  # none tried


async def test_a_saved_card_that_needs_authentication_leaves_the_rest_to_the_counter(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await saved_card_order(paid, stripe_api, card="pm_card_authenticationRequired", storefront=True)
    await hand_over(paid, staff, fo, quantity=1)
    move_to(paid, deadline(order) - WARNING)
    assert (await sweep(paid, stripe_test_gateway)).reauthorised == 0
    assert await run_jobs(paid, stripe_test_gateway) == 1
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["attention_reason"]) == ("needs_attention", "authorisation_expiring")
    [failed] = of_type(await events(paid, order["id"]), "payment.failed")
    assert (failed["code"], failed["amount"]) == ("authentication_required", 1500)
    assert [p["status"] for p in await payments_of(paid, order["id"])] == ["captured"]
    await money(paid, stripe_api, order["id"])


async def test_after_capture_before_nothing_is_captured_even_if_the_goods_are_handed_over(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid)
    move_to(paid, deadline(order) - WARNING)
    await sweep(paid, stripe_test_gateway)
    move_to(paid, deadline(order))
    assert (await sweep(paid, stripe_test_gateway)).expired == 1
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["attention_reason"]) == ("needs_attention", "authorisation_expired")
    assert (shown["payment"]["status"], shown["payment"]["amount_captured"]) == ("voided", 0)
    [expired] = of_type(await events(paid, order["id"]), "payment.expired")
    assert expired["amount"] == 3000
    assert [op["kind"] for op in await operations(paid, order["id"])] == ["authorise", "expiring", "expire"]

    assert (await sweep(paid, stripe_test_gateway)) == authorisation_timers.Swept()  # idempotent
    before = dict(stripe_api.ledger.intent(order["payment"]["external_id"]))
    await hand_over_paying(paid, staff, fo, 3000)
    assert await run_jobs(paid, stripe_test_gateway) == 0
    assert capture_requests(stripe_api) == []
    assert stripe_api.ledger.intent(order["payment"]["external_id"]) == before
    assert len(of_type(await events(paid, order["id"]), "payment.expired")) == 1
    await money(paid, stripe_api, order["id"])


async def test_a_capture_the_worker_reaches_only_after_capture_before_expires_instead(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo)  # queued, but the worker is down until the authorisation lapsed
    move_to(paid, deadline(order) + timedelta(minutes=5))
    assert await run_jobs(paid, stripe_test_gateway) == 0
    assert capture_requests(stripe_api) == []
    [capture] = [op for op in await operations(paid, order["id"]) if op["kind"] == "capture"]
    assert capture["status"] == "expired"
    shown = await get_order(paid, order["id"])
    # The goods left unpaid: an operator (or a new payment) has to settle it.
    assert (shown["status"], shown["attention_reason"]) == ("needs_attention", "authorisation_expired")
    assert shown["payment"]["status"] == "voided"
    assert len(of_type(await events(paid, order["id"]), "payment.expired")) == 1
    assert await sweep(paid, stripe_test_gateway) == authorisation_timers.Swept()
    assert await run_jobs(paid, stripe_test_gateway) == 0
    await money(paid, stripe_api, order["id"])


async def test_a_multicapture_payment_keeps_what_it_captured_and_never_captures_after_expiry(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid, card="pm_card_visa_multicapture")
    await hand_over(paid, staff, fo, quantity=1)
    assert await run_jobs(paid, stripe_test_gateway) == 1
    move_to(paid, deadline(order) - WARNING)
    swept = await sweep(paid, stripe_test_gateway)
    assert (swept.warned, swept.reauthorised) == (1, 0)
    assert await run_jobs(paid, stripe_test_gateway) == 0  # multicapture holds nothing back
    [warned] = of_type(await events(paid, order["id"]), "payment.expiring")
    assert warned["amount"] == 1500

    move_to(paid, deadline(order) + timedelta(seconds=1))
    assert (await sweep(paid, stripe_test_gateway)).expired == 1
    shown = await get_order(paid, order["id"])
    assert (shown["payment"]["status"], shown["payment"]["amount_captured"]) == ("partially_captured", 1500)
    assert shown["attention_reason"] == "authorisation_expired"
    [expired] = of_type(await events(paid, order["id"]), "payment.expired")
    assert expired["amount"] == 1500
    await hand_over_paying(paid, staff, fo, 1500)
    # The lapsed payment is no longer live: the handover queues nothing on it.
    assert [op["status"] for op in await operations(paid, order["id"]) if op["kind"] == "capture"] == ["succeeded"]
    assert await run_jobs(paid, stripe_test_gateway) == 0
    assert len(capture_requests(stripe_api)) == 1
    seen = await money(paid, stripe_api, order["id"])
    assert seen["captured"] == 1500


async def test_after_the_warning_a_partial_pickup_is_captured_at_once_not_held(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await ready_paid_order(paid)
    move_to(paid, deadline(order) - WARNING)
    assert (await sweep(paid, stripe_test_gateway)).warned == 1
    await hand_over(paid, staff, fo, quantity=1)
    # Held, it would still wait for the last part when the authorisation runs out.
    assert await run_jobs(paid, stripe_test_gateway) == 1
    [sent] = capture_requests(stripe_api)
    assert sent.params["amount_to_capture"] == "1500" and "final_capture" not in sent.params
    assert (await money(paid, stripe_api, order["id"]))["captured"] == 1500


async def test_a_held_capture_the_warning_never_reached_expires_with_the_authorisation(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo, quantity=1)
    move_to(paid, deadline(order) + timedelta(minutes=1))  # the worker was down through the warning
    swept = await sweep(paid, stripe_test_gateway)
    assert (swept.warned, swept.expired) == (0, 1)
    [capture] = [op for op in await operations(paid, order["id"]) if op["kind"] == "capture"]
    assert (capture["amount"], capture["status"]) == (1500, "expired")
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["attention_reason"]) == ("needs_attention", "authorisation_expired")
    await hand_over_paying(paid, staff, fo, 3000)  # both units are paid at the counter now
    assert await run_jobs(paid, stripe_test_gateway) == 0
    assert capture_requests(stripe_api) == []
    await money(paid, stripe_api, order["id"])


async def test_a_handover_racing_the_warning_is_captured_once_whichever_goes_first(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo, quantity=1)
    move_to(paid, deadline(order) - WARNING)
    await asyncio.gather(sweep(paid, stripe_test_gateway), hand_over(paid, staff, fo))
    assert await run_jobs(paid, stripe_test_gateway) == 1
    [sent] = capture_requests(stripe_api)
    assert sent.params["amount_to_capture"] == "3000"  # both parts, in one final capture
    seen = await money(paid, stripe_api, order["id"])
    assert seen["captured"] == 3000 and seen["order"]["status"] in ("completed", "needs_attention")
    assert [op["status"] for op in await operations(paid, order["id"]) if op["kind"] == "capture"] == [
        "succeeded",
        "succeeded",
    ]


async def test_a_reauthorisation_overtaken_by_the_last_handover_is_released(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await saved_card_order(paid, stripe_api)
    await hand_over(paid, staff, fo, quantity=1)

    class HandOverWhileStripeAnswers:
        """The gateway, but the rest is handed over while Stripe creates the new authorisation."""

        def __getattr__(self, name):
            return getattr(stripe_test_gateway, name)

        async def authorise(self, request, *, idempotency_key):
            await hand_over(paid, staff, fo)
            return await stripe_test_gateway.authorise(request, idempotency_key=idempotency_key)

    move_to(paid, deadline(order) - WARNING)
    assert (await sweep(paid, HandOverWhileStripeAnswers())).reauthorised == 1
    assert await run_jobs(paid, stripe_test_gateway) == 2  # the final capture of both parts; the void
    [sent] = capture_requests(stripe_api)
    assert sent.params["amount_to_capture"] == "3000"
    seen = await money(paid, stripe_api, order["id"])
    assert [(p["status"], p["amount_captured"]) for p in seen["cards"]] == [("captured", 3000), ("voided", 0)]
    assert stripe_api.ledger.intent(seen["cards"][1]["external_id"])["status"] == "canceled"
