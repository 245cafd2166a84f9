"""The app over HTTP (in-process ASGI, lifespan included) with an admin token and helpers to
create keys, stores, products and stock through the API itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from orchestrator.app import create_app
from orchestrator.platform.actors import Role
from orchestrator.platform.api_keys import create_key
from orchestrator.platform.db import Database
from orchestrator.settings import Settings
from tests.conftest import emptied
from tests.integration.event_schemas import event_violations
from tests.integration.invariants import lifecycle_violations
from tests.stripe_server.fixtures import API_KEY

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The emptied test database; after every e2e test using it, once the app has stopped, the
    levels, the ledger, the reservations and the fulfillment lines must still agree
    (``lifecycle_violations``), whatever the test did. A lifecycle test that only reads order
    states would otherwise pass with stock left reserved for closed lines, or never given back.
    And every event the test made the service write must match its schema in the catalogue."""
    async with emptied(database_url, pool_size=20, max_overflow=20) as database:
        yield database
        violations = await lifecycle_violations(database)
        assert not violations, "stock invariants broken after the test:\n" + "\n".join(violations)
        mismatches = await event_violations(database)
        assert not mismatches, "events off their schema (platform/events.py):\n" + "\n".join(mismatches)


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    return settings_for(database_url, redis_url)


def settings_for(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    """Quiet, with the test admin token and no key cache (keys made in a test work at once)."""
    return Settings(
        **overrides,
        database_url=database_url,
        redis_url=redis_url,
        admin_token=ADMIN_TOKEN,
        access_log=False,
        log_level="WARNING",
        key_cache_seconds=0.0,
    )


@pytest.fixture
async def client(settings: Settings, db, redis, clock) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this event loop (as a server would run it), lifespan included."""
    async with serving(create_app(settings, db=db, redis=redis, clock=clock)) as c:
        yield c


@asynccontextmanager
async def serving(app) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app running in this event loop (``running``)."""
    async with (
        running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orchestrator.test") as c,
    ):
        yield c


@asynccontextmanager
async def running(app) -> AsyncIterator[None]:
    """The app's lifespan in a task of its own: its cancel scopes must start and end in one task,
    and a fixture's teardown runs in another."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold())
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # the app failed to start: say why instead of waiting forever
        waiting.cancel()
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Shop:
    """Builds a small world through the API and keeps the keys."""

    client: httpx.AsyncClient
    db: Any
    clock: Any
    admin: dict[str, str] = field(default_factory=lambda: auth(ADMIN_TOKEN))
    _keys: dict[str, dict[str, str]] = field(default_factory=dict)
    _seq: int = 0

    async def key(
        self, role: Role, *, channel: str | None = None, locations: list[str] | None = None
    ) -> dict[str, str]:
        name = f"{role.value}:{channel or ','.join(locations or [])}"
        if name not in self._keys:
            async with self.db.unit_of_work() as uow:
                token, _ = await create_key(
                    uow, role=role, name=name, channel=channel, locations=locations, now=self.clock.now()
                )
                await uow.commit()
            self._keys[name] = auth(token)
        return self._keys[name]

    async def channel(self, name: str = "web") -> dict[str, str]:
        return await self.key(Role.CHANNEL, channel=name)

    async def staff(self, *codes: str) -> dict[str, str]:
        return await self.key(Role.STAFF, locations=list(codes))

    async def location(
        self,
        code: str,
        lat: float = 52.52,
        lon: float = 13.40,
        capabilities: tuple[str, ...] = ("pickup", "curbside", "ship"),
        **extra: Any,
    ) -> dict:
        body = {
            "code": code,
            "name": f"Store {code}",
            "lat": lat,
            "lon": lon,
            "capabilities": list(capabilities),
            **extra,
        }
        r = await self.client.post("/v1/locations", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return r.json()

    async def product(self, sku: str, name: str | None = None) -> dict:
        r = await self.client.post(
            "/v1/products", json={"sku": sku, "name": name or f"Product {sku}"}, headers=self.admin
        )
        assert r.status_code == 201, r.text
        return r.json()

    async def stock(self, code: str, sku: str, on_hand: int, safety_stock: int | None = None) -> dict:
        body: dict[str, Any] = {"on_hand": on_hand, "reason": "test setup"}
        if safety_stock is not None:
            body["safety_stock"] = safety_stock
        r = await self.client.put(f"/v1/locations/{code}/stock/{sku}", json=body, headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()

    def order_body(
        self,
        lines: list[tuple[str, int]] | None = None,
        *,
        method: str = "pickup",
        location: str | None = "S1",
        address: dict | None = None,
        ref: str | None = None,
        email: str = "ann@example.com",
        price: int = 1000,
    ) -> dict:
        self._seq += 1
        fulfillment: dict[str, Any] = {"method": method}
        if location and method != "ship":
            fulfillment["location"] = location
        if method == "ship":
            fulfillment["address"] = address or {
                "line1": "1 Main St",
                "city": "Berlin",
                "country": "DE",
                "lat": 52.5,
                "lon": 13.4,
            }
        return {
            "channel_order_ref": ref or f"ref-{self._seq}",
            "customer": {"email": email, "name": "Ann"},
            "lines": [{"sku": s, "quantity": q, "unit_price": price} for s, q in (lines or [("A", 1)])],
            "currency": "EUR",
            "fulfillment": fulfillment,
        }

    async def place(self, body: dict, *, key: str | None = None, headers: dict | None = None):
        self._seq += 1
        h = {**(headers or await self.channel()), "Idempotency-Key": key or f"idem-{self._seq}"}
        return await self.client.post("/v1/orders", json=body, headers=h)


@pytest.fixture
async def shop(client, db, clock) -> Shop:
    return Shop(client, db, clock)


@pytest.fixture
async def store(shop) -> Shop:
    """One pickup store, S1, with 10 of product A."""
    await shop.location("S1", capabilities=("pickup",))
    await shop.product("A")
    await shop.stock("S1", "A", 10)
    return shop


@pytest.fixture
async def two_stores(shop) -> Shop:
    """Stores S1 (Berlin) and S2 (Munich), each with 5 of product A."""
    await shop.location("S1", 52.52, 13.40)
    await shop.location("S2", 48.14, 11.58)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    await shop.stock("S2", "A", 5)
    return shop


@asynccontextmanager
async def stripe_shop(
    database_url: str, redis_url: str, db, redis, clock, stripe_api, **overrides: Any
) -> AsyncIterator[Shop]:
    """The app on the Stripe-shaped test server (``overrides``: more settings); pickup store S1
    with 10 of A."""
    settings = settings_for(
        database_url, redis_url, stripe_api_key=API_KEY, stripe_api_base=stripe_api.url, **overrides
    )
    async with serving(create_app(settings, db=db, redis=redis, clock=clock)) as client:
        shop = Shop(client, db, clock)
        await shop.location("S1", capabilities=("pickup",))
        await shop.product("A")
        await shop.stock("S1", "A", 10)
        yield shop


@pytest.fixture
async def paid(database_url, redis_url, db, redis, clock, stripe_api) -> AsyncIterator[Shop]:
    """A Stripe shop (``stripe_shop``) with default settings; a module needing others overrides it."""
    async with stripe_shop(database_url, redis_url, db, redis, clock, stripe_api) as shop:
        yield shop
