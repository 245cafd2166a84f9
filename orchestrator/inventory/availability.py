"""Where can I get these? Available units per location for a basket, nearest first."""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from orchestrator.inventory.stock_sql import AVAILABLE
from orchestrator.platform.db import UnitOfWork, fetch
from orchestrator.platform.errors import UnknownSku
from orchestrator.platform.geo import Coordinates, distance_km, nearness_sql


class LocationAvailability(msgspec.Struct, kw_only=True):
    location: str
    name: str
    distance_km: float | None
    available: dict[str, int]
    covers_all: bool


@dataclass(frozen=True)
class AvailabilityQuery:
    skus: list[str]
    method: str
    near: Coordinates | None = None
    radius_km: float | None = None
    limit: int = 100


# Hand-written: availability is read on every product page, and one statement groups in the
# database what the ORM would load row by row. One row per location, the per-sku numbers as two
# arrays. Two statements (everywhere, near a point), not one with "$3 IS NULL OR ...": a prepared
# statement's generic plan could not use the (location, product) key for the chosen locations.
_AVAILABLE = f"""
SELECT l.code, l.name, l.lat, l.lon,
       array_agg(s.product_id) AS product_ids,
       array_agg(GREATEST({AVAILABLE}, 0)) AS available
FROM stock_levels s
JOIN locations l ON l.id = s.location_id
WHERE s.product_id = ANY($1::int[])
  AND {AVAILABLE} > 0
  AND l.active AND $2::text = ANY(l.capabilities)
GROUP BY l.id
"""
# Near a point: the nearest capable locations (a batch at a time) and only their stock, in one
# statement — driven from the chosen locations, one key lookup each, so a "near me" basket reads
# a few hundred stock rows, not every store's. Locations without stock come back with NULLs, so
# the caller can tell a short batch (no more locations) from locations that hold nothing.
_NEAR = f"""
WITH nearest AS (
    SELECT id, code, name, lat, lon,
           {nearness_sql("lat", "lon", "$3", "$4")} AS rank
    FROM locations
    WHERE active AND $2::text = ANY(capabilities) AND lat IS NOT NULL AND lon IS NOT NULL
      AND ($5::float8 IS NULL OR (lat BETWEEN $5 AND $6 AND lon BETWEEN $7 AND $8))
    ORDER BY rank, code
    LIMIT $9 OFFSET $10
)
SELECT n.code, n.name, n.lat, n.lon, x.product_ids, x.available
FROM nearest n
LEFT JOIN LATERAL (
    SELECT array_agg(s.product_id) AS product_ids,
           array_agg(GREATEST({AVAILABLE}, 0)) AS available
    FROM stock_levels s
    WHERE s.location_id = n.id AND s.product_id = ANY($1::int[])
      AND {AVAILABLE} > 0
) x ON true
ORDER BY n.rank, n.code
"""

_PRODUCTS = "SELECT sku, id FROM products WHERE sku = ANY($1::text[]) AND active"


def bounding_box(center: Coordinates, radius_km: float) -> tuple[float, float, float, float] | None:
    """A lat/lon box around the circle, to let the index cut rows; None near the poles."""
    dlat = radius_km / 111.0
    cos = math.cos(math.radians(center.lat))
    if cos < 0.01 or center.lat + dlat > 90 or center.lat - dlat < -90:
        return None
    dlon = radius_km / (111.320 * cos)
    if dlon >= 180 or abs(center.lon) + dlon > 180:
        return None
    return center.lat - dlat, center.lat + dlat, center.lon - dlon, center.lon + dlon


async def availability(uow: UnitOfWork, query: AvailabilityQuery) -> list[LocationAvailability]:
    session = uow.session
    products = {sku: pid for sku, pid in await fetch(session, _PRODUCTS, query.skus)}
    unknown = [s for s in query.skus if s not in products]
    if unknown:
        raise UnknownSku(f"unknown sku: {', '.join(unknown)}", field="skus", skus=unknown)
    sku_of = {pid: sku for sku, pid in products.items()}
    if query.near is None:
        rows = await fetch(session, _AVAILABLE, list(sku_of), query.method)
        found = sorted(_rows_to_view(rows, query, sku_of), key=lambda a: a.location)
        return found[: query.limit]
    box = bounding_box(query.near, query.radius_km) if query.radius_km is not None else None
    # Most of the nearest stores hold something of a basket: a little over the limit is enough.
    batch = query.limit + max(10, query.limit // 4)
    found: list[LocationAvailability] = []
    offset = 0
    while len(found) < query.limit:
        rows = await fetch(
            session,
            _NEAR,
            list(sku_of),
            query.method,
            query.near.lat,
            query.near.lon,
            *(box or (None, None, None, None)),
            batch,
            offset,
        )
        found.extend(_rows_to_view([r for r in rows if r[4] is not None], query, sku_of))
        if len(rows) < batch:
            break
        offset += batch
    found.sort(key=lambda a: (a.distance_km if a.distance_km is not None else math.inf, a.location))
    return found[: query.limit]


def _rows_to_view(rows, query: AvailabilityQuery, sku_of: dict[int, str]) -> list[LocationAvailability]:  # type: ignore[no-untyped-def]
    out = []
    for code, name, lat, lon, product_ids, available in rows:
        d = None
        if query.near is not None and lat is not None and lon is not None:
            d = distance_km(query.near, Coordinates(lat, lon))
        if query.radius_km is not None and (d is None or d > query.radius_km):
            continue
        per_sku = dict.fromkeys(query.skus, 0)
        for pid, qty in zip(product_ids, available, strict=True):
            per_sku[sku_of[pid]] = qty
        out.append(
            LocationAvailability(
                location=code,
                name=name,
                distance_km=round(d, 3) if d is not None else None,
                available=per_sku,
                covers_all=all(per_sku.values()),
            )
        )
    return out
