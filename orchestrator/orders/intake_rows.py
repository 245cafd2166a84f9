"""Intake's rows, typed: one struct per table, carrying every column of it.

``jsonb_populate_recordset`` (``orders/intake_sql.py``) writes NULL for any key a row leaves out,
default or not, so no row leaves one out: a column a new row takes its default for is given that
default here, explicitly. ``tests/unit/test_intake_rows.py`` holds each struct to its table (the
SQLModel one and the one the migrations build): a column added to a table and not here fails it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from orchestrator.customers.model import CustomerRecord
from orchestrator.orders.commands import NewLine
from orchestrator.orders.views import OrderView, order_view
from orchestrator.sourcing.reservation import Materialised


class OrderRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    number: str
    channel: str
    channel_order_ref: str
    holds_channel_ref: bool
    customer_id: uuid.UUID
    currency: str
    subtotal: int
    shipping_total: int
    tax_total: int
    discount_total: int
    status: str
    attention_reason: str | None
    action_options: list | None
    action_deadline: datetime | None
    fulfillment_method: str
    pickup_location_id: int | None
    ship_address: dict[str, Any] | None
    sourcing_profile_version: int
    version: int
    last_event_seq: int
    created_at: datetime
    updated_at: datetime | None


class OrderLineRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    order_id: uuid.UUID
    line_no: int
    product_id: int
    sku: str
    quantity: int
    unit_price: int
    quantity_cancelled: int
    quantity_fulfilled: int
    quantity_returned: int
    quantity_unsourced: int


class SourcingDecisionRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    order_id: uuid.UUID
    trigger: str
    rule: str
    profile_channel: str
    profile_version: int
    request: dict[str, Any]
    candidates: list[Any]
    plan: list[Any]
    unfilled: dict[str, Any]
    created_at: datetime


class FulfillmentOrderRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    order_id: uuid.UUID
    location_id: int
    method: str
    status: str
    version: int
    destination_location_id: int | None
    feeds_fulfillment_id: uuid.UUID | None
    sourcing_decision_id: uuid.UUID | None
    ship_address: dict[str, Any] | None
    ready_at: datetime | None
    pickup_deadline: datetime | None
    reminder_sent_at: datetime | None
    pickup_code_issue: int
    pickup_failed_attempts: int
    pickup_locked_until: datetime | None
    arrived_at: datetime | None
    arrival: dict[str, Any] | None
    carrier: str | None
    tracking_number: str | None
    shipped_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    expected_ready_at: datetime | None
    created_at: datetime
    updated_at: datetime | None


class FulfillmentLineRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    fulfillment_order_id: uuid.UUID
    order_line_id: uuid.UUID
    product_id: int
    sku: str
    quantity: int
    quantity_picked: int
    quantity_handed_over: int
    quantity_cancelled: int


class ReservationRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    fulfillment_order_line_id: uuid.UUID
    location_id: int
    product_id: int
    quantity: int
    status: str
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime | None


class OrderEventRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    order_id: uuid.UUID
    seq: int
    type: str
    actor_kind: str
    actor_id: str | None
    data: dict[str, Any]
    occurred_at: datetime


class OutboxRow(msgspec.Struct, kw_only=True):
    """Every column but ``id``, which the database numbers (an identity column)."""

    event_id: uuid.UUID
    type: str
    order_id: uuid.UUID | None
    payload: dict[str, Any]
    created_at: datetime
    claimed_until: datetime | None
    attempts: int
    published_at: datetime | None


# What a new row holds in the columns the sourcing and timeline row builders leave out: the
# tables' defaults, spelt out (the test compares them with the tables). Merged with ``**`` so a
# builder that starts setting one of them fails loudly instead of being overridden.
NEW_FULFILLMENT: dict[str, Any] = {
    "ready_at": None,
    "pickup_deadline": None,
    "reminder_sent_at": None,
    "pickup_locked_until": None,
    "arrived_at": None,
    "arrival": None,
    "carrier": None,
    "tracking_number": None,
    "shipped_at": None,
    "closed_at": None,
    "close_reason": None,
    "updated_at": None,
}
NEW_RESERVATION: dict[str, Any] = {"expires_at": None, "updated_at": None}
NEW_OUTBOX: dict[str, Any] = {"claimed_until": None, "published_at": None}

# The tables each row type writes, for the test and for readers.
ROW_TABLES: dict[type[msgspec.Struct], str] = {
    OrderRow: "orders",
    OrderLineRow: "order_lines",
    SourcingDecisionRow: "sourcing_decisions",
    FulfillmentOrderRow: "fulfillment_orders",
    FulfillmentLineRow: "fulfillment_order_lines",
    ReservationRow: "reservations",
    OrderEventRow: "order_events",
    OutboxRow: "outbox",
}


@dataclass(frozen=True, slots=True)
class NewOrderRows:
    """Everything one placement writes, but the stock and its ledger."""

    order: OrderRow
    lines: list[OrderLineRow]
    decision: SourcingDecisionRow
    fulfillments: list[FulfillmentOrderRow]
    fulfillment_lines: list[FulfillmentLineRow]
    reservations: list[ReservationRow]
    events: list[OrderEventRow]
    outbox: list[OutboxRow]

    def view(self, customer: CustomerRecord, location_ids: dict[str, int], now: datetime) -> OrderView:
        """The new order as it will read back, from the rows about to be written (no read-back:
        the rows carry every column, so the read model reads them as it reads the ORM's)."""
        by_fulfillment: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for line in sorted(self.fulfillment_lines, key=lambda x: x.id):
            by_fulfillment[line.fulfillment_order_id].append(line)
        codes = {i: code for code, i in location_ids.items()}
        return order_view(self.order, customer, self.lines, self.fulfillments, by_fulfillment, codes, now=now)  # type: ignore[arg-type]


def order_line_rows(
    order_id: uuid.UUID, line_ids: Sequence[uuid.UUID], lines: Sequence[NewLine], products: dict[str, int]
) -> list[OrderLineRow]:
    return [
        OrderLineRow(
            id=line_ids[i],
            order_id=order_id,
            line_no=i + 1,
            product_id=products[line.sku],
            sku=line.sku,
            quantity=line.quantity,
            unit_price=line.unit_price,
            quantity_cancelled=0,
            quantity_fulfilled=0,
            quantity_returned=0,
            quantity_unsourced=0,
        )
        for i, line in enumerate(lines)
    ]


def new_order_rows(
    order: OrderRow,
    lines: list[OrderLineRow],
    decision: dict[str, Any],
    planned: Materialised,
    events: list[dict[str, Any]],
    messages: list[dict[str, Any]],
) -> NewOrderRows:
    """The order's rows with the sourcing decision, the plan's rows (sourcing builds them) and the
    timeline's (``orders/timeline.py`` builds them), typed, every column given."""
    return NewOrderRows(
        order=order,
        lines=lines,
        decision=SourcingDecisionRow(**decision),
        fulfillments=[FulfillmentOrderRow(**f, **NEW_FULFILLMENT) for f in planned.fulfillments],
        fulfillment_lines=[FulfillmentLineRow(**line) for line in planned.lines],
        reservations=[ReservationRow(**r, **NEW_RESERVATION) for r in planned.reservations],
        events=[OrderEventRow(**e) for e in events],
        outbox=[OutboxRow(**m, **NEW_OUTBOX) for m in messages],
    )
