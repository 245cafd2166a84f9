"""What a change to an order (``POST /v1/orders/{id}/changes``) may do, decided on the order's
snapshot: each action accepted or refused with its reason, and, when all are accepted, the effects
to write. Pure: the dry run and the applied change call the same ``plan_change``, so the applied
change does exactly what the dry run answered when nothing changed in between.

Rules chosen where the issue is silent:
- Only units still waiting in a fulfillment nobody has started to pick (``pending``, ``accepted``)
  or that no location took yet (unsourced) may be taken away. Units being picked, picked, packed,
  shipped or handed over, and units a transfer carries to the pickup store, are fixed.
- Units taken away are cancelled on the order line (``quantity`` stays what was ordered), taken
  from the unsourced units first, then from the fulfillments in the order they were created; their
  reservations are released as a fulfillment cancel releases them, and a fulfillment left with
  nothing to do is cancelled.
- The subtotal drops by the value of the units taken away; shipping, tax and discount stay (the
  discount is capped at what it is taken off, goods plus shipping plus tax). ``cancel_order``
  leaves the totals as ``POST /v1/orders/{id}/cancel`` does: the capture rule charges only the
  share of what was handed over and voids an authorisation nothing was captured from.
- ``cancel_order`` is ``order_transitions.cancel_order``, the same as ``/cancel``, and stands alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.fulfillment import order_transitions
from orchestrator.fulfillment.effects import Effects
from orchestrator.fulfillment.model import Fulfillment, MoveKind, Order, OrderLineChange, OrderOutcome, Outcome
from orchestrator.fulfillment.requests import Context
from orchestrator.order_record.states import Method, Status
from orchestrator.platform.errors import InvalidRequest, OrderNotCancellable
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.money import OrderTotals

CHANGEABLE = frozenset({Status.PENDING, Status.ACCEPTED})
REASON_TAKEN_AWAY = "taken off the order by a change"


@dataclass(frozen=True, slots=True)
class SetQuantity:
    line_id: uuid.UUID
    quantity: int
    type: str = "set_quantity"


@dataclass(frozen=True, slots=True)
class CancelLine:
    line_id: uuid.UUID
    quantity: int | None = None  # None: all of the line that is left
    type: str = "cancel_line"


@dataclass(frozen=True, slots=True)
class ChangeAddress:
    address: Mapping[str, Any]
    type: str = "change_address"


@dataclass(frozen=True, slots=True)
class CancelOrder:
    reason: str = "cancelled on request"
    type: str = "cancel_order"


ChangeAction = SetQuantity | CancelLine | ChangeAddress | CancelOrder


@dataclass(frozen=True, slots=True)
class OrderState:
    """The order as a change sees it: the fulfillments' snapshot, each line's price, the totals."""

    order: Order
    method: Method
    prices: Mapping[uuid.UUID, int]
    totals: OrderTotals


@dataclass(frozen=True, slots=True)
class Decision:
    index: int
    type: str
    accepted: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type, "accepted": self.accepted, "reason": self.reason}


@dataclass(frozen=True)
class ChangePlan:
    decisions: tuple[Decision, ...]
    totals_before: OrderTotals
    totals_after: OrderTotals
    outcomes: tuple[Outcome, ...] = ()
    order_lines: tuple[OrderLineChange, ...] = ()
    events: tuple[OrderEventDraft, ...] = ()
    address: Mapping[str, Any] | None = None  # the order's new ship address
    taken: Mapping[uuid.UUID, int] = field(default_factory=dict)  # order line id → units taken away

    @property
    def accepted(self) -> bool:
        return all(d.accepted for d in self.decisions)


def plan_change(state: OrderState, actions: Sequence[ChangeAction], ctx: Context) -> ChangePlan:
    """Each action in turn on what the previous ones left; the effects only when all are accepted."""
    order = state.order
    left = {ln.id: ln.quantity - ln.cancelled for ln in order.lines}
    free = {ln.id: ln.unsourced + _waiting_units(order, ln.id) for ln in order.lines}
    taken: dict[uuid.UUID, int] = {}
    decisions: list[Decision] = []
    address: Mapping[str, Any] | None = None
    cancelled_whole: OrderOutcome | None = None
    for index, action in enumerate(actions):
        reason = _refusal(state, action, left, free, len(actions))
        if reason is None:
            match action:
                case SetQuantity(line_id=line_id, quantity=quantity):
                    _take(line_id, left[line_id] - quantity, left, free, taken)
                case CancelLine(line_id=line_id, quantity=quantity):
                    _take(line_id, left[line_id] if quantity is None else quantity, left, free, taken)
                case ChangeAddress(address=new):
                    address = new
                case CancelOrder(reason=why):
                    try:
                        cancelled_whole = order_transitions.cancel_order(order, why, ctx)
                    except OrderNotCancellable:
                        reason = "nothing_to_cancel"
        decisions.append(Decision(index, action.type, reason is None, reason))
    refused = any(not d.accepted for d in decisions)
    if refused:
        return ChangePlan(tuple(decisions), state.totals, state.totals)
    if cancelled_whole is not None:
        return ChangePlan(
            tuple(decisions),
            state.totals,
            state.totals,
            cancelled_whole.fulfillments,
            cancelled_whole.order_lines,
            cancelled_whole.events,
        )
    outcomes, order_lines = _take_away(state, taken, address)
    value = sum(units * state.prices[line_id] for line_id, units in taken.items())
    return ChangePlan(
        tuple(decisions),
        state.totals,
        _lowered(state.totals, value),
        outcomes,
        order_lines,
        address=address,
        taken={k: v for k, v in taken.items() if v},
    )


def check_actions(state: OrderState, actions: Sequence[ChangeAction]) -> None:
    """A request that cannot mean anything on this order is a 422, not a refusal: an unknown
    line, a quantity below zero, or a quantity raised (adding units needs new stock, which this
    endpoint does not reserve)."""
    lines = {ln.id: ln for ln in state.order.lines}
    for index, action in enumerate(actions):
        if isinstance(action, SetQuantity | CancelLine):
            line = lines.get(action.line_id)
            if line is None:
                raise InvalidRequest("the order has no such line", field=f"actions[{index}].line_id")
            if isinstance(action, SetQuantity) and action.quantity > line.quantity - line.cancelled:
                raise InvalidRequest(
                    "set_quantity can only lower a line's quantity", field=f"actions[{index}].quantity"
                )


def _refusal(
    state: OrderState,
    action: ChangeAction,
    left: Mapping[uuid.UUID, int],
    free: Mapping[uuid.UUID, int],
    count: int,
) -> str | None:
    if state.order.status == "cancelled":
        return "order_cancelled"
    match action:
        case SetQuantity(line_id=line_id, quantity=quantity):
            return _fixed_reason(state.order, line_id) if left[line_id] - quantity > free[line_id] else None
        case CancelLine(line_id=line_id, quantity=quantity):
            units = left[line_id] if quantity is None else quantity
            if units > left[line_id]:
                return "more_than_left"
            if units == 0:
                return "nothing_left"
            return _fixed_reason(state.order, line_id) if units > free[line_id] else None
        case ChangeAddress():
            if state.method is not Method.SHIP:
                return "not_a_shipment"
            facing = [f for f in state.order.fulfillments if f.method is Method.SHIP]
            if any(f.status not in CHANGEABLE | {Status.PICKING, Status.CANCELLED, Status.REJECTED} for f in facing):
                return "already_packed_or_shipped"
            return None
        case CancelOrder():
            return "cancel_order_stands_alone" if count > 1 else None
    return None  # pragma: no cover - every action type is matched above


def _facing(order: Order) -> list[Fulfillment]:
    """The fulfillments whose units may be taken away: at nobody's hands yet, fed by no transfer."""
    fed = {f.feeds for f in order.fulfillments if f.feeds is not None and f.status not in _CLOSED}
    return [
        f for f in order.fulfillments if f.method is not Method.TRANSFER and f.status in CHANGEABLE and f.id not in fed
    ]


