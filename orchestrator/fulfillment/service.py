"""The store fulfillment lifecycle: one use case per transition, one transaction each.

Every transition locks the order row and then its fulfillment rows (the order-first lock order),
checks the state machine and the caller's ``If-Match`` version, applies the stock effects and
writes the timeline and the outbox with the new state. Two staff acting on one fulfillment at
once are serialised by the order lock; the second sees the new state and gets a 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment.model import (
    OPEN_STATES,
    Action,
    Method,
    Status,
    allowed_actions,
    next_state,
)
from orchestrator.fulfillment.pickup import (
    PickupGuard,
    pickup_code,
)
from orchestrator.fulfillment.resourcing import Shortage, resource
from orchestrator.fulfillment.stock_moves import StockLedger
from orchestrator.orders.queries import FULFILLMENT_NOT_FOUND, OrderAggregate, fulfillment_view, load_order
from orchestrator.orders.status import FulfillmentSummary, derive_order_status
from orchestrator.orders.tables import FulfillmentOrder, FulfillmentOrderLine
from orchestrator.orders.timeline import OrderRef, record_change
from orchestrator.orders.views import FulfillmentView
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork
from orchestrator.platform.errors import (
    IllegalTransition,
    NotFound,
    VersionMismatch,
)
from orchestrator.platform.events import OrderEventDraft
from orchestrator.sourcing.service import StockMoved

ADMIN_VIEW = Actor(kind="admin", id="lifecycle")


@dataclass(frozen=True)
class LifecycleSettings:
    secret: str
    guard: PickupGuard = PickupGuard()


@dataclass
class Step:
    """One transition in progress: what it loaded, what it changes, what it will say."""

    aggregate: OrderAggregate
    fo: FulfillmentOrder
    lines: list[FulfillmentOrderLine]
    target: Status
    actor: Actor
    now: datetime
    ledger: StockLedger
    settings: LifecycleSettings
    drafts: list[OrderEventDraft] = field(default_factory=list)
    shortages: list[Shortage] = field(default_factory=list)
    commit_before_raise: Exception | None = None

    @property
    def code(self) -> str:
        return self.aggregate.codes[self.fo.location_id]

    def say(self, type_: str, data: dict | None = None, private: dict | None = None) -> None:
        base = {"fulfillment_id": str(self.fo.id), "location": self.code, "method": self.fo.method}
        self.drafts.append(OrderEventDraft(type_, {**base, **(data or {})}, private or {}))


Apply = Callable[[Step], Awaitable[None]]


async def transition(
    db: Database,
    fulfillment_id: uuid.UUID,
    action: Action,
    actor: Actor,
    clock: Clock,
    settings: LifecycleSettings,
    apply: Apply | None = None,
    *,
    expected_version: int | None = None,
) -> FulfillmentView:
    async def attempt(uow: UnitOfWork) -> FulfillmentView:
        session = uow.session
        aggregate, fo = await _locked(session, fulfillment_id)
        if not _may_act(actor, aggregate, fo, action):
            raise NotFound(FULFILLMENT_NOT_FOUND)
        if expected_version is not None and expected_version != fo.version:
            raise VersionMismatch(expected_version, fo.version)
        target = next_state(Status(fo.status), Method(fo.method), action)
        now = clock.now()
        step = Step(
            aggregate,
            fo,
            aggregate.fulfillment_lines.get(fo.id, []),
            target,
            actor,
            now,
            StockLedger(session, str(fo.order_id), now),
            settings,
        )
        if apply is not None:
            await apply(step)
        if step.commit_before_raise is None:
            fo.status = step.target.value
            fo.version += 1
            fo.updated_at = now
            if step.target not in OPEN_STATES and fo.closed_at is None:
                fo.closed_at = now
        else:
            fo.version += 1
            fo.updated_at = now
        if step.shortages:
            await resource(session, aggregate, step, step.shortages)
        await step.ledger.apply(actor.label)
        await session.flush()
        if step.drafts:
            await record_order_change(session, aggregate, step.drafts, actor, now)
        await uow.commit()
        if step.commit_before_raise is not None:
            raise step.commit_before_raise
        codes = aggregate.codes
        return fulfillment_view(fo, aggregate.fulfillment_lines.get(fo.id, []), codes, aggregate.order.number)

    return await db.run(attempt, also_retry=(StockMoved,))


async def resend_pickup_code(
    db: Database, fulfillment_id: uuid.UUID, actor: Actor, clock: Clock, settings: LifecycleSettings
) -> str:
    """The current code of a pickup that is ready, for the channel that placed the order (or an
    admin) to pass on again. The timeline records that it was re-sent; the code goes nowhere but
    the answer (it is derived, so nothing is stored)."""

    async def attempt(uow: UnitOfWork) -> str:
        session = uow.session
        aggregate, fo = await _locked(session, fulfillment_id)
        # Another channel's customer is outside this key's reach: the same 404 as no such pickup.
        if not (actor.is_admin or (actor.kind == Role.CHANNEL and actor.channel == aggregate.order.channel)):
            raise NotFound(FULFILLMENT_NOT_FOUND)
        status, method = Status(fo.status), Method(fo.method)
        if status is not Status.READY_FOR_PICKUP or fo.pickup_code_issue < 1:
            raise IllegalTransition("resend the pickup code of", status.value, allowed_actions(status, method))
        draft = OrderEventDraft(
            "fulfillment.pickup_code_resent",
            {"fulfillment_id": str(fo.id), "location": aggregate.codes[fo.location_id], "method": fo.method},
        )
        await record_order_change(session, aggregate, [draft], actor, clock.now())
        await uow.commit()
        return pickup_code(settings.secret, fo.id, fo.pickup_code_issue)

    return await db.run(attempt)


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


async def record_order_change(
    session: AsyncSession, aggregate: OrderAggregate, drafts: list[OrderEventDraft], actor: Actor, now: datetime
) -> None:
    """The order's derived status, its version and its events, after its fulfillments changed."""
    order = aggregate.order
    needs_attention = any(line.quantity_unsourced for line in aggregate.lines)
    status = derive_order_status(
        [
            FulfillmentSummary(
                Status(f.status),
                Method(f.method),
                sum(ln.quantity_handed_over for ln in aggregate.fulfillment_lines.get(f.id, [])),
            )
            for f in aggregate.fulfillments
        ],
        needs_attention=needs_attention,
    )
    if status.value != order.status:
        drafts.append(OrderEventDraft("order.status_changed", {"from": order.status, "to": status.value}))
    attention = order.attention_reason if needs_attention else None
    if needs_attention and not attention:
        attention = "a line could not be sourced"
    for draft in drafts:
        if draft.type == "order.needs_attention":
            attention = draft.data.get("reason", attention)
    order.version = await record_change(
        session,
        OrderRef(order.id, order.number, order.channel),
        drafts,
        actor,
        now,
        status=status.value,
        attention_reason=attention,
    )
    order.status = status.value
    order.attention_reason = attention
