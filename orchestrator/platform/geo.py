"""Distances on the earth's surface, good enough to rank stores."""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Coordinates:
    lat: float
    lon: float

    @classmethod
    def parse(cls, text: str) -> Coordinates:
        """``"52.52,13.40"`` → Coordinates; ValueError on anything else."""
        parts = text.split(",")
        if len(parts) != 2:
            raise ValueError("expected 'lat,lon'")
        lat, lon = float(parts[0]), float(parts[1])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat) or math.isnan(lon):
            raise ValueError("lat must be within ±90 and lon within ±180")
        return cls(lat, lon)


def distance_km(a: Coordinates, b: Coordinates) -> float:
    """Great-circle (haversine) distance."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlmb = math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def nearness_sql(lat: str, lon: str, center_lat: str, center_lon: str) -> str:
    """An SQL expression ranking points by distance from a centre (smaller is nearer), the one
    spelling of nearness in SQL: the squared equirectangular distance in degrees, which orders
    points the way ``distance_km`` does at the scale of a store network and needs no trigonometry
    per row but one cosine. Arguments are SQL (columns or ``$n`` parameters)."""
    return f"({lat} - {center_lat}) ^ 2 + (({lon} - {center_lon}) * cos(radians({center_lat}))) ^ 2"
