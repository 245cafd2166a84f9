"""Sourcing against the live stock: gather candidates, plan, reserve, and remember why.

``reserve_plan`` turns a plan into fulfillment orders, lines and reservations; it locks the stock
rows through ``lock_stock`` and raises ``StockMoved`` when another order took the units after the
plan was made (the use case is then retried on fresh numbers).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.catalogue.tables import Location
from orchestrator.fulfillment.model import Method, Status
from orchestrator.inventory.model import MovementKind, StockKey, find_shortfalls
from orchestrator.inventory.stock_sql import StockChange, apply_stock_changes, lock_stock, sourcing_candidates
from orchestrator.orders.tables import FulfillmentOrder, FulfillmentOrderLine, Reservation
from orchestrator.platform.errors import InsufficientStock, Shortfall
from orchestrator.platform.geo import Coordinates
from orchestrator.sourcing.engine import (
    Candidate,
    PickupPolicy,
    SourcingPlan,
    SourcingProfile,
    SourcingRequest,
    plan_sourcing,
)
from orchestrator.sourcing.tables import SourcingDecision, SourcingProfileVersion

# A decision keeps the best-ranked candidates; at 1,000 stores the rest is noise in a timeline.
KEPT_CANDIDATES = 25


class StockMoved(Exception):
    """Between planning and locking, another transaction took the units. Retry the use case."""

    def __init__(self, shortfalls: list[Shortfall]) -> None:
        super().__init__("stock changed while sourcing")
        self.shortfalls = shortfalls


def profile_from_row(row: Mapping[str, Any] | None) -> SourcingProfile:
    """A stored profile version (its columns by name); no row means the defaults, version 0."""
    if row is None:
        return SourcingProfile()
    return SourcingProfile(
        version=row["version"],
        pickup_policy=PickupPolicy(row["pickup_policy"]),
        min_split_line_value=row["min_split_line_value"],
        suggestion_limit=row["suggestion_limit"],
    )


async def current_profile(session: AsyncSession, channel: str) -> SourcingProfile:
    row = await session.scalar(
        select(SourcingProfileVersion)
        .where(SourcingProfileVersion.channel == channel)
        .order_by(SourcingProfileVersion.version.desc())
        .limit(1)
    )
    return profile_from_row(row.model_dump() if row is not None else None)


@dataclass(frozen=True, slots=True)
class SiteRow:
    """What sourcing needs to know of a location that may hold no stock at all."""

    id: int
    code: str
    coordinates: Coordinates | None
    capabilities: frozenset[str]
    daily_capacity: int | None
    active: bool
    pickup_hold_days: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SiteRow:
        """From a ``locations`` row's columns by name."""
        lat, lon = row["lat"], row["lon"]
        return cls(
            id=row["id"],
            code=row["code"],
            coordinates=Coordinates(lat, lon) if lat is not None and lon is not None else None,
            capabilities=frozenset(row["capabilities"]),
            daily_capacity=row["daily_capacity"],
            active=row["active"],
            pickup_hold_days=row["pickup_hold_days"],
        )


async def load_site(session: AsyncSession, *, code: str | None = None, id: int | None = None) -> SiteRow | None:
    query = select(Location)
    query = query.where(Location.code == code) if code is not None else query.where(Location.id == id)
    loc = await session.scalar(query)
    if loc is None:
        return None
    return SiteRow.from_row(loc.model_dump())


@dataclass
class Sourced:
    plan: SourcingPlan
    location_ids: dict[str, int]
    products: dict[str, int]  # sku → product id


# Ship plans consider the best-covering few hundred locations (see ``sourcing_candidates``).
CANDIDATE_LIMIT = 300


async def source(
    session: AsyncSession,
    request: SourcingRequest,
    profile: SourcingProfile,
    products: dict[str, int],
    *,
    store: SiteRow | None = None,
) -> Sourced:
    """Plan against current availability. A pickup first looks at the chosen store alone (the
    common case, one small query) and only widens to every store when it falls short."""
    if store is not None:
        by_product = {pid: sku for sku, pid in products.items()}
        candidates, ids = await sourcing_candidates(
            session, by_product, need=_need(request, products), only_locations=[store.id]
        )
        candidates = _with_store(candidates, store)
        ids[store.code] = store.id
        plan = plan_sourcing(request, candidates, profile)
        if plan.complete:
            return Sourced(plan, ids, products)
    return await source_widely(session, request, profile, products, store=store)


