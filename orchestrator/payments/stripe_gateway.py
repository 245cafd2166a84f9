"""The payment gateway on Stripe: manual-capture PaymentIntents through the official SDK.

One ``StripeClient`` per gateway, built from settings (never the SDK's module-level key), async
calls over httpx, the API version pinned below so Stripe's answers keep the shape this module
reads. The only module that imports ``stripe``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import stripe

from orchestrator.payments.gateway import (
    AuthenticationRequired,
    AuthoriseRequest,
    IntentStatus,
    PaymentGateway,
    PaymentNotFound,
    PaymentRequestRefused,
    PaymentState,
    RefundReason,
    RefundResult,
    UnconfiguredGateway,
    capture_deadline,
)
from orchestrator.platform.errors import (
    GatewayUnavailable,
    PaymentDeclined,
    PaymentIntentMismatch,
    WebhookSignatureInvalid,
)
from orchestrator.settings import Settings

# The version whose objects this module reads; bump it deliberately, with the tests.
STRIPE_API_VERSION = "2026-10-28.endive"
# The SDK retries connection errors and 409/429/5xx itself, always with our idempotency key.
MAX_NETWORK_RETRIES = 2
TIMEOUT_SECONDS = 20.0
_EXPAND = ["latest_charge"]


@dataclass(frozen=True)
class StripeOptions:
    """What the gateway sends beyond the minimum. Real Stripe takes all of it; an emulator that
    knows less (localstripe rejects unknown parameters) is driven with some turned off."""

    request_multicapture: bool = True
    send_refund_reason: bool = True
    send_payment_method_types: bool = True
    # A saved method needs a Customer: Stripe attaches the PaymentMethod to the PaymentIntent's
    # customer on confirmation, and a method used without one can never be charged again.
    create_customer: bool = True
    send_setup_future_usage: bool = True


class StripeGateway:
    provider = "stripe"

    def __init__(self, client: stripe.StripeClient, http_client: stripe.HTTPClient, options: StripeOptions) -> None:
        self._client = client
        self._http = http_client
        self._options = options

    @property
    def _intents(self) -> Any:
        return self._client.v1.payment_intents

    async def verify_authorised(self, intent_id: str, *, amount: int, currency: str) -> PaymentState:
        state = await self.retrieve(intent_id)
        if state.status is not IntentStatus.REQUIRES_CAPTURE:
            raise PaymentIntentMismatch(
                f"payment {intent_id} is {state.status.value}, not requires_capture",
                intent_id=intent_id,
                reason="status",
            )
        if state.currency != currency.upper() or state.capturable != amount:
            raise PaymentIntentMismatch(
                f"payment {intent_id} holds {state.capturable} {state.currency}, "
                f"the order needs {amount} {currency.upper()}",
                intent_id=intent_id,
                reason="amount",
            )
        return state

    async def authorise(self, request: AuthoriseRequest, *, idempotency_key: str) -> PaymentState:
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "payment_method": request.payment_method,
            "capture_method": "manual",
            "confirm": True,
            "expand": _EXPAND,
        }
        if self._options.send_payment_method_types:
            # Cards only: with automatic payment methods a confirm would also need a return_url.
            params["payment_method_types"] = ["card"]
        if self._options.request_multicapture:
            params["payment_method_options"] = {"card": {"request_multicapture": "if_available"}}
        customer = request.customer
        saving = request.save_method and not request.off_session
        if saving and customer is None and self._options.create_customer:
            customer = await self._new_customer(request, idempotency_key)
        if customer:
            params["customer"] = customer
        if saving and self._options.send_setup_future_usage:
            params["setup_future_usage"] = "off_session"
        if request.off_session:
            params["off_session"] = True
        if request.metadata:
            params["metadata"] = dict(request.metadata)
        intent = await self._call(self._intents.create_async, params, idempotency_key)
        return _state(intent)

    async def _new_customer(self, request: AuthoriseRequest, idempotency_key: str) -> str:
        """The Stripe Customer a saved method is kept on, under a key derived from the
        authorisation's own: a retry of the authorisation finds the customer it created."""
        metadata = {name: request.metadata[name] for name in ("order_id",) if name in request.metadata}
        if request.customer_reference:
            metadata["customer_id"] = request.customer_reference
        params: dict[str, Any] = {"metadata": metadata} if metadata else {}
        created = await self._call(self._client.v1.customers.create_async, params, f"{idempotency_key}:customer")
        return str(created.id)

    async def capture(self, intent_id: str, *, amount: int, final: bool, idempotency_key: str) -> PaymentState:
        params: dict[str, Any] = {"amount_to_capture": amount, "expand": _EXPAND}
        if not final:
            params["final_capture"] = False
        intent = await self._call(
            lambda p, o: self._intents.capture_async(intent_id, p, o), params, idempotency_key, intent_id
        )
        return _state(intent)

    async def void(self, intent_id: str, *, idempotency_key: str) -> PaymentState:
        intent = await self._call(
            lambda p, o: self._intents.cancel_async(intent_id, p, o), {"expand": _EXPAND}, idempotency_key, intent_id
        )
        return _state(intent)

    async def refund(
        self,
        intent_id: str,
        *,
        amount: int,
        reason: RefundReason | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        params: dict[str, Any] = {"payment_intent": intent_id, "amount": amount}
        if reason and self._options.send_refund_reason:
            params["reason"] = reason
        if metadata:
            params["metadata"] = dict(metadata)
        refund = (await self._call(self._client.v1.refunds.create_async, params, idempotency_key)).to_dict()
        return RefundResult(
            refund_id=refund["id"],
            intent_id=intent_id,
            amount=refund["amount"],
            currency=str(refund["currency"]).upper(),
            status=refund["status"],
            reason=refund.get("reason"),
        )

    async def retrieve(self, intent_id: str) -> PaymentState:
        intent = await self._call(
            lambda p, o: self._intents.retrieve_async(intent_id, p, o), {"expand": _EXPAND}, None, intent_id
        )
        return _state(intent)

    async def find_for_order(self, order_id: UUID) -> PaymentState | None:
        # Stripe's search (metadata set at creation): the newest intent tagged with the order.
        query = f"metadata['order_id']:'{order_id}'"
        found = await self._call(
            lambda p, o: self._intents.search_async(p, o), {"query": query, "expand": ["data.latest_charge"]}, None
        )
        intents = sorted(found.data, key=lambda intent: intent.created, reverse=True)
        return _state(intents[0]) if intents else None

    async def aclose(self) -> None:
        await self._http.close_async()

    async def _call(
        self, method: Any, params: dict[str, Any], idempotency_key: str | None, intent_id: str | None = None
    ) -> Any:
        options = {"idempotency_key": idempotency_key} if idempotency_key else {}
        try:
            return await method(params, options)
        except stripe.CardError as error:
            raise _declined(error) from error
        except stripe.InvalidRequestError as error:
            body = error.error
            if intent_id is not None and error.http_status == 404:
                raise PaymentNotFound(intent_id) from error
            raise PaymentRequestRefused(
                _message(error), code=getattr(body, "code", None), param=getattr(body, "param", None)
            ) from error
        except stripe.IdempotencyError as error:
            # A key reused with other parameters is a bug on our side, never the customer's.
            raise PaymentRequestRefused(_message(error), code="idempotency_error") from error
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as error:
            raise GatewayUnavailable(f"Stripe did not answer: {_message(error)}") from error
        except (stripe.AuthenticationError, stripe.PermissionError) as error:
            raise GatewayUnavailable(f"Stripe refused the API key: {_message(error)}") from error
        except stripe.StripeError as error:
            raise GatewayUnavailable(f"Stripe answered an unexpected error: {_message(error)}") from error


def _message(error: stripe.StripeError) -> str:
    return getattr(error, "user_message", None) or str(error) or type(error).__name__


def _declined(error: stripe.CardError) -> PaymentDeclined:
    body = error.error
    code = getattr(body, "code", None) or error.code
    decline_code = getattr(body, "decline_code", None)
    intent = getattr(body, "payment_intent", None)
    intent_id = intent["id"] if intent is not None else None
    kind = AuthenticationRequired if code == "authentication_required" else PaymentDeclined
    return kind(_message(error), code=code, decline_code=decline_code, intent_id=intent_id)


def _state(found: stripe.PaymentIntent) -> PaymentState:
    """Stripe's PaymentIntent (with ``latest_charge`` expanded) in the gateway's terms."""
    intent: dict[str, Any] = found.to_dict()
    status = IntentStatus(intent["status"])
    charge = intent.get("latest_charge")
    if isinstance(charge, str):  # not expanded: no amounts or card details to read
        charge = None
    authorised = captured = refunded = 0
    card: Any = {}
    authorised_at: datetime | None = None
    if charge is not None:
        card = (charge.get("payment_method_details") or {}).get("card") or {}
        if charge.get("status") == "succeeded":
            authorised = int(charge.get("amount") or 0)
            authorised_at = datetime.fromtimestamp(charge["created"], UTC)
        captured = int(charge.get("amount_captured") or 0)
        # Stripe counts the uncaptured remainder a final capture or a cancel releases as
        # "refunded" on the charge; only money that was captured and went back is a refund.
        released = authorised - captured if status in (IntentStatus.SUCCEEDED, IntentStatus.CANCELED) else 0
        refunded = max(0, int(charge.get("amount_refunded") or 0) - released)
    capture_before_ts = card.get("capture_before")
    capture_before = datetime.fromtimestamp(capture_before_ts, UTC) if capture_before_ts else None
    multicapture = ((card.get("multicapture") or {}).get("status")) == "available"
    return PaymentState(
        intent_id=intent["id"],
        status=status,
        currency=str(intent["currency"]).upper(),
        amount=int(intent["amount"]),
        authorised=authorised,
        captured=captured,
        refunded=refunded,
        capturable=int(intent.get("amount_capturable") or 0),
        capture_before=capture_deadline(capture_before, authorised_at) if authorised else None,
        multicapture=multicapture,
        client_secret=intent.get("client_secret") if status is IntentStatus.REQUIRES_ACTION else None,
        payment_method=_id(intent.get("payment_method")),
        customer=_id(intent.get("customer")),
        charge_id=charge.get("id") if charge is not None else None,
    )


def _id(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.get("id")


def stripe_gateway(
    api_key: str, *, api_base: str = "https://api.stripe.com", options: StripeOptions | None = None
) -> StripeGateway:
    http_client = stripe.HTTPXClient(timeout=TIMEOUT_SECONDS)
    client = stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        stripe_version=STRIPE_API_VERSION,
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=http_client,
    )
    return StripeGateway(client, http_client, options or StripeOptions())


# Stripe's own default: a delivery signed longer ago than this is refused (replayed, or held back).
WEBHOOK_TOLERANCE_SECONDS = 300


def verify_webhook(payload: bytes, signature: str | None, secret: str) -> None:
    """The delivery is Stripe's: ``Stripe-Signature`` verified by the SDK over the raw body (the
    HMAC-SHA256 of ``"<t>.<body>"`` under the endpoint's signing secret, signed at most
    ``WEBHOOK_TOLERANCE_SECONDS`` ago). Else ``WebhookSignatureInvalid``: nothing of it is read."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as error:
        raise WebhookSignatureInvalid(f"the Stripe-Signature does not verify: {error.user_message or error}") from None
    except UnicodeDecodeError:  # the SDK signs the text: a body that is not UTF-8 was never signed
        raise WebhookSignatureInvalid("the Stripe-Signature does not verify: the body is not UTF-8") from None


def payment_gateway(settings: Settings) -> PaymentGateway:
    """The Stripe gateway the settings describe; without a key, one that refuses Stripe payments."""
    if settings.stripe_api_key is None:
        return UnconfiguredGateway("stripe")
    return stripe_gateway(settings.stripe_api_key.get_secret_value(), api_base=settings.stripe_api_base)
