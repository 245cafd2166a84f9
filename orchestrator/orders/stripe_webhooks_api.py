"""``POST /v1/webhooks/stripe``: Stripe's events about our payments, verified, then applied once
(``orders/stripe_webhooks.py``). No API key: the ``Stripe-Signature`` is the authentication."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter

from orchestrator.fulfillment.dependencies import LifecycleDep
from orchestrator.orders.stripe_webhooks import receive_event
from orchestrator.payments.stripe_events import MalformedEvent, read_event
from orchestrator.payments.stripe_gateway import WEBHOOK_TOLERANCE_SECONDS, verify_webhook
from orchestrator.platform.db import committing
from orchestrator.platform.errors import WebhooksNotConfigured
from orchestrator.platform.http.dependencies import DB, ClockDep, SettingsDep
from orchestrator.platform.http.json_bodies import MalformedBody
from orchestrator.platform.problems import problems

PATH = "/v1/webhooks/stripe"
# For the API key middleware: Stripe signs its deliveries, it holds no key of ours.
PUBLIC_PATTERN = f"^{PATH}/?$"

DESCRIPTION = f"""
The endpoint to register in Stripe (Dashboard → Developers → Webhooks) for the events
`payment_intent.succeeded`, `payment_intent.amount_capturable_updated`,
`payment_intent.payment_failed`, `payment_intent.canceled`, `payment_intent.requires_action`,
`charge.refunded` and `charge.dispute.created`. Its signing secret is
`ORCHESTRATOR_STRIPE_WEBHOOK_SECRET`; without one every delivery is refused (422
`payments-not-configured`).

**Authentication** is the `Stripe-Signature` header, verified with Stripe's SDK over the raw body
(HMAC-SHA256 under the signing secret), not an API key. A missing, wrong or tampered signature, or
one made more than {WEBHOOK_TOLERANCE_SECONDS} s ago, is a 400 `webhook-signature-invalid`
problem and nothing is stored; a signed body that is not a Stripe event is a 400 too.

**Once each, in any order.** The event id is stored in the transaction that applies it: a
repeated delivery answers 200 with `duplicate: true` and applies nothing. Amounts only grow
(captured up to the intent's `amount_received`, refunded up to what the charge says went back),
statuses only move forward, and an event older than one already applied for the same object
changes nothing (`ignored_stale`), so late and out-of-order deliveries never roll a payment back.

What each event does:

- `payment_intent.amount_capturable_updated` / `.succeeded` on an order in `pending_payment`
  (3-D Secure finished): the payment is authorised (when the intent is for the order's amount and
  currency) and the order goes to the stores; `.succeeded` later records a capture made outside
  the service (`payment.captured`).
- `payment_intent.payment_failed` on a pending payment: a `fail` operation and `payment.failed`;
  the order keeps waiting (the customer may try again) until the payment timeout.
- `payment_intent.canceled`: a pending payment fails and its order is cancelled (reason
  `payment_canceled`, reservations released); an authorised, uncaptured one is voided, and an
  order with goods still to hand over needs attention (reason `payment_canceled`).
- `charge.refunded`: a refund made in Stripe's dashboard is recorded (`payment.refunded`).
- `charge.dispute.created`: a `dispute` operation, `payment.disputed`, and the order needs
  attention (reason `disputed`).
- anything else, or an intent no order of ours pays: recorded, `ignored_*`.

The answer is 200 as soon as the event is stored; `outcome` says what it did (Stripe only needs
the 2xx: anything else makes it deliver again).
"""


class WebhookReceived(msgspec.Struct, kw_only=True):
    received: bool
    id: str
    type: str
    duplicate: bool
    # applied | received | ignored_stale | ignored_type | ignored_unknown_payment | ignored_state
    # | ignored_mismatch | ignored_in_flight; none for a duplicate (the first delivery's stands)
    outcome: str | None


class StripeWebhookController(Controller):
    path = PATH
    tags = ["webhooks"]
    # Public (no API key): an empty requirement overrides the document's global bearer one.
    security = [{}]

    @post(
        "/",
        operation_id="receiveStripeWebhook",
        summary="Receive a Stripe webhook event (signed by Stripe, applied once)",
        description=DESCRIPTION,
        status_code=200,
        responses={
            200: ResponseSpec(WebhookReceived, description="Received (applied, ignored, or a duplicate)"),
            **problems(400, 413, 422, 503),
        },
    )
    async def receive(
        self,
        request: Request,
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
        lifecycle: LifecycleDep,
        stripe_signature: Annotated[
            str | None,
            HeaderParameter(name="Stripe-Signature", description="`t=<unix time>,v1=<hex HMAC-SHA256>`"),
        ] = None,
    ) -> WebhookReceived:
        secret = settings.stripe_webhook_secret
        if secret is None or not secret.get_secret_value().strip():
            raise WebhooksNotConfigured("stripe")
        body = await request.body()
        verify_webhook(body, stripe_signature, secret.get_secret_value())
        try:
            event = read_event(msgspec.json.decode(body))
        except (msgspec.DecodeError, RecursionError):
            raise MalformedBody("the webhook body is not valid JSON") from None
        except MalformedEvent as exc:
            raise MalformedBody(str(exc)) from None
        outcome = await db.run(committing(lambda uow: receive_event(uow, event, clock, lifecycle)))
        return WebhookReceived(
            received=True,
            id=event.id,
            type=event.type,
            duplicate=outcome is None,
            outcome=outcome.value if outcome is not None else None,
        )
