"""Locations and products: plain records, created and changed by admins. The use cases change
the unit of work they are given; the entry point commits it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from orchestrator.catalogue.tables import Location, Product
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import AlreadyExists, InvalidRequest, NotFound
from orchestrator.platform.pagination import Key, Keyset, Page

CAPABILITIES = frozenset({"pickup", "curbside", "ship"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Codes and skus are unique: each alone orders its list totally.
LOCATIONS = Keyset(Key(Location.code, str))
PRODUCTS = Keyset(Key(Product.sku, str))


def check_capabilities(capabilities: list[str]) -> list[str]:
    unknown = sorted(set(capabilities) - CAPABILITIES)
    if unknown:
        raise InvalidRequest(
            f"unknown capabilities: {', '.join(unknown)}; use {sorted(CAPABILITIES)}", field="capabilities"
        )
    return sorted(set(capabilities))


def check_opening_hours(hours: dict[str, Any] | None) -> dict[str, list[list[str]]] | None:
    """Each day's intervals open before they close and do not overlap; stored sorted, by weekday."""
    if hours is None:
        return None
    checked: dict[str, list[list[str]]] = {}
    for day in WEEKDAYS:
        if day not in hours:
            continue
        intervals = sorted([str(opens), str(closes)] for opens, closes in hours[day])
        for opens, closes in intervals:
            if opens >= closes:
                raise InvalidRequest(
                    f"opening hours on {day}: {opens} must be before {closes}", field=f"opening_hours.{day}"
                )
        for (_, closes), (opens, _) in zip(intervals, intervals[1:], strict=False):
            if opens < closes:
                raise InvalidRequest(f"opening hours on {day} overlap at {opens}", field=f"opening_hours.{day}")
        checked[day] = intervals
    return checked


async def get_location(uow: UnitOfWork, code: str, actor: Actor) -> Location:
    if not actor.may_see_location(code):
        raise NotFound(f"location {code} not found")
    loc = await uow.session.scalar(select(Location).where(Location.code == code))
    if loc is None:
        raise NotFound(f"location {code} not found")
    return loc


async def list_locations(
    uow: UnitOfWork, actor: Actor, *, cursor: str | None, limit: int, capability: str | None = None
) -> Page[Location]:
    query = select(Location)
    if capability:
        query = query.where(Location.capabilities.contains([capability]))
    if actor.is_staff:
        query = query.where(Location.code.in_(sorted(actor.locations)))
    rows = (await uow.session.execute(LOCATIONS.query(query, cursor, limit))).all()
    return LOCATIONS.page(rows, limit)


async def create_location(uow: UnitOfWork, fields: dict[str, Any], now: datetime) -> Location:
    fields["capabilities"] = check_capabilities(fields.get("capabilities", []))
    fields["opening_hours"] = check_opening_hours(fields.get("opening_hours"))
    loc = Location(**fields, created_at=now, updated_at=now)
    uow.session.add(loc)
    try:
        await uow.session.flush()
    except IntegrityError:
        raise AlreadyExists(f"location {fields['code']} already exists", code=fields["code"]) from None
    return loc


async def update_location(uow: UnitOfWork, code: str, changes: dict[str, Any], actor: Actor, now: datetime) -> Location:
    loc = await get_location(uow, code, actor)
    if "capabilities" in changes:
        changes["capabilities"] = check_capabilities(changes["capabilities"])
    if "opening_hours" in changes:
        changes["opening_hours"] = check_opening_hours(changes["opening_hours"])
    for name, value in changes.items():
        setattr(loc, name, value)
    loc.updated_at = now
    return loc


async def get_product(uow: UnitOfWork, sku: str) -> Product:
    product = await uow.session.scalar(select(Product).where(Product.sku == sku))
    if product is None:
        raise NotFound(f"product {sku} not found")
    return product


async def list_products(uow: UnitOfWork, *, cursor: str | None, limit: int) -> Page[Product]:
    rows = (await uow.session.execute(PRODUCTS.query(select(Product), cursor, limit))).all()
    return PRODUCTS.page(rows, limit)


async def create_product(uow: UnitOfWork, fields: dict[str, Any], now: datetime) -> Product:
    product = Product(**fields, created_at=now, updated_at=now)
    uow.session.add(product)
    try:
        await uow.session.flush()
    except IntegrityError:
        raise AlreadyExists(f"product {fields['sku']} already exists", sku=fields["sku"]) from None
    return product


async def update_product(uow: UnitOfWork, sku: str, changes: dict[str, Any], now: datetime) -> Product:
    product = await get_product(uow, sku)
    for name, value in changes.items():
        setattr(product, name, value)
    product.updated_at = now
    return product
