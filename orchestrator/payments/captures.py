"""Running the queued capture and void operations of a card payment (the worker's job and sweep).

Each operation takes three steps, never holding a transaction across the processor's call:
what to call is read in one short transaction; the processor is called outside any, with the
operation's idempotency key (``gateway.idempotency_key``: order, capture, fulfillment); its word
is applied in a new transaction — unless another run applied it first (the operation is no longer
``queued``), so a repeated job never captures twice: the processor replays the key's first answer
and the operation's state refuses a second application.

- With multicapture, the oldest queued capture goes first, ``final`` only when it is the last
  capture of an order with no open fulfillment left.
- Without it, every queued capture (queued only once the last fulfillment closed) goes in one
  final call under the key of the latest.
- A refused capture fails the operation, records ``payment.failed`` and makes the order
  ``needs_attention`` (reason ``capture_failed``); the handover committed long before.
- A processor that cannot be reached leaves the operation queued: the sweep tries again.
- From the payment's ``capture_before`` on, no capture is sent: its queued and held captures
  expire instead (``expiry.record_expired``).
- A queued refund (Stripe was not reached when it was asked for) is sent by ``refunds.py``'s own
  steps under its own key, after the payment's captures and voids.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.order_record.states import OPEN_STATES, Method
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import FulfillmentOrder, Order
from orchestrator.order_record.timeline import record_order_events
from orchestrator.payments import refunds
from orchestrator.payments.capture_queue import QUEUED
from orchestrator.payments.expiry import lapsed, record_expired
from orchestrator.payments.gateway import Operation, PaymentGateway, PaymentRequestRefused, idempotency_key
from orchestrator.payments.service import locked_order, payment_data
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform.actors import SYSTEM
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.errors import GatewayUnavailable, PaymentDeclined, PaymentError, PaymentsNotConfigured
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.money import UnchargeableAmount, to_stripe_amount

log = structlog.get_logger("orchestrator.payments")
CAPTURE_FAILED = "capture_failed"
# Calls one job makes at most; what is left the next run (or the sweep) does.
MAX_CALLS = 20


@dataclass(frozen=True, slots=True)
class Call:
    kind: str  # capture | void | refund
    payment_id: uuid.UUID
    operations: tuple[uuid.UUID, ...]
    amount: int  # minor units of the order's currency, as the payment record holds them
    final: bool
    key: str
    intent_id: str
    currency: str
    capture_before: datetime | None = None  # from then on, never sent (``expiry.lapsed``)


async def next_call(uow: UnitOfWork, payment_id: uuid.UUID) -> Call | None:
    """The processor call the payment's queued operations ask for next, if any."""
    session = uow.session
    payment = await session.get(Payment, payment_id)
    if payment is None or payment.provider != "stripe" or payment.external_id is None:
        return None
    ops = list(
        (
            await session.execute(
                select(PaymentOperation)
                .where(PaymentOperation.payment_id == payment_id, PaymentOperation.status == QUEUED)
                .order_by(PaymentOperation.occurred_at, PaymentOperation.id)
            )
        ).scalars()
    )
    if not ops:
        return None

    def call(kind: str, chosen: list[PaymentOperation], final: bool) -> Call:
        amount = sum(op.amount for op in chosen)
        key = chosen[-1].idempotency_key or ""
        ids = tuple(op.id for op in chosen)
        intent = payment.external_id or ""
        return Call(kind, payment.id, ids, amount, final, key, intent, payment.currency, payment.capture_before)

    # Refunds last: they give back money already captured, which no capture or void changes.
    refunds = [op for op in ops if op.kind == "refund"]
    ops = [op for op in ops if op.kind != "refund"]
    if not ops:
        return call("refund", refunds[:1], True)
    captures = [op for op in ops if op.kind == "capture"]
    if not captures:
        return call("void", ops[:1], True)
    if not payment.multicapture:
        return call("capture", captures, True)
    first = captures[0]
    later = await session.scalar(
        select(PaymentOperation.id).where(
            PaymentOperation.payment_id == payment_id,
            PaymentOperation.kind == "capture",
            PaymentOperation.id != first.id,
            PaymentOperation.status.in_((QUEUED, "held")),
        )
    )
    return call("capture", [first], later is None and not await _open_fulfillments(session, payment.order_id))


async def _open_fulfillments(session: AsyncSession, order_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(FulfillmentOrder.id).where(
            FulfillmentOrder.order_id == order_id,
            FulfillmentOrder.method != Method.TRANSFER.value,
            FulfillmentOrder.status.in_([s.value for s in OPEN_STATES]),
        )
    )
    return found is not None


