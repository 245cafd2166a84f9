"""Stripe's webhook events applied to our payments and their orders, once each, in the receiving
request's transaction. What an event means is ``payments/stripe_events.py``; here it is read
against the record and written.

- The event id goes into ``stripe_events`` in the same transaction that applies it: a second
  delivery finds it there and applies nothing; two at once wait on the same key.
- The order row is locked first (the order-first lock order every payment writer keeps), so an
  event and the worker's capture, a handover or a sweep about the same order never interleave.
- A finished 3-D Secure is the reconciler's authorisation (``payments/timers.settle_authorised``);
  a cancelled pending payment cancels the order through the cancel flow (``orders/changes``),
  as the payment timeout does. Nothing here calls Stripe: the event says what Stripe did.
- An event about a PaymentIntent no payment of ours names yet is recorded and left: intake may be
  applying Stripe's answer right now, and the reconciler sweep settles a crash.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.order_record.states import OPEN_STATES, Method
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import FulfillmentOrder, Order
from orchestrator.order_record.timeline import record_order_events
from orchestrator.orders.changes import cancel_order
from orchestrator.payments.capture_queue import QUEUED
from orchestrator.payments.service import locked_order, payment_data
from orchestrator.payments.stripe_events import (
    DISPUTED,
    HANDLED,
    PAYMENT_CANCELED,
    Action,
    Decision,
    Outcome,
    Received,
    Recorded,
    decide,
)
from orchestrator.payments.tables import Payment, PaymentOperation, StripeEvent
from orchestrator.payments.timers import Awaiting, settle_authorised
from orchestrator.platform.actors import SYSTEM
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.events import EventType, OrderEventDraft

log = structlog.get_logger("orchestrator.payments")


async def receive_event(uow: UnitOfWork, event: Received, clock: Clock, lifecycle: LifecycleSettings) -> Outcome | None:
    """Apply one verified event; what it did, or None when it was received before (nothing done)."""
    session = uow.session
    now = clock.now()
    first = await session.scalar(
        insert(StripeEvent)
        .values(
            id=event.id,
            type=event.type,
            object_id=event.object_id,
            stripe_created=event.created,
            received_at=now,
            outcome=Outcome.RECEIVED.value,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(StripeEvent.id)
    )
    if first is None:
        return None
    # Only an event that may change a payment locks its order.
    payment = await _payment_of(uow, event.intent_id) if event.type in HANDLED else None
    order = None
    if payment is not None:
        order = await locked_order(session, payment.order_id)
        await session.refresh(payment, with_for_update=True)
    recorded = await _recorded(uow, order, payment) if order is not None and payment is not None else None
    decision = decide(event, recorded, newest_applied=await _newest_applied(uow, event))
    if decision.outcome is Outcome.APPLIED and order is not None and payment is not None:
        await _apply(uow, decision, order, payment, clock, lifecycle)
    elif decision.outcome not in (Outcome.RECEIVED, Outcome.IGNORED_TYPE):
        log.info("stripe event not applied", event_id=event.id, type=event.type, outcome=decision.outcome.value)
    await session.execute(update(StripeEvent).where(StripeEvent.id == event.id).values(outcome=decision.outcome.value))
    return decision.outcome


async def _payment_of(uow: UnitOfWork, intent_id: str | None) -> Payment | None:
    """Our payment of that PaymentIntent: the live one, else the latest attempt."""
    if intent_id is None:
        return None
    return await uow.session.scalar(
        select(Payment)
        .where(Payment.provider == "stripe", Payment.external_id == intent_id)
        .order_by((Payment.status == "failed").asc(), Payment.created_at.desc(), Payment.id)
        .limit(1)
    )


async def _newest_applied(uow: UnitOfWork, event: Received) -> datetime | None:
    if event.object_id is None:
        return None
    return await uow.session.scalar(
        select(func.max(StripeEvent.stripe_created)).where(
            StripeEvent.object_id == event.object_id,
            StripeEvent.outcome == Outcome.APPLIED.value,
            StripeEvent.id != event.id,
        )
    )


async def _recorded(uow: UnitOfWork, order: Order, payment: Payment) -> Recorded:
    ops = (
        await uow.session.execute(
            select(PaymentOperation.kind, PaymentOperation.status, PaymentOperation.external_id).where(
                PaymentOperation.payment_id == payment.id
            )
        )
    ).all()
    return Recorded(
        status=payment.status,
        currency=payment.currency,
        authorised=payment.amount_authorised,
        captured=payment.amount_captured,
        refunded=payment.amount_refunded,
        multicapture=payment.multicapture,
        order_status=order.status,
        order_total=order.totals.total,
        captures_in_flight=any(kind == "capture" and status == QUEUED for kind, status, _ in ops),
        refunds_in_flight=any(kind == "refund" and status == QUEUED for kind, status, _ in ops),
        disputes=frozenset(ext for kind, _, ext in ops if kind == "dispute" and ext),
    )


def _operation(payment: Payment, kind: str, amount: int, status: str, now: datetime, **more: Any) -> PaymentOperation:
    fields = {"external_id": payment.external_id, **more}
    return PaymentOperation(payment_id=payment.id, kind=kind, amount=amount, status=status, occurred_at=now, **fields)


def _touch(payment: Payment, now: datetime) -> None:
    payment.version += 1
    payment.updated_at = now


async def _apply(
    uow: UnitOfWork,
    decision: Decision,
    order: Order,
    payment: Payment,
    clock: Clock,
    lifecycle: LifecycleSettings,
) -> None:
    session = uow.session
    now = clock.now()
    drafts: list[OrderEventDraft] = []
    attention: str | None = None
    if decision.action is Action.AUTHORISE and decision.state is not None:
        due = Awaiting(order.id, order.created_at, order.totals.total, payment.currency, payment.external_id)
        authorised = await settle_authorised(uow, due, decision.state, SYSTEM, clock)
        if authorised is not None and decision.captured > 0:
            drafts += _moved(uow, authorised, decision, now)  # captured in Stripe straight away
    elif decision.action is Action.FAIL_ATTEMPT:
        # The customer may try 3-D Secure (or another card) again: the order waits for the timeout.
        codes = {"error_code": decision.code, "decline_code": decision.decline_code}
        session.add(_operation(payment, "fail", order.totals.total, "requires_payment_method", now, **codes))
        _touch(payment, now)
        failed = {"code": decision.code, "decline_code": decision.decline_code}
        drafts.append(OrderEventDraft(EventType.PAYMENT_FAILED, payment_data(payment, order.totals.total, **failed)))
    elif decision.action is Action.CANCEL_PENDING:
        await _cancel_pending(uow, order, payment, clock, lifecycle)
    elif decision.action is Action.VOID:
        drafts.append(await _voided(uow, payment, now))
        if await _goods_left(uow, order.id):
            attention = decision.reason  # nothing holds the money for the goods still to hand over
    elif decision.action is Action.MOVE:
        drafts += _moved(uow, payment, decision, now)
    elif decision.action is Action.DISPUTE:
        status = decision.code or "needs_response"
        ids = {"external_id": decision.external_id, "reason": decision.reason}
        session.add(_operation(payment, "dispute", decision.amount, status, now, **ids))
        _touch(payment, now)
        disputed = {"dispute_id": decision.external_id, "reason": decision.reason}
        drafts.append(OrderEventDraft(EventType.PAYMENT_DISPUTED, payment_data(payment, decision.amount, **disputed)))
        attention = DISPUTED
    await session.flush()
    if drafts:
        await _record(uow, order, drafts, now, attention)


async def _record(
    uow: UnitOfWork, order: Order, drafts: list[OrderEventDraft], now: datetime, attention: str | None
) -> None:
    """The events on the order's timeline; ``attention``: the order now needs an operator."""
    status, reason = order.status, order.attention_reason
    if attention is not None:
        status, reason = OrderStatus.NEEDS_ATTENTION.value, attention
        if status != order.status:
            drafts.append(OrderEventDraft(EventType.ORDER_STATUS_CHANGED, {"from": order.status, "to": status}))
    await record_order_events(uow.session, order, drafts, SYSTEM, now, status=status, attention_reason=reason)


