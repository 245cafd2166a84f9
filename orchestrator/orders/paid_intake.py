"""Placing an order that carries its payment: the flow across orders, sourcing and payments.

A card payment takes three steps, never holding a transaction across the processor's call:

1. the order is placed as any order is (``intake.place_order``: stock reserved, one short
   transaction), but ``pending_payment``, so no store sees it; its provisional answer is stored
   under the Idempotency-Key (a retry meanwhile gets it, not a second order);
2. the processor is asked, outside any transaction: verify the PaymentIntent the storefront
   confirmed, or create and confirm one from the payment method (manual capture);
3. its word is applied in the next transaction: authorised → the order goes to the stores;
   3-D Secure → it stays ``pending_payment`` and the storefront gets the client secret once;
   refused → the payment fails, the order is cancelled (reason ``payment_failed``: reservations
   released) and lets go of its channel reference, so the storefront can retry it with another
   card; the problem (402 ``payment-declined``, 422 ``payment-intent-mismatch``) is the answer
   stored under the key.

Pay in store (``pos``) and marketplace-collected payments need no processor: they are recorded
in intake's own transaction. An order without a payment is placed as before (the hot path),
unless its channel must carry one (``payment_required_channels``).

Steps 2 and 3 are ``charge_card``, shared with re-payment (``orders/repayment.py``), which differs
only in what a refusal does to the order (nothing: it keeps waiting for a payment) and in a last
check before the authorisation is kept (``Settled``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import msgspec

from orchestrator.customers.model import Matching
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.order_record.aggregate import load_order
from orchestrator.orders.changes import cancel_order
from orchestrator.orders.commands import NewPayment, Placed, PlaceOrder
from orchestrator.orders.intake import place_order
from orchestrator.orders.views import view_of
from orchestrator.payments.gateway import (
    AuthoriseRequest,
    IntentStatus,
    Operation,
    PaymentGateway,
    PaymentNotFound,
    PaymentRequestRefused,
    PaymentState,
    UnconfiguredGateway,
    idempotency_key,
)
from orchestrator.payments.service import (
    Authorisation,
    Failure,
    all_order_payments,
    card_authorisation,
    pays_another_order,
    record_authorised,
    record_failed,
    record_pending,
)
from orchestrator.payments.tables import Payment
from orchestrator.payments.views import payment_view
from orchestrator.platform import idempotency
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, KeepWritesAndRaise, UnitOfWork, committing
from orchestrator.platform.errors import (
    DomainError,
    GatewayUnavailable,
    InvalidRequest,
    PaymentDeclined,
    PaymentError,
    PaymentIntentMismatch,
    PaymentRequired,
    PaymentsNotConfigured,
)
from orchestrator.platform.idempotency import IdempotencyClaim
from orchestrator.platform.money import UnchargeableAmount, check_subtotal, check_totals, to_stripe_amount
from orchestrator.platform.problems import domain_problem
from orchestrator.settings import Settings

PAYMENT_FAILED = "payment_failed"


@dataclass(frozen=True)
class Intake:
    """Everything placing a paid order needs besides the command."""

    db: Database
    gateway: PaymentGateway
    actor: Actor
    clock: Clock
    lifecycle: LifecycleSettings
    claim: IdempotencyClaim | None
    matching: Matching = Matching()
    required_channels: Collection[str] = ()
    # Channels whose customer's card is kept for off-session charges (``setup_future_usage``).
    save_method_channels: Collection[str] = ()
    instance: str = "/v1/orders"

    @classmethod
    def configured(cls, settings: Settings, **flow: Any) -> Intake:
        """The flow with the settings' phone region and payment channels."""
        return cls(
            matching=Matching(settings.default_phone_region, settings.customer_auto_merge),
            required_channels=settings.payment_required_channels,
            save_method_channels=settings.payment_save_method_channels,
            **flow,
        )


@dataclass(frozen=True)
class Charge:
    """One attempt to have the processor hold money for an order."""

    order_id: uuid.UUID
    total: int  # ISO 4217 minor units: what the payment record holds
    currency: str
    amount: int  # what the processor is asked for (its unit)
    key: str  # ``gateway.idempotency_key(order, AUTHORISE, attempt)``
    save_method: bool = False


# What a refusal does to the order, in the transaction recording it; returns the order's version.
Refused = Callable[[UnitOfWork, "Intake", uuid.UUID], Awaitable[int]]
# A last word on a payment just recorded, in its transaction: a problem to answer instead, or None.
Settled = Callable[[UnitOfWork, "Intake", Payment], Awaitable[DomainError | None]]


