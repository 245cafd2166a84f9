"""Issue 9 — Stripe webhooks: ``POST /v1/webhooks/stripe`` over HTTP, deliveries signed by hand the
way Stripe documents (``tests/stripe_server/webhooks.py``), carrying the events the Stripe-shaped
server emitted as it moved the money (or built like them, ``tests/stripe_server/objects.py``).

Signature valid / wrong / tampered / expired / missing → 400 and nothing stored; a delivery
twice → applied once; out of order → never rolled back; 3-D Secure finished → the order goes to
the store; a refund or a capture made in Stripe's dashboard → recorded; a dispute → attention.
Money invariants checked after every step that moves money."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from orchestrator.app import create_app
from orchestrator.payments import captures
from tests.e2e.conftest import Shop, serving, settings_for, stripe_shop
from tests.e2e.support import act, assert_problem, events, get_order, on_hand_reserved
from tests.e2e.test_payments_capture import hand_over, ready_paid_order, run_jobs
from tests.e2e.test_payments_intake import operations, queue_of, with_payment
from tests.stripe_server.fixtures import API_KEY, WEBHOOK_SECRET
from tests.stripe_server.objects import dispute, event
from tests.stripe_server.webhooks import deliver_async, emitted, signature_header

URL = "/v1/webhooks/stripe"
THREE_DS = {"provider": "stripe", "payment_method": "pm_card_threeDSecure2Required"}


@pytest.fixture
async def paid(database_url, redis_url, db, redis, clock, stripe_api) -> AsyncIterator[Shop]:
    async with stripe_shop(
        database_url, redis_url, db, redis, clock, stripe_api, stripe_webhook_secret=WEBHOOK_SECRET
    ) as shop:
        yield shop


@pytest.fixture
def stripe_time(stripe_api):
    """The test server's clock (seconds), moved by the test: events get distinct ``created``."""
    now = [int(time.time()) - 60]
    stripe_api.ledger.clock = lambda: now[0]

    def advance(seconds: int = 1) -> int:
        now[0] += seconds
        return now[0]

    return advance


async def send(shop: Shop, payload: dict | bytes, **kwargs: Any) -> dict:
    r = await deliver_async(shop.client, URL, payload, WEBHOOK_SECRET, **kwargs)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["received"] is True
    return answer


def last(stripe_api, event_type: str, intent_id: str) -> dict:
    return emitted(stripe_api.ledger.events, event_type, intent_id)[-1]


async def stored(shop: Shop) -> list[tuple[str, str]]:
    async with shop.db.unit_of_work() as uow:
        rows = await uow.session.execute(text("SELECT id, outcome FROM stripe_events ORDER BY received_at, id"))
        return [tuple(row) for row in rows.all()]


async def money(shop: Shop, stripe_api, order_id: str) -> dict:
    """The payment as shown, against Stripe's ledger: captured ≤ authorised, refunded ≤ captured,
    Stripe holds what we recorded as captured and gave back what we recorded as refunded."""
    shown = await get_order(shop, order_id)
    payment = shown["payment"]
    assert 0 <= payment["amount_refunded"] <= payment["amount_captured"] <= payment["amount_authorised"]
    intent = stripe_api.ledger.intent(payment["external_id"])
    assert intent["amount_received"] == payment["amount_captured"]
    refunds = [r["amount"] for r in stripe_api.ledger.refunds.values() if r["payment_intent"] == intent["id"]]
    assert sum(refunds) == payment["amount_refunded"]
    return shown


async def snapshot(shop: Shop, order_id: str) -> tuple:
    return await get_order(shop, order_id), await events(shop, order_id), await operations(shop, order_id)


async def pending_order(shop: Shop) -> tuple[dict, str]:
    order = (await shop.place(with_payment(shop, THREE_DS))).json()
    assert order["status"] == "pending_payment"
    return order, order["payment"]["external_id"]


# --- authenticity ---------------------------------------------------------------------------------


