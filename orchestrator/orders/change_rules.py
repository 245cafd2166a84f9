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
- An added line costs the ``unit_price`` the channel sends (the channel prices its catalogue;
  the service keeps no price list); a higher quantity costs the line's price. The subtotal grows
  by them; shipping, tax and discount stay as they were.
- Actions take effect in this order, whatever order they are listed in: what is taken away,
  then what is added, then the one placement (``move_pickup``, ``switch_to_ship``,
  ``switch_to_pickup``) a change may hold; ``placement_rules`` says what a placement does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.fulfillment import order_transitions
from orchestrator.fulfillment.effects import Effects
from orchestrator.fulfillment.model import Fulfillment, MoveKind, Order, OrderLineChange, OrderOutcome, Outcome
from orchestrator.fulfillment.requests import Context
from orchestrator.order_record.states import Method, Status
from orchestrator.orders.change_actions import (
    AddLine,
    CancelLine,
    CancelOrder,
    ChangeAction,
    ChangeAddress,
    ChangePlan,
    Decision,
    MovePickup,
    OrderFields,
    OrderState,
    Placement,
    SetQuantity,
    Site,
    SourcingAsk,
    SwitchToPickup,
    SwitchToShip,
)
from orchestrator.orders.placement_rules import CHANGEABLE, place, placement_refusal
from orchestrator.platform.errors import InvalidRequest, OrderNotCancellable
from orchestrator.platform.events import EventType
from orchestrator.platform.money import OrderTotals

__all__ = [
    "AddLine",
    "CancelLine",
    "CancelOrder",
    "ChangeAction",
    "ChangeAddress",
    "ChangePlan",
    "Decision",
    "MovePickup",
    "OrderState",
    "SetQuantity",
    "Site",
    "SourcingAsk",
    "SwitchToPickup",
    "SwitchToShip",
    "check_actions",
    "plan_change",
]

REASON_TAKEN_AWAY = "taken off the order by a change"


def plan_change(state: OrderState, actions: Sequence[ChangeAction], ctx: Context) -> ChangePlan:
    """Each action in turn on what the previous ones left; the effects only when all are accepted."""
    order = state.order
    left = {ln.id: ln.quantity - ln.cancelled for ln in order.lines}
    free = {ln.id: ln.unsourced + _waiting_units(order, ln.id) for ln in order.lines}
    taken: dict[uuid.UUID, int] = {}
    raised: dict[uuid.UUID, int] = {}
    added: list[AddLine] = []
    decisions: list[Decision] = []
    address: Mapping[str, Any] | None = None
    placement: tuple[int, Placement] | None = None
    cancelled_whole: OrderOutcome | None = None
    adding_index = 0
    for index, action in enumerate(actions):
        reason = _refusal(state, action, left, free, len(actions))
        if reason is None:
            match action:
                case SetQuantity(line_id=line_id, quantity=quantity) if quantity >= left[line_id]:
                    raised[line_id] = raised.get(line_id, 0) + quantity - left[line_id]
                    free[line_id] += quantity - left[line_id]
                    left[line_id] = quantity
                    adding_index = index
                case SetQuantity(line_id=line_id, quantity=quantity):
                    _take(line_id, left[line_id] - quantity, left, free, taken, raised)
                case CancelLine(line_id=line_id, quantity=quantity):
                    _take(line_id, left[line_id] if quantity is None else quantity, left, free, taken, raised)
                case AddLine():
                    added.append(action)
                    adding_index = index
                case ChangeAddress(address=new):
                    address = new
                case MovePickup() | SwitchToShip() | SwitchToPickup():
                    if placement is not None:
                        reason = "one_placement_per_change"
                    else:
                        placement = (index, action)
                case CancelOrder(reason=why):
                    try:
                        cancelled_whole = order_transitions.cancel_order(order, why, ctx)
                    except OrderNotCancellable:
                        reason = "nothing_to_cancel"
        decisions.append(Decision(index, action.type, reason is None, reason))
    if placement is not None and all(d.accepted for d in decisions):
        unsourced_left = sum(ln.unsourced for ln in order.lines) - sum(
            min(units, ln.unsourced) for ln in order.lines if (units := taken.get(ln.id, 0))
        )
        why = placement_refusal(state, placement[1], unsourced_left, bool(raised or added))
        if why is not None:
            decisions[placement[0]] = Decision(placement[0], placement[1].type, False, why)
    if any(not d.accepted for d in decisions):
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
    effects, states, order_lines = _take_away(state, taken, address)
    unsourced = {ln.id: ln.unsourced + order_lines.get(ln.id, OrderLineChange(ln.id)).unsourced for ln in order.lines}
    adding = {line_id: units for line_id, units in raised.items() if units}
    adding.update({a.line_id: a.quantity for a in added})
    fields, asks, placed = place(state, effects, states, placement, unsourced, adding, adding_index)
    for line_id, units in placed.items():
        was = order_lines.get(line_id, OrderLineChange(line_id))
        order_lines[line_id] = OrderLineChange(line_id, cancelled=was.cancelled, unsourced=was.unsourced - units)
    if address is not None and fields.address is None:
        fields = OrderFields(fields.method, fields.pickup_location, address)
    value = -sum(units * state.prices[line_id] for line_id, units in taken.items())
    value += sum(units * state.prices[line_id] for line_id, units in raised.items())
    value += sum(a.quantity * a.unit_price for a in added)
    return ChangePlan(
        tuple(decisions),
        state.totals,
        _retotalled(state.totals, value),
        _outcomes(effects, states),
        tuple(c for c in order_lines.values() if c.cancelled or c.unsourced),
        fields=fields,
        taken={k: v for k, v in taken.items() if v},
        raised={k: v for k, v in raised.items() if v},
        added=tuple(added),
        asks=asks,
    )