async def place_paid_order(intake: Intake, cmd: PlaceOrder, payment: NewPayment | None) -> Placed:
    if payment is None:
        if cmd.channel in intake.required_channels:
            raise PaymentRequired(f"orders from {cmd.channel} must carry a payment", field="payment")
        return await intake.db.run(committing(lambda uow: _place(uow, intake, cmd)))
    payment.check(cmd.method)
    if payment.provider != "stripe":
        return await intake.db.run(committing(lambda uow: _place_paid_offline(uow, intake, cmd, payment)))
    if isinstance(intake.gateway, UnconfiguredGateway):
        raise PaymentsNotConfigured("stripe")
    total = check_totals(
        check_subtotal((line.quantity, line.unit_price) for line in cmd.lines),
        cmd.shipping_total,
        cmd.tax_total,
        cmd.discount_total,
    ).total
    try:
        amount = to_stripe_amount(total, cmd.currency)
    except UnchargeableAmount as exc:
        raise InvalidRequest(str(exc), field="payment") from None
    waiting = dataclasses.replace(cmd, awaiting_payment=True)
    placed = await intake.db.run(committing(lambda uow: _place(uow, intake, waiting)))
    if placed.replayed or not placed.created or placed.order_id is None:
        return placed
    order_id = placed.order_id
    charge = Charge(
        order_id,
        total,
        cmd.currency.upper(),
        amount,
        key=idempotency_key(order_id, Operation.AUTHORISE),
        save_method=cmd.channel in intake.save_method_channels,
    )
    return await charge_card(intake, charge, payment, refused=_fail_order)


async def charge_card(
    intake: Intake, charge: Charge, payment: NewPayment, *, refused: Refused, settled: Settled | None = None
) -> Placed:
    """Steps 2 and 3: the processor asked outside any transaction, its word applied in a new one."""
    try:
        state = await _ask(intake.gateway, payment, charge)
    except (PaymentError, InvalidRequest) as error:
        refusal: DomainError = error
        return await intake.db.run(committing(lambda uow: _refuse(uow, intake, charge, payment, refusal, refused)))
    return await intake.db.run(committing(lambda uow: _apply(uow, intake, charge, payment, state, refused, settled)))


async def _place(uow: UnitOfWork, intake: Intake, cmd: PlaceOrder) -> Placed:
    return await place_order(uow, cmd, intake.actor, intake.clock, claim=intake.claim, matching=intake.matching)


async def _ask(gateway: PaymentGateway, payment: NewPayment, charge: Charge) -> PaymentState:
    """The processor's word on the order's payment (no transaction is open). Whatever it refuses
    is a ``DomainError``: the order then fails (``_refuse``)."""
    try:
        return await _authorised(gateway, payment, charge)
    except PaymentNotFound as exc:
        raise PaymentIntentMismatch(exc.detail, intent_id=exc.intent_id, reason="not_found") from None
    except PaymentRequestRefused as exc:  # an unknown or unusable payment method, say
        raise InvalidRequest(f"Stripe refused the payment: {exc.detail}", field="payment", code=exc.code) from None


async def _authorised(gateway: PaymentGateway, payment: NewPayment, charge: Charge) -> PaymentState:
    if payment.payment_intent is not None:
        return await gateway.verify_authorised(payment.payment_intent, amount=charge.amount, currency=charge.currency)
    request = AuthoriseRequest(
        amount=charge.amount,
        currency=charge.currency,
        payment_method=payment.payment_method or "",
        save_method=charge.save_method,
        metadata={"order_id": str(charge.order_id)},
    )
    state = await gateway.authorise(request, idempotency_key=charge.key)
    if state.status not in (IntentStatus.REQUIRES_CAPTURE, IntentStatus.REQUIRES_ACTION):
        raise PaymentDeclined(
            f"the payment is {state.status.value}, not authorised",
            code=None,
            decline_code=None,
            intent_id=state.intent_id,
        )
    return state


async def _apply(
    uow: UnitOfWork,
    intake: Intake,
    charge: Charge,
    payment: NewPayment,
    state: PaymentState,
    refused: Refused,
    settled: Settled | None,
) -> Placed:
    if payment.payment_intent is not None and await pays_another_order(
        uow.session, "stripe", state.intent_id, charge.order_id
    ):
        used = PaymentIntentMismatch(
            f"payment {state.intent_id} already pays another order", intent_id=state.intent_id, reason="already_used"
        )
        return await _refuse(uow, intake, charge, payment, used, refused)
    if state.status is IntentStatus.REQUIRES_ACTION:
        pending = await record_pending(
            uow,
            charge.order_id,
            provider="stripe",
            amount=charge.total,
            currency=charge.currency,
            clock=intake.clock,
            external_id=state.intent_id,
            idempotency_key=charge.key,
            processor_status=state.status.value,
        )
        if settled is not None and (problem := await settled(uow, intake, pending)) is not None:
            return await answer_problem(uow, intake, charge.order_id, problem)
        return await answer(uow, intake, charge.order_id, pending, client_secret=state.client_secret)
    # A PaymentIntent the storefront confirmed was not created under our key.
    key = charge.key if payment.payment_method is not None else None
    auth = card_authorisation(state, charge.total, charge.currency, key)
    authorised = await record_authorised(uow, charge.order_id, auth, intake.actor, intake.clock)
    if settled is not None and (problem := await settled(uow, intake, authorised)) is not None:
        return await answer_problem(uow, intake, charge.order_id, problem)
    return await answer(uow, intake, charge.order_id, authorised)


