"""Card payments left waiting: the rule and the records of the payment timeout and the reconciler.

An order waits in ``pending_payment`` while its card payment is unfinished: the customer has not
completed 3-D Secure yet, or the service crashed between Stripe's answer and the transaction that
applies it. Both are settled the same way, by asking Stripe and applying what it says (the flow
across orders and payments is ``orders/payment_timers.py``; a periodic sweep runs it):

- Stripe holds the money (``requires_capture``, for the order's amount): the payment is authorised
  and the order goes to the stores, whenever the sweep finds it (it looks at every waiting order
  older than ``PENDING_CHECK_AFTER``, so a finished 3-D Secure waits a minute or two, not the whole
  timeout; webhooks, later, make that prompt);
- anything else, once the order is older than the timeout: the PaymentIntent is cancelled, the
  payment fails with code ``payment_timeout`` and the order is cancelled (reservations released);
- a payment Stripe is still processing, or took already, is never cancelled by a timer: it waits.

None of this calls Stripe: the caller asks outside any transaction and hands the answer here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select

from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import Order
from orchestrator.payments.gateway import IntentStatus, Operation, PaymentState, idempotency_key
from orchestrator.payments.service import (
    Failure,
    _record,
    card_authorisation,
    locked_order,
    order_payments,
    payment_data,
    record_authorised,
    record_failed,
)
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.events import EventType, OrderEventDraft

PAYMENT_TIMEOUT = "payment_timeout"
# How old a waiting order is before each sweep asks Stripe about it: one read per waiting order
# per minute, and never one racing the intake that is still applying Stripe's first answer.
PENDING_CHECK_AFTER = timedelta(minutes=1)
# Money that is moving or moved is a person's call, never a timer's.
NEVER_CANCELLED = frozenset({IntentStatus.PROCESSING, IntentStatus.SUCCEEDED})


class Verdict(StrEnum):
    AUTHORISED = "authorised"  # apply the authorisation: the order goes to the stores
    WAIT = "wait"  # not yet due (or money moving): look again at the next sweep
    TIME_OUT = "time_out"  # cancel the intent, fail the payment, cancel the order


@dataclass(frozen=True)
class Awaiting:
    """An order waiting for its card payment, as the sweep found it."""

    order_id: uuid.UUID
    placed_at: datetime
    total: int  # ISO 4217 minor units
    currency: str
    intent_id: str | None  # None: Stripe's answer never reached the database (a crash)


def verdict(
    state: PaymentState | None, *, stripe_amount: int, currency: str, age: timedelta, timeout: timedelta
) -> Verdict:
    """What to do with a waiting order, given Stripe's word on its payment (None: Stripe has none)."""
    held = state is not None and state.status is IntentStatus.REQUIRES_CAPTURE
    if held and state is not None and (state.amount, state.currency) == (stripe_amount, currency):
        return Verdict.AUTHORISED
    if age < timeout:
        return Verdict.WAIT
    if state is not None and state.status in NEVER_CANCELLED:
        return Verdict.WAIT
    return Verdict.TIME_OUT


def void_key(order_id: uuid.UUID) -> str:
    return idempotency_key(order_id, Operation.VOID, "timeout")


async def awaiting_payment(uow: UnitOfWork, clock: Clock, older_than: timedelta) -> list[Awaiting]:
    """Orders in ``pending_payment`` placed at least ``older_than`` ago, oldest first."""
    session = uow.session
    orders = (
        (
            await session.execute(
                select(Order)
                .where(Order.status == OrderStatus.PENDING_PAYMENT.value, Order.created_at <= clock.now() - older_than)
                .order_by(Order.created_at, Order.id)
            )
        )
        .scalars()
        .all()
    )
    payments = await order_payments(session, [o.id for o in orders])
    found = []
    for order in orders:
        payment = payments.get(order.id)
        waiting = payment is not None and payment.provider == "stripe" and payment.status == "pending"
        total = order.totals.total
        found.append(
            Awaiting(order.id, order.created_at, total, order.currency, payment.external_id if waiting else None)
        )
    return found


