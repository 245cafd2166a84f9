"""Candidates from the live stock: the locations that can serve a basket, with what each holds,
and the plan made over them. The pickup store is looked at alone first (one small query); only a
store that falls short widens the search to every location that can matter."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.catalogue.tables import Location
from orchestrator.inventory.stock_sql import AVAILABLE
from orchestrator.order_record.states import OPEN_STATES, Method
from orchestrator.platform.db import fetch
from orchestrator.platform.errors import InsufficientStock, Shortfall
from orchestrator.platform.geo import Coordinates, nearness_sql
from orchestrator.sourcing.engine import plan_sourcing
from orchestrator.sourcing.model import Candidate, SourcingPlan, SourcingProfile, SourcingRequest
from orchestrator.sourcing.ready_time import Site, plan_ready_times


@dataclass(frozen=True, slots=True)
class LocationRecord:
    """A location as sourcing and fulfillment read it: where it is, what it can do, how long it
    holds a pickup. Unlike a ``Candidate`` it may hold no stock at all."""

    id: int
    code: str
    coordinates: Coordinates | None
    capabilities: frozenset[str]
    daily_capacity: int | None
    active: bool
    pickup_hold_days: int
    prep_minutes: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LocationRecord:
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
            prep_minutes=row["prep_minutes"],
        )


async def load_location(
    session: AsyncSession, *, code: str | None = None, id: int | None = None
) -> LocationRecord | None:
    query = select(Location)
    query = query.where(Location.code == code) if code is not None else query.where(Location.id == id)
    loc = await session.scalar(query)
    if loc is None:
        return None
    return LocationRecord.from_row(loc.model_dump())


_OPEN = ", ".join(f"'{s.value}'" for s in sorted(OPEN_STATES))

# Hand-written: it runs for every placement, and one statement ranks 1,000 locations where the
# ORM would load them. One row per location holding any requested unit: its stock as two arrays,
# the units of the basket it could serve ("coverage"), ranked by coverage and then nearness so
# that at 1,000 stores only the few hundred that can matter are sent back.
_CANDIDATES = f"""
WITH need AS (
    SELECT * FROM unnest($1::int[], $2::int[]) AS n(product_id, quantity)
), stock AS (
    SELECT s.location_id,
           array_agg(s.product_id) AS product_ids,
           array_agg({AVAILABLE}) AS available,
           sum(least({AVAILABLE}, n.quantity)) AS coverage
    FROM stock_levels s JOIN need n ON n.product_id = s.product_id
    WHERE s.product_id = ANY($1::int[])  -- spelled out so the planner uses the product index
      AND {AVAILABLE} > 0
      {{where}}
    GROUP BY s.location_id
)
SELECT l.id, l.code, l.lat, l.lon, l.capabilities, l.daily_capacity, l.prep_minutes,
       CASE WHEN l.daily_capacity IS NULL THEN 0 ELSE (
           SELECT count(*) FROM fulfillment_orders f
           WHERE f.location_id = l.id AND f.status IN ({_OPEN})
       ) END AS open_fulfillments,
       a.product_ids, a.available
FROM stock a
JOIN locations l ON l.id = a.location_id
WHERE l.active
ORDER BY a.coverage DESC,
         CASE WHEN $3::float8 IS NULL OR l.lat IS NULL THEN 0
              ELSE {nearness_sql("l.lat", "l.lon", "$3", "$4")} END,
         l.code
LIMIT $5
"""
# Every location, or only the listed ones ($6): two statements so each keeps a plan that fits.
_CANDIDATES_ANYWHERE = _CANDIDATES.replace("{where}", "")
_CANDIDATES_AT = _CANDIDATES.replace("{where}", "AND s.location_id = ANY($6::int[])")


async def sourcing_candidates(
    session: AsyncSession,
    sku_by_product: dict[int, str],
    *,
    need: dict[int, int] | None = None,
    near: Coordinates | None = None,
    limit: int | None = None,
    only_locations: Sequence[int] | None = None,
) -> tuple[list[Candidate], dict[str, int]]:
    """Active locations holding any available unit of the requested products — the ``limit``
    best-covering, nearest first among equals — and the location ids by code."""
    products = list(sku_by_product)
    quantities = [need.get(p, 1) if need else 1 for p in products]
    params = [products, quantities, near.lat if near else None, near.lon if near else None, limit]
    if only_locations:
        rows = await fetch(session, _CANDIDATES_AT, *params, list(only_locations))
    else:
        rows = await fetch(session, _CANDIDATES_ANYWHERE, *params)
    candidates, ids = [], {}
    for location_id, code, lat, lon, caps, capacity, prep, open_count, product_ids, available in rows:
        candidates.append(
            Candidate(
                code=code,
                coordinates=Coordinates(lat, lon) if lat is not None and lon is not None else None,
                capabilities=frozenset(caps),
                available={sku_by_product[p]: a for p, a in zip(product_ids, available, strict=True)},
                daily_capacity=capacity,
                open_fulfillments=open_count,
                prep_minutes=prep,
            )
        )
        ids[code] = location_id
    return candidates, ids


@dataclass
class Sourced:
    plan: SourcingPlan
    location_ids: dict[str, int]
    products: dict[str, int]  # sku → product id
    # What expected ready times are made of: each planned-on location's preparation time and the
    # profile's transfer time.
    prep_minutes: dict[str, int]
    transfer_hours: int

    def ready_times(self, method: Method, now: datetime) -> dict[Site, datetime]:
        return plan_ready_times(
            self.plan, method, now, prep_minutes=self.prep_minutes, transfer_hours=self.transfer_hours
        )


# Ship plans consider the best-covering few hundred locations (see ``sourcing_candidates``).
CANDIDATE_LIMIT = 300


async def source(
    session: AsyncSession,
    request: SourcingRequest,
    profile: SourcingProfile,
    products: dict[str, int],
    *,
    store: LocationRecord | None = None,
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
            return Sourced(plan, ids, products, _prep(candidates), profile.transfer_hours)
    return await source_widely(session, request, profile, products, store=store)


async def source_widely(
    session: AsyncSession,
    request: SourcingRequest,
    profile: SourcingProfile,
    products: dict[str, int],
    *,
    store: LocationRecord | None = None,
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
    plan = plan_sourcing(request, candidates, profile)
    return Sourced(plan, ids, products, _prep(candidates), profile.transfer_hours)


def _prep(candidates: Sequence[Candidate]) -> dict[str, int]:
    return {c.code: c.prep_minutes for c in candidates}


def _need(request: SourcingRequest, products: dict[str, int]) -> dict[int, int]:
    need: dict[int, int] = defaultdict(int)
    for line in request.lines:
        need[products[line.sku]] += line.quantity
    return need


def store_candidate(store: LocationRecord, available: dict[str, int]) -> Candidate:
    return Candidate(
        store.code,
        store.coordinates,
        store.capabilities,
        available,
        store.daily_capacity,
        prep_minutes=store.prep_minutes,
    )


def _with_store(candidates: list[Candidate], store: LocationRecord) -> list[Candidate]:
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