def check_actions(state: OrderState, actions: Sequence[ChangeAction]) -> None:
    """A request that cannot mean anything on this order is a 422, not a refusal: an unknown
    line or store, a line added twice."""
    lines = {ln.id: ln for ln in state.order.lines}
    for index, action in enumerate(actions):
        if isinstance(action, SetQuantity | CancelLine) and action.line_id not in lines:
            raise InvalidRequest("the order has no such line", field=f"actions[{index}].line_id")
        if isinstance(action, MovePickup | SwitchToPickup) and action.location not in state.sites:
            raise InvalidRequest(f"unknown location {action.location}", field=f"actions[{index}].location")
    skus = [a.sku for a in actions if isinstance(a, AddLine)]
    if len(skus) != len(set(skus)):
        raise InvalidRequest("add each sku once per change", field="actions")


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


def _take(
    line_id: uuid.UUID,
    units: int,
    left: dict[uuid.UUID, int],
    free: dict[uuid.UUID, int],
    taken: dict[uuid.UUID, int],
    raised: dict[uuid.UUID, int],
) -> None:
    """Units taken away: first from what this change raised the line by (never placed, so never
    cancelled), then from the line as it was."""
    unraised = min(units, raised.get(line_id, 0))
    if unraised:
        raised[line_id] -= unraised
    left[line_id] -= units
    free[line_id] -= units
    if units - unraised:
        taken[line_id] = taken.get(line_id, 0) + units - unraised


def _take_away(
    state: OrderState, taken: Mapping[uuid.UUID, int], address: Mapping[str, Any] | None
) -> tuple[dict[uuid.UUID, Effects], dict[uuid.UUID, Status], dict[uuid.UUID, OrderLineChange]]:
    """The units taken away, from the unsourced ones first, then fulfillment by fulfillment; and
    the new address on every parcel still to be packed."""
    order = state.order
    rest = dict(taken)
    order_lines: dict[uuid.UUID, OrderLineChange] = {}
    for ln in order.lines:
        units = rest.get(ln.id, 0)
        if not units:
            continue
        unsourced = min(units, ln.unsourced)
        rest[ln.id] = units - unsourced
        order_lines[ln.id] = OrderLineChange(ln.id, cancelled=units, unsourced=-unsourced)
    effects: dict[uuid.UUID, Effects] = {}
    states: dict[uuid.UUID, Status] = {}
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
        if address is not None and fo.method is Method.SHIP and fo.status in CHANGEABLE | {Status.PICKING}:
            fx.fields["ship_address"] = dict(address)
        if changed and all(ln.quantity - ln.cancelled == 0 for ln in fx.lines):
            fx.fields["close_reason"] = REASON_TAKEN_AWAY
            fx.event(EventType.FULFILLMENT_CANCELLED, {"reason": REASON_TAKEN_AWAY})
            states[fo.id] = Status.CANCELLED
        if changed or fx.fields:
            effects[fo.id] = fx
    return effects, states, order_lines


def _outcomes(effects: Mapping[uuid.UUID, Effects], states: Mapping[uuid.UUID, Status]) -> tuple[Outcome, ...]:
    return tuple(fx.outcome(states.get(fo_id, fx.fo.status)) for fo_id, fx in effects.items())


def _retotalled(totals: OrderTotals, value: int) -> OrderTotals:
    """The totals after the goods' value changed by ``value`` (negative: taken away); the
    discount is capped at what it is taken off."""
    subtotal = totals.subtotal + value
    ceiling = subtotal + totals.shipping_total + totals.tax_total
    return OrderTotals(subtotal, totals.shipping_total, totals.tax_total, min(totals.discount_total, ceiling))
