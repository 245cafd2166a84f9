"""Queueing what a change to an order's goods makes due on its card payment, in the change's own
transaction (the fulfillment runner's persistence calls it): capture and void operations with
status ``queued`` (or ``held``, waiting for the last open fulfillment) and a
``payment.capture_due`` / ``payment.void_due`` event. The worker runs them
(``payments/captures.py``); nothing here calls the processor.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.order_record.aggregate import OrderAggregate
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.payments.gateway import Operation, idempotency_key
from orchestrator.payments.model import GoodsLine
from orchestrator.payments.settlement import GoodsMoved, due_after_change
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform.events import EventType, OrderEventDraft

# The states of a card payment that still holds an authorisation to capture from or release.
LIVE_STATUSES = ("authorised", "partially_captured")
QUEUED = "queued"
HELD = "held"


async def live_card_payment(session: AsyncSession, order_id: uuid.UUID, now: datetime) -> Payment | None:
    """The order's Stripe payment still holding an authorisation, locked (after the order). One
    whose authorisation ran out (an ``expire`` operation, ``payments/expiry.py``) holds none,
    though it keeps ``partially_captured``; nor does one past its ``capture_before`` that the
    expiry sweep has not reached yet (its captures would never be sent)."""
    lapsed = exists().where(PaymentOperation.payment_id == Payment.id, PaymentOperation.kind == "expire")
    return await session.scalar(
        select(Payment)
        .where(
            Payment.order_id == order_id,
            Payment.provider == "stripe",
            Payment.status.in_(LIVE_STATUSES),
            ~lapsed,
            or_(Payment.capture_before.is_(None), Payment.capture_before > now),
        )
        .order_by(Payment.created_at.desc(), Payment.id)
        .limit(1)
        .with_for_update()
    )


async def release_held(session: AsyncSession, payment_id: uuid.UUID) -> list[tuple[uuid.UUID, int]]:
    """The payment's held captures go to the queue (its capture is due now): their ids and amounts."""
    released = await session.execute(
        update(PaymentOperation)
        .where(PaymentOperation.payment_id == payment_id, PaymentOperation.status == HELD)
        .values(status=QUEUED)
        .returning(PaymentOperation.id, PaymentOperation.amount)
    )
    return [(i, a) for i, a in released.all()]


async def queue_payment_operations(
    session: AsyncSession, aggregate: OrderAggregate, handed_over: Mapping[uuid.UUID, int], now: datetime
) -> list[OrderEventDraft]:
    """After the change's rows are written: ``handed_over`` maps fulfillment line ids to the units
    this change handed over or shipped. Returns the events to record with the change."""
    payment = await live_card_payment(session, aggregate.order.id, now)
    if payment is None:
        return []
    prices = {ln.id: ln.unit_price for ln in aggregate.lines}
    before: list[GoodsLine] = []
    moved: list[GoodsMoved] = []
    facing = [f for f in aggregate.fulfillments if f.method != Method.TRANSFER.value]
    for fo in facing:
        now_lines = []
        for ln in aggregate.fulfillment_lines.get(fo.id, []):
            units = handed_over.get(ln.id, 0)
            before.append(GoodsLine(ln.quantity_handed_over - units, prices[ln.order_line_id]))
            if units:
                now_lines.append(GoodsLine(units, prices[ln.order_line_id]))
        if now_lines:
            moved.append(GoodsMoved(fo.id, tuple(now_lines)))
    closes = not any(Status(f.status) in OPEN_STATES for f in facing) and not any(
        ln.quantity_unsourced for ln in aggregate.lines
    )
    # What the captures of all the order's payments asked, and what was tendered at the counter:
    # after an authorisation ran out (or a warning released its rest), a new one pays only what
    # the earlier ones and the counter did not. A capture that expired never happened, so its
    # goods are due again from the new payment.
    requested = await session.scalar(
        select(func.coalesce(func.sum(PaymentOperation.amount), 0))
        .join(Payment, Payment.id == PaymentOperation.payment_id)
        .where(
            Payment.order_id == payment.order_id,
            PaymentOperation.kind.in_(("capture", "tender")),
            PaymentOperation.status != "expired",
        )
    )
    kinds = set(
        (
            await session.execute(
                select(PaymentOperation.kind).where(
                    PaymentOperation.payment_id == payment.id, PaymentOperation.kind.in_(("void", "expiring"))
                )
            )
        ).scalars()
    )
    # Non-final captures that all ran leave the rest of the authorisation held at the processor.
    to_run = await session.scalar(
        select(PaymentOperation.id).where(
            PaymentOperation.payment_id == payment.id,
            PaymentOperation.kind == "capture",
            PaymentOperation.status.in_((QUEUED, HELD)),
        )
    )
    due = due_after_change(
        aggregate.order.totals,
        # After the expiry warning nothing waits for the last fulfillment: a held capture would
        # still be held when the authorisation runs out, so it is queued (and final) at once.
        multicapture=payment.multicapture or "expiring" in kinds,
        before=[g for g in before if g.quantity],
        moved=moved,
        closes=closes,
        requested=int(requested or 0),
        voided="void" in kinds,
        holds_rest=payment.status == "partially_captured" and to_run is None,
    )
    # Numbered across the order's payments: every key is the order's own and never reused.
    seq_before = await session.scalar(
        select(func.count())
        .select_from(PaymentOperation)
        .join(Payment, Payment.id == PaymentOperation.payment_id)
        .where(Payment.order_id == payment.order_id, PaymentOperation.kind == "capture")
    )
    queued: list[PaymentOperation] = []
    for seq, capture in enumerate(due.captures, start=(seq_before or 0) + 1):
        ref = f"{capture.fulfillment_id or 'order'}:{seq}"
        op = PaymentOperation(
            payment_id=payment.id,
            kind="capture",
            amount=capture.amount,
            idempotency_key=idempotency_key(aggregate.order.id, Operation.CAPTURE, ref),
            external_id=payment.external_id,
            status=HELD if capture.held else QUEUED,
            fulfillment_id=capture.fulfillment_id,
            occurred_at=now,
        )
        session.add(op)
        if not capture.held:
            queued.append(op)
    if due.release_held:
        held = await release_held(session, payment.id)
        await session.flush()
        ids = [i for i, _ in held] + [op.id for op in queued]
        amount = sum(a for _, a in held) + sum(op.amount for op in queued)
    else:
        ids, amount = [op.id for op in queued], sum(op.amount for op in queued)
    drafts = []
    if ids:
        drafts.append(_due(EventType.PAYMENT_CAPTURE_DUE, payment, ids, amount))
    if due.void or due.release_rest:
        # A void releases all of an uncaptured authorisation; a release, what captures left of it.
        rest = payment.amount_authorised - payment.amount_captured
        void = PaymentOperation(
            payment_id=payment.id,
            kind="void",
            amount=rest,
            idempotency_key=idempotency_key(aggregate.order.id, Operation.VOID, payment.id),
            external_id=payment.external_id,
            status=QUEUED,
            occurred_at=now,
        )
        session.add(void)
        drafts.append(_due(EventType.PAYMENT_VOID_DUE, payment, [void.id], rest))
    await session.flush()
    return drafts


def _due(type_: EventType, payment: Payment, ids: list[uuid.UUID], amount: int) -> OrderEventDraft:
    data = {"payment_id": str(payment.id), "operations": [str(i) for i in ids], "amount": amount}
    return OrderEventDraft(type_, {**data, "currency": payment.currency})
