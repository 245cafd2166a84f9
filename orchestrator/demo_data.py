"""Demo stores, products, stock and keys for ``orchestrator dev``: a small retailer in the US."""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial

from sqlalchemy import func, insert, select

from orchestrator.catalogue.tables import Location, Product
from orchestrator.inventory.bulk_import import ImportRejected, import_inventory
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.api_keys import create_key, working_tokens
from orchestrator.platform.db import Database, UnitOfWork, committing

# (code suffix, city, lat, lon, timezone)
CITIES = [
    ("001", "New York — Union Square", 40.7359, -73.9911, "America/New_York"),
    ("002", "Brooklyn — Atlantic Terminal", 40.6840, -73.9772, "America/New_York"),
    ("003", "Jersey City — Newport", 40.7270, -74.0380, "America/New_York"),
    ("004", "Boston — Back Bay", 42.3503, -71.0810, "America/New_York"),
    ("005", "Philadelphia — Center City", 39.9526, -75.1652, "America/New_York"),
    ("006", "Washington — Georgetown", 38.9072, -77.0650, "America/New_York"),
    ("007", "Baltimore — Harbor East", 39.2840, -76.6010, "America/New_York"),
    ("008", "Pittsburgh — Shadyside", 40.4520, -79.9350, "America/New_York"),
    ("009", "Chicago — Magnificent Mile", 41.8950, -87.6240, "America/Chicago"),
    ("010", "Chicago — Wicker Park", 41.9088, -87.6796, "America/Chicago"),
    ("011", "Minneapolis — North Loop", 44.9890, -93.2770, "America/Chicago"),
    ("012", "Detroit — Midtown", 42.3510, -83.0660, "America/Detroit"),
    ("013", "Atlanta — Midtown", 33.7810, -84.3830, "America/New_York"),
    ("014", "Miami — Brickell", 25.7617, -80.1918, "America/New_York"),
    ("015", "Austin — South Congress", 30.2480, -97.7500, "America/Chicago"),
    ("016", "Dallas — Uptown", 32.8000, -96.8000, "America/Chicago"),
    ("017", "Denver — LoDo", 39.7530, -105.0000, "America/Denver"),
    ("018", "Phoenix — Scottsdale", 33.4942, -111.9261, "America/Phoenix"),
    ("019", "Los Angeles — Santa Monica", 34.0195, -118.4912, "America/Los_Angeles"),
    ("020", "San Francisco — Union Square", 37.7880, -122.4075, "America/Los_Angeles"),
    ("021", "Oakland — Rockridge", 37.8440, -122.2520, "America/Los_Angeles"),
    ("022", "Seattle — Capitol Hill", 47.6230, -122.3200, "America/Los_Angeles"),
    ("023", "Portland — Pearl District", 45.5290, -122.6820, "America/Los_Angeles"),
    ("024", "San Diego — Gaslamp", 32.7110, -117.1600, "America/Los_Angeles"),
]
WAREHOUSES = [
    ("DC-EAST", "East distribution centre (Edison, NJ)", 40.5187, -74.4121, "America/New_York"),
    ("DC-WEST", "West distribution centre (Ontario, CA)", 34.0633, -117.6509, "America/Los_Angeles"),
]
ADJECTIVES = [
    "Classic",
    "Everyday",
    "Trail",
    "Studio",
    "Urban",
    "Coastal",
    "Alpine",
    "Heritage",
    "Weekend",
    "Essential",
    "Merino",
    "Canvas",
]
NOUNS = [
    "Tee",
    "Hoodie",
    "Jacket",
    "Sneaker",
    "Backpack",
    "Beanie",
    "Chino",
    "Sweater",
    "Parka",
    "Tote",
    "Cap",
    "Scarf",
    "Boot",
    "Short",
    "Polo",
    "Legging",
    "Sock",
    "Belt",
    "Vest",
    "Glove",
]
CHANNELS = ["web", "app", "marketplace:shopify", "marketplace:amazon", "pos"]
PRODUCT_COUNT = 240


