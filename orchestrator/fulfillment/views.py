"""The read model of a fulfillment order as the store queue, the lifecycle use cases and the
API return it, built in one place from its rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from orchestrator.fulfillment.model import allowed_actions
from orchestrator.order_record.states import Method, Status
from orchestrator.order_record.tables import FulfillmentOrder, FulfillmentOrderLine


class FulfillmentLineView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    order_line_id: uuid.UUID
    sku: str
    quantity: int
    quantity_picked: int
    quantity_handed_over: int
    quantity_cancelled: int


class ArrivalView(msgspec.Struct, kw_only=True):
    arrived_at: datetime
    parking_spot: str | None = None
    vehicle: str | None = None


class FulfillmentView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    location: str
    method: str
    status: str
    version: int
    lines: list[FulfillmentLineView]
    allowed_actions: list[str]
    destination: str | None = None
    feeds_fulfillment_id: uuid.UUID | None = None
    # When it was expected ready as sourced (kept once ready: ``ready_at`` says when it was).
    expected_ready_at: datetime | None = None
    ready_at: datetime | None = None
    pickup_deadline: datetime | None = None
    pickup_locked_until: datetime | None = None
    arrival: ArrivalView | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    shipped_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    created_at: datetime
    updated_at: datetime | None = None


def fulfillment_view(
    fo: FulfillmentOrder, lines: Sequence[FulfillmentOrderLine], codes: dict[int, str], number: str
) -> FulfillmentView:
    arrival = None
    if fo.arrived_at is not None:
        info = fo.arrival or {}
        arrival = ArrivalView(
            arrived_at=fo.arrived_at, parking_spot=info.get("parking_spot"), vehicle=info.get("vehicle")
        )
    return FulfillmentView(
        id=fo.id,
        order_id=fo.order_id,
        order_number=number,
        location=codes[fo.location_id],
        method=fo.method,
        status=fo.status,
        version=fo.version,
        lines=[
            FulfillmentLineView(
                id=line.id,
                order_line_id=line.order_line_id,
                sku=line.sku,
                quantity=line.quantity,
                quantity_picked=line.quantity_picked,
                quantity_handed_over=line.quantity_handed_over,
                quantity_cancelled=line.quantity_cancelled,
            )
            for line in lines
        ],
        allowed_actions=allowed_actions(Status(fo.status), Method(fo.method)),
        destination=codes.get(fo.destination_location_id) if fo.destination_location_id else None,
        feeds_fulfillment_id=fo.feeds_fulfillment_id,
        expected_ready_at=fo.expected_ready_at,
        ready_at=fo.ready_at,
        pickup_deadline=fo.pickup_deadline,
        pickup_locked_until=fo.pickup_locked_until,
        arrival=arrival,
        carrier=fo.carrier,
        tracking_number=fo.tracking_number,
        shipped_at=fo.shipped_at,
        closed_at=fo.closed_at,
        close_reason=fo.close_reason,
        created_at=fo.created_at,
        updated_at=fo.updated_at,
    )
