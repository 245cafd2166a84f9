"""A plan made real: fulfillment orders, their lines and reservations as rows, the stock rows
locked (through ``lock_stock``, in canonical order) and re-checked, the units reserved.

``StockMoved`` says another transaction took the units between planning and locking; the entry
point's ``Database.run`` retries the use case on fresh numbers."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.inventory.model import MovementKind, StockKey, find_shortfalls
from orchestrator.inventory.stock_sql import StockChange, apply_stock_changes, lock_stock
from orchestrator.order_record.states import Method, Status
from orchestrator.order_record.tables import FulfillmentOrder, FulfillmentOrderLine, Reservation
from orchestrator.platform.db import RetryOnFreshRead
from orchestrator.platform.errors import InsufficientStock, Shortfall
from orchestrator.sourcing.candidates import Sourced

if TYPE_CHECKING:
    from orchestrator.order_record.aggregate import OrderAggregate


class StockMoved(RetryOnFreshRead):
    """Between planning and locking, another transaction took the units: ``Database.run`` runs the
    use case again. ``shortfalls``: what the last attempt found missing."""

    def __init__(self, shortfalls: list[Shortfall]) -> None:
        super().__init__("stock changed while sourcing")
        self.shortfalls = shortfalls

    def when_exhausted(self) -> Exception:
        # The stock moved under every attempt: short by what the last attempt found.
        return InsufficientStock(self.shortfalls)


@dataclass
class Materialised:
    fulfillments: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    reservations: list[dict[str, Any]] = field(default_factory=list)
    changes: list[StockChange] = field(default_factory=list)
    # When the pickup the plan serves is expected ready (null for a shipment): for a pickup that
    # existed before (re-sourcing), the caller brings its row up to date.
    pickup_ready_at: datetime | None = None

    def fulfillment_ids(self) -> list[uuid.UUID]:
        return [f["id"] for f in self.fulfillments]


def materialise(
    sourced: Sourced,
    *,
    order_id: uuid.UUID,
    method: Method,
    order_lines: dict[str, tuple[uuid.UUID, int, str]],
    ship_address: dict[str, Any] | None,
    decision_id: uuid.UUID,
    now: datetime,
    pickup_fulfillment: dict[str, Any] | None = None,
    pickup_line_ids: dict[str, uuid.UUID] | None = None,
    reason: str = "order placed",
) -> Materialised:
    """Rows for a plan. ``order_lines`` maps line_key → (order line id, product id, sku).

    A pickup plan gets one fulfillment at the store holding every line at its full quantity;
    units coming from elsewhere travel on transfer fulfillments that feed it. Re-sourcing a
    pickup passes the existing pickup fulfillment instead of creating one."""
    out = Materialised()
    reference = str(order_id)
    ready = sourced.ready_times(method, now)
    by_site: dict[tuple[str, str | None], list] = defaultdict(list)
    for allocation in sourced.plan.allocations:
        by_site[(allocation.location, allocation.transfer_to)].append(allocation)

    pickup_fo = pickup_fulfillment
    pickup_lines = dict(pickup_line_ids or {})
    store_code = next((a.transfer_to or a.location for a in sourced.plan.allocations), None)
    if method.is_pickup and store_code is not None:
        out.pickup_ready_at = ready[(store_code, None)]
    if method.is_pickup and pickup_fo is None and store_code is not None:
        pickup_fo = _fulfillment_row(order_id, sourced.location_ids[store_code], method, decision_id, now, None)
        pickup_fo["expected_ready_at"] = out.pickup_ready_at
        out.fulfillments.append(pickup_fo)
        quantities: dict[str, int] = defaultdict(int)
        for a in sourced.plan.allocations:
            quantities[a.line_key] += a.quantity
        for key, qty in quantities.items():
            line_id, product_id, sku = order_lines[key]
            row = _line_row(pickup_fo["id"], line_id, product_id, sku, qty)
            out.lines.append(row)
            pickup_lines[key] = row["id"]

    for (site, transfer_to), allocations in by_site.items():
        location_id = sourced.location_ids[site]
        at_pickup_store = method.is_pickup and transfer_to is None
        if at_pickup_store:
            fo_id = pickup_fo["id"]  # type: ignore[index]
        else:
            kind = Method.TRANSFER if transfer_to else method
            fo = _fulfillment_row(
                order_id, location_id, kind, decision_id, now, ship_address if kind is Method.SHIP else None
            )
            fo["expected_ready_at"] = ready[(site, transfer_to)]
            if transfer_to:
                fo["destination_location_id"] = sourced.location_ids[transfer_to]
                fo["feeds_fulfillment_id"] = pickup_fo["id"]  # type: ignore[index]
            out.fulfillments.append(fo)
            fo_id = fo["id"]
        for a in allocations:
            line_id, product_id, sku = order_lines[a.line_key]
            if at_pickup_store:
                fo_line_id = pickup_lines[a.line_key]
            else:
                row = _line_row(fo_id, line_id, product_id, sku, a.quantity)
                out.lines.append(row)
                fo_line_id = row["id"]
            out.reservations.append(
                {
                    "id": uuid.uuid4(),
                    "fulfillment_order_line_id": fo_line_id,
                    "location_id": location_id,
                    "product_id": product_id,
                    "quantity": a.quantity,
                    "status": "active",
                    "created_at": now,
                }
            )
            out.changes.append(
                StockChange(location_id, product_id, MovementKind.RESERVATION, 0, a.quantity, reason, reference)
            )
    return out


def _fulfillment_row(
    order_id: uuid.UUID,
    location_id: int,
    method: Method,
    decision_id: uuid.UUID,
    now: datetime,
    ship_address: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "order_id": order_id,
        "location_id": location_id,
        "method": method.value,
        "status": Status.PENDING.value,
        "version": 1,
        "destination_location_id": None,
        "feeds_fulfillment_id": None,
        "sourcing_decision_id": decision_id,
        "ship_address": ship_address,
        "pickup_code_issue": 0,
        "pickup_failed_attempts": 0,
        "expected_ready_at": None,
        "created_at": now,
    }


def _line_row(fo_id: uuid.UUID, line_id: uuid.UUID, product_id: int, sku: str, qty: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "fulfillment_order_id": fo_id,
        "order_line_id": line_id,
        "product_id": product_id,
        "sku": sku,
        "quantity": qty,
        "quantity_picked": 0,
        "quantity_handed_over": 0,
        "quantity_cancelled": 0,
    }


async def reserve_check(session: AsyncSession, rows: Materialised, also_lock: Iterable[StockKey] = ()) -> None:
    """Lock the planned stock rows (canonical order) and re-check them against the plan.
    ``also_lock``: rows the transaction will change as well, locked in the same canonical pass."""
    wanted: dict[tuple[int, int], int] = defaultdict(int)
    sku_of: dict[int, str] = {}
    for line in rows.lines:
        sku_of[line["product_id"]] = line["sku"]
    for change in rows.changes:
        wanted[(change.location_id, change.product_id)] += change.reserved_delta
    positions = await lock_stock(session, [*wanted, *also_lock])
    short = find_shortfalls(positions, wanted, sku_of)
    if short:
        raise StockMoved(short)


async def reserve(session: AsyncSession, rows: Materialised, actor: str, also_lock: Iterable[StockKey] = ()) -> None:
    """Lock, re-check, then reserve and write the ledger."""
    await reserve_check(session, rows, also_lock)
    await apply_stock_changes(session, rows.changes, actor)


async def insert_rows(session: AsyncSession, rows: Materialised) -> None:
    # Transfers reference the pickup fulfillment they feed: the pickup row goes in first.
    ordered = sorted(rows.fulfillments, key=lambda f: f["feeds_fulfillment_id"] is not None)
    if ordered:
        await session.execute(insert(FulfillmentOrder), ordered)
    if rows.lines:
        await session.execute(insert(FulfillmentOrderLine), rows.lines)
    if rows.reservations:
        await session.execute(insert(Reservation), rows.reservations)


async def reserve_onto(
    session: AsyncSession,
    aggregate: OrderAggregate,
    sourced: Sourced,
    rows: Materialised,
    actor: str,
    also_lock: Iterable[StockKey] = (),
) -> None:
    """Reserve ``rows`` (``reserve``), insert them, and add them to the loaded ``aggregate``: its
    fulfillments, their lines and the codes of the stores they name, so that what the same
    transaction derives from the order next (its status, its payment, its view) sees them."""
    await reserve(session, rows, actor, also_lock)
    await insert_rows(session, rows)
    aggregate.fulfillments.extend(FulfillmentOrder(**row) for row in rows.fulfillments)
    for row in rows.lines:
        aggregate.fulfillment_lines.setdefault(row["fulfillment_order_id"], []).append(FulfillmentOrderLine(**row))
    aggregate.codes.update({location_id: code for code, location_id in sourced.location_ids.items()})


def wait_longer(pickup: FulfillmentOrder, rows: Materialised) -> None:
    """A pickup that now waits for units to travel to it is expected ready no earlier than it was."""
    if rows.pickup_ready_at is not None:
        known = pickup.expected_ready_at
        pickup.expected_ready_at = max(known, rows.pickup_ready_at) if known else rows.pickup_ready_at