def _moved(uow: UnitOfWork, payment: Payment, decision: Decision, now: datetime) -> list[OrderEventDraft]:
    """Captured and refunded amounts up to what Stripe says (money moved outside our worker:
    a capture or a refund made in Stripe's dashboard), each an operation and an event."""
    drafts = []
    captured = decision.captured - payment.amount_captured
    if captured > 0:
        payment.amount_captured = decision.captured
        uow.session.add(_operation(payment, "capture", captured, "succeeded", now))
        data = payment_data(
            payment, captured, amount_captured=payment.amount_captured, final=decision.final, fulfillments=[]
        )
        drafts.append(OrderEventDraft(EventType.PAYMENT_CAPTURED, data))
    refunded = decision.refunded - payment.amount_refunded
    if refunded > 0:
        payment.amount_refunded = decision.refunded
        # The refund's re_ id when the charge lists it (older API versions), else the intent's.
        external = {"external_id": decision.external_id or payment.external_id, "reason": decision.reason}
        refund = _operation(payment, "refund", refunded, "succeeded", now, **external)
        uow.session.add(refund)
        data = payment_data(
            payment,
            refunded,
            refund_id=str(refund.id),
            external_refund_id=decision.external_id,
            amount_refunded=payment.amount_refunded,
            reason=decision.reason,
        )
        drafts.append(OrderEventDraft(EventType.PAYMENT_REFUNDED, data))
    if decision.status is not None:
        payment.status = decision.status
    _touch(payment, now)
    return drafts


