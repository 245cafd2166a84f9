"""The read models of an order's payment and of its operations."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from orchestrator.payments.tables import Payment, PaymentOperation


class PaymentView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    provider: str
    status: str
    currency: str
    amount_authorised: int
    amount_captured: int
    amount_refunded: int
    capture_before: datetime | None
    multicapture: bool
    external_id: str | None
    # Only in the answer that created a payment awaiting 3-D Secure, for the storefront to finish
    # it; never stored, never shown again.
    client_secret: str | None = None


class PaymentOperationView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    payment_id: uuid.UUID
    provider: str
    kind: str
    amount: int
    currency: str
    status: str
    external_id: str | None
    error_code: str | None
    decline_code: str | None
    fulfillment_id: uuid.UUID | None
    occurred_at: datetime
    # Why (a refund's or a dispute's reason); none for most operations.
    reason: str | None = None
    # A tender at the counter: how it was paid, the till's reference, the change given in cash.
    tender_method: str | None = None
    tender_reference: str | None = None
    change_given: int | None = None


class RefundView(msgspec.Struct, kw_only=True):
    """One refund: ``pending`` while the processor has not answered (the worker retries it),
    then ``succeeded`` or ``failed``. ``external_id``: the processor's refund (``re_...``)."""

    id: uuid.UUID
    payment_id: uuid.UUID
    amount: int
    currency: str
    status: str
    reason: str | None
    external_id: str | None
    created_at: datetime
    error_code: str | None = None


# An operation's status as a refund shows it: queued means the processor's answer is awaited.
_REFUND_STATUS = {"queued": "pending"}


def refund_view(p: Payment, op: PaymentOperation) -> RefundView:
    return RefundView(
        id=op.id,
        payment_id=p.id,
        amount=op.amount,
        currency=p.currency,
        status=_REFUND_STATUS.get(op.status, op.status),
        reason=op.reason,
        external_id=op.external_id,
        created_at=op.occurred_at,
        error_code=op.error_code,
    )


def payment_view(p: Payment, client_secret: str | None = None) -> PaymentView:
    return PaymentView(
        id=p.id,
        provider=p.provider,
        status=p.status,
        currency=p.currency,
        amount_authorised=p.amount_authorised,
        amount_captured=p.amount_captured,
        amount_refunded=p.amount_refunded,
        capture_before=p.capture_before,
        multicapture=p.multicapture,
        external_id=p.external_id,
        client_secret=client_secret,
    )


def operation_view(p: Payment, op: PaymentOperation) -> PaymentOperationView:
    return PaymentOperationView(
        id=op.id,
        payment_id=p.id,
        provider=p.provider,
        kind=op.kind,
        amount=op.amount,
        currency=p.currency,
        status=op.status,
        external_id=op.external_id,
        error_code=op.error_code,
        decline_code=op.decline_code,
        fulfillment_id=op.fulfillment_id,
        occurred_at=op.occurred_at,
        reason=op.reason,
        tender_method=op.tender_method,
        tender_reference=op.reference if op.kind == "tender" else None,
        change_given=op.change_given,
    )
