"""The store fulfillment lifecycle: one runner for every transition, in the entry point's
transaction (``db.run(committing(...))``; the runner never commits).

Every transition locks the order row and then its fulfillment rows (the order-first lock order),
checks the caller's ``If-Match`` version, lets the model decide the outcome and persists it: the
stock effects, the timeline and the outbox with the new state. Two staff acting on one fulfillment at
once are serialised by the order lock; the second sees the new state and gets a 409.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment.model import Action, Outcome, allowed_actions
from orchestrator.fulfillment.persistence import order_snapshot, persist, record_order_change
from orchestrator.fulfillment.pickup import PickupGuard, pickup_code
from orchestrator.fulfillment.requests import Context, HandOver, MarkReady, Ship, TransitionRequest
from orchestrator.fulfillment.stock_moves import StockLedger
from orchestrator.fulfillment.transitions import transition as decide
from orchestrator.fulfillment.views import FulfillmentView, fulfillment_view
from orchestrator.order_record.aggregate import FULFILLMENT_NOT_FOUND, OrderAggregate, load_order
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.order_record.tables import FulfillmentOrder
from orchestrator.payments import tenders
from orchestrator.platform import idempotency
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import KeepWritesAndRaise, UnitOfWork
from orchestrator.platform.errors import IllegalTransition, NotFound, ShipmentUnpaid, VersionMismatch
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.settings import Settings
from orchestrator.sourcing.candidates import load_location

ADMIN_VIEW = Actor(kind="admin", id="lifecycle")


@dataclass(frozen=True)
class LifecycleSettings:
    secret: str
    guard: PickupGuard = PickupGuard()

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecycleSettings:
        return cls(
            secret=settings.secret_key.get_secret_value(),
            guard=PickupGuard(settings.pickup_max_failed_attempts, timedelta(minutes=settings.pickup_lockout_minutes)),
        )

    def context(self, actor: Actor, now: datetime) -> Context:
        return Context(actor, now, self.secret, self.guard)


async def transition(
    uow: UnitOfWork,
    fulfillment_id: uuid.UUID,
    request: TransitionRequest,
    actor: Actor,
    clock: Clock,
    settings: LifecycleSettings,
    *,
    expected_version: int | None = None,
    claim: idempotency.IdempotencyClaim | None = None,
) -> FulfillmentView:
    """Run ``request`` on the fulfillment: lock, decide (``transitions.transition``), persist the
    outcome. An error the outcome carries (a wrong pickup code) is raised as ``KeepWritesAndRaise``:
    the entry point's ``committing`` keeps what was written (the failed attempt counted), then
    raises it. ``StockMoved`` (re-sourcing raced) makes ``Database.run`` try again. ``claim``:
    the request's ``Idempotency-Key``; a repeat answers the first answer and does nothing."""
    session = uow.session
    if claim is not None:
        stored = await idempotency.claim(session, claim)
        if stored is not None:
            return msgspec.json.decode(stored.body, type=FulfillmentView)
    aggregate, fo = await _locked(session, fulfillment_id)
    if not _may_act(actor, aggregate, fo, request.action):
        raise NotFound(FULFILLMENT_NOT_FOUND)
    if expected_version is not None and expected_version != fo.version:
        raise VersionMismatch(expected_version, fo.version)
    now = clock.now()
    ledger = StockLedger(session, str(fo.order_id), now)
    hold_days = {fo.id: await _hold_days(session, fo)} if isinstance(request, MarkReady) else None
    order = await order_snapshot(aggregate, ledger, hold_days)
    outcome = decide(order.fulfillment(fo.id), order, request, settings.context(actor, now))
    # Checked before anything is written: a refused tender leaves the handover undone.
    tender = await _tender(session, aggregate, fo, outcome, request, now) if isinstance(request, HandOver) else None
    if isinstance(request, Ship):
        await _shipment_paid(session, aggregate, fo, outcome, now)
    await persist(session, aggregate, ledger, [outcome], actor, now, tender=tender)
    if outcome.error_after_commit is not None:
        raise KeepWritesAndRaise(outcome.error_after_commit)
    view = fulfillment_view(fo, aggregate.fulfillment_lines.get(fo.id, []), aggregate.codes, aggregate.order.number)
    if claim is not None:
        await idempotency.complete(session, claim, 200, msgspec.json.encode(view), now)
    return view


@dataclass(frozen=True, slots=True)
class _Due:
    standing: tenders.Standing
    amount: int  # what the goods moved here make due and nothing has paid yet
    closes: bool