async def _claim(session: AsyncSession, call: Call) -> tuple[Order, Payment, list[PaymentOperation]] | None:
    """The order, payment and operations locked (order first), or None if another run applied them."""
    payment = await session.get(Payment, call.payment_id)
    assert payment is not None
    order = await locked_order(session, payment.order_id)
    await session.refresh(payment, with_for_update=True)
    ops = list(
        (
            await session.execute(
                select(PaymentOperation).where(PaymentOperation.id.in_(call.operations)).with_for_update()
            )
        ).scalars()
    )
    if len(ops) != len(call.operations) or any(op.status != QUEUED for op in ops):
        return None
    return order, payment, ops


# What a processor's word makes of the claimed rows: the order's events, status and attention reason.
Settle = Callable[
    [Call, Order, Payment, list[PaymentOperation], datetime], tuple[list[OrderEventDraft], str, str | None]
]


async def _apply(uow: UnitOfWork, call: Call, clock: Clock, settle: Settle) -> bool:
    """``settle`` applied to the claimed rows and recorded; False if another run applied ``call``."""
    session = uow.session
    claimed = await _claim(session, call)
    if claimed is None:
        return False
    order, payment, ops = claimed
    now = clock.now()
    drafts, status, attention = settle(call, order, payment, ops, now)
    await session.flush()
    await record_order_events(session, order, drafts, SYSTEM, now, status=status, attention_reason=attention)
    return True


def _done(
    call: Call, order: Order, payment: Payment, ops: list[PaymentOperation], now: datetime
) -> tuple[list[OrderEventDraft], str, str | None]:
    for op in ops:
        op.status = "succeeded"
    data = payment_data(payment, call.amount)
    if call.kind == "void":
        # A release after non-final captures lets go of the rest only: what moved stays captured.
        if payment.amount_captured == 0:
            payment.status = "voided"
        elif payment.status == "partially_captured":
            payment.status = "captured"
        draft = OrderEventDraft(EventType.PAYMENT_VOIDED, data)
    else:
        payment.amount_captured += call.amount
        done = call.final or payment.amount_captured >= payment.amount_authorised
        payment.status = "captured" if done else "partially_captured"
        fulfillments = sorted({str(op.fulfillment_id) for op in ops if op.fulfillment_id is not None})
        captured = {"amount_captured": payment.amount_captured, "final": call.final, "fulfillments": fulfillments}
        draft = OrderEventDraft(EventType.PAYMENT_CAPTURED, {**data, **captured})
    payment.version += 1
    payment.updated_at = now
    return [draft], order.status, order.attention_reason


def _refused(
    refusal: PaymentError, call: Call, order: Order, payment: Payment, ops: list[PaymentOperation], _now: datetime
) -> tuple[list[OrderEventDraft], str, str | None]:
    code = getattr(refusal, "code", None) or type(refusal).__name__
    decline_code = refusal.decline_code if isinstance(refusal, PaymentDeclined) else None
    for op in ops:
        op.status = "failed"
        op.error_code = code[:80]
        op.decline_code = decline_code
    failed = payment_data(payment, call.amount, code=code, decline_code=decline_code)
    drafts = [OrderEventDraft(EventType.PAYMENT_FAILED, failed)]
    status, attention = order.status, order.attention_reason
    if call.kind == "capture":
        status, attention = OrderStatus.NEEDS_ATTENTION.value, CAPTURE_FAILED
        if status != order.status:
            drafts.append(OrderEventDraft(EventType.ORDER_STATUS_CHANGED, {"from": order.status, "to": status}))
    log.warning("payment operation refused", payment_id=str(payment.id), kind=call.kind, code=code)
    return drafts, status, attention


async def apply_done(uow: UnitOfWork, call: Call, clock: Clock) -> bool:
    """The processor captured (or released) what ``call`` asked; False if already applied."""
    return await _apply(uow, call, clock, _done)


async def apply_refused(uow: UnitOfWork, call: Call, refusal: PaymentError, clock: Clock) -> bool:
    """The processor refused ``call``: the operations failed; a capture leaves the order to an
    operator (``needs_attention``, reason ``capture_failed``)."""
    return await _apply(uow, call, clock, partial(_refused, refusal))


