"""The Stripe gateway, through the official SDK, against the Stripe-shaped test server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import stripe

from orchestrator.payments.gateway import (
    AuthenticationRequired,
    AuthoriseRequest,
    IntentStatus,
    Operation,
    PaymentNotFound,
    PaymentRequestRefused,
    idempotency_key,
)
from orchestrator.payments.stripe_gateway import STRIPE_API_VERSION, StripeGateway, stripe_gateway
from orchestrator.platform.errors import PaymentDeclined, PaymentIntentMismatch
from tests.stripe_server.fixtures import API_KEY, RunningServer

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # the SDK's httpx use
ORDER = "0b6c7d1e-0000-4000-8000-000000000001"


@pytest.fixture
def gateway(stripe_test_gateway: StripeGateway) -> StripeGateway:
    return stripe_test_gateway


def key(operation: Operation, ref: str | None = None) -> str:
    return idempotency_key(ORDER, operation, ref)


async def authorised(gateway: StripeGateway, method: str = "pm_card_visa", amount: int = 1000, **options):  # noqa: ANN003, ANN201
    return await gateway.authorise(
        AuthoriseRequest(amount=amount, currency="USD", payment_method=method, **options),
        idempotency_key=key(Operation.AUTHORISE, method),
    )


async def test_authorise_holds_the_amount_for_a_manual_capture(gateway: StripeGateway, stripe_api: RunningServer):
    state = await authorised(gateway, metadata={"order_id": ORDER})

    assert state.status is IntentStatus.REQUIRES_CAPTURE
    assert (state.amount, state.authorised, state.capturable, state.captured, state.refunded) == (
        1000,
        1000,
        1000,
        0,
        0,
    )
    assert state.currency == "USD" and state.multicapture is False and state.client_secret is None
    charge = stripe_api.ledger.charges[state.charge_id]
    assert state.capture_before == datetime.fromtimestamp(
        charge["payment_method_details"]["card"]["capture_before"], UTC
    )
    sent = stripe_api.state.requests[-1]
    assert sent.stripe_version == STRIPE_API_VERSION
    assert sent.idempotency_key == key(Operation.AUTHORISE, "pm_card_visa")
    assert sent.params["capture_method"] == "manual" and sent.params["confirm"] == "true"
    assert sent.params["payment_method_options"] == {"card": {"request_multicapture": "if_available"}}
    assert sent.params["payment_method_types"] == ["card"] and sent.params["metadata"] == {"order_id": ORDER}
    assert "setup_future_usage" not in sent.params


async def test_saving_the_method_asks_for_off_session_use(gateway: StripeGateway, stripe_api: RunningServer):
    state = await authorised(gateway, save_method=True)
    assert stripe_api.ledger.intents[state.intent_id]["setup_future_usage"] == "off_session"


async def test_without_a_stated_deadline_the_authorisation_lasts_seven_days(
    gateway: StripeGateway, stripe_api: RunningServer
):
    stripe_api.ledger.capture_window = None
    state = await authorised(gateway)
    created = stripe_api.ledger.charges[state.charge_id]["created"]
    assert state.capture_before == datetime.fromtimestamp(created, UTC) + timedelta(days=7)


async def test_a_partial_capture_without_multicapture_is_final(gateway: StripeGateway):
    state = await authorised(gateway)
    captured = await gateway.capture(state.intent_id, amount=600, final=True, idempotency_key=key(Operation.CAPTURE))
    assert captured.status is IntentStatus.SUCCEEDED
    # The released 400 is not a refund, though Stripe counts it in the charge's amount_refunded.
    assert (captured.authorised, captured.captured, captured.refunded, captured.capturable) == (1000, 600, 0, 0)
    with pytest.raises(PaymentRequestRefused) as again:
        await gateway.capture(state.intent_id, amount=100, final=True, idempotency_key=key(Operation.CAPTURE, "2"))
    assert again.value.code == "payment_intent_unexpected_state"


async def test_a_non_final_capture_needs_multicapture(gateway: StripeGateway):
    state = await authorised(gateway)
    with pytest.raises(PaymentRequestRefused) as refused:
        await gateway.capture(state.intent_id, amount=300, final=False, idempotency_key=key(Operation.CAPTURE, "f1"))
    assert refused.value.param == "final_capture"


async def test_multicapture_captures_each_part_and_the_last_is_final(gateway: StripeGateway):
    state = await authorised(gateway, "pm_card_visa_multicapture")
    assert state.multicapture is True

    first = await gateway.capture(
        state.intent_id, amount=300, final=False, idempotency_key=key(Operation.CAPTURE, "f1")
    )
    assert first.status is IntentStatus.REQUIRES_CAPTURE
    assert (first.captured, first.capturable) == (300, 700)
    last = await gateway.capture(state.intent_id, amount=400, final=True, idempotency_key=key(Operation.CAPTURE, "f2"))
    assert last.status is IntentStatus.SUCCEEDED
    assert (last.captured, last.capturable, last.refunded) == (700, 0, 0)


async def test_capturing_more_than_is_held_is_refused(gateway: StripeGateway):
    state = await authorised(gateway)
    with pytest.raises(PaymentRequestRefused) as refused:
        await gateway.capture(state.intent_id, amount=1001, final=True, idempotency_key=key(Operation.CAPTURE))
    assert refused.value.code == "amount_too_large"


async def test_void_releases_an_uncaptured_authorisation_and_only_that(gateway: StripeGateway):
    state = await authorised(gateway)
    voided = await gateway.void(state.intent_id, idempotency_key=key(Operation.VOID))
    assert voided.status is IntentStatus.CANCELED
    assert (voided.captured, voided.refunded, voided.capturable) == (0, 0, 0)

    other = await authorised(gateway, "pm_card_mastercard")
    await gateway.capture(other.intent_id, amount=1000, final=True, idempotency_key=key(Operation.CAPTURE))
    with pytest.raises(PaymentRequestRefused) as refused:
        await gateway.void(other.intent_id, idempotency_key=key(Operation.VOID, "2"))
    assert refused.value.code == "payment_intent_unexpected_state"


async def test_refunds_are_partial_and_never_above_captured_minus_refunded(gateway: StripeGateway):
    state = await authorised(gateway)
    await gateway.capture(state.intent_id, amount=800, final=True, idempotency_key=key(Operation.CAPTURE))

    refund = await gateway.refund(
        state.intent_id, amount=300, reason="requested_by_customer", idempotency_key=key(Operation.REFUND, "r1")
    )
    assert (refund.amount, refund.currency, refund.status, refund.reason) == (
        300,
        "USD",
        "succeeded",
        "requested_by_customer",
    )
    assert (await gateway.retrieve(state.intent_id)).refunded == 300

    with pytest.raises(PaymentRequestRefused) as refused:
        await gateway.refund(state.intent_id, amount=501, reason=None, idempotency_key=key(Operation.REFUND, "r2"))
    assert (refused.value.code, refused.value.param) == ("amount_too_large", "amount")

    await gateway.refund(state.intent_id, amount=500, reason=None, idempotency_key=key(Operation.REFUND, "r3"))
    after = await gateway.retrieve(state.intent_id)
    assert (after.captured, after.refunded, after.refundable) == (800, 800, 0)
    with pytest.raises(PaymentRequestRefused) as exhausted:
        await gateway.refund(state.intent_id, amount=1, reason=None, idempotency_key=key(Operation.REFUND, "r4"))
    assert exhausted.value.code == "charge_already_refunded"


async def test_nothing_uncaptured_can_be_refunded(gateway: StripeGateway):
    state = await authorised(gateway)
    with pytest.raises(PaymentRequestRefused):
        await gateway.refund(state.intent_id, amount=100, reason=None, idempotency_key=key(Operation.REFUND, "r1"))


@pytest.mark.parametrize(
    ("method", "code", "decline_code"),
    [
        ("pm_card_visa_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeCustomerFail", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
    ],
)
async def test_each_decline_keeps_stripes_codes(
    gateway: StripeGateway, stripe_api: RunningServer, method: str, code: str, decline_code: str
):
    with pytest.raises(PaymentDeclined) as declined:
        await authorised(gateway, method)
    assert (declined.value.code, declined.value.decline_code) == (code, decline_code)
    assert type(declined.value) is PaymentDeclined
    failed = await gateway.retrieve(declined.value.intent_id)
    assert failed.status is IntentStatus.REQUIRES_PAYMENT_METHOD
    assert (failed.authorised, failed.capturable, failed.capture_before) == (0, 0, None)
    assert stripe_api.state.requests[0].status == 402


async def test_three_d_secure_on_session_waits_for_the_customer(gateway: StripeGateway, stripe_api: RunningServer):
    state = await authorised(gateway, "pm_card_threeDSecure2Required")
    assert state.status is IntentStatus.REQUIRES_ACTION
    assert state.client_secret and state.client_secret.startswith(f"{state.intent_id}_secret_")
    assert state.authorised == 0

    stripe_api.ledger.complete_authentication(state.intent_id)
    assert (await gateway.retrieve(state.intent_id)).status is IntentStatus.REQUIRES_CAPTURE


async def test_off_session_a_bank_demanding_authentication_is_an_error(gateway: StripeGateway):
    with pytest.raises(AuthenticationRequired) as refused:
        await authorised(gateway, "pm_card_authenticationRequired", off_session=True)
    assert refused.value.code == "authentication_required"


async def test_a_retry_with_the_same_key_replays_the_first_answer(gateway: StripeGateway, stripe_api: RunningServer):
    first = await authorised(gateway)
    again = await authorised(gateway)
    assert again == first and len(stripe_api.ledger.intents) == 1

    captures = [
        await gateway.capture(first.intent_id, amount=500, final=True, idempotency_key=key(Operation.CAPTURE, "f1"))
        for _ in range(2)
    ]
    assert captures[0] == captures[1] and captures[1].captured == 500


async def test_a_key_reused_with_other_parameters_is_refused(gateway: StripeGateway, stripe_api: RunningServer):
    await authorised(gateway, amount=1000)
    with pytest.raises(PaymentRequestRefused) as refused:
        await authorised(gateway, amount=1200)
    assert refused.value.code == "idempotency_error"
    assert len(stripe_api.ledger.intents) == 1


def test_replays_are_byte_for_byte_and_declines_replay_too(stripe_api: RunningServer):
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "k-1"}
    body = "amount=500&currency=usd&capture_method=manual&confirm=true&payment_method=pm_card_visa_chargeDeclined"
    with httpx.Client(base_url=stripe_api.url, headers={"Content-Type": "application/x-www-form-urlencoded"}) as client:
        first = client.post("/v1/payment_intents", content=body, headers=headers)
        second = client.post("/v1/payment_intents", content=body, headers=headers)
        other = client.post("/v1/payment_intents", content=body.replace("500", "501"), headers=headers)
        unauthenticated = client.get("/v1/payment_intents/pi_x")
    assert first.status_code == second.status_code == 402
    assert first.content == second.content and second.headers["Idempotent-Replayed"] == "true"
    error = first.json()["error"]
    assert error["type"] == "card_error" and error["decline_code"] == "generic_decline"
    assert error["payment_intent"]["status"] == "requires_payment_method" and error["charge"].startswith("ch_")
    assert (other.status_code, other.json()["error"]["type"]) == (400, "idempotency_error")
    assert unauthenticated.status_code == 401


async def test_verify_accepts_only_a_held_payment_of_the_order_total(gateway: StripeGateway, stripe_api: RunningServer):
    storefront = stripe.StripeClient(API_KEY, base_addresses={"api": stripe_api.url}, http_client=stripe.HTTPXClient())
    held = await storefront.v1.payment_intents.create_async(
        {
            "amount": 2500,
            "currency": "eur",
            "capture_method": "manual",
            "confirm": True,
            "payment_method": "pm_card_visa",
        }
    )
    pending = await storefront.v1.payment_intents.create_async(
        {"amount": 2500, "currency": "eur", "capture_method": "manual", "payment_method": "pm_card_visa"}
    )
    await storefront._requestor._client.close_async()  # noqa: SLF001

    assert (await gateway.verify_authorised(held.id, amount=2500, currency="EUR")).authorised == 2500
    for amount, currency, reason in [(2400, "EUR", "amount"), (2500, "USD", "amount")]:
        with pytest.raises(PaymentIntentMismatch) as mismatch:
            await gateway.verify_authorised(held.id, amount=amount, currency=currency)
        assert mismatch.value.reason == reason
    with pytest.raises(PaymentIntentMismatch) as not_held:
        await gateway.verify_authorised(pending.id, amount=2500, currency="EUR")
    assert not_held.value.reason == "status"
    with pytest.raises(PaymentNotFound):
        await gateway.verify_authorised("pi_missing", amount=2500, currency="EUR")


async def test_the_api_version_is_pinned_not_the_sdks_default(stripe_api: RunningServer, monkeypatch):  # noqa: ANN001
    # An SDK upgrade moves its default version; the gateway keeps sending the one it reads.
    monkeypatch.setattr(stripe._api_version._ApiVersion, "CURRENT", "2099-01-01.future")  # noqa: SLF001
    pinned = stripe_gateway(API_KEY, api_base=stripe_api.url)
    try:
        await pinned.retrieve("pi_missing")
    except PaymentNotFound:
        pass
    finally:
        await pinned.aclose()
    assert stripe_api.state.requests[-1].stripe_version == STRIPE_API_VERSION


def test_the_server_records_the_events_stripe_would_send(stripe_api: RunningServer):
    ledger = stripe_api.ledger
    intent = ledger.create_intent(
        {
            "amount": "900",
            "currency": "usd",
            "capture_method": "manual",
            "confirm": "true",
            "payment_method": "pm_card_visa",
        }
    )
    ledger.capture(intent["id"], {"amount_to_capture": "900"})
    ledger.refund({"payment_intent": intent["id"], "amount": "100"})
    assert [e["type"] for e in ledger.events] == [
        "payment_intent.amount_capturable_updated",
        "charge.captured",
        "payment_intent.succeeded",
        "charge.refunded",
    ]
    assert json.loads(json.dumps(ledger.events))[-1]["data"]["object"]["amount_refunded"] == 100
