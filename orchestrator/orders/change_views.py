"""How a change is told: the dry run's answer and what the ``OrderChange`` record keeps, from the
snapshot the rules decided on and the plan they returned (``order_changes`` writes; this reads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.order_record.aggregate import OrderAggregate
from orchestrator.order_record.states import OPEN_STATES, Method
from orchestrator.orders import change_rules
from orchestrator.platform.money import OrderTotals


def describe(
    aggregate: OrderAggregate,
    state: change_rules.OrderState,
    plan: change_rules.ChangePlan,
    placed: Sequence[dict[str, Any]],
) -> dict:
    """The plan as the dry run answers it (and the change record keeps it): each action's
    decision, the lines and totals after it, the fulfillments it changes, moves or cancels, where
    the units it places go (``sourcing``), the expected ready time and the payment difference
    (negative: less is captured later; positive: authorised before the change commits, or owed
    at the counter)."""
    cancelled = _cancelled(plan)
    lines = [
        {
            "id": str(ln.id),
            "sku": ln.sku,
            "quantity": ln.quantity + plan.raised.get(ln.id, 0),
            "quantity_cancelled": ln.cancelled + cancelled.get(ln.id, 0),
            "unit_price": state.prices[ln.id],
        }
        for ln in state.order.lines
    ]
    lines += [
        {
            "id": str(a.line_id),
            "sku": a.sku,
            "quantity": a.quantity,
            "quantity_cancelled": 0,
            "unit_price": a.unit_price,
        }
        for a in plan.added
    ]
    codes = {site.id: code for code, site in state.sites.items()}
    return {
        "accepted": plan.accepted,
        "actions": [d.as_dict() for d in plan.decisions],
        "lines": lines,
        "totals_before": totals_dict(plan.totals_before),
        "totals_after": totals_dict(plan.totals_after),
        "payment_difference": plan.totals_after.total - plan.totals_before.total,
        "fulfillments": _fulfillments(plan.outcomes, state, codes),
        "sourcing": list(placed),
        "expected_ready_at": _expected_ready(aggregate, placed) if plan.accepted else None,
    }


def _cancelled(plan: change_rules.ChangePlan) -> dict:
    """Units the plan cancels per order line: on the order's lines and through the fulfillments'
    own transitions (``cancel_order`` cancels each open fulfillment, and what feeds it)."""
    out: dict = {}

    def add(changes: Sequence[Any]) -> None:
        for c in changes:
            out[c.order_line_id] = out.get(c.order_line_id, 0) + c.cancelled

    def walk(outcomes: Sequence[Any]) -> None:
        for o in outcomes:
            add(o.order_lines)
            walk(o.closed)

    add(plan.order_lines)
    walk(plan.outcomes)
    return out


def _expected_ready(aggregate: OrderAggregate, placed: Sequence[dict[str, Any]]) -> str | None:
    """When the order is expected ready after the change: the latest of what it placed and of
    the customer-facing fulfillments still open."""
    times = [p["expected_ready_at"] for p in placed if p["expected_ready_at"]]
    for fo in aggregate.fulfillments:
        if fo.method != Method.TRANSFER.value and fo.status in OPEN_STATES and fo.expected_ready_at is not None:
            times.append(fo.expected_ready_at.isoformat())
    return max(times) if times else None


def _fulfillments(outcomes: Sequence[Any], state: change_rules.OrderState, codes: dict[int, str]) -> list[dict]:
    out = []
    known = {f.id: f for f in state.order.fulfillments}
    for o in outcomes:
        fo = known[o.fulfillment_id]
        moved_to = o.fields.get("location_id")
        out.append(
            {
                "fulfillment_id": str(o.fulfillment_id),
                "location": fo.location,
                "location_after": codes.get(moved_to, fo.location) if moved_to is not None else fo.location,
                "status_before": fo.status.value,
                "status_after": o.state.value,
                "units_cancelled": sum(c.cancelled for c in o.lines),
                "units_released": sum(m.quantity for m in o.moves if m.kind.value == "release"),
                "units_restocked": sum(m.quantity for m in o.moves if m.kind.value == "restock"),
            }
        )
        out.extend(_fulfillments(o.closed, state, codes))
    return out


def totals_dict(totals: OrderTotals) -> dict[str, int]:
    return totals.fields()


def action_dict(action: change_rules.ChangeAction) -> dict[str, Any]:
    match action:
        case change_rules.SetQuantity(line_id=line_id, quantity=quantity):
            return {"type": action.type, "line_id": str(line_id), "quantity": quantity}
        case change_rules.CancelLine(line_id=line_id, quantity=quantity):
            return {"type": action.type, "line_id": str(line_id), "quantity": quantity}
        case change_rules.ChangeAddress(address=address):
            return {"type": action.type, "address": dict(address)}
        case change_rules.CancelOrder(reason=reason):
            return {"type": action.type, "reason": reason}
        case change_rules.AddLine(line_id=line_id, sku=sku, quantity=quantity, unit_price=unit_price):
            return {
                "type": action.type,
                "line_id": str(line_id),
                "sku": sku,
                "quantity": quantity,
                "unit_price": unit_price,
            }
        case change_rules.MovePickup(location=location) | change_rules.SwitchToPickup(location=location):
            return {"type": action.type, "location": location}
        case change_rules.SwitchToShip(address=address):
            return {"type": action.type, "address": dict(address)}
    return {"type": action.type}  # pragma: no cover