async def test_a_wrong_tampered_expired_or_missing_signature_is_refused_and_nothing_is_stored(paid, stripe_api):
    order, intent_id = await pending_order(paid)
    stripe_api.ledger.complete_authentication(intent_id)
    payload = last(stripe_api, "payment_intent.amount_capturable_updated", intent_id)
    body = b'{"id": "evt_forged", "object": "event"}'
    refusals = [
        await deliver_async(paid.client, URL, payload, "whsec_someone_else"),
        await deliver_async(
            paid.client, URL, payload, WEBHOOK_SECRET, signature=signature_header(body, WEBHOOK_SECRET)
        ),
        await deliver_async(paid.client, URL, payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 301),
        await deliver_async(paid.client, URL, payload, WEBHOOK_SECRET, signature="t=1,v0=abc"),
        await paid.client.post(URL, json=payload),  # no Stripe-Signature at all
    ]
    for r in refusals:
        assert_problem(r, 400, "webhook-signature-invalid")
    assert await stored(paid) == []
    assert (await get_order(paid, order["id"]))["status"] == "pending_payment"
    # Signed a little while ago (inside the 300 s tolerance) is Stripe retrying: taken.
    answer = await send(paid, payload, timestamp=int(time.time()) - 240)
    assert answer["outcome"] == "applied"


async def test_signed_bodies_that_are_not_events_are_400_and_no_secret_is_422(
    paid, database_url, redis_url, db, redis, clock, stripe_api
):
    r = await deliver_async(paid.client, URL, b'{"id": "evt_1", "object": "event", ', WEBHOOK_SECRET)
    assert_problem(r, 400, "malformed-request")
    r = await deliver_async(paid.client, URL, {"id": "evt_1", "object": "event", "type": "x"}, WEBHOOK_SECRET)
    assert_problem(r, 400, "malformed-request")
    assert await stored(paid) == []
    settings = settings_for(database_url, redis_url, stripe_api_key=API_KEY, stripe_api_base=stripe_api.url)
    async with serving(create_app(settings, db=db, redis=redis, clock=clock)) as unconfigured:
        r = await deliver_async(unconfigured, URL, event("charge.refunded", {"id": "ch_1"}), WEBHOOK_SECRET)
        assert_problem(r, 422, "payments-not-configured")


# --- 3-D Secure -----------------------------------------------------------------------------------


async def test_3d_secure_finished_is_authorised_by_the_webhook_once_and_the_order_reaches_the_store(paid, stripe_api):
    order, intent_id = await pending_order(paid)
    required = last(stripe_api, "payment_intent.requires_action", intent_id)
    assert (await send(paid, required))["outcome"] == "received"
    stripe_api.ledger.complete_authentication(intent_id)
    capturable = last(stripe_api, "payment_intent.amount_capturable_updated", intent_id)

    answer = await send(paid, capturable)
    assert (answer["outcome"], answer["duplicate"], answer["id"]) == ("applied", False, capturable["id"])
    shown = await money(paid, stripe_api, order["id"])
    assert shown["status"] == "received"
    payment = shown["payment"]
    assert (payment["status"], payment["amount_authorised"], payment["amount_captured"]) == ("authorised", 3000, 0)
    assert payment["capture_before"] is not None
    assert [fo["order_number"] for fo in await queue_of(paid)] == [order["number"]]
    assert [e["type"] for e in await events(paid, order["id"])][-2:] == ["payment.authorised", "order.status_changed"]

    before = await snapshot(paid, order["id"])
    again = await send(paid, capturable)  # Stripe delivers it again
    assert (again["duplicate"], again["outcome"]) == (True, None)
    assert await snapshot(paid, order["id"]) == before
    assert sorted(await stored(paid)) == sorted([(required["id"], "received"), (capturable["id"], "applied")])


