"""Refunds: captured money going back to the customer (``POST /v1/orders/{id}/refunds``).

The rule (``check_refund``, pure): a refund takes at most what the payment captured, less what
was refunded and what refunds still in flight reserved; a payment that captured nothing has
nothing to refund; a marketplace collected the money itself and refunds it itself. The payment
becomes ``refunded`` once everything captured went back, else ``partially_refunded`` — except
while a multicapture authorisation still holds money for goods not yet handed over
(``partially_captured``): it stays that, so later handovers are still captured, and its
``amount_refunded`` says what went back (``status_after_refund``).

A card refund takes three steps, never holding a transaction across Stripe's call:

1. ``reserve_refund``: the order locked, the amount checked, a ``refund`` operation ``queued``
   under its own key (``gateway.idempotency_key(order, refund, operation id)``); once committed
   it reserves the amount: a concurrent refund counts it as in flight;
2. ``gateway.refund`` outside any transaction, with parameters derived only from the stored
   operation, so a retry (the worker's sweep when Stripe could not be reached, or the client
   repeating its request) sends the same request under the same key and Stripe answers its first
   answer again instead of refunding twice;
3. ``apply_refund``: ``succeeded`` with Stripe's ``re_`` id, ``amount_refunded`` raised,
   ``payment.refunded`` on the timeline and in the outbox; or ``failed`` with Stripe's code and
   ``payment.failed``. A run that finds the operation no longer ``queued`` applies nothing.

Money handed back at the counter (``pos``) needs no processor: step 1 records it as done.
Amounts are minor units of the payment's currency (``platform.money``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import get_args

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.order_record.aggregate import load_order
from orchestrator.order_record.tables import Order
from orchestrator.payments.capture_queue import QUEUED
from orchestrator.payments.gateway import Operation, PaymentGateway, RefundReason, RefundResult, idempotency_key
from orchestrator.payments.service import locked_order, payment_data, record_payment_events
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.errors import (
    GatewayUnavailable,
    InvalidRequest,
    NothingToRefund,
    PaymentDeclined,
    PaymentError,
    PaymentsNotConfigured,
    RefundedByMarketplace,
    RefundExceedsRefundable,
)
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.money import UnchargeableAmount, to_stripe_amount

log = structlog.get_logger("orchestrator.payments")
STRIPE_REASONS: frozenset[str] = frozenset(get_args(RefundReason))
# What Stripe may answer for a refund that will not happen.
_NOT_REFUNDED = ("failed", "canceled")


@dataclass(frozen=True, slots=True)
class Refundable:
    provider: str
    captured: int
    refunded: int
    in_flight: int  # refunds reserved and not yet answered by the processor

    @property
    def amount(self) -> int:
        return max(0, self.captured - self.refunded - self.in_flight)


def check_refund(refundable: Refundable, amount: int, currency: str) -> None:
    """Raises what forbids refunding ``amount``; returns if it may go back."""
    if refundable.provider == "marketplace":
        raise RefundedByMarketplace("the marketplace collected this payment: the marketplace refunds it")
    if refundable.captured == 0:
        raise NothingToRefund("the order's payment has captured nothing: there is nothing to refund", field="amount")
    if amount > refundable.amount:
        pending = f", {refundable.in_flight} in refunds in flight" if refundable.in_flight else ""
        raise RefundExceedsRefundable(
            f"at most {refundable.amount} {currency} can be refunded "
            f"(captured {refundable.captured}, refunded {refundable.refunded}{pending})",
            refundable=refundable.amount,
        )


def status_after_refund(status: str, captured: int, refunded: int) -> str:
    if status == "partially_captured":
        return status
    return "refunded" if refunded >= captured else "partially_refunded"


def stripe_reason(reason: str | None) -> RefundReason | None:
    """Stripe's ``reason`` takes three words; any other reason travels as metadata only."""
    return reason if reason in STRIPE_REASONS else None  # type: ignore[return-value]


