"""The payment timeout and the reconciler: orders waiting for their card payment, settled by what
Stripe says (the rule and the records are ``payments/timers.py``).

Each waiting order is settled like a paid intake's last two steps: Stripe is asked outside any
transaction (the PaymentIntent by id; by the order id it was tagged with when a crash lost the id
too), a due timeout cancels the intent (``void`` under the order's timeout key, so a retry never
cancels twice), and the outcome is applied in a transaction of its own that first checks the
order still waits, so two sweeps, or a sweep and a retried job, settle it once.

The worker runs ``sweep`` every minute (``worker.py``): that is the guarantee, and what brings a
finished 3-D Secure to the stores before the timeout. No deferred job: a minute is prompt enough
for both, and webhooks (later) make the authorised case immediate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog

from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.orders.changes import cancel_order
from orchestrator.payments.gateway import (
    IntentStatus,
    PaymentGateway,
    PaymentNotFound,
    PaymentRequestRefused,
    PaymentState,
)
from orchestrator.payments.timers import (
    PAYMENT_TIMEOUT,
    PENDING_CHECK_AFTER,
    Awaiting,
    Verdict,
    awaiting_payment,
    record_timed_out,
    settle_authorised,
    verdict,
    void_key,
)
from orchestrator.platform.actors import SYSTEM
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.errors import GatewayUnavailable
from orchestrator.platform.money import to_stripe_amount

log = structlog.get_logger("orchestrator.payments")


@dataclass(frozen=True)
class PaymentTimers:
    db: Database
    gateway: PaymentGateway
    clock: Clock
    lifecycle: LifecycleSettings
    timeout: timedelta
    check_after: timedelta = PENDING_CHECK_AFTER


@dataclass(frozen=True)
class Swept:
    authorised: int = 0
    timed_out: int = 0


async def _stripe_state(gateway: PaymentGateway, due: Awaiting) -> PaymentState | None:
    try:
        if due.intent_id is not None:
            return await gateway.retrieve(due.intent_id)
        return await gateway.find_for_order(due.order_id)
    except PaymentNotFound:
        return None


async def _cancel_intent(gateway: PaymentGateway, due: Awaiting, state: PaymentState) -> PaymentState:
    if state.status is IntentStatus.CANCELED:
        return state
    try:
        return await gateway.void(state.intent_id, idempotency_key=void_key(due.order_id))
    except PaymentRequestRefused:
        # It changed under us (the customer finished 3-D Secure just now): Stripe's word again.
        return await gateway.retrieve(state.intent_id)


async def _time_out(uow: UnitOfWork, timers: PaymentTimers, due: Awaiting, state: PaymentState | None) -> bool:
    if not await record_timed_out(uow, due, state, SYSTEM, timers.clock):
        return False
    aggregate = await cancel_order(uow, due.order_id, SYSTEM, timers.clock, timers.lifecycle, reason=PAYMENT_TIMEOUT)
    aggregate.order.holds_channel_ref = False  # as after a decline: the storefront may place it again
    await uow.session.flush()
    return True


async def settle(timers: PaymentTimers, due: Awaiting) -> Verdict:
    """One waiting order: Stripe's word, then what it means, applied once. What was applied
    (``WAIT`` when nothing was, including when another run settled the order first)."""
    state = await _stripe_state(timers.gateway, due)
    age = timers.clock.now() - due.placed_at
    rule = {"stripe_amount": to_stripe_amount(due.total, due.currency), "currency": due.currency}
    decided = verdict(state, age=age, timeout=timers.timeout, **rule)
    if decided is Verdict.TIME_OUT and state is not None:
        state = await _cancel_intent(timers.gateway, due, state)
        decided = verdict(state, age=age, timeout=timers.timeout, **rule)
    if decided is Verdict.AUTHORISED and state is not None:
        authorised = state
        paid = await timers.db.run(
            committing(lambda uow: settle_authorised(uow, due, authorised, SYSTEM, timers.clock))
        )
        return Verdict.AUTHORISED if paid is not None else Verdict.WAIT
    if decided is Verdict.TIME_OUT:
        final = state
        cancelled = await timers.db.run(committing(lambda uow: _time_out(uow, timers, due, final)))
        return Verdict.TIME_OUT if cancelled else Verdict.WAIT
    return Verdict.WAIT


async def sweep(timers: PaymentTimers) -> Swept:
    """The periodic job: every order waiting past ``check_after``, each settled on its own (a
    Stripe that does not answer leaves that order for the next sweep, not the others)."""
    due = await timers.db.run(lambda uow: awaiting_payment(uow, timers.clock, timers.check_after))
    authorised = timed_out = 0
    for waiting in due:
        try:
            done = await settle(timers, waiting)
        except GatewayUnavailable as exc:
            log.warning("Stripe did not answer; the next sweep retries", order_id=str(waiting.order_id), error=str(exc))
            continue
        authorised += done is Verdict.AUTHORISED
        timed_out += done is Verdict.TIME_OUT
    return Swept(authorised, timed_out)