async def _fail_order(uow: UnitOfWork, intake: Intake, order_id: uuid.UUID) -> int:
    """At intake a refused payment fails the order, which releases its stock and its channel
    reference (the storefront may place it again with another card)."""
    aggregate = await cancel_order(uow, order_id, intake.actor, intake.clock, intake.lifecycle, reason=PAYMENT_FAILED)
    aggregate.order.holds_channel_ref = False
    await uow.session.flush()
    return aggregate.order.version


async def _refuse(
    uow: UnitOfWork, intake: Intake, charge: Charge, payment: NewPayment, refusal: DomainError, refused: Refused
) -> Placed:
    """The payment failed (``refused`` says what that does to the order); the problem is the answer."""
    declined = refusal if isinstance(refusal, PaymentDeclined) else None
    failure = Failure(
        provider="stripe",
        amount=charge.total,
        currency=charge.currency,
        external_id=getattr(refusal, "intent_id", None) or payment.payment_intent,
        code=declined.code if declined else (refusal.context.get("reason") or refusal.context.get("code")),
        decline_code=declined.decline_code if declined else None,
        idempotency_key=charge.key if payment.payment_method is not None else None,
    )
    await record_failed(uow, charge.order_id, failure, intake.actor, intake.clock)
    version = await refused(uow, intake, charge.order_id)
    if isinstance(refusal, GatewayUnavailable):
        # Nobody refused the card: the same request may be tried again, as it was.
        if intake.claim is not None:
            await idempotency.forget(uow.session, intake.claim)
        raise KeepWritesAndRaise(refusal)
    return await answer_problem(uow, intake, charge.order_id, refusal, version)


async def answer_problem(
    uow: UnitOfWork, intake: Intake, order_id: uuid.UUID, refusal: DomainError, version: int = 0
) -> Placed:
    """The problem answered instead of the order, stored under the key like any answer."""
    problem = domain_problem(refusal, intake.instance)
    body = msgspec.json.encode(problem)
    if intake.claim is not None:
        await idempotency.replace(uow.session, intake.claim, problem.status, body)
    return Placed(order_id, version, body, created=False, status_code=problem.status)


async def _place_paid_offline(uow: UnitOfWork, intake: Intake, cmd: PlaceOrder, payment: NewPayment) -> Placed:
    """Pay in store at pickup, or already collected by the marketplace: in intake's transaction."""
    placed = await _place(uow, intake, cmd)
    if placed.replayed or not placed.created or placed.order_id is None:
        return placed
    totals = check_totals(
        check_subtotal((ln.quantity, ln.unit_price) for ln in cmd.lines),
        cmd.shipping_total,
        cmd.tax_total,
        cmd.discount_total,
    )
    currency = cmd.currency.upper()
    if payment.provider == "pos":
        recorded = await record_pending(
            uow, placed.order_id, provider="pos", amount=totals.total, currency=currency, clock=intake.clock
        )
    else:
        collected = Authorisation(
            "marketplace",
            totals.total,
            currency,
            external_id=payment.reference,
            processor_status="collected",
            collected=True,
        )
        recorded = await record_authorised(uow, placed.order_id, collected, intake.actor, intake.clock)
    return await answer(uow, intake, placed.order_id, recorded)


async def answer(
    uow: UnitOfWork, intake: Intake, order_id: uuid.UUID, payment: Payment, *, client_secret: str | None = None
) -> Placed:
    """The order as it is now, with its payment: stored under the key (never with the client
    secret, which is answered once) and answered."""
    session = uow.session
    await session.flush()
    paid = payment_view(payment)
    session.expire_all()  # the timeline's statements changed the order behind the ORM's back
    every = [payment_view(p) for p in (await all_order_payments(session, [order_id])).get(order_id, [])]
    view = msgspec.structs.replace(
        view_of(await load_order(session, order_id, intake.actor), intake.clock.now()), payment=paid, payments=every
    )
    stored = msgspec.json.encode(view)
    if intake.claim is not None:
        await idempotency.replace(session, intake.claim, 201, stored)
    body = stored
    if client_secret is not None:
        secret = msgspec.structs.replace(paid, client_secret=client_secret)
        body = msgspec.json.encode(msgspec.structs.replace(view, payment=secret))
    return Placed(order_id, view.version, body, created=True)