async def _cancel_pending(
    uow: UnitOfWork, order: Order, payment: Payment, clock: Clock, lifecycle: LifecycleSettings
) -> None:
    """The PaymentIntent of a waiting order was cancelled: the payment fails (``payment.failed``,
    code ``payment_canceled``) and the order is cancelled, its reservations released, its
    channel reference free for the storefront to place it again (as after a decline)."""
    session = uow.session
    now = clock.now()
    total = order.totals.total
    payment.status = "failed"
    _touch(payment, now)
    session.add(_operation(payment, "fail", total, "canceled", now, error_code=PAYMENT_CANCELED))
    await session.flush()
    failed = payment_data(payment, total, code=PAYMENT_CANCELED, decline_code=None)
    await _record(uow, order, [OrderEventDraft(EventType.PAYMENT_FAILED, failed)], now, None)
    aggregate = await cancel_order(uow, order.id, SYSTEM, clock, lifecycle, reason=PAYMENT_CANCELED)
    aggregate.order.holds_channel_ref = False
    await session.flush()


async def _voided(uow: UnitOfWork, payment: Payment, now: datetime) -> OrderEventDraft:
    """The authorisation was released. If our worker's void is the one Stripe reports, its queued
    operation is settled here, and the worker, finding it no longer queued, records nothing twice."""
    session = uow.session
    queued = await session.scalar(
        select(PaymentOperation)
        .where(
            PaymentOperation.payment_id == payment.id,
            PaymentOperation.kind == "void",
            PaymentOperation.status == QUEUED,
        )
        .with_for_update()
        .limit(1)
    )
    if queued is not None:
        queued.status = "succeeded"
    else:
        session.add(_operation(payment, "void", payment.amount_authorised, "canceled", now, reason=PAYMENT_CANCELED))
    payment.status = "voided"
    _touch(payment, now)
    return OrderEventDraft(EventType.PAYMENT_VOIDED, payment_data(payment, payment.amount_authorised))


async def _goods_left(uow: UnitOfWork, order_id: uuid.UUID) -> bool:
    """Whether any of the order's goods are still to be handed over or shipped."""
    found = await uow.session.scalar(
        select(FulfillmentOrder.id).where(
            FulfillmentOrder.order_id == order_id,
            FulfillmentOrder.method != Method.TRANSFER.value,
            FulfillmentOrder.status.in_([s.value for s in OPEN_STATES]),
        )
    )
    return found is not None