async def test_a_failed_3d_secure_attempt_is_recorded_and_the_order_keeps_waiting(paid, stripe_api):
    order, intent_id = await pending_order(paid)
    stripe_api.ledger.complete_authentication(intent_id, succeed=False)
    paid.clock.advance(timedelta(seconds=30))
    failed_event = last(stripe_api, "payment_intent.payment_failed", intent_id)
    # Delivered twice at once (Stripe retrying a slow answer): applied by one, a duplicate to the other.
    answers = await asyncio.gather(send(paid, failed_event), send(paid, failed_event))
    assert sorted((a["duplicate"], a["outcome"]) for a in answers) == [(False, "applied"), (True, None)]
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["payment"]["status"]) == ("pending_payment", "pending")
    [failed] = [e for e in await events(paid, order["id"]) if e["type"] == "payment.failed"]
    assert (failed["data"]["code"], failed["data"]["external_id"]) == ("authentication_required", intent_id)
    kinds = [(op["kind"], op["status"], op["error_code"]) for op in await operations(paid, order["id"])]
    assert kinds[1:] == [("fail", "requires_payment_method", "authentication_required")]
    before = await snapshot(paid, order["id"])
    assert (await send(paid, last(stripe_api, "payment_intent.payment_failed", intent_id)))["duplicate"] is True
    assert await snapshot(paid, order["id"]) == before  # one failed attempt, recorded once
    assert await on_hand_reserved(paid, "S1", "A") == (10, 2)  # held until the payment timeout


async def test_a_pending_payment_cancelled_in_stripe_cancels_the_order_and_releases_the_stock(paid, stripe_api):
    order, intent_id = await pending_order(paid)
    stripe_api.ledger.cancel(intent_id, {})
    assert (await send(paid, last(stripe_api, "payment_intent.canceled", intent_id)))["outcome"] == "applied"
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["payment"]["status"]) == ("cancelled", "failed")
    assert await on_hand_reserved(paid, "S1", "A") == (10, 0)
    timeline = await events(paid, order["id"])
    assert [e["data"]["reason"] for e in timeline if e["type"] == "order.cancelled"] == ["payment_canceled"]
    assert [e["data"]["code"] for e in timeline if e["type"] == "payment.failed"] == ["payment_canceled"]
    again = await paid.place(with_payment(paid, THREE_DS, ref=shown["channel_order_ref"]))
    assert again.status_code == 201 and again.json()["id"] != order["id"]  # its reference is free


async def test_an_intent_for_another_amount_does_not_authorise_the_order(paid, stripe_api):
    order, intent_id = await pending_order(paid)
    stripe_api.ledger.complete_authentication(intent_id)
    forged = last(stripe_api, "payment_intent.amount_capturable_updated", intent_id)
    forged = event(forged["type"], {**forged["data"]["object"], "amount": 100, "amount_capturable": 100})
    assert (await send(paid, forged))["outcome"] == "ignored_mismatch"
    assert (await get_order(paid, order["id"]))["status"] == "pending_payment"


# --- out of order ---------------------------------------------------------------------------------


async def test_events_out_of_order_never_roll_the_payment_back(paid, stripe_api, stripe_time):
    order, intent_id = await pending_order(paid)
    stripe_time()
    stripe_api.ledger.complete_authentication(intent_id)
    stripe_time()
    stripe_api.ledger.capture(intent_id, {})  # captured in Stripe's dashboard, all of it
    capturable = last(stripe_api, "payment_intent.amount_capturable_updated", intent_id)
    succeeded = last(stripe_api, "payment_intent.succeeded", intent_id)
    assert capturable["created"] < succeeded["created"]

    assert (await send(paid, succeeded))["outcome"] == "applied"  # the newer one first
    shown = await money(paid, stripe_api, order["id"])
    assert shown["status"] == "received"
    assert (shown["payment"]["status"], shown["payment"]["amount_captured"]) == ("captured", 3000)
    captured = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.captured"]
    assert [(c["amount"], c["amount_captured"], c["final"]) for c in captured] == [(3000, 3000, True)]

    before = await snapshot(paid, order["id"])
    assert (await send(paid, capturable))["outcome"] == "ignored_stale"
    # Stripe cannot cancel a captured intent; a canceled event for it (newer, even) changes nothing.
    canceled = event("payment_intent.canceled", {**succeeded["data"]["object"], "status": "canceled"})
    canceled["created"] = stripe_time()
    assert (await send(paid, canceled))["outcome"] == "ignored_state"
    assert await snapshot(paid, order["id"]) == before
    await money(paid, stripe_api, order["id"])


