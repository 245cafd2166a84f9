"""An order's payment and every operation on it (authorise, capture, void, refund, fail, expire).

Amounts are minor units of the payment's currency (``platform.money``). A Stripe client secret is
never stored: it is answered once, to the storefront that has to finish the payment.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, text
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, timestamp

PROVIDERS = ("stripe", "pos", "marketplace")
PAYMENT_STATUSES = (
    "pending",
    "authorised",
    "partially_captured",
    "captured",
    "partially_refunded",
    "refunded",
    "voided",
    "failed",
)
OPERATION_KINDS = ("authorise", "capture", "void", "refund", "fail", "expire", "tender", "dispute", "expiring")
TENDER_METHODS = ("cash", "card", "other")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Payment(SQLModel, table=True):
    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_order", "order_id"),
        # One PaymentIntent (one marketplace collection) pays one order; a failed attempt pays none.
        Index(
            "uq_payments_external",
            "provider",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL AND status <> 'failed'"),
        ),
        CheckConstraint(_one_of("provider", PROVIDERS), name="provider_known"),
        CheckConstraint(_one_of("status", PAYMENT_STATUSES), name="status_known"),
        CheckConstraint(
            "amount_authorised >= 0 AND amount_captured >= 0 AND amount_refunded >= 0 "
            "AND amount_captured <= amount_authorised AND amount_refunded <= amount_captured",
            name="money_within_authorisation",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id")
    provider: str = Field(max_length=20)
    # The PaymentIntent id (stripe) or the marketplace's reference; none for pay-in-store.
    external_id: str | None = Field(default=None, max_length=255)
    currency: str = Field(max_length=3)
    amount_authorised: int = Field(default=0, sa_type=BigInteger)
    amount_captured: int = Field(default=0, sa_type=BigInteger)
    amount_refunded: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(max_length=30)
    capture_before: datetime | None = timestamp()
    multicapture: bool = False
    version: int = 1
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()


class PaymentOperation(SQLModel, table=True):
    __tablename__ = "payment_operations"
    __table_args__ = (
        Index("ix_payment_operations_payment", "payment_id", "occurred_at"),
        CheckConstraint(_one_of("kind", OPERATION_KINDS), name="kind_known"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint(
            f"tender_method IS NULL OR {_one_of('tender_method', TENDER_METHODS)}", name="tender_method_known"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    payment_id: uuid.UUID = Field(foreign_key="payments.id")
    kind: str = Field(max_length=20)
    amount: int = Field(sa_type=BigInteger)
    # The key the processor call carried (``gateway.idempotency_key``): one operation per key.
    idempotency_key: str | None = Field(default=None, max_length=255, unique=True)
    external_id: str | None = Field(default=None, max_length=255)
    # The processor's word: succeeded, requires_action, failed...
    status: str = Field(max_length=40)
    error_code: str | None = Field(default=None, max_length=80)
    decline_code: str | None = Field(default=None, max_length=80)
    fulfillment_id: uuid.UUID | None = Field(default=None, foreign_key="fulfillment_orders.id")
    # A tender at the counter: how it was paid, the till's or terminal's reference, change given.
    tender_method: str | None = Field(default=None, max_length=10)
    reference: str | None = Field(default=None, max_length=255)
    change_given: int | None = Field(default=None, sa_type=BigInteger)
    # Why: a refund's or a dispute's reason, an expiry's cause.
    reason: str | None = Field(default=None, max_length=255)
    occurred_at: datetime = created_at()


class StripeEvent(SQLModel, table=True):
    """A Stripe webhook event received: its id makes a repeated delivery a no-op; ``stripe_created``
    tells an older event from a newer one about the same object."""

    __tablename__ = "stripe_events"
    __table_args__ = (Index("ix_stripe_events_object", "object_id", "stripe_created"),)

    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100)
    object_id: str | None = Field(default=None, max_length=255)
    stripe_created: datetime = timestamp(nullable=False)
    received_at: datetime = created_at()
    # What applying it did: applied, ignored_stale, ignored_unknown_payment, ignored_type...
    outcome: str = Field(max_length=40)