def demo_locations() -> list[dict]:
    rows = []
    for suffix, name, lat, lon, tz in CITIES:
        n = int(suffix)
        caps = ["pickup"] + (["curbside"] if n % 3 else []) + (["ship"] if n % 4 != 0 else [])
        rows.append(
            {
                "code": f"STORE-{suffix}",
                "name": name,
                "kind": "store",
                "lat": lat,
                "lon": lon,
                "timezone": tz,
                "capabilities": caps,
                "daily_capacity": 40 + (n * 7) % 60,
                "pickup_hold_days": 5 + n % 3,
                "address": {"city": name.split(" — ")[0], "country": "US"},
                "active": True,
            }
        )
    for code, name, lat, lon, tz in WAREHOUSES:
        rows.append(
            {
                "code": code,
                "name": name,
                "kind": "warehouse",
                "lat": lat,
                "lon": lon,
                "timezone": tz,
                "capabilities": ["ship"],
                "daily_capacity": 2000,
                "pickup_hold_days": 7,
                "address": {"country": "US"},
                "active": True,
            }
        )
    return rows


def demo_products() -> list[dict]:
    rng = random.Random(7)
    return [
        {
            "sku": f"SKU-{i:05d}",
            "name": f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} #{i}",
            "gtin": f"{400638133393 + i:013d}",
            "active": True,
        }
        for i in range(1, PRODUCT_COUNT + 1)
    ]


def demo_stock_csv(locations: list[dict], products: list[dict]) -> bytes:
    rng = random.Random(42)
    out = io.StringIO()
    out.write("location,sku,on_hand\n")
    for loc in locations:
        warehouse = loc["kind"] == "warehouse"
        for p in products:
            if warehouse or rng.random() < 0.7:
                out.write(f"{loc['code']},{p['sku']},{rng.randint(50, 400) if warehouse else rng.randint(0, 30)}\n")
    return out.getvalue().encode()


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def load_demo_data(db: Database, now: datetime) -> dict[str, str] | None:
    """Stores, products, stock and one key per channel and per store. Returns the keys (shown
    once), or None when the catalogue already holds data."""
    locations = demo_locations()
    products = demo_products()

    async def load(uow: UnitOfWork) -> bool:
        if await uow.session.scalar(select(func.count()).select_from(Location)):
            return False
        await uow.session.execute(insert(Location), [{**x, "created_at": now, "updated_at": now} for x in locations])
        await uow.session.execute(insert(Product), [{**x, "created_at": now, "updated_at": now} for x in products])
        stock = _chunks(demo_stock_csv(locations, products))
        await import_inventory(uow, stock, Actor(kind="system", id="demo-data"))
        return True

    try:
        # One attempt: the stock file is streamed once.
        loaded = await db.run(committing(load), attempts=1)
    except ImportRejected as rejected:
        raise RuntimeError(f"demo stock did not load: {rejected.report.errors}") from None
    if not loaded:
        return None
    return await working_demo_keys(db, {}, now)


async def working_demo_keys(db: Database, known: dict[str, str], now: datetime) -> dict[str, str]:
    """A key per channel and per demo store of this database: the one in ``known`` (by name, e.g.
    "channel web", "staff STORE-004") while the database still accepts it, else a new one. So a
    keys file outlives restarts and still tells the truth after the database was replaced."""
    codes = [x["code"] for x in demo_locations()]

    async def look(uow: UnitOfWork) -> tuple[set[str], set[str]]:
        working = await working_tokens(uow, known.values())
        present = set(await uow.session.scalars(select(Location.code).where(Location.code.in_(codes))))
        return working, present

    working, present = await db.run(look)
    # (name in the file, role, channel, locations, name of the stored key)
    wanted: list[tuple[str, Role, str | None, list[str], str]] = [
        (f"channel {channel}", Role.CHANNEL, channel, [], f"demo {channel}") for channel in CHANNELS
    ] + [(f"staff {code}", Role.STAFF, None, [code], f"demo staff {code}") for code in codes if code in present]
    keys: dict[str, str] = {}
    for name, role, channel, locations, key_name in wanted:
        if known.get(name) in working:
            keys[name] = known[name]
            continue
        create = partial(create_key, role=role, name=key_name, channel=channel, locations=locations, now=now)
        keys[name], _ = await db.run(committing(create))
    return keys