async def test_a_capture_in_flight_is_recorded_once_when_its_webhook_overtakes_the_worker(
    paid, stripe_api, stripe_test_gateway, monkeypatch
):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo)
    applied = captures.apply_done
    outcomes = []

    async def webhook_first(uow, call, clock):
        # Stripe's webhook arrives between its answer to the worker and the worker's transaction.
        outcomes.append((await send(paid, last(stripe_api, "payment_intent.succeeded", call.intent_id)))["outcome"])
        return await applied(uow, call, clock)

    monkeypatch.setattr(captures, "apply_done", webhook_first)
    assert await run_jobs(paid, stripe_test_gateway) == 1
    assert outcomes == ["ignored_in_flight"]
    shown = await money(paid, stripe_api, order["id"])
    assert (shown["payment"]["status"], shown["payment"]["amount_captured"]) == ("captured", 3000)
    assert [e["type"] for e in await events(paid, order["id"])].count("payment.captured") == 1


# --- money moved in Stripe's dashboard --------------------------------------------------------------


async def test_refunds_made_in_stripes_dashboard_are_recorded_and_an_older_one_changes_nothing(
    paid, stripe_api, stripe_test_gateway, stripe_time
):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo, quantity=1)
    await act(paid, staff, fo["id"], "cancel", {"reason": "customer left the rest"})
    await run_jobs(paid, stripe_test_gateway)  # 1500 captured, the other 1500 released
    intent_id = (await get_order(paid, order["id"]))["payment"]["external_id"]
    stripe_time()
    stripe_api.ledger.refund({"payment_intent": intent_id, "amount": "500"})
    [first] = emitted(stripe_api.ledger.events, "charge.refunded", intent_id)
    # Stripe counts the released 1500 as refunded on the charge: only 500 went back to the card.
    assert first["data"]["object"]["amount_refunded"] == 2000
    assert (await send(paid, first))["outcome"] == "applied"
    shown = await money(paid, stripe_api, order["id"])
    assert (shown["payment"]["status"], shown["payment"]["amount_refunded"]) == ("partially_refunded", 500)

    stripe_time()
    paid.clock.advance(timedelta(minutes=1))
    stripe_api.ledger.refund({"payment_intent": intent_id})  # the rest: 1000
    second = last(stripe_api, "charge.refunded", intent_id)
    assert (await send(paid, second))["outcome"] == "applied"
    shown = await money(paid, stripe_api, order["id"])
    assert (shown["payment"]["status"], shown["payment"]["amount_refunded"]) == ("refunded", 1500)
    refunded = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.refunded"]
    assert [(r["amount"], r["amount_refunded"]) for r in refunded] == [(500, 500), (1000, 1500)]
    ops = [(op["kind"], op["amount"]) for op in await operations(paid, order["id"]) if op["kind"] == "refund"]
    assert ops == [("refund", 500), ("refund", 1000)]

    before = await snapshot(paid, order["id"])
    replayed = event("charge.refunded", first["data"]["object"], created=first["created"])  # another id
    assert (await send(paid, replayed))["outcome"] == "ignored_stale"
    # The same second as the newest applied (not older): only "amounts only grow" protects it.
    same_second = event("charge.refunded", first["data"]["object"], created=second["created"])
    assert (await send(paid, same_second))["outcome"] == "ignored_state"
    assert await snapshot(paid, order["id"]) == before


async def test_a_capture_made_in_stripes_dashboard_is_recorded(paid, stripe_api):
    order, _fo, _staff = await ready_paid_order(paid)
    intent_id = order["payment"]["external_id"]
    stripe_api.ledger.capture(intent_id, {"amount_to_capture": "2000"})
    assert (await send(paid, last(stripe_api, "payment_intent.succeeded", intent_id)))["outcome"] == "applied"
    shown = await money(paid, stripe_api, order["id"])
    assert (shown["payment"]["status"], shown["payment"]["amount_captured"]) == ("captured", 2000)
    [captured] = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.captured"]
    assert (captured["amount"], captured["final"], captured["fulfillments"]) == (2000, True, [])


