"""Changing an order from any channel (``POST /v1/orders/{id}/changes``): the key's stored answer
replayed, the order locked and its version checked, the change planned by ``change_rules`` and
either answered as a preview (dry run: nothing written, nothing reserved, no key stored) or
written with its ``OrderChange`` record, its timeline and outbox event, and the key's answer, in
the entry point's one transaction. The payment follows by the capture rule the written lines
feed (``fulfillment.persistence``): less is captured later, a void when nothing is left."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from orchestrator.fulfillment.persistence import order_snapshot, persist
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.fulfillment.stock_moves import StockLedger
from orchestrator.order_record.aggregate import OrderAggregate, load_order
from orchestrator.order_record.states import Method, Status
from orchestrator.order_record.tables import OrderChange
from orchestrator.orders import change_rules
from orchestrator.orders.views import OrderView, view_of
from orchestrator.platform import idempotency
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import ChangeRefused, PreconditionRequired, VersionMismatch
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.idempotency import IdempotencyClaim
from orchestrator.platform.money import OrderTotals


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    order_id: uuid.UUID
    actions: tuple[change_rules.ChangeAction, ...]
    expected_version: int | None
    actor: Actor
    clock: Clock
    lifecycle: LifecycleSettings
    claim: IdempotencyClaim | None = None


class ChangeApplied(msgspec.Struct, kw_only=True):
    change_id: uuid.UUID
    order: OrderView


@dataclass(frozen=True, slots=True)
class Answer:
    """What the controller sends: the body as stored under the key (a replay sends it again)."""

    status: int
    body: bytes
    version: int
    replayed: bool = False


async def preview(uow: UnitOfWork, request: ChangeRequest) -> dict[str, Any]:
    """The dry run: what ``apply`` would do now, from the same plan; the caller does not commit."""
    aggregate, ledger, state = await _load(uow, request, lock=False)
    plan = change_rules.plan_change(
        state, request.actions, request.lifecycle.context(request.actor, request.clock.now())
    )
    return describe(aggregate, state, plan)


async def apply(uow: UnitOfWork, request: ChangeRequest) -> Answer:
    """The change, written; a refused one raises ``ChangeRefused`` (nothing written)."""
    session = uow.session
    if request.claim is not None and (stored := await idempotency.claim(session, request.claim)) is not None:
        version = msgspec.json.decode(stored.body, type=_Versioned).order.version
        return Answer(stored.status_code, stored.body, version, replayed=True)
    aggregate, ledger, state = await _load(uow, request, lock=True)
    now = request.clock.now()
    plan = change_rules.plan_change(state, request.actions, request.lifecycle.context(request.actor, now))
    if not plan.accepted:
        raise ChangeRefused(
            "the change cannot be applied as a whole; nothing was changed",
            actions=[d.as_dict() for d in plan.decisions],
        )
    order = aggregate.order
    version_before = order.version
    change_id = uuid.uuid4()
    order.subtotal = plan.totals_after.subtotal
    order.discount_total = plan.totals_after.discount_total
    if plan.address is not None:
        order.ship_address = dict(plan.address)
    changed = OrderEventDraft(
        EventType.ORDER_CHANGED,
        {
            "change_id": str(change_id),
            "actions": [a.type for a in request.actions],
            "total_before": plan.totals_before.total,
            "total_after": plan.totals_after.total,
            "currency": order.currency,
        },
    )
    await persist(
        session,
        aggregate,
        ledger,
        plan.outcomes,
        request.actor,
        now,
        order_lines=plan.order_lines,
        order_events=(*plan.events, changed),
    )
    after = describe(aggregate, state, plan)
    session.add(
        OrderChange(
            id=change_id,
            order_id=order.id,
            actor_kind=str(request.actor.kind),
            actor_id=request.actor.id,
            channel=request.actor.channel,
            actions=[_action_dict(a) for a in request.actions],
            before=_totals(plan.totals_before),
            after={**_totals(plan.totals_after), "lines": after["lines"]},
            decisions=after["fulfillments"],
            version_before=version_before,
            version_after=order.version,
            created_at=now,
        )
    )
    body = msgspec.json.encode(ChangeApplied(change_id=change_id, order=view_of(aggregate)))
    if request.claim is not None:
        await idempotency.complete(session, request.claim, 200, body, now)
    await session.flush()
    return Answer(200, body, order.version)


class _Order(msgspec.Struct):
    version: int


class _Versioned(msgspec.Struct):
    order: _Order


async def _load(
    uow: UnitOfWork, request: ChangeRequest, *, lock: bool
) -> tuple[OrderAggregate, StockLedger, change_rules.OrderState]:
    """The order (locked for a writer: the order row, then its fulfillments; stock is locked by
    the ledger when it applies), its version checked, and the snapshot the rules decide on."""
    if request.expected_version is None:
        raise PreconditionRequired("a change names the version it is based on in If-Match (the order's ETag)")
    aggregate = await load_order(uow.session, request.order_id, request.actor, lock=lock)
    order = aggregate.order
    if request.expected_version != order.version:
        raise VersionMismatch(request.expected_version, order.version)
    ledger = StockLedger(uow.session, str(order.id), request.clock.now())
    state = _state(aggregate, await order_snapshot(aggregate, ledger))
    change_rules.check_actions(state, request.actions)
    return aggregate, ledger, state


def _state(aggregate: OrderAggregate, snapshot: Any) -> change_rules.OrderState:
    o = aggregate.order
    return change_rules.OrderState(
        snapshot,
        Method(o.fulfillment_method),
        {ln.id: ln.unit_price for ln in aggregate.lines},
        o.totals,
    )


def describe(aggregate: OrderAggregate, state: change_rules.OrderState, plan: change_rules.ChangePlan) -> dict:
    """The plan as the dry run answers it (and the change record keeps it): each action's
    decision, the lines and totals after it, the fulfillments it changes or cancels, and the
    payment difference (negative: less is captured later)."""
    lines_now = {ln.id: ln for ln in state.order.lines}
    cancelled = {c.order_line_id: c.cancelled for c in plan.order_lines}
    codes = {f.id: f.location for f in state.order.fulfillments}
    before = {f.id: f.status for f in state.order.fulfillments}
    return {
        "accepted": plan.accepted,
        "actions": [d.as_dict() for d in plan.decisions],
        "lines": [
            {
                "id": str(ln.id),
                "sku": ln.sku,
                "quantity": ln.quantity,
                "quantity_cancelled": lines_now[ln.id].cancelled + cancelled.get(ln.id, 0),
                "unit_price": ln.unit_price,
            }
            for ln in aggregate.lines
        ],
        "totals_before": _totals(plan.totals_before),
        "totals_after": _totals(plan.totals_after),
        "payment_difference": plan.totals_after.total - plan.totals_before.total,
        "fulfillments": _fulfillments(plan.outcomes, codes, before),
    }


def _fulfillments(outcomes: Sequence[Any], codes: dict, before: dict) -> list[dict[str, Any]]:
    out = []
    for o in outcomes:
        out.append(
            {
                "fulfillment_id": str(o.fulfillment_id),
                "location": codes[o.fulfillment_id],
                "status_before": Status(before[o.fulfillment_id]).value,
                "status_after": o.state.value,
                "units_cancelled": sum(c.cancelled for c in o.lines),
                "units_released": sum(m.quantity for m in o.moves if m.kind.value == "release"),
            }
        )
        out.extend(_fulfillments(o.closed, codes, before))
    return out


def _totals(totals: OrderTotals) -> dict[str, int]:
    return totals.fields()


def _action_dict(action: change_rules.ChangeAction) -> dict[str, Any]:
    match action:
        case change_rules.SetQuantity(line_id=line_id, quantity=quantity):
            return {"type": action.type, "line_id": str(line_id), "quantity": quantity}
        case change_rules.CancelLine(line_id=line_id, quantity=quantity):
            return {"type": action.type, "line_id": str(line_id), "quantity": quantity}
        case change_rules.ChangeAddress(address=address):
            return {"type": action.type, "address": dict(address)}
        case change_rules.CancelOrder(reason=reason):
            return {"type": action.type, "reason": reason}
    return {"type": action.type}  # pragma: no cover
