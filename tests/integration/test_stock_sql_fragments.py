"""The "available" rule and nearness are spelled once in SQL (``inventory.stock_sql.AVAILABLE``,
``platform.geo.nearness_sql``) for every hand-written statement; here each is evaluated by
PostgreSQL and held against the Python rule it must agree with."""

from __future__ import annotations

import itertools

from sqlalchemy import text

from orchestrator.inventory.model import StockPosition
from orchestrator.inventory.stock_sql import AVAILABLE
from orchestrator.platform.geo import Coordinates, distance_km, nearness_sql


async def test_the_sql_available_is_the_stock_positions_available(db):
    grid = list(itertools.product(range(0, 5), range(0, 5), range(0, 4)))  # on_hand, reserved, safety
    values = ", ".join(f"({i}, {h}, {r}, {s})" for i, (h, r, s) in enumerate(grid))
    async with db.unit_of_work() as uow:
        rows = (
            await uow.session.execute(
                text(
                    f"SELECT n, GREATEST({AVAILABLE}, 0), {AVAILABLE} > 0 "
                    f"FROM (VALUES {values}) AS s(n, on_hand, reserved, safety_stock) ORDER BY n"
                )
            )
        ).all()
    for (n, available, offers), (on_hand, reserved, safety) in zip(rows, grid, strict=True):
        position = StockPosition(on_hand, reserved, safety)
        assert (available, offers) == (position.available, position.available > 0), (n, on_hand, reserved, safety)


async def test_the_sql_nearness_ranks_stores_as_their_distance_does(db):
    # At 60°N a degree of longitude is half a degree of latitude: a ranking that forgets the
    # cosine puts the store 1.5° east (~83 km) behind the one 0.9° north (~100 km).
    center = Coordinates(60.0, 10.0)
    stores = {
        "east": Coordinates(60.0, 11.5),
        "north": Coordinates(60.9, 10.0),
        "near": Coordinates(60.1, 10.1),
        "west": Coordinates(59.8, 8.6),
        "south": Coordinates(58.8, 10.2),
    }
    values = ", ".join(f"('{code}', {c.lat}, {c.lon})" for code, c in stores.items())
    async with db.unit_of_work() as uow:
        ranked = (
            await uow.session.scalars(
                text(
                    f"SELECT code FROM (VALUES {values}) AS l(code, lat, lon) "
                    f"ORDER BY {nearness_sql('l.lat', 'l.lon', ':lat', ':lon')}"
                ),
                {"lat": center.lat, "lon": center.lon},
            )
        ).all()
    assert ranked == sorted(stores, key=lambda code: distance_km(center, stores[code]))
