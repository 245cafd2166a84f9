"""Locations and products: parse, call the use case in one unit of work, map."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from orchestrator.catalogue import service as catalogue
from orchestrator.catalogue.schemas import LocationIn, LocationPatch, ProductIn, ProductPatch
from orchestrator.catalogue.tables import Location, Product
from orchestrator.platform.auth import ADMIN, ANY_KEY
from orchestrator.platform.db import committing
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep
from orchestrator.platform.pagination import PageResponse
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import set_fields

Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Cursor = FromQuery[str | None]
LocationCode = FromPath[str]
Sku = FromPath[str]


class LocationView(msgspec.Struct, kw_only=True):
    code: str
    name: str
    kind: str
    address: dict[str, Any]
    lat: float | None
    lon: float | None
    timezone: str
    capabilities: list[str]
    daily_capacity: int | None
    pickup_hold_days: int
    prep_minutes: int
    # {"mon": [["09:00", "20:00"]], ..., "sun": []} in ``timezone``; null: not known.
    opening_hours: dict[str, list[list[str]]] | None = None
    active: bool
    created_at: datetime
    updated_at: datetime | None


class ProductView(msgspec.Struct, kw_only=True):
    sku: str
    name: str
    gtin: str | None
    active: bool
    created_at: datetime
    updated_at: datetime | None


class LocationPage(PageResponse, kw_only=True):
    items: list[LocationView]


class ProductPage(PageResponse, kw_only=True):
    items: list[ProductView]


def location_view(loc: Location) -> LocationView:
    return LocationView(
        code=loc.code,
        name=loc.name,
        kind=loc.kind,
        address=loc.address or {},
        lat=loc.lat,
        lon=loc.lon,
        timezone=loc.timezone,
        capabilities=list(loc.capabilities),
        daily_capacity=loc.daily_capacity,
        pickup_hold_days=loc.pickup_hold_days,
        prep_minutes=loc.prep_minutes,
        opening_hours=loc.opening_hours,
        active=loc.active,
        created_at=loc.created_at,
        updated_at=loc.updated_at,
    )


def product_view(p: Product) -> ProductView:
    return ProductView(
        sku=p.sku, name=p.name, gtin=p.gtin, active=p.active, created_at=p.created_at, updated_at=p.updated_at
    )


def location_fields(data: LocationIn) -> dict[str, Any]:
    fields = msgspec.structs.asdict(data)
    fields["address"] = msgspec.to_builtins(data.address) if data.address else {}
    return fields


class LocationController(Controller):
    path = "/v1/locations"
    tags = ["locations"]

    @get(
        "/",
        operation_id="listLocations",
        summary="Locations (staff keys: their own)",
        guards=[ANY_KEY],
        responses=problems(400, 401, 403, 422),
    )
    async def list_locations(
        self,
        actor: ActorDep,
        db: DB,
        cursor: Cursor = None,
        capability: FromQuery[Literal["pickup", "curbside", "ship"] | None] = None,
        limit: Limit = 100,
    ) -> LocationPage:
        page = await db.run(
            lambda uow: catalogue.list_locations(uow, actor, cursor=cursor, limit=limit, capability=capability)
        )
        return LocationPage(items=[location_view(x) for x in page.items], next_cursor=page.next_cursor)

    @post(
        "/",
        operation_id="createLocation",
        summary="Create a store or warehouse",
        guards=[ADMIN],
        responses=problems(400, 401, 403, 409, 422),
    )
    async def create_location(self, data: JSONBody[LocationIn], db: DB, clock: ClockDep) -> LocationView:
        fields, now = location_fields(data), clock.now()
        return location_view(await db.run(committing(lambda uow: catalogue.create_location(uow, fields, now))))

    @get(
        "/{code:str}",
        operation_id="getLocation",
        summary="One location",
        guards=[ANY_KEY],
        responses=problems(401, 403, 404),
    )
    async def get_location(self, code: LocationCode, actor: ActorDep, db: DB) -> LocationView:
        return location_view(await db.run(lambda uow: catalogue.get_location(uow, code, actor)))

    @patch(
        "/{code:str}",
        operation_id="updateLocation",
        summary="Change a location",
        guards=[ADMIN],
        responses=problems(400, 401, 403, 404, 422),
    )
    async def update_location(
        self, code: LocationCode, data: JSONBody[LocationPatch], actor: ActorDep, db: DB, clock: ClockDep
    ) -> LocationView:
        changes, now = set_fields(data), clock.now()
        return location_view(
            await db.run(committing(lambda uow: catalogue.update_location(uow, code, changes, actor, now)))
        )

    @delete(
        "/{code:str}",
        operation_id="deactivateLocation",
        summary="Deactivate a location (its history stays; it takes no new orders)",
        guards=[ADMIN],
        status_code=204,
        responses=problems(401, 403, 404),
    )
    async def deactivate_location(self, code: LocationCode, actor: ActorDep, db: DB, clock: ClockDep) -> None:
        now = clock.now()
        await db.run(committing(lambda uow: catalogue.update_location(uow, code, {"active": False}, actor, now)))


class ProductController(Controller):
    path = "/v1/products"
    tags = ["products"]

    @get(
        "/",
        operation_id="listProducts",
        summary="Products by sku",
        guards=[ANY_KEY],
        responses=problems(400, 401, 403, 422),
    )
    async def list_products(self, db: DB, cursor: Cursor = None, limit: Limit = 100) -> ProductPage:
        page = await db.run(lambda uow: catalogue.list_products(uow, cursor=cursor, limit=limit))
        return ProductPage(items=[product_view(p) for p in page.items], next_cursor=page.next_cursor)

    @post(
        "/",
        operation_id="createProduct",
        summary="Create a product",
        guards=[ADMIN],
        responses=problems(400, 401, 403, 409, 422),
    )
    async def create_product(self, data: JSONBody[ProductIn], db: DB, clock: ClockDep) -> ProductView:
        fields, now = msgspec.structs.asdict(data), clock.now()
        return product_view(await db.run(committing(lambda uow: catalogue.create_product(uow, fields, now))))

    @get(
        "/{sku:str}",
        operation_id="getProduct",
        summary="One product",
        guards=[ANY_KEY],
        responses=problems(401, 403, 404),
    )
    async def get_product(self, sku: Sku, db: DB) -> ProductView:
        return product_view(await db.run(lambda uow: catalogue.get_product(uow, sku)))

    @patch(
        "/{sku:str}",
        operation_id="updateProduct",
        summary="Change a product",
        guards=[ADMIN],
        responses=problems(400, 401, 403, 404, 422),
    )
    async def update_product(self, sku: Sku, data: JSONBody[ProductPatch], db: DB, clock: ClockDep) -> ProductView:
        changes, now = set_fields(data), clock.now()
        return product_view(await db.run(committing(lambda uow: catalogue.update_product(uow, sku, changes, now))))

    @delete(
        "/{sku:str}",
        operation_id="deactivateProduct",
        summary="Deactivate a product (no new orders; history stays)",
        guards=[ADMIN],
        status_code=204,
        responses=problems(401, 403, 404),
    )
    async def deactivate_product(self, sku: Sku, db: DB, clock: ClockDep) -> None:
        now = clock.now()
        await db.run(committing(lambda uow: catalogue.update_product(uow, sku, {"active": False}, now)))
