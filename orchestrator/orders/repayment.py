"""Paying an order again (``POST /v1/orders/{id}/payments``): a new card, or the counter, for what
is still due, when no live payment covers it — its authorisation lapsed, was voided or failed, or
the order still waits for its payment (3-D Secure never finished) and the customer tries another
card.

The card flow is intake's (``paid_intake.charge_card``), in three steps with no transaction held
across the processor's call:

1. the key is claimed, the order locked and checked (``rule``: 409 ``payment-exists`` while a
   live payment holds money for it, 422 ``nothing-due`` when captures and tenders cover its
   total), and a provisional answer stored under the key, so a retry meanwhile is told the
   request is still running instead of authorising a second time;
2. the processor is asked for what is due, under the attempt's own key
   (``gateway.idempotency_key(order, AUTHORISE, attempt)``);
3. its word is applied in a new transaction: authorised → the new payment is the order's live
   one (captures go to it: ``capture_queue.live_card_payment`` takes the newest), and an order
   that needed attention for its lapsing or lapsed authorisation takes its derived status again;
   refused → 402 as at intake, but the order is left as it was: it still waits for a payment.

Two re-payments with different keys racing each other both pass step 1; the second to apply
finds the first's live payment and queues a void of its own authorisation (``_one_live``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import func, select

from orchestrator.order_record.aggregate import OrderAggregate, fulfillment_summaries, load_order
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import Order
from orchestrator.order_record.timeline import record_derived_status
from orchestrator.orders.commands import NewPayment, Placed
from orchestrator.orders.paid_intake import Charge, Intake, answer, charge_card
from orchestrator.payments.capture_queue import LIVE_STATUSES, QUEUED
from orchestrator.payments.gateway import Operation, UnconfiguredGateway, idempotency_key
from orchestrator.payments.service import AUTHORISATION_ATTENTION, record_payment_events, record_pending
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform import idempotency
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.db import UnitOfWork, committing
from orchestrator.platform.errors import (
    Conflict,
    DomainError,
    IdempotencyKeyInFlight,
    InvalidRequest,
    NotFound,
    NothingDue,
    PaymentExists,
    PaymentsNotConfigured,
)
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.money import UnchargeableAmount, to_stripe_amount
from orchestrator.platform.problems import domain_problem

ORDER_NOT_FOUND = "order not found"


@dataclass(frozen=True, slots=True)
class PaidSoFar:
    """One payment of the order, as the rule weighs it."""

    provider: str
    status: str
    captured: int
    tendered: int  # paid at the counter, net of change


def still_due(total: int, payments: Iterable[PaidSoFar]) -> int:
    """What a re-payment charges: the order's total less what was captured or tendered, never
    negative. Raises ``PaymentExists`` while a card payment still holds an authorisation (it
    covers what is due: captures go to it), ``NothingDue`` when nothing is left to pay."""
    payments = list(payments)
    if any(p.provider == "stripe" and p.status in LIVE_STATUSES for p in payments):
        raise PaymentExists("the order has a live payment; it can be paid again once that one lapses or fails")
    # A tender may be recorded as captured on its payment, or only as its operation: never both.
    paid = sum(max(p.captured, p.tendered) for p in payments if p.status != "failed")
    due = max(0, total - paid)
    if due == 0:
        raise NothingDue("nothing is left to pay on the order", total=total, paid=paid)
    return due


async def repay(flow: Intake, order_id: uuid.UUID, payment: NewPayment) -> Placed:
    """The entry point's flow: ``flow.claim`` is the request's Idempotency-Key."""
    payment.check()
    if payment.provider == "marketplace":
        raise InvalidRequest("an order is paid again by card or at the counter", field="payment.provider")
    if payment.provider == "stripe" and isinstance(flow.gateway, UnconfiguredGateway):
        raise PaymentsNotConfigured("stripe")
    opened = await flow.db.run(committing(lambda uow: _open(uow, flow, order_id, payment)))
    if isinstance(opened, Placed):
        return opened
    return await charge_card(flow, opened, payment, refused=_keep_order, settled=_one_live)


async def _open(uow: UnitOfWork, flow: Intake, order_id: uuid.UUID, payment: NewPayment) -> Placed | Charge:
    """Step 1: the stored answer to replay, the counter payment recorded, or the card charge to ask for."""
    session = uow.session
    claim = flow.claim
    if claim is not None and (stored := await idempotency.claim(session, claim)) is not None:
        version = 0
        if stored.status_code < 400:
            version = msgspec.json.decode(stored.body, type=_Answered).version
        return Placed(order_id, version, stored.body, created=False, replayed=True, status_code=stored.status_code)
    aggregate = await load_order(session, order_id, flow.actor, lock=True)
    order = aggregate.order
    if not _reaches(flow.actor, order):
        raise NotFound(ORDER_NOT_FOUND)
    if order.status == OrderStatus.CANCELLED.value:
        raise Conflict("a cancelled order is not paid again", status=order.status)
    total = order.totals.total
    due = still_due(total, await paid_so_far(uow, order_id))
    currency = order.currency.upper()
    if claim is not None:
        # Provisional, until the last transaction replaces it with what the client is told.
        running = IdempotencyKeyInFlight("a payment with this Idempotency-Key is still being processed")
        body = msgspec.json.encode(domain_problem(running, flow.instance))
        await idempotency.complete(session, claim, 409, body, flow.clock.now())
    if payment.provider == "pos":
        pending = await record_pending(uow, order_id, provider="pos", amount=due, currency=currency, clock=flow.clock)
        await _to_the_stores(uow, flow, aggregate)
        return await answer(uow, flow, order_id, pending)
    try:
        amount = to_stripe_amount(due, currency)
    except UnchargeableAmount as exc:
        raise InvalidRequest(str(exc), field="payment") from None
    # One attempt per request: a retry after Stripe was not reached sends Stripe the same key.
    attempt = uuid.uuid5(uuid.NAMESPACE_URL, f"{claim.principal}\x00{claim.key}") if claim else uuid.uuid4()
    return Charge(
        order_id,
        due,
        currency,
        amount,
        key=idempotency_key(order_id, Operation.AUTHORISE, attempt),
        save_method=order.channel in flow.save_method_channels,
    )


class _Answered(msgspec.Struct):
    version: int


def _reaches(actor: Actor, order: Order) -> bool:
    """As for reading the order, and a channel pays again only the orders it placed."""
    return actor.kind != Role.CHANNEL or actor.channel == order.channel


async def paid_so_far(uow: UnitOfWork, order_id: uuid.UUID) -> list[PaidSoFar]:
    tendered = (
        select(
            PaymentOperation.payment_id,
            func.sum(PaymentOperation.amount - func.coalesce(PaymentOperation.change_given, 0)).label("tendered"),
        )
        .where(PaymentOperation.kind == "tender", PaymentOperation.status != "failed")
        .group_by(PaymentOperation.payment_id)
        .subquery()
    )
    rows = await uow.session.execute(
        select(Payment.provider, Payment.status, Payment.amount_captured, func.coalesce(tendered.c.tendered, 0))
        .outerjoin(tendered, tendered.c.payment_id == Payment.id)
        .where(Payment.order_id == order_id)
    )
    return [PaidSoFar(provider, status, int(captured), int(paid)) for provider, status, captured, paid in rows.all()]


async def _to_the_stores(uow: UnitOfWork, flow: Intake, aggregate: OrderAggregate) -> None:
    """Paid at the counter: an order that waited for its card, or needed attention for its
    authorisation, takes its derived status (no event names a payment still to come)."""
    order = aggregate.order
    if order.status != OrderStatus.PENDING_PAYMENT.value and order.attention_reason not in AUTHORISATION_ATTENTION:
        return
    summaries = fulfillment_summaries(aggregate.fulfillments, aggregate.fulfillment_lines)
    attention = None if order.attention_reason in AUTHORISATION_ATTENTION else order.attention_reason
    await record_derived_status(
        uow.session, order, summaries, [], flow.actor, flow.clock.now(), attention_reason=attention
    )


async def _keep_order(uow: UnitOfWork, flow: Intake, order_id: uuid.UUID) -> int:
    """A refused re-payment leaves the order as it is: it still waits for a payment."""
    order = await uow.session.get(Order, order_id)
    assert order is not None
    return order.version


async def _one_live(uow: UnitOfWork, flow: Intake, payment: Payment) -> DomainError | None:
    """Step 3's last word, under the order's lock. If another re-payment applied first (its key
    differed, so step 1 let both through), this authorisation is surplus: its release is queued
    for the worker and the answer is 409 ``payment-exists``. Otherwise the card payments it
    replaces that still wait for 3-D Secure are released, so a customer finishing one later
    never has a second authorisation held."""
    session = uow.session
    others = list(
        (
            await session.execute(
                select(Payment).where(
                    Payment.order_id == payment.order_id, Payment.id != payment.id, Payment.provider == "stripe"
                )
            )
        ).scalars()
    )
    order = await session.get(Order, payment.order_id)
    assert order is not None
    if any(p.status in LIVE_STATUSES for p in others):
        released = [payment] if payment.status in LIVE_STATUSES or payment.external_id else []
        refusal: DomainError | None = PaymentExists(
            "another payment of the order was authorised first; this one is released"
        )
    else:
        released = [p for p in others if p.status == "pending" and p.external_id]
        refusal = None
    now = flow.clock.now()
    drafts = [await queue_void(uow, p, now) for p in released]
    if drafts:
        await record_payment_events(session, order, drafts, flow.actor, now)
    return refusal


async def queue_void(uow: UnitOfWork, payment: Payment, now: datetime) -> OrderEventDraft:
    """A void for the worker to run (``payments/captures.py``), as a cancel queues one."""
    void = PaymentOperation(
        payment_id=payment.id,
        kind="void",
        amount=payment.amount_authorised,
        # Its own key: a cancel queues the void of a live payment under the payment's id alone.
        idempotency_key=idempotency_key(payment.order_id, Operation.VOID, f"{payment.id}:superseded"),
        external_id=payment.external_id,
        status=QUEUED,
        occurred_at=now,
    )
    uow.session.add(void)
    await uow.session.flush()
    data = {"payment_id": str(payment.id), "operations": [str(void.id)], "amount": payment.amount_authorised}
    return OrderEventDraft(EventType.PAYMENT_VOID_DUE, {**data, "currency": payment.currency})
