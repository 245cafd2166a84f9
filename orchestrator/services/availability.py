"""Where can I get these? Available units per location for a basket, nearest first."""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
from sqlalchemy import select, text

from orchestrator.db.catalogue import Product
from orchestrator.db.engine import UnitOfWork
from orchestrator.domain.errors import UnknownSku
from orchestrator.domain.geo import Coordinates, distance_km


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


# Grouped in the database: one row per location, the per-sku numbers as two arrays.
_AVAILABLE = text(
    """
    SELECT l.code, l.name, l.lat, l.lon,
           array_agg(s.product_id) AS product_ids,
           array_agg(GREATEST(s.on_hand - s.reserved - s.safety_stock, 0)) AS available
    FROM stock_levels s
    JOIN locations l ON l.id = s.location_id
    WHERE s.product_id = ANY(CAST(:products AS int[]))
      AND s.on_hand - s.reserved - s.safety_stock > 0
      AND l.active
      AND CAST(:capability AS text) = ANY(l.capabilities)
      AND (CAST(:min_lat AS float8) IS NULL OR l.lat BETWEEN :min_lat AND :max_lat)
      AND (CAST(:min_lon AS float8) IS NULL OR l.lon BETWEEN :min_lon AND :max_lon)
    GROUP BY l.id
    """
)


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
    rows = await session.execute(select(Product.sku, Product.id).where(Product.sku.in_(query.skus)))
    products = dict(rows.tuples().all())
    unknown = [s for s in query.skus if s not in products]
    if unknown:
        raise UnknownSku(f"unknown sku: {', '.join(unknown)}", field="skus", skus=unknown)
    sku_of = {pid: sku for sku, pid in products.items()}
    box = bounding_box(query.near, query.radius_km) if query.near and query.radius_km is not None else None
    result = await session.execute(
        _AVAILABLE,
        {
            "products": list(sku_of),
            "capability": query.method,
            "min_lat": box[0] if box else None,
            "max_lat": box[1] if box else None,
            "min_lon": box[2] if box else None,
            "max_lon": box[3] if box else None,
        },
    )
    found = []
    for code, name, lat, lon, product_ids, available in result:
        d = None
        if query.near is not None and lat is not None and lon is not None:
            d = distance_km(query.near, Coordinates(lat, lon))
        if query.radius_km is not None and query.near is not None and (d is None or d > query.radius_km):
            continue
        per_sku = dict.fromkeys(query.skus, 0)
        for pid, qty in zip(product_ids, available, strict=True):
            per_sku[sku_of[pid]] = qty
        found.append(
            LocationAvailability(
                location=code,
                name=name,
                distance_km=round(d, 3) if d is not None else None,
                available=per_sku,
                covers_all=all(per_sku.values()),
            )
        )
    if query.near is not None:
        found.sort(key=lambda a: (a.distance_km if a.distance_km is not None else math.inf, a.location))
    else:
        found.sort(key=lambda a: a.location)
    return found[: query.limit]
