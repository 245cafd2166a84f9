"""The authorisation-expiry timer: the sweep the worker runs every minute (the rule and the records
are ``payments/expiry.py``), and the off-session re-authorisation a warning may call for.

Each payment due is settled in a transaction of its own (order row locked first). When the
warning queued the held captures of a payment without multicapture, their final capture will
release the rest of the authorisation; the goods still to hand over are then authorised again
off-session if the customer's card was saved with the PaymentIntent (its ``payment_method`` and
``customer``, from ``setup_future_usage=off_session`` at intake). That takes the three steps of
every processor call: the PaymentIntent is read and the new one created outside any transaction
(under the key ``order:<id>:authorise:reauthorise:<payment>``, so a retry never authorises twice),
and the answer is applied in a new transaction:

- held: a new payment for the remainder (``payment.authorised``); the order leaves
  ``needs_attention`` if the warning put it there (``service.record_authorised`` settles it).
  Should a handover have closed the order in the meantime, the new authorisation is voided at
  once (``payment.void_due``): nothing is left for it to pay.
- refused (``authentication_required`` off-session, a decline): a ``fail`` operation and
  ``payment.failed`` on the expiring payment; the order stays ``needs_attention`` for the counter
  or a new payment (``POST /v1/orders/{id}/payments``).
- no saved card, or Stripe unreachable: nothing more; the order stays ``needs_attention``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from orchestrator.order_record.aggregate import load_orders
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.payments.expiry import Reauthorise, Step, payments_due, settle_payment
from orchestrator.payments.gateway import (
    AuthoriseRequest,
    IntentStatus,
    Operation,
    PaymentGateway,
    PaymentState,
    idempotency_key,
)
from orchestrator.payments.service import card_authorisation, locked_order, record_authorised, record_payment_events
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform.actors import SYSTEM
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.errors import GatewayUnavailable, PaymentDeclined, PaymentError, PaymentsNotConfigured
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.money import UnchargeableAmount, to_stripe_amount

log = structlog.get_logger("orchestrator.payments")


@dataclass
class Swept:
    warned: int = 0
    expired: int = 0
    reauthorised: int = 0
    errors: list[str] = field(default_factory=list)


def reauthorise_key(due: Reauthorise) -> str:
    return idempotency_key(due.order_id, Operation.AUTHORISE, f"reauthorise:{due.payment_id}")


async def _covered_again(uow: UnitOfWork, due: Reauthorise, state: PaymentState, clock: Clock) -> Payment:
    auth = card_authorisation(state, due.amount, due.currency, reauthorise_key(due))
    payment = await record_authorised(uow, due.order_id, auth, SYSTEM, clock)
    session = uow.session
    now = clock.now()
    [aggregate] = await load_orders(session, [due.order_id])
    order = aggregate.order
    facing = [f for f in aggregate.fulfillments if f.method != Method.TRANSFER.value]
    if not any(Status(f.status) in OPEN_STATES for f in facing):
        void = PaymentOperation(
            payment_id=payment.id,
            kind="void",
            amount=payment.amount_authorised,
            idempotency_key=idempotency_key(order.id, Operation.VOID, payment.id),
            external_id=payment.external_id,
            status="queued",
            occurred_at=now,
        )
        session.add(void)
        await session.flush()
        data = {"payment_id": str(payment.id), "operations": [str(void.id)], "amount": payment.amount_authorised}
        drafts = [OrderEventDraft(EventType.PAYMENT_VOID_DUE, {**data, "currency": payment.currency})]
        await record_payment_events(session, order, drafts, SYSTEM, now)
    return payment


async def _not_covered(uow: UnitOfWork, due: Reauthorise, refusal: PaymentError, clock: Clock) -> None:
    session = uow.session
    now = clock.now()
    order = await locked_order(session, due.order_id)
    payment = await session.get(Payment, due.payment_id)
    assert payment is not None
    code = getattr(refusal, "code", None) or type(refusal).__name__
    decline_code = refusal.decline_code if isinstance(refusal, PaymentDeclined) else None
    external_id = getattr(refusal, "intent_id", None)
    session.add(
        PaymentOperation(
            payment_id=payment.id,
            kind="fail",
            amount=due.amount,
            external_id=external_id,
            status="failed",
            error_code=str(code)[:80],
            decline_code=decline_code,
            reason="reauthorisation",
            occurred_at=now,
        )
    )
    await session.flush()
    failed = {"payment_id": str(payment.id), "provider": "stripe", "external_id": external_id}
    failed |= {"amount": due.amount, "currency": due.currency, "code": code, "decline_code": decline_code}
    drafts = [OrderEventDraft(EventType.PAYMENT_FAILED, failed)]
    await record_payment_events(session, order, drafts, SYSTEM, now)


async def reauthorise(db: Database, gateway: PaymentGateway, clock: Clock, due: Reauthorise) -> bool:
    """The rest of the order authorised again off-session, if its card was saved. Whether it was."""
    try:
        amount = to_stripe_amount(due.amount, due.currency)
    except UnchargeableAmount:
        return False  # a remainder Stripe cannot charge (BHD not ending in 0): the counter or a new payment
    current = await gateway.retrieve(due.intent_id)
    metadata = {"order_id": str(due.order_id), "reauthorises": str(due.payment_id)}
    request = AuthoriseRequest.with_saved_card(current, amount, due.currency, metadata)
    if request is None:
        return False  # nothing to charge without the customer: the counter or a new payment
    try:
        state = await gateway.authorise(request, idempotency_key=reauthorise_key(due))
    except GatewayUnavailable:
        raise
    except PaymentError as refusal:
        await db.run(committing(lambda uow, r=refusal: _not_covered(uow, due, r, clock)))
        return False
    if state.status is not IntentStatus.REQUIRES_CAPTURE:
        refused = PaymentDeclined(
            f"the payment is {state.status.value}",
            code=state.status.value,
            decline_code=None,
            intent_id=state.intent_id,
        )
        await db.run(committing(lambda uow: _not_covered(uow, due, refused, clock)))
        return False
    await db.run(committing(lambda uow: _covered_again(uow, due, state, clock)))
    return True


async def sweep(db: Database, gateway: PaymentGateway, clock: Clock, warning: timedelta) -> Swept:
    """The periodic job: every payment whose warning or expiry is due, each on its own."""
    swept = Swept()
    for payment_id in await db.run(lambda uow: payments_due(uow, clock.now(), warning)):
        done = await db.run(committing(lambda uow, p=payment_id: settle_payment(uow, p, clock, warning)))
        if done is Step.EXPIRE:
            swept.expired += 1
            continue
        if done is Step.NOTHING:
            continue
        swept.warned += 1
        if isinstance(done, Reauthorise):
            try:
                swept.reauthorised += await reauthorise(db, gateway, clock, done)
            except (GatewayUnavailable, PaymentsNotConfigured) as exc:
                log.warning("Stripe did not answer; the rest is left to the counter", order_id=str(done.order_id))
                swept.errors.append(str(exc))
    return swept
