"""With multicapture, the rest of a partly captured authorisation is released when the last open
fulfillment closes without being handed over: partial pickup captured (not final), the rest
cancelled → the PaymentIntent, still ``requires_capture``, is cancelled, which frees what is left
capturable at Stripe while what was captured stays captured."""

from __future__ import annotations

from tests.e2e.support import act, events
from tests.e2e.test_payments_capture import (
    capture_requests,
    hand_over,
    money,
    operations,
    outbox_types,
    ready_paid_order,
    run_jobs,
)


def cancel_requests(stripe_api) -> list:
    return [r for r in stripe_api.state.requests if r.path.endswith("/cancel")]


async def test_cancelling_the_rest_after_a_non_final_capture_releases_the_rest_of_the_authorisation(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid, card="pm_card_visa_multicapture")
    await hand_over(paid, staff, fo, quantity=1)
    assert await run_jobs(paid, stripe_test_gateway) == 1
    first = await money(paid, stripe_api, order)
    assert (first["payment"]["status"], first["intent"]["amount_capturable"]) == ("partially_captured", 1500)

    await act(paid, staff, fo["id"], "cancel", {"reason": "customer left the rest"})
    assert "payment.void_due" in await outbox_types(paid, order["id"])
    assert cancel_requests(stripe_api) == []  # the cancel did not wait on Stripe
    assert await run_jobs(paid, stripe_test_gateway) == 1

    [capture] = capture_requests(stripe_api)
    assert (capture.params["amount_to_capture"], capture.params.get("final_capture")) == ("1500", "false")
    [release] = cancel_requests(stripe_api)
    assert release.idempotency_key.startswith(f"order:{order['id']}:void:")
    seen = await money(paid, stripe_api, order)
    intent = seen["intent"]
    assert (intent["amount_capturable"], intent["amount_received"]) == (0, 1500)
    assert intent["status"] == "canceled"
    charge = stripe_api.ledger.charges[intent["latest_charge"]]
    assert (charge["amount_captured"], charge["amount_refunded"]) == (1500, 1500)  # the rest, released
    payment = seen["payment"]
    assert (payment["status"], payment["amount_captured"], payment["amount_refunded"]) == ("captured", 1500, 0)
    ops = [(op["kind"], op["amount"], op["status"]) for op in await operations(paid, order["id"])]
    assert sorted(ops) == [
        ("authorise", 3000, "requires_capture"),
        ("capture", 1500, "succeeded"),
        ("void", 1500, "succeeded"),
    ]
    voided = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.voided"]
    assert [v["amount"] for v in voided] == [1500]
    # What the gateway reads back agrees: nothing refunded, nothing left to capture.
    state = await stripe_test_gateway.retrieve(intent["id"])
    assert (state.captured, state.refunded, state.capturable) == (1500, 0, 0)
    assert await run_jobs(paid, stripe_test_gateway) == 0


async def test_a_capture_still_queued_when_the_rest_is_cancelled_is_final_and_nothing_is_released(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid, card="pm_card_visa_multicapture")
    await hand_over(paid, staff, fo, quantity=1)
    await act(paid, staff, fo["id"], "cancel", {"reason": "customer left the rest"})
    assert "payment.void_due" not in await outbox_types(paid, order["id"])
    assert await run_jobs(paid, stripe_test_gateway) == 1
    [capture] = capture_requests(stripe_api)
    assert (capture.params["amount_to_capture"], capture.params.get("final_capture")) == ("1500", None)
    assert cancel_requests(stripe_api) == []
    seen = await money(paid, stripe_api, order)
    assert (seen["intent"]["status"], seen["intent"]["amount_capturable"]) == ("succeeded", 0)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 1500)


async def test_the_stripe_server_cancels_a_partly_captured_intent_as_stripe_does(stripe_api, stripe_test_gateway):
    from orchestrator.payments.gateway import AuthoriseRequest

    held = await stripe_test_gateway.authorise(
        AuthoriseRequest(amount=3000, currency="EUR", payment_method="pm_card_visa_multicapture"), idempotency_key="a"
    )
    part = await stripe_test_gateway.capture(held.intent_id, amount=1000, final=False, idempotency_key="c")
    assert (part.status.value, part.captured, part.capturable) == ("requires_capture", 1000, 2000)
    released = await stripe_test_gateway.void(held.intent_id, idempotency_key="v")
    assert (released.status.value, released.captured, released.capturable, released.refunded) == (
        "canceled",
        1000,
        0,
        0,
    )
    types = [e["type"] for e in stripe_api.ledger.events]
    assert types[-1] == "payment_intent.canceled"
    # Money captured can still be refunded, never more than was captured.
    refund = await stripe_test_gateway.refund(held.intent_id, amount=1000, reason=None, idempotency_key="r")
    assert refund.amount == 1000
