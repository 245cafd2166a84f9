"""Stock levels at a location and their ledger: parse, call the use case in one unit of work, map.
The paths sit under ``/v1/locations`` beside the catalogue's, and keep its tag."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from orchestrator.inventory import service as inventory
from orchestrator.inventory.model import MovementKind
from orchestrator.inventory.schemas import StockAdjust, StockSet
from orchestrator.inventory.service import MovementView, StockUpdate, StockView
from orchestrator.platform.auth import ANY_KEY, WRITE_INVENTORY
from orchestrator.platform.db import committing
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep
from orchestrator.platform.pagination import PageResponse
from orchestrator.platform.problems import problems

Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Cursor = FromQuery[str | None]
LocationCode = FromPath[str]
Sku = FromPath[str]


class StockPage(PageResponse, kw_only=True):
    items: list[StockView]


class MovementPage(PageResponse, kw_only=True):
    items: list[MovementView]


class StockController(Controller):
    path = "/v1/locations"
    tags = ["locations"]

    @get(
        "/{code:str}/stock",
        operation_id="listStock",
        summary="Stock levels at a location",
        guards=[ANY_KEY],
        responses=problems(400, 401, 403, 404, 422),
    )
    async def list_stock(
        self, code: LocationCode, actor: ActorDep, db: DB, cursor: Cursor = None, limit: Limit = 100
    ) -> StockPage:
        page = await db.run(lambda uow: inventory.list_stock(uow, code, actor, cursor=cursor, limit=limit))
        return StockPage(items=page.items, next_cursor=page.next_cursor)

    @get(
        "/{code:str}/stock/{sku:str}",
        operation_id="getStock",
        summary="Stock of one sku at a location",
        guards=[ANY_KEY],
        responses=problems(401, 403, 404),
    )
    async def get_stock(self, code: LocationCode, sku: Sku, actor: ActorDep, db: DB) -> StockView:
        return await db.run(lambda uow: inventory.read_stock(uow, code, sku, actor))

    @put(
        "/{code:str}/stock/{sku:str}",
        operation_id="setStock",
        summary="Set the absolute on-hand level (a count); ledger row `count`",
        guards=[WRITE_INVENTORY],
        responses=problems(400, 401, 403, 404, 409, 422),
    )
    async def set_stock(
        self, code: LocationCode, sku: Sku, data: JSONBody[StockSet], actor: ActorDep, db: DB, clock: ClockDep
    ) -> StockView:
        update = StockUpdate(
            reason=data.reason, on_hand=data.on_hand, safety_stock=data.safety_stock, kind=MovementKind.COUNT
        )
        now = clock.now()
        return await db.run(committing(lambda uow: inventory.change_stock(uow, code, sku, update, actor, now)))

    @post(
        "/{code:str}/stock/{sku:str}/adjustments",
        operation_id="adjustStock",
        summary="Adjust on-hand by a delta with a reason",
        guards=[WRITE_INVENTORY],
        status_code=200,
        responses=problems(400, 401, 403, 404, 409, 422),
    )
    async def adjust_stock(
        self, code: LocationCode, sku: Sku, data: JSONBody[StockAdjust], actor: ActorDep, db: DB, clock: ClockDep
    ) -> StockView:
        update = StockUpdate(
            reason=data.reason, delta=data.delta, kind=MovementKind(data.kind), reference=data.reference
        )
        now = clock.now()
        return await db.run(committing(lambda uow: inventory.change_stock(uow, code, sku, update, actor, now)))

    @get(
        "/{code:str}/stock/{sku:str}/movements",
        operation_id="listStockMovements",
        summary="The ledger for one sku at a location, newest first",
        guards=[ANY_KEY],
        responses=problems(400, 401, 403, 404, 422),
    )
    async def movements(
        self,
        code: LocationCode,
        sku: Sku,
        actor: ActorDep,
        db: DB,
        cursor: Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1)] = None,
        limit: Limit = 100,
    ) -> MovementPage:
        page = await db.run(lambda uow: inventory.movements(uow, code, sku, actor, before=cursor, limit=limit))
        return MovementPage(items=page.items, next_cursor=page.next_cursor)