def refund_metadata(order_id: uuid.UUID, operation_id: uuid.UUID, reason: str | None) -> dict[str, str]:
    metadata = {"order_id": str(order_id), "refund_id": str(operation_id)}
    if reason is not None and stripe_reason(reason) is None:
        metadata["reason"] = reason
    return metadata


@dataclass(frozen=True, slots=True)
class Reserved:
    operation_id: uuid.UUID
    queued: bool  # the processor is still to be asked


async def _refund_target(session: AsyncSession, order_id: uuid.UUID) -> Payment | None:
    """The order's latest payment that captured money (else its latest), locked."""
    rows = (
        await session.execute(
            select(Payment)
            .where(Payment.order_id == order_id)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .with_for_update()
        )
    ).scalars()
    payments = list(rows)
    return next((p for p in payments if p.amount_captured > 0), payments[0] if payments else None)


async def _in_flight(session: AsyncSession, payment_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(PaymentOperation.amount), 0)).where(
            PaymentOperation.payment_id == payment_id,
            PaymentOperation.kind == "refund",
            PaymentOperation.status == QUEUED,
        )
    )
    return int(total or 0)


async def reserve_refund(
    uow: UnitOfWork,
    order_id: uuid.UUID,
    amount: int,
    reason: str | None,
    actor: Actor,
    clock: Clock,
    *,
    card_refunds: bool = True,
) -> Reserved:
    """Step 1, in the caller's transaction. NotFound when ``actor`` may not see the order;
    ``card_refunds``: the service has a card processor to refund through."""
    session = uow.session
    order = (await load_order(session, order_id, actor, lock=True)).order
    payment = await _refund_target(session, order_id)
    if payment is None:
        raise NothingToRefund("the order has no payment: there is nothing to refund", field="amount")
    refundable = Refundable(
        payment.provider, payment.amount_captured, payment.amount_refunded, await _in_flight(session, payment.id)
    )
    check_refund(refundable, amount, payment.currency)
    now = clock.now()
    operation_id = uuid.uuid4()
    op = PaymentOperation(
        id=operation_id,
        payment_id=payment.id,
        kind="refund",
        amount=amount,
        reason=reason,
        occurred_at=now,
        status=QUEUED,
    )
    if payment.provider != "stripe":  # handed back at the counter
        session.add(op)
        await _refunded(session, order, payment, op, None, actor, clock)
        return Reserved(operation_id, queued=False)
    if not card_refunds:
        raise PaymentsNotConfigured("stripe")
    try:
        to_stripe_amount(amount, payment.currency)
    except UnchargeableAmount as exc:
        raise InvalidRequest(str(exc), field="amount") from None
    op.idempotency_key = idempotency_key(order_id, Operation.REFUND, operation_id)
    session.add(op)
    await session.flush()
    return Reserved(operation_id, queued=True)


@dataclass(frozen=True, slots=True)
class RefundCall:
    """Everything the processor is sent, derived from the stored operation only."""

    operation_id: uuid.UUID
    intent_id: str
    amount: int  # the processor's unit (``to_stripe_amount``)
    reason: RefundReason | None
    metadata: dict[str, str]
    key: str


async def refund_call(uow: UnitOfWork, operation_id: uuid.UUID) -> RefundCall | None:
    """The call a queued refund asks for; None once it is no longer queued."""
    session = uow.session
    op = await session.get(PaymentOperation, operation_id)
    if op is None or op.kind != "refund" or op.status != QUEUED or op.idempotency_key is None:
        return None
    payment = await session.get(Payment, op.payment_id)
    assert payment is not None and payment.external_id is not None
    return RefundCall(
        operation_id=op.id,
        intent_id=payment.external_id,
        amount=to_stripe_amount(op.amount, payment.currency),
        reason=stripe_reason(op.reason),
        metadata=refund_metadata(payment.order_id, op.id, op.reason),
        key=op.idempotency_key,
    )


