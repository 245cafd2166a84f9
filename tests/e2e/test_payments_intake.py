"""Payment at intake over HTTP, the app's Stripe pointed at the Stripe-shaped test server: card
authorised, PaymentIntent verified, declined (402, stock released, reference freed), 3-D Secure
(pending_payment, no store sees it), pay in store, marketplace, required payments, no key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.payments.gateway import AuthoriseRequest, IntentStatus
from tests.e2e.conftest import Shop, stripe_shop
from tests.e2e.support import assert_problem, events, get_order, on_hand_reserved

REQUIRED = "kiosk"


@pytest.fixture
async def paid(database_url, redis_url, db, redis, clock, stripe_api) -> AsyncIterator[Shop]:
    """The app with a Stripe key, required payments for ``REQUIRED``; pickup store S1 with 10 of A."""
    async with stripe_shop(
        database_url, redis_url, db, redis, clock, stripe_api, payment_required_channels=[REQUIRED]
    ) as shop:
        yield shop


def with_payment(shop: Shop, payment: dict, *, ref: str | None = None, quantity: int = 2) -> dict:
    body = shop.order_body([("A", quantity)], price=1250, ref=ref)
    return {**body, "shipping_total": 500, "payment": payment}  # total 3000


async def queue_of(shop: Shop, code: str = "S1") -> list[dict]:
    r = await shop.client.get(f"/v1/locations/{code}/fulfillments", headers=await shop.staff(code))
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def operations(shop: Shop, order_id: str) -> list[dict]:
    r = await shop.client.get(f"/v1/orders/{order_id}/payments", headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_payment_method_is_authorised_for_the_total_and_the_order_goes_to_the_store(paid, stripe_api):
    r = await paid.place(with_payment(paid, {"provider": "stripe", "payment_method": "pm_card_visa"}))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "received"
    payment = order["payment"]
    assert (payment["provider"], payment["status"]) == ("stripe", "authorised")
    assert (payment["amount_authorised"], payment["amount_captured"], payment["amount_refunded"]) == (3000, 0, 0)
    assert payment["capture_before"] is not None and payment["client_secret"] is None
    assert payment["external_id"].startswith("pi_")
    shown = await get_order(paid, order["id"])
    assert shown["payment"] == payment and shown["version"] == order["version"]
    [op] = await operations(paid, order["id"])
    assert (op["kind"], op["amount"], op["status"]) == ("authorise", 3000, "requires_capture")
    types = [e["type"] for e in await events(paid, order["id"])]
    assert types[-2:] == ["payment.authorised", "order.status_changed"]
    assert [fo["order_number"] for fo in await queue_of(paid)] == [order["number"]]
    assert await on_hand_reserved(paid, "S1", "A") == (10, 2)


async def test_a_confirmed_payment_intent_is_verified_and_a_mismatched_one_refused(paid, stripe_test_gateway) -> None:
    held = await stripe_test_gateway.authorise(
        AuthoriseRequest(amount=3000, currency="EUR", payment_method="pm_card_visa"), idempotency_key="storefront-1"
    )
    assert held.status is IntentStatus.REQUIRES_CAPTURE
    r = await paid.place(with_payment(paid, {"provider": "stripe", "payment_intent": held.intent_id}))
    assert r.status_code == 201, r.text
    assert r.json()["payment"]["status"] == "authorised"
    assert r.json()["payment"]["external_id"] == held.intent_id

    short = await stripe_test_gateway.authorise(
        AuthoriseRequest(amount=2999, currency="EUR", payment_method="pm_card_visa"), idempotency_key="storefront-2"
    )
    body = with_payment(paid, {"provider": "stripe", "payment_intent": short.intent_id})
    problem = assert_problem(await paid.place(body), 422, "payment-intent-mismatch")
    assert problem["context"]["reason"] == "amount"
    assert await on_hand_reserved(paid, "S1", "A") == (10, 2)  # only the verified order holds stock

    # One PaymentIntent pays one order; one Stripe never heard of pays none.
    again = with_payment(paid, {"provider": "stripe", "payment_intent": held.intent_id})
    assert (
        assert_problem(await paid.place(again), 422, "payment-intent-mismatch")["context"]["reason"] == "already_used"
    )
    unknown = with_payment(paid, {"provider": "stripe", "payment_intent": "pi_unknown"})
    assert assert_problem(await paid.place(unknown), 422, "payment-intent-mismatch")["context"]["reason"] == "not_found"
    assert await on_hand_reserved(paid, "S1", "A") == (10, 2)


async def test_a_decline_is_402_releases_the_stock_cancels_the_order_and_frees_its_reference(paid):
    declined = with_payment(
        paid, {"provider": "stripe", "payment_method": "pm_card_chargeDeclinedInsufficientFunds"}, ref="shop-42"
    )
    first = await paid.place(declined, key="pay-42")
    problem = assert_problem(first, 402, "payment-declined")
    assert (problem["context"]["code"], problem["context"]["decline_code"]) == ("card_declined", "insufficient_funds")
    assert await on_hand_reserved(paid, "S1", "A") == (10, 0)
    listed = (await paid.client.get("/v1/orders", headers=paid.admin)).json()["items"]
    [failed] = listed
    assert failed["status"] == "cancelled" and failed["payment"]["status"] == "failed"
    cancelled = [e for e in await events(paid, failed["id"]) if e["type"] == "order.cancelled"]
    assert [e["data"]["reason"] for e in cancelled] == ["payment_failed"]
    failure = next(e for e in await events(paid, failed["id"]) if e["type"] == "payment.failed")
    assert failure["data"]["decline_code"] == "insufficient_funds"
    [op] = await operations(paid, failed["id"])
    assert (op["kind"], op["error_code"], op["decline_code"]) == ("fail", "card_declined", "insufficient_funds")

    replay = await paid.place(declined, key="pay-42")
    assert replay.status_code == 402 and replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"

    retry = with_payment(paid, {"provider": "stripe", "payment_method": "pm_card_visa"}, ref="shop-42")
    again = await paid.place(retry, key="pay-42-b")
    assert again.status_code == 201, again.text
    assert again.json()["channel_order_ref"] == "shop-42" and again.json()["id"] != failed["id"]
    assert await on_hand_reserved(paid, "S1", "A") == (10, 2)
    # The paid order holds the reference now: the same reference again is that order.
    same = await paid.place(retry, key="pay-42-c")
    assert same.status_code == 200 and same.json()["id"] == again.json()["id"]


async def test_3d_secure_answers_pending_payment_with_the_client_secret_and_no_store_sees_it(paid):
    body = with_payment(paid, {"provider": "stripe", "payment_method": "pm_card_threeDSecure2Required"})
    r = await paid.place(body, key="3ds")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "pending_payment"
    assert order["payment"]["status"] == "pending" and order["payment"]["client_secret"]
    assert await queue_of(paid) == []
    assert await on_hand_reserved(paid, "S1", "A") == (10, 2)  # the reservation holds
    shown = await get_order(paid, order["id"])
    assert shown["status"] == "pending_payment" and shown["payment"]["client_secret"] is None
    replay = await paid.place(body, key="3ds")
    assert replay.status_code == 201 and replay.json()["payment"]["client_secret"] is None  # never stored
    [op] = await operations(paid, order["id"])
    assert (op["kind"], op["status"]) == ("authorise", "requires_action")
    # A change that moves no fulfillment leaves it waiting for its payment.
    arrived = await paid.client.post(f"/v1/orders/{order['id']}/arrival", json={}, headers=await paid.channel())
    assert arrived.status_code == 200, arrived.text
    assert (await get_order(paid, order["id"]))["status"] == "pending_payment"
    assert await queue_of(paid) == []


async def test_pay_in_store_and_marketplace_payments_need_no_processor(paid, stripe_api):
    pos = await paid.place(with_payment(paid, {"provider": "pos"}))
    assert pos.status_code == 201, pos.text
    assert (pos.json()["payment"]["provider"], pos.json()["payment"]["status"]) == ("pos", "pending")
    assert pos.json()["status"] == "received"
    market = await paid.place(with_payment(paid, {"provider": "marketplace", "reference": "AMZ-1"}))
    assert market.status_code == 201, market.text
    payment = market.json()["payment"]
    assert (payment["provider"], payment["status"], payment["external_id"]) == ("marketplace", "captured", "AMZ-1")
    assert (payment["amount_authorised"], payment["amount_captured"]) == (3000, 3000)
    assert (await get_order(paid, market.json()["id"]))["payment"] == payment
    assert await on_hand_reserved(paid, "S1", "A") == (10, 4)
    assert len(await queue_of(paid)) == 2
    unnamed = await paid.place(with_payment(paid, {"provider": "marketplace"}))
    no_reference = assert_problem(unnamed, 422, "invalid-request")
    assert no_reference["errors"][0]["field"] == "payment.reference"


async def test_a_channel_that_must_carry_a_payment_is_refused_without_one(paid):
    headers = await paid.channel(REQUIRED)
    body = paid.order_body([("A", 1)])
    problem = assert_problem(await paid.place(body, headers=headers), 422, "payment-required")
    assert problem["errors"][0]["field"] == "payment"
    assert (await paid.place({**body, "payment": {"provider": "pos"}}, headers=headers)).status_code == 201
    assert (await paid.place(paid.order_body([("A", 1)]))).status_code == 201  # other channels: pay later
    assert await on_hand_reserved(paid, "S1", "A") == (10, 2)


async def test_without_a_stripe_key_a_stripe_payment_is_422_and_nothing_is_reserved(store):
    body = store.order_body([("A", 1)])
    problem = assert_problem(
        await store.place({**body, "payment": {"provider": "stripe", "payment_method": "pm_card_visa"}}),
        422,
        "payments-not-configured",
    )
    assert problem["errors"][0]["field"] == "payment.provider"
    assert await on_hand_reserved(store, "S1", "A") == (10, 0)
    r = await store.place(body)
    assert r.status_code == 201 and r.json()["payment"] is None
