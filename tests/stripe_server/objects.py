"""Stripe-shaped objects the ledger creates (field names from ``docs/stripe_fixtures3.json``)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from orchestrator.payments.stripe_gateway import STRIPE_API_VERSION
from tests.stripe_server.cards import Decline, TestCard

CAPTURE_WINDOW_SECONDS = 7 * 24 * 3600


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18).replace('-', 'x').replace('_', 'y')[:24]}"


def event(
    event_type: str, obj: dict[str, Any], *, created: int | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """Stripe's event envelope around ``obj`` (rendered in the API version the service pins, as
    Stripe renders an endpoint's events in the version it was created with)."""
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def customer(params: dict[str, Any], *, metadata: dict[str, str], now: int) -> dict[str, Any]:
    """Stripe's Customer, as ``POST /v1/customers`` creates it."""
    return {
        "id": new_id("cus"),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": params.get("description"),
        "email": params.get("email"),
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": params.get("name"),
        "next_invoice_sequence": 1,
        "phone": params.get("phone"),
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def payment_method(card: TestCard, *, now: int) -> dict[str, Any]:
    """The PaymentMethod Stripe's test mode makes of a test token (``pm_card_visa``) on each use."""
    return {
        "id": new_id("pm"),
        "object": "payment_method",
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "card": {"brand": card.brand, "last4": card.last4, "exp_month": 12, "exp_year": card.exp_year},
        "created": now,
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def charge(
    intent: dict[str, Any],
    card: TestCard,
    *,
    now: int,
    succeeded: bool,
    failure: Decline | None,
    capture_window: int | None = CAPTURE_WINDOW_SECONDS,
) -> dict[str, Any]:
    multicapture = (
        card.multicapture and intent["payment_method_options"]["card"]["request_multicapture"] == "if_available"
    )
    return {
        "id": new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": 0,
        "amount_refunded": 0,
        "captured": False,
        "created": now,
        "currency": intent["currency"],
        "customer": intent["customer"],
        "disputed": False,
        "failure_code": failure.code if failure else None,
        "failure_message": failure.message if failure else None,
        "livemode": False,
        "metadata": intent["metadata"],
        "outcome": {
            "network_status": "approved_by_network" if succeeded else "declined_by_network",
            "reason": failure.decline_code if failure else None,
            "type": "authorized" if succeeded else "issuer_declined",
            "seller_message": "Payment complete." if succeeded else "The bank did not return any further details.",
        },
        "paid": succeeded,
        "payment_intent": intent["id"],
        "payment_method": intent["payment_method"],
        "payment_method_details": {
            "type": "card",
            "card": {
                "brand": card.brand,
                "last4": card.last4,
                "exp_month": 12,
                "exp_year": card.exp_year,
                "funding": "credit",
                "network": card.brand,
                # Stripe states the deadline on authorised card charges; tests may leave it out.
                "capture_before": now + capture_window if succeeded and capture_window else None,
                "multicapture": {"status": "available" if multicapture else "unavailable"},
                "extended_authorization": {"status": "disabled"},
                "incremental_authorization": {"status": "unavailable"},
                "overcapture": {"maximum_amount_capturable": intent["amount"], "status": "unavailable"},
            },
        },
        "refunded": False,
        "status": "succeeded" if succeeded else "failed",
    }


def dispute(
    charge: dict[str, Any], *, now: int, amount: int | None = None, reason: str = "fraudulent"
) -> dict[str, Any]:
    """The dispute Stripe opens when the card holder contests ``charge`` (``charge.dispute.created``)."""
    card = charge["payment_method_details"]["card"]
    return {
        "id": new_id("dp"),
        "object": "dispute",
        "amount": charge["amount_captured"] if amount is None else amount,
        "balance_transactions": [],
        "charge": charge["id"],
        "created": now,
        "currency": charge["currency"],
        "evidence_details": {
            "due_by": now + 7 * 24 * 3600,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "payment_method_details": {
            "card": {"brand": card["brand"], "case_type": "chargeback", "network_reason_code": "10.4"},
            "type": "card",
        },
        "reason": reason,
        "status": "needs_response",
    }