async def _refunded(
    session: AsyncSession,
    order: Order,
    payment: Payment,
    op: PaymentOperation,
    external_refund_id: str | None,
    actor: Actor,
    clock: Clock,
) -> None:
    now = clock.now()
    op.status = "succeeded"
    op.external_id = external_refund_id
    payment.amount_refunded += op.amount
    payment.status = status_after_refund(payment.status, payment.amount_captured, payment.amount_refunded)
    payment.version += 1
    payment.updated_at = now
    data = payment_data(
        payment,
        op.amount,
        refund_id=str(op.id),
        external_refund_id=external_refund_id,
        amount_refunded=payment.amount_refunded,
        reason=op.reason,
    )
    await session.flush()
    drafts = [OrderEventDraft(EventType.PAYMENT_REFUNDED, data)]
    await record_payment_events(session, order, drafts, actor, now)


async def _failed(
    session: AsyncSession, order: Order, payment: Payment, op: PaymentOperation, code: str, actor: Actor, clock: Clock
) -> None:
    op.status = "failed"
    op.error_code = code[:80]
    data = payment_data(payment, op.amount, code=code, decline_code=op.decline_code)
    await session.flush()
    drafts = [OrderEventDraft(EventType.PAYMENT_FAILED, data)]
    await record_payment_events(session, order, drafts, actor, clock.now())
    log.warning("refund refused", payment_id=str(payment.id), refund_id=str(op.id), code=code)


async def apply_refund(
    uow: UnitOfWork, operation_id: uuid.UUID, outcome: RefundResult | PaymentError, actor: Actor, clock: Clock
) -> bool:
    """The processor's word on a queued refund; False if another run applied it first."""
    session = uow.session
    op = await session.get(PaymentOperation, operation_id)
    assert op is not None
    payment = await session.get(Payment, op.payment_id)
    assert payment is not None
    order = await locked_order(session, payment.order_id)
    await session.refresh(payment, with_for_update=True)
    await session.refresh(op, with_for_update=True)
    if op.status != QUEUED:
        return False
    if isinstance(outcome, RefundResult) and outcome.status not in _NOT_REFUNDED:
        await _refunded(session, order, payment, op, outcome.refund_id, actor, clock)
        return True
    if isinstance(outcome, RefundResult):
        op.external_id = outcome.refund_id
        code = f"refund_{outcome.status}"
    else:
        code = getattr(outcome, "code", None) or type(outcome).__name__
        op.decline_code = outcome.decline_code if isinstance(outcome, PaymentDeclined) else None
    await _failed(session, order, payment, op, code, actor, clock)
    return True


# Run in the applying transaction after the outcome is applied (the API stores its answer there).
AfterApply = Callable[[UnitOfWork, PaymentError | None], Awaitable[None]]


async def settle_refund(
    db: Database,
    gateway: PaymentGateway,
    clock: Clock,
    operation_id: uuid.UUID,
    actor: Actor,
    after: AfterApply | None = None,
) -> bool:
    """Steps 2 and 3 of a queued refund (an entry point: its own transactions). Returns whether
    this run applied it; raises ``GatewayUnavailable`` / ``PaymentsNotConfigured`` with the
    operation still queued, for a later retry under the same key."""
    call = await db.run(lambda uow: refund_call(uow, operation_id))
    if call is None:
        return False
    outcome: RefundResult | PaymentError
    try:
        outcome = await gateway.refund(
            call.intent_id,
            amount=call.amount,
            reason=call.reason,
            idempotency_key=call.key,
            metadata=call.metadata,
        )
    except GatewayUnavailable:
        raise
    except PaymentError as refusal:
        outcome = refusal

    async def apply(uow: UnitOfWork) -> bool:
        applied = await apply_refund(uow, operation_id, outcome, actor, clock)
        if after is not None:
            await after(uow, outcome if isinstance(outcome, PaymentError) else None)
        return applied

    return await db.run(committing(apply))
