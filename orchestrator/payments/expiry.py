"""A card authorisation running out: the rule and the records of the expiry timer.

Stripe holds an uncaptured card payment until ``capture_before`` (the charge's word, else a week:
``gateway.capture_deadline``); after it, the money is released and a capture would fail. So:

- ``warning`` before it, a live payment (authorised or partially captured) of an order with goods
  still to hand over is flagged, once: an ``expiring`` operation, ``payment.expiring`` (``amount``:
  what is authorised and not captured) and the order ``needs_attention`` (``authorisation_expiring``).
  Without multicapture the captures of what was already handed over are *held* for the last
  fulfillment; they are queued now as one final capture, so that part is paid before the money
  is released. That final capture releases the rest of the authorisation: what the goods still to
  hand over will cost (``remainder``) is authorised again off-session when the customer's card
  was saved (the flow, ``orders/authorisation_timers.py``), else it is paid at the counter or
  through a new payment.
- At ``capture_before`` nothing is ever captured again: the payment's queued and held captures
  become ``expired``, an ``expire`` operation and ``payment.expired`` are recorded, the payment is
  ``voided`` if nothing was captured (it keeps ``partially_captured`` otherwise, and is no longer
  live: ``capture_queue.live_card_payment`` skips it), and the order needs attention
  (``authorisation_expired``) if goods remain or handed-over goods were left uncaptured.

Every record locks the order row first (as a handover does), then the payment, and re-reads what
it decides on: two sweeps, or a sweep racing a handover or the capture worker, do it once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.order_record.aggregate import OrderAggregate, load_orders
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import Order
from orchestrator.order_record.timeline import record_order_events
from orchestrator.payments.capture_queue import HELD, LIVE_STATUSES, QUEUED, release_held
from orchestrator.payments.model import due_for
from orchestrator.payments.service import locked_order, payment_data, record_payment_events
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform.actors import SYSTEM
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.money import OrderTotals

AUTHORISATION_EXPIRING = "authorisation_expiring"
AUTHORISATION_EXPIRED = "authorisation_expired"
EXPIRED = "expired"  # the status of a capture that can no longer happen
RECORDED = "recorded"  # the status of the timer's own operations: no processor was asked
# Reasons the timer may replace; any other (a refused capture, a line nobody can source) is an
# operator's already and stays as it is.
_OURS = (None, AUTHORISATION_EXPIRING, AUTHORISATION_EXPIRED)


class Step(StrEnum):
    NOTHING = "nothing"
    WARN = "warn"
    EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class Facts:
    """One card payment as the timer decides on it."""

    status: str
    capture_before: datetime | None
    goods_to_hand_over: bool  # an open fulfillment (not a transfer) is left
    multicapture: bool
    held: int  # what its held captures ask (minor units)
    warned: bool  # an ``expiring`` operation exists
    expired: bool  # an ``expire`` operation exists


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    capture_held: bool = False  # queue the held captures now, as one final capture


def lapsed(capture_before: datetime | None, now: datetime) -> bool:
    """Whether the authorisation ran out: from ``capture_before`` on, never a capture."""
    return capture_before is not None and now >= capture_before


def decide(facts: Facts, now: datetime, warning: timedelta) -> Decision:
    """What the timer does with a payment now (the module's rule)."""
    if facts.status not in LIVE_STATUSES or facts.capture_before is None or facts.expired:
        return Decision(Step.NOTHING)
    if lapsed(facts.capture_before, now):
        return Decision(Step.EXPIRE)
    if facts.warned or not facts.goods_to_hand_over or now < facts.capture_before - warning:
        return Decision(Step.NOTHING)
    return Decision(Step.WARN, capture_held=not facts.multicapture and facts.held > 0)


def remainder(totals: OrderTotals, *, handed_over: int, to_hand_over: int, requested: int) -> int:
    """What the goods still to hand over (worth ``to_hand_over``) will cost once those handed over
    (worth ``handed_over``) are paid by captures asking ``requested``: the split rule's due for
    all of them minus what was asked. Units cancelled are in neither, so never charged."""
    if to_hand_over <= 0:
        return 0
    return max(0, due_for(totals, handed_over + to_hand_over, closes_order=True) - requested)


@dataclass(frozen=True, slots=True)
class Reauthorise:
    """What the flow asks the processor for after a warning released the authorisation's rest."""

    order_id: uuid.UUID
    payment_id: uuid.UUID
    intent_id: str
    amount: int  # minor units of ``currency``
    currency: str


async def payments_due(uow: UnitOfWork, now: datetime, warning: timedelta) -> list[uuid.UUID]:
    """Live card payments whose warning is due and not given, or whose authorisation lapsed."""
    warned = exists().where(PaymentOperation.payment_id == Payment.id, PaymentOperation.kind == "expiring")
    rows = await uow.session.execute(
        select(Payment.id)
        .where(
            Payment.provider == "stripe",
            Payment.status.in_(LIVE_STATUSES),
            Payment.capture_before.is_not(None),
            or_(Payment.capture_before <= now, (Payment.capture_before <= now + warning) & ~warned),
        )
        .order_by(Payment.capture_before, Payment.id)
    )
    return list(rows.scalars())


def _goods(aggregate: OrderAggregate) -> tuple[int, int, bool]:
    """(value handed over or shipped, value still to hand over, whether an open fulfillment is left)."""
    prices = {ln.id: ln.unit_price for ln in aggregate.lines}
    handed = left = 0
    open_left = False
    for fo in aggregate.fulfillments:
        if fo.method == Method.TRANSFER.value:
            continue
        is_open = Status(fo.status) in OPEN_STATES
        open_left = open_left or is_open
        for ln in aggregate.fulfillment_lines.get(fo.id, []):
            price = prices[ln.order_line_id]
            handed += ln.quantity_handed_over * price
            if is_open:
                left += (ln.quantity - ln.quantity_cancelled - ln.quantity_handed_over) * price
    return handed, left, open_left


async def _operations(session: AsyncSession, payment_id: uuid.UUID) -> list[PaymentOperation]:
    rows = await session.execute(select(PaymentOperation).where(PaymentOperation.payment_id == payment_id))
    return list(rows.scalars())


async def _requested(session: AsyncSession, order_id: uuid.UUID) -> int:
    """What the captures of all the order's payments asked, but those that can no longer happen."""
    asked = await session.execute(
        select(PaymentOperation.amount)
        .join(Payment, Payment.id == PaymentOperation.payment_id)
        .where(Payment.order_id == order_id, PaymentOperation.kind == "capture", PaymentOperation.status != EXPIRED)
    )
    return sum(asked.scalars())


def _data(payment: Payment, amount: int) -> dict:
    return payment_data(
        payment, amount, capture_before=payment.capture_before.isoformat() if payment.capture_before else None
    )


async def _needs_attention(
    session: AsyncSession, order: Order, drafts: list[OrderEventDraft], reason: str, now: datetime
) -> None:
    status, attention = order.status, order.attention_reason
    if order.attention_reason in _OURS:
        status, attention = OrderStatus.NEEDS_ATTENTION.value, reason
    if status != order.status:
        drafts.append(OrderEventDraft(EventType.ORDER_STATUS_CHANGED, {"from": order.status, "to": status}))
    await record_order_events(session, order, drafts, SYSTEM, now, status=status, attention_reason=attention)


async def _locked(session: AsyncSession, payment_id: uuid.UUID) -> tuple[Order, Payment, OrderAggregate] | None:
    payment = await session.get(Payment, payment_id)
    if payment is None:
        return None
    order = await locked_order(session, payment.order_id)
    await session.refresh(payment, with_for_update=True)
    [aggregate] = await load_orders(session, [order.id])
    return order, payment, aggregate


async def settle_payment(
    uow: UnitOfWork, payment_id: uuid.UUID, clock: Clock, warning: timedelta
) -> Reauthorise | Step:
    """The timer on one payment, in the caller's transaction: what it did, or, when a warning
    released the rest of the authorisation, what the flow should authorise again."""
    session = uow.session
    locked = await _locked(session, payment_id)
    if locked is None:
        return Step.NOTHING
    order, payment, aggregate = locked
    now = clock.now()
    ops = await _operations(session, payment.id)
    handed, left, open_left = _goods(aggregate)
    facts = Facts(
        status=payment.status,
        capture_before=payment.capture_before,
        goods_to_hand_over=open_left,
        multicapture=payment.multicapture,
        held=sum(op.amount for op in ops if op.kind == "capture" and op.status == HELD),
        warned=any(op.kind == "expiring" for op in ops),
        expired=any(op.kind == "expire" for op in ops),
    )
    decision = decide(facts, now, warning)
    if decision.step is Step.EXPIRE:
        await _expire(session, order, payment, ops, open_left, now)
        return Step.EXPIRE
    if decision.step is Step.NOTHING:
        return Step.NOTHING
    outstanding = payment.amount_authorised - payment.amount_captured
    session.add(_noted(payment, "expiring", outstanding, AUTHORISATION_EXPIRING, now))
    drafts = [OrderEventDraft(EventType.PAYMENT_EXPIRING, _data(payment, outstanding))]
    again: Reauthorise | None = None
    if decision.capture_held:
        held = await release_held(session, payment.id)
        due = {"payment_id": str(payment.id), "operations": [str(i) for i, _ in held]}
        due |= {"amount": sum(a for _, a in held), "currency": payment.currency}
        drafts.append(OrderEventDraft(EventType.PAYMENT_CAPTURE_DUE, due))
        rest = remainder(
            aggregate.order.totals,
            handed_over=handed,
            to_hand_over=left,
            requested=await _requested(session, order.id),
        )
        if rest > 0 and payment.external_id is not None:
            again = Reauthorise(order.id, payment.id, payment.external_id, rest, payment.currency)
    await session.flush()
    await _needs_attention(session, order, drafts, AUTHORISATION_EXPIRING, now)
    return again if again is not None else Step.WARN


def _noted(payment: Payment, kind: str, amount: int, reason: str, now: datetime) -> PaymentOperation:
    """A step of the authorisation's lapse, recorded (no processor call goes with it)."""
    return PaymentOperation(
        payment_id=payment.id,
        kind=kind,
        amount=amount,
        external_id=payment.external_id,
        status=RECORDED,
        reason=reason,
        occurred_at=now,
    )


def _strand(ops: list[PaymentOperation]) -> list[PaymentOperation]:
    """Captures still waiting to go out never will once the authorisation lapsed: they expire."""
    stranded = [op for op in ops if op.kind == "capture" and op.status in (QUEUED, HELD)]
    for op in stranded:
        op.status = EXPIRED
    return stranded


async def _expire(
    session: AsyncSession, order: Order, payment: Payment, ops: list[PaymentOperation], goods_left: bool, now: datetime
) -> None:
    unused = payment.amount_authorised - payment.amount_captured
    stranded = _strand(ops)
    session.add(_noted(payment, "expire", unused, "capture_before passed", now))
    if payment.amount_captured == 0:
        payment.status = "voided"
    payment.version += 1
    payment.updated_at = now
    await session.flush()
    drafts = [OrderEventDraft(EventType.PAYMENT_EXPIRED, _data(payment, unused))]
    if goods_left or stranded:
        await _needs_attention(session, order, drafts, AUTHORISATION_EXPIRED, now)
    else:
        await record_payment_events(session, order, drafts, SYSTEM, now)


async def record_expired(uow: UnitOfWork, payment_id: uuid.UUID, clock: Clock) -> bool:
    """The capture worker found the payment's authorisation lapsed: its queued and held captures
    expire instead of being sent, and the expiry is recorded (once). False if nothing changed."""
    session = uow.session
    locked = await _locked(session, payment_id)
    if locked is None:
        return False
    order, payment, aggregate = locked
    now = clock.now()
    if not lapsed(payment.capture_before, now):
        return False
    ops = await _operations(session, payment.id)
    if any(op.kind == "expire" for op in ops):
        # Recorded already; a capture queued since then still never goes out.
        stranded = _strand(ops)
        await session.flush()
        return bool(stranded)
    await _expire(session, order, payment, ops, _goods(aggregate)[2], now)
    return True
