"""Building a small world straight through the services (no HTTP): stores, products, stock."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime

from orchestrator.catalogue.service import create_location, create_product
from orchestrator.fulfillment.requests import TransitionRequest
from orchestrator.fulfillment.service import LifecycleSettings, transition
from orchestrator.fulfillment.views import FulfillmentView
from orchestrator.inventory.service import StockUpdate, change_stock
from orchestrator.order_record.states import Method
from orchestrator.orders.commands import CustomerDetails, NewLine, PlaceOrder
from orchestrator.orders.intake import place_order
from orchestrator.platform import scopes
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, committing
from orchestrator.platform.geo import Coordinates

ADMIN = Actor(kind="admin", id="integration", scopes=scopes.ALL)
# As a key of the web shop is resolved: an owned channel's scopes (it reads every channel's orders).
WEB = Actor(kind="channel", id="web", channel="web", scopes=frozenset(scopes.defaults(Role.CHANNEL, "web")))
NOW = datetime.now(UTC)  # set-up time: the real one, as the database's now() sees it


async def add_location(
    db: Database,
    code: str,
    lat: float = 52.52,
    lon: float = 13.40,
    capabilities: tuple[str, ...] = ("pickup", "curbside", "ship"),
    **extra,
) -> int:
    fields = {
        "code": code,
        "name": f"Store {code}",
        "lat": lat,
        "lon": lon,
        "capabilities": list(capabilities),
        **extra,
    }
    loc = await db.run(committing(lambda uow: create_location(uow, fields, NOW)))
    return loc.id  # type: ignore[return-value]


async def add_product(db: Database, sku: str) -> int:
    product = await db.run(committing(lambda uow: create_product(uow, {"sku": sku, "name": f"Product {sku}"}, NOW)))
    return product.id  # type: ignore[return-value]


async def set_stock(db: Database, code: str, sku: str, on_hand: int, safety_stock: int | None = None):
    return await stock_changed(
        db, code, sku, StockUpdate(reason="test setup", on_hand=on_hand, safety_stock=safety_stock)
    )


async def stock_changed(db: Database, code: str, sku: str, update: StockUpdate):
    """``change_stock`` run the way its HTTP handler runs it: one retried, committed unit of work."""
    return await db.run(committing(lambda uow: change_stock(uow, code, sku, update, ADMIN, NOW)))


_refs = itertools.count(1)


def order_command(
    lines: list[tuple[str, int]],
    *,
    method: str = "pickup",
    location: str | None = "S1",
    email: str = "ann@example.com",
    ref: str | None = None,
    channel: str = "web",
    destination: tuple[float, float] = (52.5, 13.4),
) -> PlaceOrder:
    ship = Method(method) is Method.SHIP
    return PlaceOrder(
        channel=channel,
        channel_order_ref=ref or f"it-{next(_refs)}",
        customer=CustomerDetails(email=email, name="Ann"),
        lines=tuple(NewLine(sku, qty, 1000) for sku, qty in lines),
        currency="EUR",
        method=Method(method),
        location=None if ship else location,
        address={
            "line1": "1 Main St",
            "city": "Berlin",
            "country": "DE",
            "lat": destination[0],
            "lon": destination[1],
        }
        if ship
        else None,
        destination=Coordinates(*destination) if ship else None,
    )


async def place(db: Database, clock: Clock, lines: list[tuple[str, int]], **kw) -> dict:
    """Place an order through the use case, in a transaction of its own as an entry point runs it;
    the order as a channel would read it."""
    cmd = order_command(lines, **kw)
    placement = await db.run(committing(lambda uow: place_order(uow, cmd, WEB, clock, claim=None)))
    return json.loads(placement.body)


async def act(
    db: Database,
    clock: Clock,
    fulfillment_id: uuid.UUID,
    request: TransitionRequest,
    settings: LifecycleSettings,
    actor: Actor = ADMIN,
) -> FulfillmentView:
    """Run a fulfillment transition in a transaction of its own, as the HTTP handler does."""
    return await db.run(committing(lambda uow: transition(uow, fulfillment_id, request, actor, clock, settings)))
