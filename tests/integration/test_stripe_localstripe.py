"""The gateway's happy paths against localstripe 1.15.10, a Stripe emulator nobody here wrote.

localstripe refuses parameters it does not know; of what the gateway sends, that is the refund
``reason`` (``StripeOptions(send_refund_reason=False)`` here) and a saved card's
``setup_future_usage`` (``send_setup_future_usage=False``; its ``POST /v1/customers`` with
``metadata``, which the gateway sends first, it takes). It keeps no
``amount_capturable``/``amount_captured``/``amount_received``, so this module checks statuses,
ids and refund amounts; the amounts are checked against our own server
(``test_stripe_server.py``). Its store pickles itself to a fixed /tmp file on every write; that
persistence is switched off for the session (test workers run side by side).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from orchestrator.payments.gateway import AuthoriseRequest, IntentStatus, Operation, idempotency_key
from orchestrator.payments.refunds import refund_metadata, stripe_reason
from orchestrator.payments.stripe_gateway import StripeGateway, StripeOptions, stripe_gateway
from orchestrator.platform.errors import PaymentDeclined
from tests.stripe_server.fixtures import ServerThread

localstripe_server = pytest.importorskip("localstripe.server")
localstripe_resources = pytest.importorskip("localstripe.resources")

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
ORDER = "0b6c7d1e-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def localstripe_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(localstripe_resources.Store, "dump_to_disk", lambda self: None)
        with ServerThread(localstripe_server.app) as url:
            yield url


@pytest.fixture
async def localstripe_gateway(localstripe_url: str) -> AsyncIterator[StripeGateway]:
    async with httpx.AsyncClient() as client:
        (await client.delete(f"{localstripe_url}/_config/data")).raise_for_status()
    built = stripe_gateway(
        "sk_test_localstripe", api_base=localstripe_url, options=StripeOptions(send_refund_reason=False)
    )
    yield built
    await built.aclose()


async def authorise(gateway: StripeGateway, method: str, ref: str) -> object:
    return await gateway.authorise(
        AuthoriseRequest(amount=1500, currency="EUR", payment_method=method, metadata={"order_id": ORDER}),
        idempotency_key=idempotency_key(ORDER, Operation.AUTHORISE, ref),
    )


async def test_authorise_then_capture_part_then_refund_part(localstripe_gateway: StripeGateway):
    held = await authorise(localstripe_gateway, "pm_card_visa", "a1")
    assert held.status is IntentStatus.REQUIRES_CAPTURE and held.amount == 1500 and held.currency == "EUR"
    assert held.authorised == 1500 and held.capture_before is not None  # localstripe states none: 7 days

    captured = await localstripe_gateway.capture(
        held.intent_id, amount=1000, final=True, idempotency_key=idempotency_key(ORDER, Operation.CAPTURE, "f1")
    )
    assert captured.status is IntentStatus.SUCCEEDED

    refund = await localstripe_gateway.refund(
        held.intent_id,
        amount=400,
        reason="requested_by_customer",
        idempotency_key=idempotency_key(ORDER, Operation.REFUND, "r1"),
    )
    assert (refund.amount, refund.status, refund.intent_id) == (400, "succeeded", held.intent_id)
    assert (await localstripe_gateway.retrieve(held.intent_id)).status is IntentStatus.SUCCEEDED


async def test_two_partial_refunds_as_the_service_sends_them(localstripe_gateway: StripeGateway):
    # What ``payments/refunds.py`` sends: metadata naming the order and the refund, and a reason
    # outside Stripe's three words in the metadata only.
    held = await authorise(localstripe_gateway, "pm_card_visa", "a1")
    await localstripe_gateway.capture(
        held.intent_id, amount=1500, final=True, idempotency_key=idempotency_key(ORDER, Operation.CAPTURE, "f1")
    )
    for amount, ref in ((400, uuid.uuid4()), (600, uuid.uuid4())):
        refund = await localstripe_gateway.refund(
            held.intent_id,
            amount=amount,
            reason=stripe_reason("box arrived damaged"),
            idempotency_key=idempotency_key(ORDER, Operation.REFUND, ref),
            metadata=refund_metadata(uuid.UUID(ORDER), ref, "box arrived damaged"),
        )
        assert (refund.amount, refund.status, refund.intent_id) == (amount, "succeeded", held.intent_id)


async def test_cancel_voids_the_authorisation(localstripe_gateway: StripeGateway):
    held = await authorise(localstripe_gateway, "pm_card_visa", "a1")
    voided = await localstripe_gateway.void(held.intent_id, idempotency_key=idempotency_key(ORDER, Operation.VOID))
    assert voided.status is IntentStatus.CANCELED
    assert (await localstripe_gateway.retrieve(held.intent_id)).status is IntentStatus.CANCELED


async def test_a_decline_is_a_named_error(localstripe_gateway: StripeGateway):
    with pytest.raises(PaymentDeclined) as declined:
        await authorise(localstripe_gateway, "pm_card_chargeCustomerFail", "a1")
    # localstripe answers a 402 with Stripe's code but no decline_code (ours has both).
    assert (declined.value.code, declined.value.decline_code) == ("card_declined", None)


async def test_a_saved_card_is_kept_on_a_customer_the_gateway_creates(localstripe_url: str):
    """localstripe knows ``POST /v1/customers`` (with ``metadata``) but no ``setup_future_usage``:
    driven without it, the gateway still makes the Customer first and names it on the intent."""
    options = StripeOptions(send_refund_reason=False, send_setup_future_usage=False)
    gateway = stripe_gateway("sk_test_localstripe", api_base=localstripe_url, options=options)
    try:
        held = await gateway.authorise(
            AuthoriseRequest(
                amount=1500,
                currency="EUR",
                payment_method="pm_card_visa",
                save_method=True,
                metadata={"order_id": ORDER},
            ),
            idempotency_key=idempotency_key(ORDER, Operation.AUTHORISE, "saved"),
        )
        assert held.status is IntentStatus.REQUIRES_CAPTURE
        assert held.customer is not None and held.customer.startswith("cus_")
        assert (await gateway.retrieve(held.intent_id)).customer == held.customer
        async with httpx.AsyncClient() as client:
            found = await client.get(
                f"{localstripe_url}/v1/customers/{held.customer}", auth=("sk_test_localstripe", "")
            )
        assert found.status_code == 200 and found.json()["metadata"] == {"order_id": ORDER}
    finally:
        await gateway.aclose()
