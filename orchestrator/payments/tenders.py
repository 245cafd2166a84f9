"""Paying at the counter when the goods are handed over: what the handover must be paid, whether
the tender offered settles it, and the record of it.

Whether a handover needs a tender depends on how the order's payments stand (``standing``):

- ``CARD``: a Stripe payment still holds an authorisation (``capture_queue.LIVE_STATUSES`` and
  no ``expire`` operation: ``capture_queue.live_card_payment``'s test): the handover queues its
  capture, nothing is paid here; a tender is refused
  (``tender-not-needed``). So is one on a ``COLLECTED`` order (the marketplace took the money).
- ``COUNTER``: the order is paid in store (``pos``), or its card no longer holds an
  authorisation — expired (``voided``, or ``partially_captured`` with an ``expire`` operation),
  voided, failed, or captured before expiry with goods still to hand over: no live Stripe payment
  while the order has payment records. The handover completes only when what its goods make due is tendered here.
- ``NONE``: the order has no payment record (pay later, at the counter): no tender is required,
  as before tenders existed; a tender given is checked and recorded like a ``COUNTER`` one.

What is due at a handover is what the split rule (``model.due_for``) makes due for every unit
handed over or shipped so far, this handover's included, minus what the order's payments were
already paid (captured by card before the authorisation ended, tendered at earlier handovers).
So a partial pickup pays its own units with their share of shipping, tax and discount, and the
pickup that closes the order pays what is left — never the share of units cancelled.

The tender must equal what is due; more is accepted only in cash, the difference given back as
change. Refunds do not make goods due again. A handover that moves no goods (a wrong pickup code)
never asks for a tender.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.payments.capture_queue import LIVE_STATUSES
from orchestrator.payments.expiry import lapsed
from orchestrator.payments.model import due_for
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform.errors import TenderExceedsDue, TenderInsufficient, TenderNotNeeded, TenderRequired
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.money import OrderTotals

CASH = "cash"


class Standing(StrEnum):
    NONE = "none"  # no payment record: pay later, a tender optional
    CARD = "card"  # a live card authorisation: the capture pays
    COLLECTED = "collected"  # the marketplace collected the money
    COUNTER = "counter"  # pay in store, or the card authorisation is gone: a tender pays


@dataclass(frozen=True, slots=True)
class Tender:
    """What the customer hands over at the counter (minor units of the order's currency)."""

    amount: int
    method: str  # cash | card | other
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Tendered:
    """A tender accepted: ``amount`` is what was due (what the payment records), ``change_given``
    what went back to the customer (cash only)."""

    amount: int
    method: str
    reference: str | None
    change_given: int


@dataclass(frozen=True, slots=True)
class TenderRecord:
    """A tender accepted for a handover, as the handover's persistence writes it: ``ref`` tells
    the fulfillment's states apart (its version before the handover), so one state of one
    fulfillment is never paid twice (the operation's unique key)."""

    tendered: Tendered
    fulfillment_id: uuid.UUID
    ref: str
    closes: bool  # the handover leaves no goods open: the payment is captured in full


@dataclass(frozen=True, slots=True)
class PaymentsFacts:
    """The order's payments as a handover sees them."""

    standing: Standing
    paid: int  # captured by card and tendered so far, all payments together


def standing_of(payments: Sequence[tuple[str, str, bool]]) -> Standing:
    """``payments``: (provider, status, whether its authorisation ran out) of each of the order's
    payments."""
    if not payments:
        return Standing.NONE
    if any(p == "stripe" and s in LIVE_STATUSES and not lapsed for p, s, lapsed in payments):
        return Standing.CARD
    if any(p == "marketplace" and s != "failed" for p, s, _ in payments):
        return Standing.COLLECTED
    return Standing.COUNTER


def due_at_handover(totals: OrderTotals, *, value_after: int, closes: bool, paid: int) -> int:
    """What a handover must be paid: due for goods worth ``value_after`` (everything handed over
    or shipped, this handover included) less what was ``paid`` before; never negative."""
    return max(due_for(totals, value_after, closes_order=closes) - paid, 0)


def settle(standing: Standing, due: int, tender: Tender | None) -> Tendered | None:
    """The tender to record for a handover (None: nothing paid here), or the refusal raised."""
    if standing in (Standing.CARD, Standing.COLLECTED):
        if tender is not None:
            raise TenderNotNeeded("the order's payment already covers these goods; nothing is paid here", amount_due=0)
        return None
    if tender is None:
        if standing is Standing.COUNTER and due > 0:
            raise TenderRequired(f"{due} is due for the goods handed over: a tender is required", amount_due=due)
        return None
    if due == 0:
        raise TenderNotNeeded("nothing is due for these goods", amount_due=0)
    if tender.amount < due:
        raise TenderInsufficient(f"{tender.amount} tendered, {due} due", amount_due=due)
    if tender.amount > due and tender.method != CASH:
        raise TenderExceedsDue(
            f"{tender.amount} tendered by {tender.method}, {due} due: only cash gives change", amount_due=due
        )
    return Tendered(due, tender.method, tender.reference, tender.amount - due)


# --- The records ------------------------------------------------------------------------------


async def _payments(session: AsyncSession, order_id: uuid.UUID) -> list[Payment]:
    """The order's payments, locked (after the order row, which the handover holds)."""
    rows = await session.execute(
        select(Payment).where(Payment.order_id == order_id).order_by(Payment.created_at, Payment.id).with_for_update()
    )
    return list(rows.scalars())


async def payments_facts(session: AsyncSession, order_id: uuid.UUID, now: datetime | None = None) -> PaymentsFacts:
    """``now``: a card past its ``capture_before`` holds nothing, though the expiry sweep may not
    have recorded that yet (``capture_queue.live_card_payment`` agrees)."""
    payments = await _payments(session, order_id)
    expired = set(
        (
            await session.execute(
                select(PaymentOperation.payment_id).where(
                    PaymentOperation.payment_id.in_([p.id for p in payments]), PaymentOperation.kind == "expire"
                )
            )
        ).scalars()
    )
    ran_out = {p.id for p in payments if now is not None and lapsed(p.capture_before, now)}
    standing = standing_of([(p.provider, p.status, p.id in expired | ran_out) for p in payments])
    paid = sum(p.amount_captured for p in payments if p.provider in ("stripe", "pos"))
    return PaymentsFacts(standing, paid)


async def record_tender(
    session: AsyncSession, order_id: uuid.UUID, currency: str, record: TenderRecord, now: datetime
) -> OrderEventDraft:
    """Write ``tendered`` in the handover's transaction: a ``tender`` operation on the order's
    ``pos`` payment (a new one when the order had none: a card that expired, or no payment at
    all), whose authorised and captured amounts grow by it; returns ``payment.tendered``."""
    tendered = record.tendered
    pos = [p for p in await _payments(session, order_id) if p.provider == "pos" and p.status != "failed"]
    if pos:
        payment = pos[-1]
        payment.version += 1
    else:
        payment = Payment(order_id=order_id, provider="pos", currency=currency, status="pending", created_at=now)
        session.add(payment)
    # Money taken in store is authorised and captured at once: captured never exceeds authorised.
    payment.amount_authorised += tendered.amount
    payment.amount_captured += tendered.amount
    payment.status = "captured" if record.closes else "partially_captured"
    payment.updated_at = now
    await session.flush()
    session.add(
        PaymentOperation(
            payment_id=payment.id,
            kind="tender",
            amount=tendered.amount,
            idempotency_key=f"order:{order_id}:tender:{record.ref}",
            status="succeeded",
            fulfillment_id=record.fulfillment_id,
            tender_method=tendered.method,
            reference=tendered.reference,
            change_given=tendered.change_given,
            occurred_at=now,
        )
    )
    await session.flush()
    data = {
        "payment_id": str(payment.id),
        "provider": "pos",
        "external_id": None,
        "amount": tendered.amount,
        "currency": payment.currency,
        "method": tendered.method,
        "reference": tendered.reference,
        "change_given": tendered.change_given,
        "fulfillments": [str(record.fulfillment_id)],
    }
    return OrderEventDraft(EventType.PAYMENT_TENDERED, data)