async def _due_here(
    session: AsyncSession, aggregate: OrderAggregate, fo: FulfillmentOrder, outcome: Outcome, now: datetime
) -> _Due | None:
    """What the goods this outcome hands over or ships make due (``payments/tenders.py``), and
    how the order pays for them. None: no goods move."""
    units = {c.line_id: c.handed_over for c in outcome.lines if c.handed_over}
    if not units or fo.method == Method.TRANSFER.value:  # a refused pickup code moves no goods
        return None
    prices = {ln.id: ln.unit_price for ln in aggregate.lines}
    facing = [f for f in aggregate.fulfillments if f.method != Method.TRANSFER.value]
    value = sum(
        (ln.quantity_handed_over + units.get(ln.id, 0)) * prices[ln.order_line_id]
        for f in facing
        for ln in aggregate.fulfillment_lines.get(f.id, [])
    )
    states = [outcome.state if f.id == fo.id else Status(f.status) for f in facing]
    closes = not any(s in OPEN_STATES for s in states) and not any(ln.quantity_unsourced for ln in aggregate.lines)
    facts = await tenders.payments_facts(session, aggregate.order.id, now)
    due = tenders.due_at_handover(aggregate.order.totals, value_after=value, closes=closes, paid=facts.paid)
    return _Due(facts.standing, due, closes)


async def _tender(
    session: AsyncSession,
    aggregate: OrderAggregate,
    fo: FulfillmentOrder,
    outcome: Outcome,
    request: HandOver,
    now: datetime,
) -> tenders.TenderRecord | None:
    """The tender that settles what the handover's goods make due at the counter; raises the
    refusal. None: nothing is paid here."""
    due = await _due_here(session, aggregate, fo, outcome, now)
    if due is None:
        return None
    given = request.tender
    offered = tenders.Tender(given.amount, given.method, given.reference) if given is not None else None
    tendered = tenders.settle(due.standing, due.amount, offered)
    return tenders.TenderRecord(tendered, fo.id, f"{fo.id}:{fo.version}", due.closes) if tendered else None


async def _shipment_paid(
    session: AsyncSession, aggregate: OrderAggregate, fo: FulfillmentOrder, outcome: Outcome, now: datetime
) -> None:
    """A parcel takes no tender: when the counter would have to take the money (the card's
    authorisation ran out), it does not leave until the order is paid again."""
    due = await _due_here(session, aggregate, fo, outcome, now)
    if due is not None and due.standing is tenders.Standing.COUNTER and due.amount > 0:
        raise ShipmentUnpaid(
            f"{due.amount} is due for these goods and no payment covers it: pay again "
            f"(POST /v1/orders/{aggregate.order.id}/payments) before they ship",
            amount_due=due.amount,
        )


async def _hold_days(session: AsyncSession, fo: FulfillmentOrder) -> int:
    site = await load_location(session, id=fo.location_id)
    assert site is not None
    return site.pickup_hold_days


async def resend_pickup_code(
    uow: UnitOfWork, fulfillment_id: uuid.UUID, actor: Actor, clock: Clock, settings: LifecycleSettings
) -> str:
    """The current code of a pickup that is ready, for the channel that placed the order (or an
    admin) to pass on again. The timeline records that it was re-sent; the code goes nowhere but
    the answer (it is derived, so nothing is stored)."""
    session = uow.session
    aggregate, fo = await _locked(session, fulfillment_id)
    # Another channel's customer is outside this key's reach: the same 404 as no such pickup.
    if not (actor.is_admin or (actor.kind == Role.CHANNEL and actor.channel == aggregate.order.channel)):
        raise NotFound(FULFILLMENT_NOT_FOUND)
    status, method = Status(fo.status), Method(fo.method)
    if status is not Status.READY_FOR_PICKUP or fo.pickup_code_issue < 1:
        raise IllegalTransition("resend the pickup code of", status.value, allowed_actions(status, method))
    draft = OrderEventDraft(
        EventType.FULFILLMENT_PICKUP_CODE_RESENT,
        {"fulfillment_id": str(fo.id), "location": aggregate.codes[fo.location_id], "method": fo.method},
    )
    await record_order_change(session, aggregate, [draft], actor, clock.now())
    return pickup_code(settings.secret, fo.id, fo.pickup_code_issue)


async def _locked(session: AsyncSession, fulfillment_id: uuid.UUID) -> tuple[OrderAggregate, FulfillmentOrder]:
    """The fulfillment's order, locked (order first), and the fulfillment in it; 404 if none."""
    order_id = await session.scalar(select(FulfillmentOrder.order_id).where(FulfillmentOrder.id == fulfillment_id))
    if order_id is None:
        raise NotFound(FULFILLMENT_NOT_FOUND)
    aggregate = await load_order(session, order_id, ADMIN_VIEW, lock=True)
    return aggregate, next(f for f in aggregate.fulfillments if f.id == fulfillment_id)


def _may_act(actor: Actor, aggregate: OrderAggregate, fo: FulfillmentOrder, action: Action) -> bool:
    if not actor.is_staff:
        return True
    if action is Action.DELIVER and fo.destination_location_id is not None:
        # The receiving store books a transfer in; the sending store cannot confirm its arrival.
        return aggregate.codes[fo.destination_location_id] in actor.locations
    return aggregate.codes[fo.location_id] in actor.locations