async def _pending_payment_of(uow: UnitOfWork, order_id: uuid.UUID) -> Payment | None:
    return await uow.session.scalar(
        select(Payment)
        .where(Payment.order_id == order_id, Payment.provider == "stripe", Payment.status == "pending")
        .order_by(Payment.created_at.desc(), Payment.id)
        .limit(1)
    )


async def _still_waiting(uow: UnitOfWork, order_id: uuid.UUID) -> Order | None:
    order = await locked_order(uow.session, order_id)
    return order if order.status == OrderStatus.PENDING_PAYMENT.value else None


async def settle_authorised(
    uow: UnitOfWork, due: Awaiting, state: PaymentState, actor: Actor, clock: Clock
) -> Payment | None:
    """Stripe holds the money: the payment is authorised (``payment.authorised``) and the order
    takes its derived status. None when the order no longer waits (settled by an earlier run)."""
    order = await _still_waiting(uow, due.order_id)
    if order is None:
        return None
    pending = await _pending_payment_of(uow, due.order_id)
    if pending is None:  # the crash left no record: this is intake's own authorisation, under its key
        key = idempotency_key(due.order_id, Operation.AUTHORISE)
        auth = card_authorisation(state, due.total, due.currency, key)
        return await record_authorised(uow, due.order_id, auth, actor, clock)
    session = uow.session
    now = clock.now()
    pending.external_id = state.intent_id
    pending.amount_authorised = due.total
    pending.status = "authorised"
    pending.capture_before = state.capture_before
    pending.multicapture = state.multicapture
    pending.version += 1
    pending.updated_at = now
    session.add(
        PaymentOperation(
            payment_id=pending.id,
            kind="authorise",
            amount=due.total,
            external_id=state.intent_id,
            status=state.status.value,
            occurred_at=now,
        )
    )
    await session.flush()
    capture_before = state.capture_before.isoformat() if state.capture_before else None
    data = payment_data(pending, due.total, capture_before=capture_before, multicapture=state.multicapture)
    event = OrderEventDraft(EventType.PAYMENT_AUTHORISED, data)
    await _record(session, order, [event], actor, now, paid=True)
    return pending


async def record_timed_out(
    uow: UnitOfWork, due: Awaiting, state: PaymentState | None, actor: Actor, clock: Clock
) -> bool:
    """The payment did not come in time: it fails with code ``payment_timeout`` (``payment.failed``;
    a cancelled intent is its ``void`` operation). Whether it did now (False: no longer waiting).
    Cancelling the order is the caller's flow, in this transaction."""
    order = await _still_waiting(uow, due.order_id)
    if order is None:
        return False
    pending = await _pending_payment_of(uow, due.order_id)
    intent_id = state.intent_id if state is not None else due.intent_id
    if pending is None:
        failure = Failure(
            provider="stripe",
            amount=due.total,
            currency=due.currency,
            external_id=intent_id,
            code=PAYMENT_TIMEOUT,
            decline_code=None,
        )
        await record_failed(uow, due.order_id, failure, actor, clock)
        return True
    session = uow.session
    now = clock.now()
    pending.status = "failed"
    pending.version += 1
    pending.updated_at = now
    session.add(
        PaymentOperation(
            payment_id=pending.id,
            kind="void" if state is not None else "fail",
            amount=due.total,
            idempotency_key=void_key(due.order_id) if state is not None else None,
            external_id=intent_id,
            status=state.status.value if state is not None else "failed",
            error_code=PAYMENT_TIMEOUT,
            occurred_at=now,
        )
    )
    await session.flush()
    pending.external_id = pending.external_id or intent_id
    data = payment_data(pending, due.total, code=PAYMENT_TIMEOUT, decline_code=None)
    event = OrderEventDraft(EventType.PAYMENT_FAILED, data)
    await _record(session, order, [event], actor, now, paid=False)
    return True
