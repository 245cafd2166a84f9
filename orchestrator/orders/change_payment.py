"""Payment follows a change. A lower total is simply captured less later (the authorisation is
kept); a POS-paid order owes more at the counter (the tender rule weighs the goods handed over,
at their prices); a marketplace order is the marketplace's to charge. A card order whose total
rises is authorised again before the change commits, in the three steps of every processor call,
with no transaction held across it:

1. the change is planned (``order_changes.plan``, nothing written) for its new total, and the
   order's card payment found (an order not paid by card skips this);
2. the processor is asked to hold what the order has left to pay under the new total (its total
   less what was captured or paid at the counter), with the ``payment`` the channel sends, else
   off-session with the card saved on the live payment's customer; neither → 402
   ``additional-payment-required``; a decline → 402 ``payment-declined``;
3. the change is applied (``order_changes.apply``: If-Match and the key checked again) with, in
   its transaction, the new payment recorded (captures then go to it: the newest live one) and
   the old authorisation's release queued for the worker (an order whose card captured all it
   held, or whose hold lapsed, has nothing to release: the new one pays for what is added).
   Should the change fail there (another channel changed the order in between: 412), the new
   authorisation is released at once.

Rule chosen where the issue is silent: the new authorisation replaces the old one rather than
adding a second for the difference, so captures always come from one authorisation (as after a
re-payment). A change is refused while the live payment still has a capture queued or held
(409): its amount was reckoned on the old total.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select

from orchestrator.orders import order_changes
from orchestrator.orders.commands import NewPayment
from orchestrator.orders.repayment import paid_so_far, queue_void
from orchestrator.payments.capture_queue import HELD, QUEUED, live_card_payment
from orchestrator.payments.gateway import (
    AuthoriseRequest,
    IntentStatus,
    Operation,
    PaymentGateway,
    PaymentState,
    UnconfiguredGateway,
    idempotency_key,
)
from orchestrator.payments.service import card_authorisation, locked_order, record_authorised, record_payment_events
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.platform import idempotency
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.errors import (
    AdditionalPaymentRequired,
    Conflict,
    InvalidRequest,
    PaymentDeclined,
    PaymentsNotConfigured,
)
from orchestrator.platform.money import UnchargeableAmount, to_stripe_amount


@dataclass(frozen=True, slots=True)
class TopUp:
    """What step 2 asks the processor for: ``due`` (minor units), replacing the live payment
    ``payment_id`` (None: nothing holds money for the order any more); ``intent_id`` names the
    card saved with the order's payment."""

    payment_id: uuid.UUID | None
    intent_id: str | None
    due: int
    difference: int
    currency: str


async def change(
    db: Database, gateway: PaymentGateway, request: order_changes.ChangeRequest, payment: NewPayment | None
) -> order_changes.Answer:
    """The change, with the payment its higher total needs."""
    top_up = await db.run(lambda uow: _top_up(uow, request))
    if top_up is None:
        if payment is not None:
            raise InvalidRequest("the change needs no new payment", field="payment")
        return await db.run(committing(lambda uow: order_changes.apply(uow, request)))
    if isinstance(gateway, UnconfiguredGateway):
        raise PaymentsNotConfigured("stripe")
    key = idempotency_key(request.order_id, Operation.AUTHORISE, f"change:{_attempt(request)}")
    state = await _authorise(gateway, request, top_up, payment, key)

    async def record(uow: UnitOfWork) -> None:
        auth = card_authorisation(
            state, top_up.due, top_up.currency, key if payment is None or payment.payment_method else None
        )
        await record_authorised(uow, request.order_id, auth, request.actor, request.clock)
        if top_up.payment_id is None:
            return
        old = await uow.session.get(Payment, top_up.payment_id)
        assert old is not None
        drafts = [await queue_void(uow, old, request.clock.now())]
        order = await locked_order(uow.session, request.order_id)
        await record_payment_events(uow.session, order, drafts, request.actor, request.clock.now())

    try:
        return await db.run(committing(lambda uow: order_changes.apply(uow, request, also=record)))
    except Exception:
        # The change did not commit: nothing may stay held for it.
        await gateway.void(state.intent_id, idempotency_key=idempotency_key(request.order_id, Operation.VOID, key))
        raise


