"""The test payment methods the server knows, named as Stripe's test mode names them
(https://docs.stripe.com/testing), plus one of its own for multicapture.

``pm_card_visa_multicapture`` is this server's: a Visa whose issuer grants multicapture when the
PaymentIntent asks (``payment_method_options[card][request_multicapture]=if_available``); every
other card answers ``multicapture.status = "unavailable"``, as most Stripe accounts see.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str
    message: str


@dataclass(frozen=True)
class TestCard:
    __test__ = False  # not a pytest test class

    brand: str
    last4: str
    decline: Decline | None = None
    # The issuer demands 3-D Secure: on-session → requires_action, off-session → a 402.
    authentication: bool = False
    multicapture: bool = False
    exp_year: int = 2034


_GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")

CARDS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_visa_multicapture": TestCard("visa", "4242", multicapture=True),
    "pm_card_visa_chargeDeclined": TestCard("visa", "0002", decline=_GENERIC),
    "pm_card_chargeCustomerFail": TestCard("visa", "0341", decline=_GENERIC),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard(
        "visa", "9995", decline=Decline("card_declined", "insufficient_funds", "Your card has insufficient funds.")
    ),
    "pm_card_chargeDeclinedExpiredCard": TestCard(
        "visa", "0069", decline=Decline("expired_card", "expired_card", "Your card has expired.")
    ),
    "pm_card_authenticationRequired": TestCard("visa", "3184", authentication=True),
    "pm_card_threeDSecure2Required": TestCard("visa", "3220", authentication=True),
}

AUTHENTICATION_REQUIRED = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