async def source_widely(
    session: AsyncSession,
    request: SourcingRequest,
    profile: SourcingProfile,
    products: dict[str, int],
    *,
    store: SiteRow | None = None,
) -> Sourced:
    """Plan over every location that can matter: the best-covering ``CANDIDATE_LIMIT``, nearest
    (to the pickup store or the customer) among equals; a pickup store is always among them."""
    by_product = {pid: sku for sku, pid in products.items()}
    origin = store.coordinates if store is not None else request.destination
    candidates, ids = await sourcing_candidates(
        session, by_product, need=_need(request, products), near=origin, limit=CANDIDATE_LIMIT
    )
    if store is not None:
        candidates = _with_store(candidates, store)
        ids[store.code] = store.id
    return Sourced(plan_sourcing(request, candidates, profile), ids, products)


def _need(request: SourcingRequest, products: dict[str, int]) -> dict[int, int]:
    need: dict[int, int] = defaultdict(int)
    for line in request.lines:
        need[products[line.sku]] += line.quantity
    return need


def store_candidate(store: SiteRow, available: dict[str, int]) -> Candidate:
    return Candidate(store.code, store.coordinates, store.capabilities, available, store.daily_capacity)


def _with_store(candidates: list[Candidate], store: SiteRow) -> list[Candidate]:
    """A pickup store holding none of the basket still has to be planned on (and reported)."""
    if any(c.code == store.code for c in candidates):
        return candidates
    return [*candidates, store_candidate(store, {})]


def shortfalls_of(sourced: Sourced, request: SourcingRequest) -> InsufficientStock:
    """Each short sku with what the best single choice could give, and who could serve it all."""
    plan = sourced.plan
    sku_of = {line.line_key: line.sku for line in request.lines}
    wanted: dict[str, int] = defaultdict(int)
    short: dict[str, int] = defaultdict(int)
    for line in request.lines:
        wanted[line.sku] += line.quantity
    for key, qty in plan.unfilled.items():
        short[sku_of[key]] += qty
    return InsufficientStock(
        [Shortfall(sku, wanted[sku], wanted[sku] - short[sku]) for sku in sorted(short)],
        list(plan.suggestions),
    )


@dataclass
class Materialised:
    fulfillments: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    reservations: list[dict[str, Any]] = field(default_factory=list)
    changes: list[StockChange] = field(default_factory=list)

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
    by_site: dict[tuple[str, str | None], list] = defaultdict(list)
    for allocation in sourced.plan.allocations:
        by_site[(allocation.location, allocation.transfer_to)].append(allocation)

    pickup_fo = pickup_fulfillment
    pickup_lines = dict(pickup_line_ids or {})
    if method.is_pickup and pickup_fo is None:
        store_code = next(a.transfer_to or a.location for a in sourced.plan.allocations)
        pickup_fo = _fulfillment_row(order_id, sourced.location_ids[store_code], method, decision_id, now, None)
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


def decision_row(
    *,
    order_id: uuid.UUID,
    trigger: str,
    channel: str,
    profile: SourcingProfile,
    request: SourcingRequest,
    plan: SourcingPlan,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "order_id": order_id,
        "trigger": trigger,
        "rule": plan.rule.value,
        "profile_channel": channel,
        "profile_version": profile.version,
        "request": {
            "method": request.method.value,
            "pickup_location": request.pickup_location,
            "destination": [request.destination.lat, request.destination.lon] if request.destination else None,
            "excluded": sorted(request.excluded),
            "lines": [{"line": ln.line_key, "sku": ln.sku, "quantity": ln.quantity} for ln in request.lines],
            "candidates_considered": len(plan.candidates),
        },
        "candidates": candidate_dicts(plan),
        "plan": allocation_dicts(plan),
        "unfilled": dict(plan.unfilled),
        "created_at": now,
    }


async def insert_decision(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(SourcingDecision), [row])


def candidate_dicts(plan: SourcingPlan) -> list[dict[str, Any]]:
    """The chosen candidates first, then the eligible ones, in the engine's preference order."""
    ranked = sorted(plan.candidates, key=lambda c: (not c.chosen, not c.eligible))[:KEPT_CANDIDATES]
    return [
        {
            "location": c.location,
            "distance_km": c.distance_km,
            "headroom": c.headroom,
            "covers_units": c.covers_units,
            "covers_all": c.covers_all,
            "eligible": c.eligible,
            "reason": c.reason,
            "chosen": c.chosen,
        }
        for c in ranked
    ]


def allocation_dicts(plan: SourcingPlan) -> list[dict[str, Any]]:
    return [
        {"location": a.location, "line": a.line_key, "sku": a.sku, "quantity": a.quantity, "transfer_to": a.transfer_to}
        for a in plan.allocations
    ]