async def run_payment_operations(db: Database, gateway: PaymentGateway, clock: Clock, payment_id: uuid.UUID) -> int:
    """The job (an entry point): the payment's queued operations, one processor call at a time,
    each applied in a transaction of its own. Returns how many calls were applied."""
    applied = 0
    for _ in range(MAX_CALLS):
        call = await db.run(lambda uow: next_call(uow, payment_id))
        if call is None:
            break
        if call.kind == "capture" and lapsed(call.capture_before, clock.now()):
            # The authorisation ran out: Stripe released the money and would refuse, which would
            # read as a failed capture. The captures expire instead (``expiry.record_expired``).
            if await db.run(committing(lambda uow, c=call: record_expired(uow, c.payment_id, clock))):
                continue
            break
        try:
            if call.kind == "refund":
                # Sent and applied by its own steps (the request that reserved it uses them too).
                applied += await refunds.settle_refund(db, gateway, clock, call.operations[0], SYSTEM)
                continue
            if call.kind == "void":
                await gateway.void(call.intent_id, idempotency_key=call.key)
            else:
                amount = _stripe_amount(call)
                await gateway.capture(call.intent_id, amount=amount, final=call.final, idempotency_key=call.key)
        except (GatewayUnavailable, PaymentsNotConfigured) as exc:
            log.warning("processor unavailable; the sweep retries", payment_id=str(payment_id), error=repr(exc))
            break
        except PaymentRequestRefused as refusal:
            if not (call.kind == "capture" and call.final and refusal.code == "idempotency_error"):
                applied += await db.run(committing(lambda uow, c=call, r=refusal: apply_refused(uow, c, r, clock)))
                continue
            replayed = await _replay_non_final(db, gateway, clock, call)
            if replayed is None:
                break
            applied += replayed
            continue
        except PaymentError as refusal:
            applied += await db.run(committing(lambda uow, c=call, r=refusal: apply_refused(uow, c, r, clock)))
            continue
        applied += await db.run(committing(lambda uow, c=call: apply_done(uow, c, clock)))
    return applied


def _stripe_amount(call: Call) -> int:
    """What Stripe is asked to capture; a part Stripe cannot charge in the currency (a BHD share
    not ending in 0, MGA not whole ariary) is refused like a capture Stripe refused, never a
    crash of the worker's sweep that every other payment waits behind."""
    try:
        return to_stripe_amount(call.amount, call.currency)
    except UnchargeableAmount as exc:
        raise PaymentRequestRefused(str(exc), code="amount_unchargeable") from None


async def _replay_non_final(db: Database, gateway: PaymentGateway, clock: Clock, call: Call) -> int | None:
    """Stripe refused a final capture as a reuse of its key: the key's first request, a
    ``final_capture=false`` capture, reached Stripe before a crash lost its answer, and the
    order's last goods closed since. That request is sent again as it was (Stripe replays its
    answer), applied, and the rest of the authorisation released (a queued void) as the final
    capture would have. None: Stripe could not be reached, the sweep tries again."""
    replay = dataclasses.replace(call, final=False)
    try:
        amount = _stripe_amount(call)
        await gateway.capture(call.intent_id, amount=amount, final=False, idempotency_key=call.key)
    except (GatewayUnavailable, PaymentsNotConfigured):
        return None
    except PaymentError as refusal:
        return int(await db.run(committing(lambda uow, r=refusal: apply_refused(uow, call, r, clock))))

    async def apply(uow: UnitOfWork) -> bool:
        if not await apply_done(uow, replay, clock):
            return False
        payment = await uow.session.get(Payment, call.payment_id)
        assert payment is not None
        rest = payment.amount_authorised - payment.amount_captured
        if rest > 0 and payment.status == "partially_captured":
            order = await locked_order(uow.session, payment.order_id)
            void = PaymentOperation(
                payment_id=payment.id,
                kind="void",
                amount=rest,
                idempotency_key=idempotency_key(order.id, Operation.VOID, payment.id),
                external_id=payment.external_id,
                status=QUEUED,
                occurred_at=clock.now(),
            )
            uow.session.add(void)
            await uow.session.flush()
            data = {"payment_id": str(payment.id), "operations": [str(void.id)], "amount": rest}
            due = OrderEventDraft(EventType.PAYMENT_VOID_DUE, {**data, "currency": payment.currency})
            await record_order_events(
                uow.session,
                order,
                [due],
                SYSTEM,
                clock.now(),
                status=order.status,
                attention_reason=order.attention_reason,
            )
        return True

    return int(await db.run(committing(apply)))


async def payments_with_queued_operations(uow: UnitOfWork) -> list[uuid.UUID]:
    rows = await uow.session.execute(
        select(PaymentOperation.payment_id).where(PaymentOperation.status == QUEUED).distinct()
    )
    return list(rows.scalars())


async def sweep(db: Database, gateway: PaymentGateway, clock: Clock) -> int:
    """The periodic guarantee: every payment with a queued operation, as its job would run it."""
    total = 0
    for payment_id in await db.run(payments_with_queued_operations):
        total += await run_payment_operations(db, gateway, clock, payment_id)
    return total