_CLOSED = frozenset({Status.CANCELLED, Status.REJECTED, Status.EXPIRED, Status.DELIVERED})


def _waiting_units(order: Order, order_line_id: uuid.UUID) -> int:
    return sum(ln.open for f in _facing(order) for ln in f.lines if ln.order_line_id == order_line_id)


def _fixed_reason(order: Order, order_line_id: uuid.UUID) -> str:
    """Why units of the line can no longer be taken away: the furthest any of them got."""
    holding = [
        (f, ln)
        for f in order.fulfillments
        for ln in f.lines
        if ln.order_line_id == order_line_id and ln.quantity - ln.cancelled > 0
    ]
    if any(ln.handed_over for _, ln in holding):
        return "already_handed_over"
    if any(f.status in {Status.PACKED, Status.SHIPPED} for f, _ in holding):
        return "already_shipped"
    fed = {f.feeds for f in order.fulfillments if f.feeds is not None and f.status not in _CLOSED}
    if any(f.method is Method.TRANSFER or f.id in fed for f, _ in holding):
        return "in_transfer"
    if any(ln.picked for _, ln in holding):
        return "already_picked"
    return "picking_started"


def _take(line_id: uuid.UUID, units: int, left: dict[uuid.UUID, int], free: dict[uuid.UUID, int], taken: dict) -> None:
    left[line_id] -= units
    free[line_id] -= units
    taken[line_id] = taken.get(line_id, 0) + units