async def test_an_authorisation_cancelled_in_stripe_voids_the_payment_and_the_goods_need_attention(
    paid, stripe_api, stripe_test_gateway
):
    order, _fo, _staff = await ready_paid_order(paid)
    intent_id = order["payment"]["external_id"]
    stripe_api.ledger.cancel(intent_id, {})
    assert (await send(paid, last(stripe_api, "payment_intent.canceled", intent_id)))["outcome"] == "applied"
    shown = await money(paid, stripe_api, order["id"])
    assert (shown["payment"]["status"], shown["status"], shown["attention_reason"]) == (
        "voided",
        "needs_attention",
        "payment_canceled",
    )
    assert [e["type"] for e in await events(paid, order["id"])][-2:] == ["payment.voided", "order.status_changed"]


async def test_our_own_void_reported_by_webhook_first_is_recorded_once(paid, stripe_api, stripe_test_gateway):
    order = (await paid.place(with_payment(paid, {"provider": "stripe", "payment_method": "pm_card_visa"}))).json()
    r = await paid.client.post(f"/v1/orders/{order['id']}/cancel", json={"reason": "customer"}, headers=paid.admin)
    assert r.status_code == 200, r.text
    intent_id = order["payment"]["external_id"]
    stripe_api.ledger.cancel(intent_id, {})  # the worker's void reached Stripe; its transaction did not run yet
    assert (await send(paid, last(stripe_api, "payment_intent.canceled", intent_id)))["outcome"] == "applied"
    assert await run_jobs(paid, stripe_test_gateway) == 0  # nothing left queued: no second void
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["payment"]["status"]) == ("cancelled", "voided")
    voids = [(op["kind"], op["status"]) for op in await operations(paid, order["id"]) if op["kind"] == "void"]
    assert voids == [("void", "succeeded")]
    assert [e["type"] for e in await events(paid, order["id"])].count("payment.voided") == 1


async def test_a_dispute_records_an_operation_and_the_order_needs_attention(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo)
    await run_jobs(paid, stripe_test_gateway)
    intent = stripe_api.ledger.intent(order["payment"]["external_id"])
    opened = dispute(stripe_api.ledger.charges[intent["latest_charge"]], now=int(time.time()))
    delivered = event("charge.dispute.created", opened)
    assert (await send(paid, delivered))["outcome"] == "applied"
    shown = await money(paid, stripe_api, order["id"])
    assert (shown["status"], shown["attention_reason"]) == ("needs_attention", "disputed")
    assert shown["payment"]["amount_captured"] == 3000  # the money is Stripe's to settle, not ours to move
    [disputed] = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.disputed"]
    assert (disputed["dispute_id"], disputed["amount"], disputed["reason"]) == (opened["id"], 3000, "fraudulent")
    [op] = [op for op in await operations(paid, order["id"]) if op["kind"] == "dispute"]
    assert (op["amount"], op["status"], op["external_id"], op["reason"]) == (
        3000,
        "needs_response",
        opened["id"],
        "fraudulent",
    )

    before = await snapshot(paid, order["id"])
    assert (await send(paid, event("charge.dispute.created", opened)))["outcome"] == "ignored_state"
    assert await snapshot(paid, order["id"]) == before


async def test_events_about_nothing_of_ours_are_recorded_and_ignored(paid):
    unknown = event("payment_intent.succeeded", {"id": "pi_nobody", "object": "payment_intent", "status": "succeeded"})
    other = event("customer.created", {"id": "cus_1", "object": "customer"})
    assert (await send(paid, unknown))["outcome"] == "ignored_unknown_payment"
    assert (await send(paid, other))["outcome"] == "ignored_type"
    assert sorted(await stored(paid)) == sorted(
        [(unknown["id"], "ignored_unknown_payment"), (other["id"], "ignored_type")]
    )
