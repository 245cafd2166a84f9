"""An order's payment, recorded: the use cases that apply what a processor (or the channel) said
to the payment record, its operations, the order's timeline and the outbox, in the entry point's
transaction. None of them calls a processor: the caller does that outside any transaction
(``orders/paid_intake.py``) and hands the outcome here.

Amounts are minor units of the order's currency (ISO 4217, ``platform.money``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.order_record.aggregate import fulfillment_lines, fulfillment_summaries, lock_order_row
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import FulfillmentOrder, Order
from orchestrator.order_record.timeline import record_derived_status, record_order_events
from orchestrator.payments.gateway import PaymentState
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.events import EventType, OrderEventDraft


@dataclass(frozen=True, slots=True)
class Authorisation:
    """Money held for the order (card: ``requires_capture``), or, for a marketplace, collected."""

    provider: str
    amount: int
    currency: str
    external_id: str | None = None
    capture_before: datetime | None = None
    multicapture: bool = False
    idempotency_key: str | None = None
    # The processor's state of it, as the operation records it.
    processor_status: str = "requires_capture"
    collected: bool = False  # the marketplace took the money itself: captured already


def card_authorisation(state: PaymentState, amount: int, currency: str, key: str | None) -> Authorisation:
    """The hold Stripe reports on a PaymentIntent, as recorded; ``key`` the one it was asked under
    (None for an intent the storefront confirmed itself)."""
    return Authorisation(
        provider="stripe",
        amount=amount,
        currency=currency,
        external_id=state.intent_id,
        capture_before=state.capture_before,
        multicapture=state.multicapture,
        idempotency_key=key,
        processor_status=state.status.value,
    )


@dataclass(frozen=True, slots=True)
class Failure:
    """The processor refused (a decline, or a payment that is not what the order needs)."""

    provider: str
    amount: int
    currency: str
    external_id: str | None
    code: str | None
    decline_code: str | None
    idempotency_key: str | None = None


def payment_data(payment: Payment, amount: int, **details: Any) -> dict[str, Any]:
    """What every payment event says (``platform.events.PaymentData``), then ``details``."""
    return {
        "payment_id": str(payment.id),
        "provider": payment.provider,
        "external_id": payment.external_id,
        "amount": amount,
        "currency": payment.currency,
        **details,
    }


async def record_payment_events(
    session: AsyncSession, order: Order, drafts: list[OrderEventDraft], actor: Actor, now: datetime
) -> None:
    """A payment's events on the order's timeline; its status and attention stay as they are."""
    await record_order_events(
        session, order, drafts, actor, now, status=order.status, attention_reason=order.attention_reason
    )


async def locked_order(session: AsyncSession, order_id: uuid.UUID) -> Order:
    """The order of a payment being recorded, locked (it exists: the payment refers to it)."""
    order = await lock_order_row(session, order_id)
    assert order is not None
    return order


# What a new authorisation answers: an order flagged for its lapsing (or lapsed) one is settled.
AUTHORISATION_ATTENTION = frozenset({"authorisation_expiring", "authorisation_expired"})


async def _record(
    session: AsyncSession, order: Order, drafts: list[OrderEventDraft], actor: Actor, now: datetime, *, paid: bool
) -> None:
    """The order's events; once paid, an order that waited for its payment, or needed attention
    for its authorisation, takes its derived status (its fulfillments reach the stores' queues)."""
    settles = order.status == OrderStatus.PENDING_PAYMENT or order.attention_reason in AUTHORISATION_ATTENTION
    if not (paid and settles):
        await record_payment_events(session, order, drafts, actor, now)
        return
    fulfillments = (
        (await session.execute(select(FulfillmentOrder).where(FulfillmentOrder.order_id == order.id))).scalars().all()
    )
    lines = await fulfillment_lines(session, [f.id for f in fulfillments])
    summaries = fulfillment_summaries(fulfillments, lines)
    attention = None if order.attention_reason in AUTHORISATION_ATTENTION else order.attention_reason
    await record_derived_status(session, order, summaries, drafts, actor, now, attention_reason=attention)


async def _record_new_payment(
    session: AsyncSession,
    order: Order,
    payment: Payment,
    operation: PaymentOperation,
    event: EventType,
    details: dict[str, Any],
    actor: Actor,
    now: datetime,
    *,
    paid: bool,
) -> Payment:
    """A new payment with its first operation, and its event (``details`` after what every
    payment event says) on the order's timeline."""
    session.add(payment)
    operation.payment_id = payment.id
    session.add(operation)
    await session.flush()
    await _record(
        session,
        order,
        [OrderEventDraft(event, payment_data(payment, operation.amount, **details))],
        actor,
        now,
        paid=paid,
    )
    return payment


async def record_authorised(
    uow: UnitOfWork, order_id: uuid.UUID, auth: Authorisation, actor: Actor, clock: Clock
) -> Payment:
    """The payment holds (or, collected, has taken) ``auth.amount``: ``payment.authorised``, and
    the order goes to the stores if it waited for it."""
    session = uow.session
    now = clock.now()
    order = await locked_order(session, order_id)
    payment = Payment(
        order_id=order_id,
        provider=auth.provider,
        external_id=auth.external_id,
        currency=auth.currency,
        amount_authorised=auth.amount,
        amount_captured=auth.amount if auth.collected else 0,
        status="captured" if auth.collected else "authorised",
        capture_before=auth.capture_before,
        multicapture=auth.multicapture,
        created_at=now,
        updated_at=now,
    )
    operation = PaymentOperation(
        kind="authorise",
        amount=auth.amount,
        idempotency_key=auth.idempotency_key,
        external_id=auth.external_id,
        status=auth.processor_status,
        occurred_at=now,
    )
    capture = {
        "capture_before": auth.capture_before.isoformat() if auth.capture_before else None,
        "multicapture": auth.multicapture,
    }
    return await _record_new_payment(
        session, order, payment, operation, EventType.PAYMENT_AUTHORISED, capture, actor, now, paid=True
    )


async def record_pending(
    uow: UnitOfWork,
    order_id: uuid.UUID,
    *,
    provider: str,
    amount: int,
    currency: str,
    clock: Clock,
    external_id: str | None = None,
    idempotency_key: str | None = None,
    processor_status: str | None = None,
) -> Payment:
    """A payment still to come: in store at pickup (``pos``), or a card waiting for the customer
    to authenticate (``requires_action``; the order stays ``pending_payment``). Nothing moved, so
    nothing goes on the timeline."""
    session = uow.session
    now = clock.now()
    payment = Payment(
        order_id=order_id,
        provider=provider,
        external_id=external_id,
        currency=currency,
        status="pending",
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    if processor_status is not None:
        session.add(
            PaymentOperation(
                payment_id=payment.id,
                kind="authorise",
                amount=amount,
                idempotency_key=idempotency_key,
                external_id=external_id,
                status=processor_status,
                occurred_at=now,
            )
        )
    await session.flush()
    return payment


async def record_failed(uow: UnitOfWork, order_id: uuid.UUID, failure: Failure, actor: Actor, clock: Clock) -> Payment:
    """The processor refused: a failed payment, its operation with the codes, ``payment.failed``.
    What becomes of the order (it is cancelled) is the caller's flow."""
    session = uow.session
    now = clock.now()
    order = await locked_order(session, order_id)
    payment = Payment(
        order_id=order_id,
        provider=failure.provider,
        external_id=failure.external_id,
        currency=failure.currency,
        status="failed",
        created_at=now,
        updated_at=now,
    )
    operation = PaymentOperation(
        kind="fail",
        amount=failure.amount,
        idempotency_key=failure.idempotency_key,
        external_id=failure.external_id,
        status="failed",
        error_code=failure.code,
        decline_code=failure.decline_code,
        occurred_at=now,
    )
    codes = {"code": failure.code, "decline_code": failure.decline_code}
    return await _record_new_payment(
        session, order, payment, operation, EventType.PAYMENT_FAILED, codes, actor, now, paid=False
    )


async def pays_another_order(session: AsyncSession, provider: str, external_id: str, order_id: uuid.UUID) -> bool:
    """Whether this PaymentIntent (marketplace collection) already pays some other order."""
    found = await session.scalar(
        select(Payment.id).where(
            Payment.provider == provider,
            Payment.external_id == external_id,
            Payment.status != "failed",
            Payment.order_id != order_id,
        )
    )
    return found is not None


async def all_order_payments(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Payment]]:
    """Each order's payments, oldest first: a failed attempt, an authorisation that ran out, the
    card that paid again, the counter's tenders."""
    found: dict[uuid.UUID, list[Payment]] = {}
    if order_ids:
        rows = await session.execute(
            select(Payment).where(Payment.order_id.in_(order_ids)).order_by(Payment.created_at, Payment.id)
        )
        for p in rows.scalars():
            found.setdefault(p.order_id, []).append(p)
    return found


async def order_payments(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Payment]:
    """Each order's payment: its latest (a failed attempt stays on record beside it)."""
    return {order_id: found[-1] for order_id, found in (await all_order_payments(session, order_ids)).items()}


async def payment_operations(session: AsyncSession, order_id: uuid.UUID) -> list[tuple[Payment, PaymentOperation]]:
    rows = await session.execute(
        select(Payment, PaymentOperation)
        .join(PaymentOperation, PaymentOperation.payment_id == Payment.id)
        .where(Payment.order_id == order_id)
        .order_by(PaymentOperation.occurred_at, PaymentOperation.id)
    )
    return [(p, op) for p, op in rows.all()]
