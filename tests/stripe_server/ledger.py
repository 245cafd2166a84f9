"""The server's state: Customers, PaymentMethods, PaymentIntents, their charges and refunds, and
the events Stripe would send.

As in Stripe's test mode, a test token (``pm_card_visa``) names a card, and each PaymentIntent
given one gets a PaymentMethod of its own (``pm_...``). That method may be used once, unless the
confirmation attached it to the intent's Customer (``setup_future_usage`` with a ``customer``);
a method used without a Customer can never be charged again, one kept on a Customer only with it.

Objects carry Stripe's field names (``docs/stripe_fixtures3.json``) and move through its
statuses; a request Stripe would refuse raises ``StripeFailure`` with Stripe's error body.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from tests.stripe_server.cards import AUTHENTICATION_REQUIRED, CARDS, Decline, TestCard
from tests.stripe_server.forms import flag
from tests.stripe_server.objects import CAPTURE_WINDOW_SECONDS, charge, customer, event, new_id, payment_method
from tests.stripe_server.refusals import StripeFailure, integer, invalid, valid_metadata

CANCELABLE = {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action", "processing"}


@dataclass
class Ledger:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    cards: dict[str, TestCard] = field(default_factory=dict)  # the card behind each PaymentMethod
    spent: set[str] = field(default_factory=set)  # PaymentMethods used without a Customer
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    clock: Any = time.time  # tests may inject one (seconds since the epoch)
    # None: charges carry no ``capture_before`` (the gateway then assumes 7 days)
    capture_window: int | None = CAPTURE_WINDOW_SECONDS

    def now(self) -> int:
        return int(self.clock())

    # --- customers and payment methods ----------------------------------------------------------

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        created = customer(params, metadata=valid_metadata(params), now=self.now())
        self.customers[created["id"]] = created
        return created

    def _method_for(self, method: str, customer_id: str | None) -> str:
        """The PaymentMethod a PaymentIntent uses: a new one for a test token; a saved one only
        with the Customer it is attached to (Stripe's refusals, word for word)."""
        if method in CARDS:
            created = payment_method(CARDS[method], now=self.now())
            self.methods[created["id"]] = created
            self.cards[created["id"]] = CARDS[method]
            return created["id"]
        if method not in self.methods:
            raise invalid(f"No such PaymentMethod: '{method}'", code="resource_missing", param="payment_method")
        owner = self.methods[method]["customer"]
        if owner is not None and customer_id is None:
            raise invalid(
                f"The `payment_method` parameter supplied {method} belongs to the Customer {owner}. "
                "Please include the Customer in the `customer` parameter on the PaymentIntent.",
                param="payment_method",
            )
        if owner is None and method in self.spent:
            raise invalid(
                "The provided PaymentMethod was previously used with a PaymentIntent without Customer "
                "attachment, shared with a connected account without Customer attachment, or was detached "
                "from a Customer. It may not be used again. To use a PaymentMethod multiple times, you must "
                "attach it to a Customer first.",
                param="payment_method",
            )
        if owner != customer_id:
            raise invalid(
                f"The customer does not have a payment method with the ID {method}. "
                "The payment method must be attached to the customer.",
                param="payment_method",
            )
        return method

    def _used(self, intent: dict[str, Any], *, succeeded: bool) -> None:
        """A confirmation reached the card: if it succeeded with ``setup_future_usage`` and a
        Customer, the method is now the customer's; else, unless it already was, it is spent."""
        method = intent["payment_method"]
        if self.methods[method]["customer"] is not None:
            return
        if succeeded and intent["setup_future_usage"] and intent["customer"]:
            self.methods[method]["customer"] = intent["customer"]
        else:
            self.spent.add(method)

    # --- payment intents ------------------------------------------------------------------------

    def create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = integer(params, "amount", required=True)
        currency = str(params.get("currency") or "").lower()
        if len(currency) != 3:
            raise invalid("Missing required param: currency.", code="parameter_missing", param="currency")
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise invalid(f"Invalid capture_method: {capture_method}", code="parameter_invalid", param="capture_method")
        customer_id = params.get("customer") or None
        if customer_id is not None and customer_id not in self.customers:
            raise invalid(f"No such customer: '{customer_id}'", code="resource_missing", param="customer")
        method = params.get("payment_method")
        off_session = bool(flag(params.get("off_session")))
        if method is not None:
            method = self._method_for(method, customer_id)
        card_options = (params.get("payment_method_options") or {}).get("card") or {}
        future = params.get("setup_future_usage")
        if future not in (None, "", "on_session", "off_session"):
            raise invalid(f"Invalid setup_future_usage: {future}", code="parameter_invalid", param="setup_future_usage")
        intent_id = new_id("pi")
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": capture_method,
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "confirmation_method": "automatic",
            "created": self.now(),
            "currency": currency,
            "customer": customer_id,
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": valid_metadata(params),
            "next_action": None,
            "payment_method": method,
            "payment_method_options": {
                "card": {"request_multicapture": card_options.get("request_multicapture", "never")}
            },
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "setup_future_usage": future or None,
            "status": "requires_confirmation" if method else "requires_payment_method",
        }
        self.intents[intent_id] = intent
        if flag(params.get("confirm")):
            if method is None:
                raise invalid(
                    "You cannot confirm this PaymentIntent because it's missing a payment method.",
                    code="payment_intent_unexpected_state",
                )
            self._confirm(intent, self.cards[method], off_session=off_session)
        return intent

    def intent(self, intent_id: str) -> dict[str, Any]:
        if intent_id not in self.intents:
            raise invalid(f"No such payment_intent: '{intent_id}'", code="resource_missing", param="intent", status=404)
        return self.intents[intent_id]

    def _confirm(self, intent: dict[str, Any], card: TestCard, *, off_session: bool) -> None:
        if card.authentication and not off_session:
            intent["status"] = "requires_action"
            intent["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {
                    "type": "three_d_secure_redirect",
                    "stripe_js": "https://hooks.stripe.com/3d_secure_2/",
                },
            }
            self.emit("payment_intent.requires_action", intent)
            return
        decline = AUTHENTICATION_REQUIRED if card.authentication else card.decline
        if decline is not None:
            self._decline(intent, card, decline)
        self._authorise(intent, card)

    def _decline(self, intent: dict[str, Any], card: TestCard, decline: Decline) -> None:
        charge = self._charge(intent, card, succeeded=False, failure=decline)
        self._used(intent, succeeded=False)
        error = {
            "type": "card_error",
            "code": decline.code,
            "decline_code": decline.decline_code,
            "message": decline.message,
            "charge": charge["id"],
            "doc_url": f"https://docs.stripe.com/error-codes/{decline.code.replace('_', '-')}",
            "payment_method": {"id": intent["payment_method"], "object": "payment_method", "type": "card"},
        }
        intent.update(status="requires_payment_method", last_payment_error=error, latest_charge=charge["id"])
        self.emit("payment_intent.payment_failed", intent)
        raise StripeFailure(402, {**error, "payment_intent": dict(intent)})

    def _authorise(self, intent: dict[str, Any], card: TestCard) -> None:
        charge = self._charge(intent, card, succeeded=True, failure=None)
        self._used(intent, succeeded=True)
        intent.update(status="requires_capture", amount_capturable=intent["amount"], latest_charge=charge["id"])
        intent["next_action"] = None
        self.emit("payment_intent.amount_capturable_updated", intent)
        if intent["capture_method"] != "manual":
            self.capture(intent["id"], {})

    def complete_authentication(self, intent_id: str, *, succeed: bool = True) -> dict[str, Any]:
        """The customer finishing (or failing) 3-D Secure in the browser, which tests play."""
        intent = self.intent(intent_id)
        assert intent["status"] == "requires_action", intent["status"]
        card = self.cards[intent["payment_method"]]
        if not succeed:
            try:
                self._decline(intent, card, AUTHENTICATION_REQUIRED)
            except StripeFailure:
                return intent
        self._authorise(intent, card)
        return intent

    def _charge(self, intent: dict[str, Any], card: TestCard, *, succeeded: bool, failure: Decline | None) -> Any:
        created = charge(
            intent, card, now=self.now(), succeeded=succeeded, failure=failure, capture_window=self.capture_window
        )
        self.charges[created["id"]] = created
        return created

    def capture(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.intent(intent_id)
        if intent["status"] != "requires_capture":
            raise invalid(
                f"This PaymentIntent could not be captured because it has a status of {intent['status']}. "
                "Only a PaymentIntent with one of the following statuses may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        charge = self.charges[intent["latest_charge"]]
        amount = integer(params, "amount_to_capture") or intent["amount_capturable"]
        if amount > intent["amount_capturable"]:
            raise invalid(
                f"The amount to capture ({amount}) exceeds the amount capturable ({intent['amount_capturable']}).",
                code="amount_too_large",
                param="amount_to_capture",
            )
        final = flag(params.get("final_capture"))
        final = True if final is None else final
        multicapture = charge["payment_method_details"]["card"]["multicapture"]["status"] == "available"
        if not final and not multicapture:
            raise invalid(
                "final_capture=false can only be used when multicapture is available for this PaymentIntent.",
                param="final_capture",
            )
        charge.update(amount_captured=charge["amount_captured"] + amount, captured=True)
        intent["amount_received"] += amount
        intent["amount_capturable"] -= amount
        self.emit("charge.captured", charge)
        if final or intent["amount_capturable"] == 0:
            released = intent["amount_capturable"]
            intent.update(status="succeeded", amount_capturable=0)
            # A final capture releases the rest; Stripe shows it as refunded on the charge.
            self._release(charge, released)
            self.emit("payment_intent.succeeded", intent)
        else:
            self.emit("payment_intent.amount_capturable_updated", intent)
        return intent

    def cancel(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.intent(intent_id)
        # After non-final captures (multicapture) the intent is still requires_capture and may be
        # cancelled: that releases what is left capturable; what was captured stays captured.
        if intent["status"] not in CANCELABLE:
            raise invalid(
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. "
                "Only a PaymentIntent with one of the following statuses may be canceled: "
                f"{', '.join(sorted(CANCELABLE))}.",
                code="payment_intent_unexpected_state",
            )
        if intent["latest_charge"] and intent["status"] == "requires_capture":
            self._release(self.charges[intent["latest_charge"]], intent["amount_capturable"])
        intent.update(
            status="canceled",
            amount_capturable=0,
            canceled_at=self.now(),
            cancellation_reason=params.get("cancellation_reason"),
            next_action=None,
        )
        self.emit("payment_intent.canceled", intent)
        return intent

    def _release(self, charge: dict[str, Any], amount: int) -> None:
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]

    # --- refunds --------------------------------------------------------------------------------

    def refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise invalid("Missing required param: payment_intent.", code="parameter_missing", param="payment_intent")
        intent = self.intent(str(intent_id))
        reason = params.get("reason")
        if reason is not None and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
            raise invalid(f"Invalid reason: {reason}", code="parameter_invalid", param="reason")
        metadata = valid_metadata(params)
        if intent["amount_received"] == 0:
            raise invalid(
                f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                code="charge_not_captured" if intent["status"] == "requires_capture" else None,
            )
        charge = self.charges[intent["latest_charge"]]
        released = charge["amount"] - charge["amount_captured"] if intent["status"] in ("succeeded", "canceled") else 0
        refundable = charge["amount_captured"] - (charge["amount_refunded"] - released)
        if refundable == 0:
            raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = integer(params, "amount") or refundable
        if amount > refundable:
            raise invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})",
                code="amount_too_large",
                param="amount",
            )
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": charge["id"],
            "created": self.now(),
            "currency": intent["currency"],
            "destination_details": {"card": {"type": "refund"}, "type": "card"},
            "metadata": metadata,
            "payment_intent": intent["id"],
            "reason": reason,
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        self._release(charge, amount)
        self.emit("charge.refunded", charge)
        return refund

    # --- expansion and events -------------------------------------------------------------------

    def expanded(self, intent: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        shown = dict(intent)
        for path in expand:
            if path != "latest_charge":
                raise invalid(f"This property cannot be expanded ({path}).", param="expand")
            if shown["latest_charge"]:
                shown["latest_charge"] = dict(self.charges[shown["latest_charge"]])
        return shown

    def emit(self, event_type: str, obj: dict[str, Any]) -> None:
        self.events.append(event(event_type, dict(obj), created=self.now()))
