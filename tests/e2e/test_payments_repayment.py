"""Paying an order again (``POST /v1/orders/{id}/payments``) and keeping the card for later
off-session charges (``setup_future_usage`` per channel), over HTTP against the Stripe-shaped
test server.

An authorisation lapsing is another module's timer; here it is set up as that timer leaves it: the
PaymentIntent cancelled at Stripe, the payment ``voided`` with an ``expire`` operation, the order
``needs_attention`` for ``authorisation_expired``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from orchestrator.payments.gateway import AuthoriseRequest, IntentStatus, PaymentRequestRefused
from tests.e2e.conftest import Shop, stripe_shop
from tests.e2e.support import assert_problem, events, get_order, on_hand_reserved
from tests.e2e.test_payments_capture import capture_requests, hand_over, money, ready_paid_order, run_jobs


def creates(stripe_api) -> list:
    return [r for r in stripe_api.state.requests if r.method == "POST" and r.path == "/v1/payment_intents"]


def customer_creates(stripe_api) -> list:
    return [r for r in stripe_api.state.requests if r.method == "POST" and r.path == "/v1/customers"]


async def pay_again(shop: Shop, order_id: str, payment: dict, *, key: str, headers: dict | None = None):
    h = {**(headers or await shop.channel()), "Idempotency-Key": key}
    shop.clock.advance(timedelta(minutes=1))  # each payment newer than the one before
    return await shop.client.post(f"/v1/orders/{order_id}/payments", json=payment, headers=h)


async def lapse(shop: Shop, stripe_api, order: dict, *, captured: int = 0) -> None:
    """The authorisation lapsed, as the expiry timer records it (``captured``: what it took first)."""
    intent_id = order["payment"]["external_id"]
    shop.clock.advance(timedelta(minutes=1))
    if captured:
        stripe_api.ledger.capture(intent_id, {"amount_to_capture": str(captured)})
    else:
        stripe_api.ledger.cancel(intent_id, {"cancellation_reason": "automatic"})
    async with shop.db.unit_of_work() as uow:
        s = uow.session
        params = {"p": order["payment"]["id"], "o": order["id"], "c": captured, "now": shop.clock.now()}
        await s.execute(
            text(
                "UPDATE payments SET status = CASE WHEN :c > 0 THEN 'captured' ELSE 'voided' END, "
                "amount_captured = :c WHERE id = :p"
            ),
            params,
        )
        await s.execute(
            text(
                "INSERT INTO payment_operations (id, payment_id, kind, amount, status, reason, occurred_at) "
                "SELECT gen_random_uuid(), :p, 'expire', amount_authorised - :c, 'succeeded', 'capture_before', :now "
                "FROM payments WHERE id = :p"
            ),
            params,
        )
        await s.execute(
            text(
                "UPDATE orders SET status = 'needs_attention', attention_reason = 'authorisation_expired' WHERE id = :o"
            ),
            params,
        )
        await uow.commit()


# --- setup_future_usage per channel -------------------------------------------------------------


async def test_a_web_order_keeps_its_card_for_off_session_charges_and_a_marketplace_order_does_not(
    paid, stripe_api, stripe_test_gateway
):
    order, _, _ = await ready_paid_order(paid)
    [sent] = creates(stripe_api)
    assert sent.params["setup_future_usage"] == "off_session" and "off_session" not in sent.params
    # Stripe keeps a method only on a Customer: the service made one first, under the
    # authorisation's own key, and the PaymentIntent names it.
    [made] = customer_creates(stripe_api)
    assert made.idempotency_key == f"{sent.idempotency_key}:customer"
    assert made.params == {"metadata": {"order_id": order["id"]}}
    [customer] = stripe_api.ledger.customers
    assert sent.params["customer"] == customer
    intent = stripe_api.ledger.intent(order["payment"]["external_id"])
    assert (intent["setup_future_usage"], intent["customer"]) == ("off_session", customer)
    # What Stripe answers is what a later off-session charge needs: the method and the customer.
    state = await stripe_test_gateway.retrieve(intent["id"])
    assert state.payment_method == intent["payment_method"] and state.customer == customer
    assert stripe_api.ledger.methods[state.payment_method]["customer"] == customer  # attached
    later = await stripe_test_gateway.authorise(
        AuthoriseRequest(
            amount=700,
            currency="EUR",
            payment_method=state.payment_method,
            customer=state.customer,
            off_session=True,
        ),
        idempotency_key="a-later-difference",
    )
    assert later.status is IntentStatus.REQUIRES_CAPTURE
    off = creates(stripe_api)[-1]
    assert off.params["off_session"] == "true" and "setup_future_usage" not in off.params
    assert off.params["customer"] == customer and len(customer_creates(stripe_api)) == 1
    # Without its customer the saved method is refused, as Stripe refuses it.
    with pytest.raises(PaymentRequestRefused, match="belongs to the Customer"):
        await stripe_test_gateway.authorise(
            AuthoriseRequest(amount=700, currency="EUR", payment_method=state.payment_method, off_session=True),
            idempotency_key="without-the-customer",
        )

    body = {
        **paid.order_body([("A", 1)], price=1250),
        "payment": {"provider": "stripe", "payment_method": "pm_card_visa"},
    }
    r = await paid.place(body, headers=await paid.channel("marketplace:shopify"))
    assert r.status_code == 201, r.text
    sent = creates(stripe_api)[-1]
    assert "setup_future_usage" not in sent.params and "customer" not in sent.params
    assert stripe_api.ledger.intent(r.json()["payment"]["external_id"])["setup_future_usage"] is None
    assert len(customer_creates(stripe_api)) == 1  # none for the marketplace order


async def test_a_retried_saving_authorisation_makes_one_customer(stripe_test_gateway, stripe_api):
    request = AuthoriseRequest(
        amount=1200,
        currency="EUR",
        payment_method="pm_card_visa",
        save_method=True,
        customer_reference="c-42",
        metadata={"order_id": "o-1"},
    )
    first = await stripe_test_gateway.authorise(request, idempotency_key="order:o-1:authorise:a")
    again = await stripe_test_gateway.authorise(request, idempotency_key="order:o-1:authorise:a")
    assert again == first and first.customer is not None
    [customer] = stripe_api.ledger.customers.values()
    assert (customer["id"], customer["object"]) == (first.customer, "customer")
    assert customer["metadata"] == {"order_id": "o-1", "customer_id": "c-42"}
    assert [r.status for r in customer_creates(stripe_api)] == [200, 200]  # the second replayed
    assert len(stripe_api.ledger.intents) == 1
    # A customer the caller names is used as it is: nothing new is made for it.
    named = AuthoriseRequest(
        amount=500, currency="EUR", payment_method="pm_card_visa", customer=first.customer, save_method=True
    )
    assert (await stripe_test_gateway.authorise(named, idempotency_key="k-named")).customer == first.customer
    assert len(stripe_api.ledger.customers) == 1


async def test_the_stripe_server_refuses_a_spent_or_foreign_payment_method(stripe_api):
    from tests.stripe_server.ledger import StripeFailure

    ledger = stripe_api.ledger
    base = {"amount": "100", "currency": "eur", "capture_method": "manual", "confirm": "true"}
    spent = ledger.create_intent({**base, "payment_method": "pm_card_visa", "setup_future_usage": "off_session"})
    ann, bob = ledger.create_customer({})["id"], ledger.create_customer({})["id"]
    kept = ledger.create_intent(
        {**base, "payment_method": "pm_card_visa", "customer": ann, "setup_future_usage": "off_session"}
    )
    refusals = [
        ({"payment_method": spent["payment_method"], "off_session": "true"}, "previously used with a PaymentIntent"),
        ({"payment_method": spent["payment_method"], "customer": ann, "off_session": "true"}, "previously used"),
        ({"payment_method": kept["payment_method"], "off_session": "true"}, f"belongs to the Customer {ann}"),
        ({"payment_method": kept["payment_method"], "customer": bob}, "does not have a payment method"),
        ({"payment_method": "pm_card_visa", "customer": "cus_nobody"}, "No such customer"),
    ]
    for params, message in refusals:
        with pytest.raises(StripeFailure) as refused:
            ledger.create_intent({**base, **params})
        assert refused.value.status == 400 and refused.value.error["type"] == "invalid_request_error"
        assert message in refused.value.error["message"]
    again = ledger.create_intent(
        {**base, "payment_method": kept["payment_method"], "customer": ann, "off_session": "true"}
    )
    assert again["status"] == "requires_capture"


async def test_the_channels_that_keep_a_card_are_a_setting(database_url, redis_url, db, redis, clock, stripe_api):
    async with stripe_shop(
        database_url, redis_url, db, redis, clock, stripe_api, payment_save_method_channels=["kiosk"]
    ) as shop:
        for channel, saved in (("web", False), ("kiosk", True)):
            body = {**shop.order_body([("A", 1)]), "payment": {"provider": "stripe", "payment_method": "pm_card_visa"}}
            r = await shop.place(body, headers=await shop.channel(channel))
            assert r.status_code == 201, r.text
            assert ("setup_future_usage" in creates(stripe_api)[-1].params) is saved
            assert ("customer" in creates(stripe_api)[-1].params) is saved


async def test_the_stripe_server_refuses_an_unknown_setup_future_usage(stripe_test_gateway, stripe_api):
    from tests.stripe_server.ledger import StripeFailure

    with pytest.raises(StripeFailure) as refused:
        stripe_api.ledger.create_intent({"amount": "100", "currency": "eur", "setup_future_usage": "always"})
    assert refused.value.error["param"] == "setup_future_usage"


# --- re-payment ---------------------------------------------------------------------------------


async def test_a_lapsed_authorisation_is_paid_again_and_the_handover_captures_the_new_payment(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid)
    await lapse(paid, stripe_api, order)
    lapsed = await get_order(paid, order["id"])
    assert (lapsed["status"], lapsed["attention_reason"]) == ("needs_attention", "authorisation_expired")

    r = await pay_again(paid, order["id"], {"provider": "stripe", "payment_method": "pm_card_mastercard"}, key="k1")
    assert r.status_code == 201, r.text
    again = r.json()
    assert (again["status"], again["attention_reason"]) == ("ready_for_pickup", None)
    payment = again["payment"]
    assert (payment["status"], payment["amount_authorised"]) == ("authorised", 3000)
    assert payment["id"] != order["payment"]["id"] and payment["external_id"] != order["payment"]["external_id"]
    assert r.headers["ETag"] == f'"{again["version"]}"'
    sent = creates(stripe_api)[-1]
    assert sent.params["amount"] == "3000" and sent.params["setup_future_usage"] == "off_session"
    prefix = f"order:{order['id']}:authorise:"
    assert sent.idempotency_key.startswith(prefix) and sent.idempotency_key != prefix + "-"
    assert await get_order(paid, order["id"]) == {**again, "payment": {**payment}}
    types = [e["type"] for e in await events(paid, order["id"])]
    assert types[-2:] == ["payment.authorised", "order.status_changed"]

    await hand_over(paid, staff, fo)
    assert await run_jobs(paid, stripe_test_gateway) == 1
    [capture] = capture_requests(stripe_api)
    assert capture.path == f"/v1/payment_intents/{payment['external_id']}/capture"
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 3000)
    assert stripe_api.ledger.intent(order["payment"]["external_id"])["amount_received"] == 0


async def test_only_what_is_still_due_is_authorised_again(paid, stripe_api):
    order, _, _ = await ready_paid_order(paid)
    await lapse(paid, stripe_api, order, captured=1000)
    r = await pay_again(paid, order["id"], {"provider": "stripe", "payment_method": "pm_card_visa"}, key="k1")
    assert r.status_code == 201, r.text
    assert r.json()["payment"]["amount_authorised"] == 2000
    assert creates(stripe_api)[-1].params["amount"] == "2000"
    async with paid.db.unit_of_work() as uow:
        await uow.session.execute(
            text("UPDATE payments SET status = 'voided' WHERE id = :p"), {"p": r.json()["payment"]["id"]}
        )
        await uow.session.execute(
            text("UPDATE payments SET amount_captured = amount_authorised WHERE id = :p"), {"p": order["payment"]["id"]}
        )
        await uow.commit()
    done = await pay_again(paid, order["id"], {"provider": "stripe", "payment_method": "pm_card_visa"}, key="k2")
    assert assert_problem(done, 422, "nothing-due")["context"]["paid"] == 3000


async def test_an_order_whose_authorisation_is_live_is_not_paid_twice(paid, stripe_api):
    order, _, _ = await ready_paid_order(paid)
    r = await pay_again(paid, order["id"], {"provider": "stripe", "payment_method": "pm_card_visa"}, key="k1")
    assert_problem(r, 409, "payment-exists")
    assert len(creates(stripe_api)) == 1
    mp = {**paid.order_body([("A", 1)]), "payment": {"provider": "marketplace", "reference": "mp-1"}}
    collected = (await paid.place(mp, headers=await paid.channel("marketplace:shopify"))).json()
    h = await paid.channel("marketplace:shopify")
    assert_problem(await pay_again(paid, collected["id"], {"provider": "pos"}, key="k2", headers=h), 422, "nothing-due")


async def test_a_declined_repayment_is_402_and_leaves_the_order_waiting(paid, stripe_api):
    order, _, _ = await ready_paid_order(paid)
    await lapse(paid, stripe_api, order)
    stock = await on_hand_reserved(paid, "S1", "A")
    card = {"provider": "stripe", "payment_method": "pm_card_chargeDeclinedInsufficientFunds"}
    r = await pay_again(paid, order["id"], card, key="k1")
    problem = assert_problem(r, 402, "payment-declined")
    assert problem["context"]["decline_code"] == "insufficient_funds"
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["attention_reason"]) == ("needs_attention", "authorisation_expired")
    assert shown["payment"]["status"] == "failed"
    assert await on_hand_reserved(paid, "S1", "A") == stock  # the goods still wait for the customer
    replay = await pay_again(paid, order["id"], card, key="k1")
    assert replay.status_code == 402 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == r.content and len(creates(stripe_api)) == 2

    r = await pay_again(paid, order["id"], {"provider": "stripe", "payment_method": "pm_card_visa"}, key="k2")
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["payment"]["status"]) == ("ready_for_pickup", "authorised")


async def test_a_repeated_repayment_replays_its_answer_and_authorises_once(paid, stripe_api):
    order, _, _ = await ready_paid_order(paid)
    await lapse(paid, stripe_api, order)
    card = {"provider": "stripe", "payment_method": "pm_card_visa"}
    first = await pay_again(paid, order["id"], card, key="k1")
    again = await pay_again(paid, order["id"], card, key="k1")
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and len(creates(stripe_api)) == 2
    other = await pay_again(paid, order["id"], {"provider": "pos"}, key="k1")
    assert_problem(other, 422, "idempotency-key-reused")


async def test_two_racing_repayments_leave_one_live_authorisation(paid, stripe_api, stripe_test_gateway):
    order, _, _ = await ready_paid_order(paid)
    await lapse(paid, stripe_api, order)
    card = {"provider": "stripe", "payment_method": "pm_card_visa"}
    answers = await asyncio.gather(*(pay_again(paid, order["id"], card, key=f"race-{i}") for i in range(2)))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    await run_jobs(paid, stripe_test_gateway)
    held = [i for i in stripe_api.ledger.intents.values() if i["status"] == "requires_capture"]
    [winner] = [a.json() for a in answers if a.status_code == 201]
    assert [i["id"] for i in held] == [winner["payment"]["external_id"]]


async def test_a_payment_waiting_for_3d_secure_is_replaced_by_another_card(paid, stripe_api, stripe_test_gateway):
    body = {**paid.order_body([("A", 2)], price=1250), "shipping_total": 500}
    three_ds = {"provider": "stripe", "payment_method": "pm_card_authenticationRequired"}
    r = await paid.place({**body, "payment": three_ds})
    assert r.status_code == 201 and r.json()["status"] == "pending_payment", r.text
    order = r.json()
    r = await pay_again(paid, order["id"], {"provider": "stripe", "payment_method": "pm_card_visa"}, key="k1")
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["payment"]["status"]) == ("received", "authorised")
    # The abandoned PaymentIntent is released, so finishing it later can hold nothing.
    assert await run_jobs(paid, stripe_test_gateway) == 1
    assert stripe_api.ledger.intent(order["payment"]["external_id"])["status"] == "canceled"
    assert stripe_api.ledger.intent(r.json()["payment"]["external_id"])["status"] == "requires_capture"


async def test_a_lapsed_order_may_be_paid_at_the_counter_instead(paid, stripe_api):
    order, _, _ = await ready_paid_order(paid)
    await lapse(paid, stripe_api, order, captured=1000)
    r = await pay_again(paid, order["id"], {"provider": "pos"}, key="k1")
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["attention_reason"]) == ("ready_for_pickup", None)
    assert (r.json()["payment"]["provider"], r.json()["payment"]["status"]) == ("pos", "pending")
    assert len(creates(stripe_api)) == 1
    again = await pay_again(paid, order["id"], {"provider": "pos"}, key="k1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == r.json()


async def test_a_channel_pays_again_only_its_own_orders(paid, stripe_api):
    order, _, _ = await ready_paid_order(paid)
    await lapse(paid, stripe_api, order)
    card = {"provider": "stripe", "payment_method": "pm_card_visa"}
    assert_problem(
        await pay_again(paid, order["id"], card, key="k1", headers=await paid.channel("app")), 404, "not-found"
    )
    r = await pay_again(paid, order["id"], card, key="k1", headers=await paid.staff("S1"))
    assert r.status_code == 403, r.text
    r = await pay_again(paid, order["id"], card, key="k1", headers=paid.admin)
    assert r.status_code == 201, r.text
    assert_problem(await pay_again(paid, order["id"], {"provider": "stripe"}, key="k3"), 422, "invalid-request")
