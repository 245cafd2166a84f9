"""What the service asks of a card processor, in its own terms: the gateway protocol, its results
and its named errors. Stripe is one implementation (``stripe_gateway.py``); nothing here knows it.

Amounts are integers in the processor's unit for the currency (Stripe's minor units: see
``platform/money.py::stripe_exponent``); currencies are ISO 4217 codes, upper case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable
from uuid import UUID

from orchestrator.platform.errors import PaymentDeclined, PaymentError, PaymentsNotConfigured

# Card networks hold an uncaptured authorisation about a week; Stripe documents 7 days for
# online card payments when the charge does not say otherwise.
DEFAULT_AUTHORISATION_VALIDITY = timedelta(days=7)

RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]


class Operation(StrEnum):
    """What a processor call does; part of its idempotency key."""

    AUTHORISE = "authorise"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


def idempotency_key(order_id: UUID | str, operation: Operation, ref: UUID | str | None = None) -> str:
    """The one key for (order, operation, fulfillment or refund id): a retry after a crash sends
    the same key, so the processor answers the first result again instead of moving money twice.
    ``ref`` tells apart the operations of one order that are meant to happen more than once
    (a capture per fulfillment, a refund per refund request, an authorisation per attempt)."""
    return f"order:{order_id}:{Operation(operation).value}:{ref if ref is not None else '-'}"


class IntentStatus(StrEnum):
    """The processor's state of one payment (Stripe's PaymentIntent statuses)."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"


@dataclass(frozen=True)
class PaymentState:
    """One payment as the processor sees it now. ``authorised`` is what the card holder's bank
    holds or held for us; ``captured`` what moved; ``refunded`` what went back (never the
    uncaptured remainder a final capture or a void releases)."""

    intent_id: str
    status: IntentStatus
    currency: str
    amount: int
    authorised: int
    captured: int
    refunded: int
    capturable: int
    capture_before: datetime | None
    multicapture: bool
    client_secret: str | None = None
    payment_method: str | None = None
    customer: str | None = None
    charge_id: str | None = None

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    intent_id: str
    amount: int
    currency: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class AuthoriseRequest:
    """Create and confirm a manual-capture payment from a payment method.

    ``save_method`` asks the processor to keep the method for later off-session charges (a later
    change authorises a difference); ``off_session`` says the customer is not there to
    authenticate, so a bank demanding it is an error instead of a ``requires_action``.
    ``customer`` is the processor's customer the method belongs to; without one, saving creates
    one (tagged with ``customer_reference``, this service's customer id, when known)."""

    amount: int
    currency: str
    payment_method: str
    customer: str | None = None
    customer_reference: str | None = None
    save_method: bool = False
    off_session: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def with_saved_card(
        cls, saved: PaymentState, amount: int, currency: str, metadata: Mapping[str, str]
    ) -> AuthoriseRequest | None:
        """Off-session, with the card a PaymentIntent saved on its customer (None: it saved none)."""
        if not (saved.payment_method and saved.customer):
            return None
        return cls(
            amount=amount,
            currency=currency,
            payment_method=saved.payment_method,
            customer=saved.customer,
            off_session=True,
            metadata=metadata,
        )


def capture_deadline(capture_before: datetime | None, authorised_at: datetime | None) -> datetime | None:
    """When the authorisation lapses: the processor's word if it gave one, else a week on."""
    if capture_before is not None:
        return capture_before
    return authorised_at + DEFAULT_AUTHORISATION_VALIDITY if authorised_at is not None else None


# --- errors -------------------------------------------------------------------------------------


class AuthenticationRequired(PaymentDeclined):
    """Off-session, the bank demands the customer authenticate (3-D Secure): ask them back."""


class PaymentRequestRefused(PaymentError):
    """The processor refused the request itself (over-refund, capture in the wrong state...)."""

    def __init__(self, detail: str, *, code: str | None, param: str | None = None) -> None:
        super().__init__(detail, code=code, param=param)
        self.code = code
        self.param = param


class PaymentNotFound(PaymentError):
    def __init__(self, intent_id: str) -> None:
        super().__init__(f"no payment {intent_id} at the processor", intent_id=intent_id)
        self.intent_id = intent_id


# --- the protocol -------------------------------------------------------------------------------


@runtime_checkable  # litestar checks what it injects against the annotation
class PaymentGateway(Protocol):
    """A card processor holding money for an order until the goods move.

    Every call that moves money takes the caller's idempotency key (``idempotency_key``);
    reads (``retrieve``, ``verify_authorised``) are safe to repeat and take none."""

    provider: str

    async def verify_authorised(self, intent_id: str, *, amount: int, currency: str) -> PaymentState:
        """A payment the storefront confirmed: it must hold ``amount`` ``currency`` for capture."""
        ...

    async def authorise(self, request: AuthoriseRequest, *, idempotency_key: str) -> PaymentState:
        """Create and confirm a manual-capture payment. ``requires_action`` comes back as a state
        with a ``client_secret``; a refusal raises ``PaymentDeclined``."""
        ...

    async def capture(self, intent_id: str, *, amount: int, final: bool, idempotency_key: str) -> PaymentState:
        """Capture ``amount``; ``final=False`` keeps the rest capturable (multicapture only)."""
        ...

    async def void(self, intent_id: str, *, idempotency_key: str) -> PaymentState:
        """Release an uncaptured authorisation."""
        ...

    async def refund(
        self,
        intent_id: str,
        *,
        amount: int,
        reason: RefundReason | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult: ...

    async def retrieve(self, intent_id: str) -> PaymentState:
        """The payment as it is now (the reconciler applies it after a crash)."""
        ...

    async def find_for_order(self, order_id: UUID) -> PaymentState | None:
        """The payment this service created for the order (``authorise`` tags it with the order
        id), for the reconciler when a crash lost the processor's answer; None if there is none."""
        ...

    async def aclose(self) -> None: ...


class UnconfiguredGateway:
    """Stands in for a provider without a key: the service runs, such payments are refused."""

    def __init__(self, provider: str = "stripe") -> None:
        self.provider = provider

    def _refuse(self) -> PaymentsNotConfigured:
        return PaymentsNotConfigured(self.provider)

    async def verify_authorised(self, intent_id: str, *, amount: int, currency: str) -> PaymentState:
        raise self._refuse()

    async def authorise(self, request: AuthoriseRequest, *, idempotency_key: str) -> PaymentState:
        raise self._refuse()

    async def capture(self, intent_id: str, *, amount: int, final: bool, idempotency_key: str) -> PaymentState:
        raise self._refuse()

    async def void(self, intent_id: str, *, idempotency_key: str) -> PaymentState:
        raise self._refuse()

    async def refund(
        self,
        intent_id: str,
        *,
        amount: int,
        reason: RefundReason | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        raise self._refuse()

    async def retrieve(self, intent_id: str) -> PaymentState:
        raise self._refuse()

    async def find_for_order(self, order_id: UUID) -> PaymentState | None:
        raise self._refuse()

    async def aclose(self) -> None:
        return None
