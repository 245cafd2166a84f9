"""Issue 9 — orders waiting for their card payment, settled by the sweep with the clock moved (no
sleeps): 3-D Secure never finished → timeout (intent cancelled, stock released, order cancelled
``payment_timeout``); 3-D Secure finished → authorised and in the store's queue before the
timeout; a crash between Stripe's answer and the database → the sweep applies what Stripe has.
Every sweep run twice: the second changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.orders import paid_intake
from orchestrator.orders.payment_timers import PaymentTimers, Swept, settle, sweep
from orchestrator.payments.timers import Verdict, awaiting_payment
from tests.e2e.support import events, get_order, on_hand_reserved
from tests.e2e.test_payments_intake import operations, queue_of, with_payment

TIMEOUT = timedelta(minutes=30)
THREE_DS = {"provider": "stripe", "payment_method": "pm_card_threeDSecure2Required"}
VISA = {"provider": "stripe", "payment_method": "pm_card_visa"}


@pytest.fixture
def timers(db, stripe_test_gateway, clock, settings) -> PaymentTimers:
    assert settings.payment_action_timeout_minutes == TIMEOUT.total_seconds() / 60  # the default
    return PaymentTimers(db, stripe_test_gateway, clock, LifecycleSettings.from_settings(settings), timeout=TIMEOUT)


async def waiting(timers) -> list:
    """What a sweep starting now would settle (a run that lost the race still holds it)."""
    return await timers.db.run(lambda uow: awaiting_payment(uow, timers.clock, timers.check_after))


def cancels(stripe_api) -> list[str]:
    return [r.idempotency_key for r in stripe_api.state.requests if r.path.endswith("/cancel")]


async def snapshot(shop, order_id) -> tuple:
    return (
        await get_order(shop, order_id),
        await events(shop, order_id),
        await operations(shop, order_id),
        await on_hand_reserved(shop, "S1", "A"),
    )


async def test_3d_secure_never_finished_times_out_releases_the_stock_and_cancels_the_intent(paid, timers, stripe_api):
    r = await paid.place(with_payment(paid, THREE_DS))
    order = r.json()
    assert order["status"] == "pending_payment"
    intent_id = order["payment"]["external_id"]

    paid.clock.advance(TIMEOUT - timedelta(seconds=1))  # asked, still waiting, not yet due
    assert await sweep(timers) == Swept()
    assert (await get_order(paid, order["id"]))["status"] == "pending_payment"
    assert stripe_api.ledger.intent(intent_id)["status"] == "requires_action" and cancels(stripe_api) == []

    paid.clock.advance(timedelta(seconds=1))
    [stale] = await waiting(timers)
    assert await sweep(timers) == Swept(timed_out=1)
    shown = await get_order(paid, order["id"])
    assert shown["status"] == "cancelled" and shown["payment"]["status"] == "failed"
    assert await on_hand_reserved(paid, "S1", "A") == (10, 0)
    assert stripe_api.ledger.intent(intent_id)["status"] == "canceled"
    assert cancels(stripe_api) == [f"order:{order['id']}:void:timeout"]
    timeline = await events(paid, order["id"])
    assert [e["data"]["reason"] for e in timeline if e["type"] == "order.cancelled"] == ["payment_timeout"]
    [failed] = [e for e in timeline if e["type"] == "payment.failed"]
    assert (failed["data"]["code"], failed["data"]["external_id"]) == ("payment_timeout", intent_id)
    assert [(op["kind"], op["status"], op["error_code"]) for op in await operations(paid, order["id"])] == [
        ("authorise", "requires_action", None),
        ("void", "canceled", "payment_timeout"),
    ]
    assert await queue_of(paid) == []

    before = await snapshot(paid, order["id"])
    assert await settle(timers, stale) is Verdict.WAIT  # a concurrent run: applied once
    paid.clock.advance(timedelta(minutes=5))
    assert await sweep(timers) == Swept()
    assert await snapshot(paid, order["id"]) == before
    assert cancels(stripe_api) == [f"order:{order['id']}:void:timeout"]  # Stripe saw it canceled: no second
    # It let go of its reference: the storefront may place the order again.
    again = await paid.place(with_payment(paid, VISA, ref=shown["channel_order_ref"]))
    assert again.status_code == 201 and again.json()["id"] != order["id"]


async def test_3d_secure_finished_is_authorised_by_the_next_sweep_and_reaches_the_store(paid, timers, stripe_api):
    order = (await paid.place(with_payment(paid, THREE_DS))).json()
    intent_id = order["payment"]["external_id"]
    stripe_api.ledger.complete_authentication(intent_id)

    assert await sweep(timers) == Swept()  # intake may still be applying Stripe's first answer
    paid.clock.advance(timedelta(minutes=1))
    [stale] = await waiting(timers)
    assert await sweep(timers) == Swept(authorised=1)
    shown = await get_order(paid, order["id"])
    assert shown["status"] == "received"
    payment = shown["payment"]
    assert (payment["status"], payment["amount_authorised"], payment["external_id"]) == ("authorised", 3000, intent_id)
    assert payment["capture_before"] is not None
    assert [fo["order_number"] for fo in await queue_of(paid)] == [order["number"]]
    assert [e["type"] for e in await events(paid, order["id"])][-2:] == ["payment.authorised", "order.status_changed"]
    assert [(op["kind"], op["status"]) for op in await operations(paid, order["id"])] == [
        ("authorise", "requires_action"),
        ("authorise", "requires_capture"),
    ]
    assert await on_hand_reserved(paid, "S1", "A") == (10, 2)

    before = await snapshot(paid, order["id"])
    assert await settle(timers, stale) is Verdict.WAIT  # a concurrent run: applied once
    paid.clock.advance(TIMEOUT)  # long past the timeout: an authorised order is never timed out
    assert await sweep(timers) == Swept()
    assert await snapshot(paid, order["id"]) == before
    assert stripe_api.ledger.intent(intent_id)["status"] == "requires_capture" and cancels(stripe_api) == []


@pytest.fixture
def crash_once(monkeypatch):
    """The database step after Stripe's answer fails once, as if the process died there."""
    applied = paid_intake._apply

    async def crash(*args, **kwargs):
        monkeypatch.setattr(paid_intake, "_apply", applied)
        raise ConnectionResetError("the process died after Stripe answered")

    monkeypatch.setattr(paid_intake, "_apply", crash)


