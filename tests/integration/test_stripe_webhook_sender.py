"""The test-side webhook sender signs as Stripe documents: the official SDK's verification accepts
its deliveries and rejects a tampered body, a wrong secret and a stale timestamp."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe
from aiohttp import web

from tests.stripe_server.fixtures import WEBHOOK_SECRET, RunningServer, ServerThread
from tests.stripe_server.webhooks import deliver, deliver_async, event, signature_header


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[Any]]]:
    """A webhook endpoint verifying like the service will (SDK, 300 s tolerance)."""
    received: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.text()
        try:
            received.append(
                stripe.Webhook.construct_event(body, request.headers["Stripe-Signature"], WEBHOOK_SECRET, tolerance=300)
            )
        except (ValueError, stripe.SignatureVerificationError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response({"received": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    with ServerThread(app) as url:
        yield f"{url}/hook", received


def test_recorded_events_arrive_verified_and_in_any_order(stripe_api: RunningServer, receiver):  # noqa: ANN001
    url, received = receiver
    received.clear()
    ledger = stripe_api.ledger
    intent = ledger.create_intent(
        {
            "amount": "700",
            "currency": "usd",
            "capture_method": "manual",
            "confirm": "true",
            "payment_method": "pm_card_visa",
        }
    )
    ledger.capture(intent["id"], {})
    ledger.refund({"payment_intent": intent["id"], "amount": "200"})
    # Late, twice and out of order, as Stripe may deliver them.
    for sent in [*reversed(ledger.events), ledger.events[0]]:
        assert deliver(None, url, sent, WEBHOOK_SECRET).status_code == 200
    assert [e.type for e in received] == [
        "charge.refunded",
        "payment_intent.succeeded",
        "charge.captured",
        "payment_intent.amount_capturable_updated",
        "payment_intent.amount_capturable_updated",
    ]
    assert received[0].data.object.amount_refunded == 200 and received[-1].id == received[-2].id


async def test_bad_signatures_are_refused(receiver):  # noqa: ANN001
    url, received = receiver
    received.clear()
    sent = event("payment_intent.canceled", {"id": "pi_x", "object": "payment_intent", "status": "canceled"})
    body = json.dumps(sent).encode()
    async with httpx.AsyncClient() as client:
        good = await deliver_async(client, url, body, WEBHOOK_SECRET)
        tampered = await deliver_async(
            client,
            url,
            body.replace(b"canceled", b"succeeded"),
            WEBHOOK_SECRET,
            signature=signature_header(body, WEBHOOK_SECRET),
        )
        wrong_secret = await deliver_async(client, url, body, "whsec_other")
        stale = await deliver_async(client, url, body, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    assert good.status_code == 200
    assert (tampered.status_code, wrong_secret.status_code, stale.status_code) == (400, 400, 400)
    assert len(received) == 1
