"""Errors named for the business. ``platform/problems.py`` maps each to one problem type and status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DomainError(Exception):
    """Base for every rule a request can break."""

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class NotFound(DomainError):
    """A thing the caller named does not exist (or the caller may not see it)."""


class Forbidden(DomainError):
    """The key's role may not do this to a resource it can see (a staff key changing more than
    the pickup's store, say)."""


class InvalidRequest(DomainError):
    """Input that is well-formed but breaks a rule; ``field`` names the culprit."""

    def __init__(self, detail: str, *, field: str | None = None, **context: Any) -> None:
        super().__init__(detail, **context)
        self.field = field


class UnknownSku(InvalidRequest):
    pass


class UnknownLocation(InvalidRequest):
    pass


class LocationLacksCapability(InvalidRequest):
    pass


class Conflict(DomainError):
    """The request is valid but collides with the current state."""


class AlreadyExists(Conflict):
    pass


class IdentityTaken(Conflict):
    """A customer identity (email, phone, loyalty id, account) another customer owns."""


@dataclass(frozen=True)
class Shortfall:
    sku: str
    requested: int
    available: int


class InsufficientStock(Conflict):
    """Every short line at once, plus locations that could serve the whole order (nearest first)."""

    def __init__(self, shortfalls: list[Shortfall], suggestions: list[str] | None = None) -> None:
        super().__init__("not enough stock for " + ", ".join(s.sku for s in shortfalls))
        self.shortfalls = shortfalls
        self.suggestions = suggestions or []


class StockWouldGoNegative(Conflict):
    """An adjustment would leave on-hand stock below zero or below what is reserved."""


class IllegalTransition(Conflict):
    def __init__(self, action: str, state: str, allowed: list[str]) -> None:
        super().__init__(
            f"cannot {action} a fulfillment that is {state}",
            action=action,
            state=state,
            allowed_actions=allowed,
        )
        self.action = action
        self.state = state
        self.allowed = allowed


class OrderNotCancellable(Conflict):
    pass


class VersionMismatch(DomainError):
    """``If-Match`` named a version that is no longer current."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"version {expected} is stale; the current version is {current}",
            expected=expected,
            current=current,
        )


class IdempotencyKeyInFlight(Conflict):
    pass


class PreconditionRequired(DomainError):
    """A change that must name the version it is based on (``If-Match``) did not."""


class NothingToSource(Conflict):
    """``POST /v1/orders/{id}/re-source`` on an order no unit of which waits for a location."""


class ChangeRefused(Conflict):
    """An order change of which some action may not be applied: none is (``actions`` says why)."""


class IdempotencyKeyReused(InvalidRequest):
    pass


class WrongPickupCode(InvalidRequest):
    pass


class PickupLocked(Conflict):
    pass


class RateLimited(DomainError):
    """Too many attempts in the current window; ``retry_after``: seconds until the next one opens."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


# --- payments: the refusals the problem table names (the gateway raises them, ``payments``) ------


class PaymentError(DomainError):
    """Base for what a processor call can answer instead of a result."""


class PaymentsNotConfigured(InvalidRequest):
    """The service has no key for this provider: it cannot take such a payment (a 422)."""

    def __init__(self, provider: str) -> None:
        super().__init__(f"{provider} payments are not configured on this service", field="payment.provider")
        self.provider = provider


class WebhooksNotConfigured(PaymentsNotConfigured):
    """No signing secret for this provider's webhooks: none can be verified, so none is taken."""

    def __init__(self, provider: str) -> None:
        InvalidRequest.__init__(self, f"{provider} webhooks are not configured on this service (no signing secret)")
        self.provider = provider


class WebhookSignatureInvalid(DomainError):
    """A webhook whose signature is missing, wrong or too old: refused (400), nothing applied."""


class PaymentRequired(InvalidRequest):
    """The channel's orders must carry a payment (``payment_required_channels``)."""


class PaymentExists(Conflict):
    """The order already has a live payment covering what is due: no second one (re-payment)."""


class ShipmentUnpaid(Conflict):
    """Goods would ship with nothing paying for them (the card's authorisation ran out)."""

    def __init__(self, detail: str, *, amount_due: int) -> None:
        super().__init__(detail, amount_due=amount_due)
        self.amount_due = amount_due


class NothingDue(InvalidRequest):
    """Nothing is left to pay on the order (re-payment)."""


class PaymentDeclined(PaymentError):
    """The bank or the processor refused the card (a 402 for the client, with both codes)."""

    def __init__(
        self, detail: str, *, code: str | None, decline_code: str | None, intent_id: str | None = None
    ) -> None:
        super().__init__(detail, code=code, decline_code=decline_code, intent_id=intent_id)
        self.code = code
        self.decline_code = decline_code
        self.intent_id = intent_id


class PaymentIntentMismatch(PaymentError):
    """A payment the client named is not what the order needs (wrong state, amount or currency)."""

    def __init__(self, detail: str, *, intent_id: str, reason: str) -> None:
        super().__init__(detail, intent_id=intent_id, reason=reason)
        self.intent_id = intent_id
        self.reason = reason


class GatewayUnavailable(PaymentError):
    """The processor could not be reached or failed; the call may be retried with the same key."""


class NothingToRefund(InvalidRequest):
    """The order's payment has captured nothing that could go back."""


class RefundExceedsRefundable(InvalidRequest):
    """More than captured − refunded − refunds in flight (``refundable``, minor units)."""

    def __init__(self, detail: str, *, refundable: int) -> None:
        super().__init__(detail, field="amount", refundable=refundable)
        self.refundable = refundable


class RefundedByMarketplace(InvalidRequest):
    """The marketplace collected the money: it refunds, this service cannot."""


class RefundRefused(PaymentError):
    """The processor refused a refund (the money stays where it is); ``code`` is its word."""

    def __init__(self, detail: str, *, code: str | None) -> None:
        super().__init__(detail, code=code)
        self.code = code


class TenderRefused(InvalidRequest):
    """A handover's tender at the counter does not settle what its goods make due (``payments/tenders.py``)."""

    def __init__(self, detail: str, *, amount_due: int) -> None:
        super().__init__(detail, field="tender", amount_due=amount_due)
        self.amount_due = amount_due


class TenderRequired(TenderRefused):
    pass


class TenderInsufficient(TenderRefused):
    pass


class TenderExceedsDue(TenderRefused):
    pass


class TenderNotNeeded(TenderRefused):
    pass


class AdditionalPaymentRequired(DomainError):
    """A change raises what a card order costs and no authorisation covers the difference: the
    channel sends a ``payment`` with the change (the order keeps no card to use off-session)."""

    def __init__(self, detail: str, *, amount: int, currency: str) -> None:
        super().__init__(detail, amount=amount, currency=currency)