async def _top_up(uow: UnitOfWork, request: order_changes.ChangeRequest) -> TopUp | None:
    """Step 1, rolled back by the caller: what a higher total needs authorised, or None (the
    change lowers or keeps the total, is refused or replayed, or the order is not paid by card)."""
    if request.claim is not None and await _answered(uow, request):
        return None
    session = uow.session
    card = await session.scalar(
        select(Payment)
        .where(Payment.order_id == request.order_id, Payment.provider == "stripe", Payment.status != "failed")
        .order_by(Payment.created_at.desc(), Payment.id)
        .limit(1)
    )
    if card is None:
        return None  # paid in store (owes more at the counter), by the marketplace, or not at all
    planned = await order_changes.plan(uow, request)
    difference = planned.totals_after.total - planned.totals_before.total
    if not planned.accepted or difference <= 0:
        return None  # a refusal is raised by ``apply``; a lower total is captured less later
    if card.status == "pending":
        raise Conflict("the order's payment is not authorised yet; change the order once it is")
    # A card that captured everything, or whose hold lapsed, holds nothing to replace: the new
    # authorisation is all there is for the goods still to come.
    live = await live_card_payment(session, request.order_id, request.clock.now())
    if live is not None:
        busy = await session.scalar(
            select(func.count())
            .select_from(PaymentOperation)
            .where(
                PaymentOperation.payment_id == live.id,
                PaymentOperation.kind == "capture",
                PaymentOperation.status.in_((QUEUED, HELD)),
            )
        )
        if busy:
            raise Conflict("a capture of the order's payment is still to run; change it once that has run")
    paid = sum(max(p.captured, p.tendered) for p in await paid_so_far(uow, request.order_id) if p.status != "failed")
    return TopUp(
        live.id if live is not None else None,
        (live or card).external_id,
        planned.totals_after.total - paid,
        difference,
        card.currency,
    )


async def _authorise(
    gateway: PaymentGateway,
    request: order_changes.ChangeRequest,
    top_up: TopUp,
    payment: NewPayment | None,
    key: str,
) -> PaymentState:
    """Step 2: the processor holds ``top_up.due``, or the change is refused (402)."""
    try:
        amount = to_stripe_amount(top_up.due, top_up.currency)
    except UnchargeableAmount as exc:
        raise InvalidRequest(str(exc), field="payment") from None
    if payment is not None:
        payment.check()
        if payment.provider != "stripe":
            raise InvalidRequest("a card order pays a higher total by card", field="payment.provider")
        if payment.payment_intent is not None:
            return await gateway.verify_authorised(payment.payment_intent, amount=amount, currency=top_up.currency)
        authorise = AuthoriseRequest(
            amount=amount,
            currency=top_up.currency,
            payment_method=payment.payment_method or "",
            metadata={"order_id": str(request.order_id), "change": "higher_total"},
        )
    else:
        current = await gateway.retrieve(top_up.intent_id) if top_up.intent_id else None
        metadata = {"order_id": str(request.order_id), "change": "higher_total"}
        saved = AuthoriseRequest.with_saved_card(current, amount, top_up.currency, metadata) if current else None
        if saved is None:
            raise AdditionalPaymentRequired(
                "the change raises the total and no saved card can pay the difference: send a payment with it",
                amount=top_up.difference,
                currency=top_up.currency,
            )
        authorise = saved
    state = await gateway.authorise(authorise, idempotency_key=key)
    if state.status is not IntentStatus.REQUIRES_CAPTURE:
        # The change cannot wait for the customer to authenticate: nothing stays held.
        if state.status is IntentStatus.REQUIRES_ACTION:
            await gateway.void(state.intent_id, idempotency_key=idempotency_key(request.order_id, Operation.VOID, key))
        raise PaymentDeclined(
            f"the payment is {state.status.value}, not authorised: confirm it on the storefront and send its "
            "payment_intent with the change",
            code=state.status.value,
            decline_code=None,
            intent_id=state.intent_id,
        )
    return state


async def _answered(uow: UnitOfWork, request: order_changes.ChangeRequest) -> bool:
    """A replay: the key's stored answer is sent again (by ``apply``), nothing is authorised."""
    assert request.claim is not None
    return await idempotency.claim(uow.session, request.claim) is not None


def _attempt(request: order_changes.ChangeRequest) -> uuid.UUID:
    """One attempt per request: a retry under the same Idempotency-Key asks Stripe under the same key."""
    claim = request.claim
    if claim is None:
        return uuid.uuid4()
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{claim.principal}\x00{claim.key}")
