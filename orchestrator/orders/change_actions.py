"""The vocabulary of an order change (``POST /v1/orders/{id}/changes``): its actions, the order as
a change sees it, each action's decision, and the plan the rules return. Data only; the rules
are ``change_rules`` (what is taken away or kept) and ``placement_rules`` (what goes elsewhere)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.fulfillment.model import Order, OrderLineChange, Outcome
from orchestrator.order_record.states import Method
from orchestrator.platform.events import OrderEventDraft
from orchestrator.platform.money import OrderTotals


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
class AddLine:
    # The new order line's id, chosen when the request is read: the dry run and the applied
    # change then describe the same line.
    line_id: uuid.UUID
    sku: str
    quantity: int
    unit_price: int
    type: str = "add_line"


@dataclass(frozen=True, slots=True)
class MovePickup:
    location: str
    type: str = "move_pickup"


@dataclass(frozen=True, slots=True)
class SwitchToShip:
    address: Mapping[str, Any]
    type: str = "switch_to_ship"


@dataclass(frozen=True, slots=True)
class SwitchToPickup:
    location: str
    type: str = "switch_to_pickup"


@dataclass(frozen=True, slots=True)
class ChangeAddress:
    address: Mapping[str, Any]
    type: str = "change_address"


@dataclass(frozen=True, slots=True)
class CancelOrder:
    reason: str = "cancelled on request"
    type: str = "cancel_order"


ChangeAction = (
    SetQuantity | CancelLine | AddLine | MovePickup | SwitchToShip | SwitchToPickup | ChangeAddress | CancelOrder
)
# Actions that decide where the order's open units are fulfilled: at most one per change.
Placement = MovePickup | SwitchToShip | SwitchToPickup
STAFF_ACTIONS = frozenset({"move_pickup"})


@dataclass(frozen=True, slots=True)
class Site:
    """A store a change may name, as the use case found it (an unknown code is a 422 before)."""

    id: int
    code: str
    capabilities: frozenset[str]


@dataclass(frozen=True, slots=True)
class OrderState:
    """The order as a change sees it: the fulfillments' snapshot, each line's price, the totals,
    the pickup store (a pickup order) and the stores the actions name."""

    order: Order
    method: Method
    prices: Mapping[uuid.UUID, int]
    totals: OrderTotals
    pickup_location: str | None = None
    address: Mapping[str, Any] | None = None  # where a shipment goes
    sites: Mapping[str, Site] = field(default_factory=dict)
    pays_at_counter: bool = False  # paid in store (``pos``): a parcel has no counter


@dataclass(frozen=True, slots=True)
class Decision:
    index: int
    type: str
    accepted: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type, "accepted": self.accepted, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class SourcingAsk:
    """Units the change places, once what it gives back is written: ``units`` (order line id →
    units) by ``method`` at ``location`` (a pickup, with transfers when the store is short) or to
    ``address``; ``pickup`` is the existing pickup they join (moved pickups keep their code)."""

    index: int  # the action the units serve: a shortfall refuses it
    method: Method
    units: Mapping[uuid.UUID, int]
    location: str | None = None
    address: Mapping[str, Any] | None = None
    pickup: uuid.UUID | None = None
    # Of ``units``, those new to ``pickup``: its lines grow by them (a new line where it has none).
    joining: Mapping[uuid.UUID, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderFields:
    """What a change writes on the order row besides its lines (None: unchanged)."""

    method: Method | None = None
    pickup_location: str | None = None
    address: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ChangePlan:
    decisions: tuple[Decision, ...]
    totals_before: OrderTotals
    totals_after: OrderTotals
    outcomes: tuple[Outcome, ...] = ()
    order_lines: tuple[OrderLineChange, ...] = ()
    events: tuple[OrderEventDraft, ...] = ()
    fields: OrderFields = OrderFields()
    taken: Mapping[uuid.UUID, int] = field(default_factory=dict)  # order line id → units taken away
    raised: Mapping[uuid.UUID, int] = field(default_factory=dict)  # order line id → units added
    added: tuple[AddLine, ...] = ()
    asks: tuple[SourcingAsk, ...] = ()

    @property
    def accepted(self) -> bool:
        return all(d.accepted for d in self.decisions)