async def only_order(shop) -> dict:
    [order] = (await shop.client.get("/v1/orders", headers=shop.admin)).json()["items"]
    return order


async def test_a_crash_after_stripe_authorised_is_reconciled_by_the_sweep(paid, timers, stripe_api, crash_once):
    assert (await paid.place(with_payment(paid, VISA))).status_code == 503  # the database "went away"
    order = await only_order(paid)
    assert order["status"] == "pending_payment" and order["payment"] is None  # Stripe holds money we lost
    [intent] = stripe_api.ledger.intents.values()
    assert intent["status"] == "requires_capture"

    paid.clock.advance(timedelta(minutes=1))
    assert await sweep(timers) == Swept(authorised=1)
    shown = await get_order(paid, order["id"])
    assert shown["status"] == "received"
    assert (shown["payment"]["status"], shown["payment"]["external_id"]) == ("authorised", intent["id"])
    [op] = await operations(paid, order["id"])
    assert (op["kind"], op["status"], op["amount"]) == ("authorise", "requires_capture", 3000)
    assert [fo["order_number"] for fo in await queue_of(paid)] == [order["number"]]
    assert await on_hand_reserved(paid, "S1", "A") == (10, 2)

    before = await snapshot(paid, order["id"])
    paid.clock.advance(TIMEOUT)
    assert await sweep(timers) == Swept()
    assert await snapshot(paid, order["id"]) == before and cancels(stripe_api) == []


async def test_a_crash_after_stripe_asked_for_3d_secure_times_out_like_any_unfinished_payment(
    paid, timers, stripe_api, crash_once
):
    assert (await paid.place(with_payment(paid, THREE_DS))).status_code == 503
    order = await only_order(paid)
    [intent] = stripe_api.ledger.intents.values()
    assert (order["status"], intent["status"]) == ("pending_payment", "requires_action")

    paid.clock.advance(TIMEOUT)
    assert await sweep(timers) == Swept(timed_out=1)
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["payment"]["status"]) == ("cancelled", "failed")
    assert shown["payment"]["external_id"] == intent["id"]
    assert stripe_api.ledger.intent(intent["id"])["status"] == "canceled"
    assert await on_hand_reserved(paid, "S1", "A") == (10, 0)

    before = await snapshot(paid, order["id"])
    assert await sweep(timers) == Swept()
    assert await snapshot(paid, order["id"]) == before and len(cancels(stripe_api)) == 1