def _take_away(
    state: OrderState, taken: Mapping[uuid.UUID, int], address: Mapping[str, Any] | None
) -> tuple[tuple[Outcome, ...], tuple[OrderLineChange, ...]]:
    """The units taken away, from the unsourced ones first, then fulfillment by fulfillment; and
    the new address on every parcel still to be packed."""
    order = state.order
    rest = dict(taken)
    order_lines = []
    for ln in order.lines:
        units = rest.get(ln.id, 0)
        if not units:
            continue
        unsourced = min(units, ln.unsourced)
        rest[ln.id] = units - unsourced
        order_lines.append(OrderLineChange(ln.id, cancelled=units, unsourced=-unsourced))
    outcomes = []
    facing = {f.id for f in _facing(order)}
    for fo in order.fulfillments:
        fx = Effects(fo)
        changed = False
        if fo.id in facing:
            for line in fo.lines:
                units = min(rest.get(line.order_line_id, 0), line.open)
                if units:
                    rest[line.order_line_id] -= units
                    changed = True
                    fx.change(line, cancelled=units)
                    fx.move(MoveKind.RELEASE, line, min(units, line.reserved), REASON_TAKEN_AWAY)
        emptied = changed and all(ln.quantity - ln.cancelled == 0 for ln in fx.lines)
        if address is not None and fo.method is Method.SHIP and fo.status in CHANGEABLE | {Status.PICKING}:
            fx.fields["ship_address"] = dict(address)
        if emptied:
            fx.fields["close_reason"] = REASON_TAKEN_AWAY
            fx.event(EventType.FULFILLMENT_CANCELLED, {"reason": REASON_TAKEN_AWAY})
            outcomes.append(fx.outcome(Status.CANCELLED))
        elif changed or fx.fields:
            outcomes.append(fx.outcome(fo.status))
    return tuple(outcomes), tuple(order_lines)


def _lowered(totals: OrderTotals, value: int) -> OrderTotals:
    subtotal = totals.subtotal - value
    ceiling = subtotal + totals.shipping_total + totals.tax_total
    return OrderTotals(subtotal, totals.shipping_total, totals.tax_total, min(totals.discount_total, ceiling))
