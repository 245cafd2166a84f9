"""The connector registry over HTTP (admin keys only): parse, call the use case, map."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from connectors.amazon import poller as amazon_poller
from orchestrator.connections import receipts, registry
from orchestrator.connections.dependencies import PROCESSING_DEPENDENCIES, ProcessingDep
from orchestrator.connections.model import Kind, Outcome
from orchestrator.connections.schemas import (
    ConnectorIn,
    ConnectorPage,
    ConnectorPatch,
    ConnectorStatusView,
    ConnectorView,
    ReceiptPage,
    ReceiptView,
    connector_view,
    receipt_view,
)
from orchestrator.platform.auth import ADMIN
from orchestrator.platform.db import Database, committing
from orchestrator.platform.errors import Conflict
from orchestrator.platform.http.dependencies import DB, ClockDep
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import set_fields

Limit = Annotated[int, QueryParameter(ge=1, le=200)]


def _changes(data: ConnectorPatch) -> dict[str, Any]:
    changes = set_fields(data)
    if "settings" in changes:
        changes["settings"] = msgspec.to_builtins(changes["settings"])
    return changes


async def _status_view(db: Database, connector_id: uuid.UUID) -> ConnectorStatusView:
    s = await db.run(lambda uow: registry.status(uow, connector_id))
    return ConnectorStatusView(
        connector_id=connector_id,
        last_receipt_at=s.last_receipt_at,
        counts=s.counts,
        backlog=s.backlog,
        last_error=s.last_error,
        last_error_at=s.last_error_at,
        cursor=s.cursor,
        last_polled_at=s.last_polled_at,
        last_poll_error=s.last_poll_error,
    )


class ConnectorController(Controller):
    path = "/v1/connectors"
    tags = ["connectors"]
    dependencies = PROCESSING_DEPENDENCIES
    guards = [ADMIN]

    @post(
        "/",
        operation_id="createConnector",
        summary="Register a platform connector (credentials are write-only)",
        status_code=201,
        responses=problems(400, 401, 403, 409, 422),
    )
    async def create(self, data: JSONBody[ConnectorIn], db: DB, clock: ClockDep) -> ConnectorView:
        spec = registry.ConnectorSpec(
            kind=Kind(data.kind),
            name=data.name,
            channel=data.channel,
            credentials=data.credentials,
            location_map=dict(data.location_map),
            sku_map=dict(data.sku_map),
            settings=msgspec.to_builtins(data.settings),
        )
        return connector_view(await db.run(committing(lambda uow: registry.create(uow, spec, clock.now()))))

    @get("/", operation_id="listConnectors", summary="Connectors, newest first", responses=problems(401, 403, 422))
    async def list_all(self, db: DB, cursor: FromQuery[str | None] = None, limit: Limit = 50) -> ConnectorPage:
        page = await db.run(lambda uow: registry.list_connectors(uow, cursor, limit))
        return ConnectorPage(items=[connector_view(c) for c in page.items], next_cursor=page.next_cursor)

    @get(
        "/{connector_id:uuid}", operation_id="getConnector", summary="One connector", responses=problems(401, 403, 404)
    )
    async def get_one(self, connector_id: FromPath[uuid.UUID], db: DB) -> ConnectorView:
        return connector_view(await db.run(lambda uow: registry.connector(uow, connector_id)))

    @patch(
        "/{connector_id:uuid}",
        operation_id="updateConnector",
        summary="Change a connector's name, channel, credentials (replaced whole), maps or settings",
        responses=problems(400, 401, 403, 404, 409, 422),
    )
    async def update(
        self, connector_id: FromPath[uuid.UUID], data: JSONBody[ConnectorPatch], db: DB, clock: ClockDep
    ) -> ConnectorView:
        changes = _changes(data)
        found = await db.run(committing(lambda uow: registry.update(uow, connector_id, changes, clock.now())))
        return connector_view(found)

    @delete(
        "/{connector_id:uuid}",
        operation_id="deleteConnector",
        summary="Remove a connector and its receipts (the orders it placed stay)",
        status_code=204,
        responses=problems(401, 403, 404),
    )
    async def remove(self, connector_id: FromPath[uuid.UUID], db: DB) -> None:
        await db.run(committing(lambda uow: registry.delete(uow, connector_id)))

    @get(
        "/{connector_id:uuid}/status",
        operation_id="getConnectorStatus",
        summary="Last receipt, receipts by outcome, last error, backlog (pending receipts)",
        responses=problems(401, 403, 404),
    )
    async def status(self, connector_id: FromPath[uuid.UUID], db: DB) -> ConnectorStatusView:
        return await _status_view(db, connector_id)

    @get(
        "/{connector_id:uuid}/receipts",
        operation_id="listConnectorReceipts",
        summary="What the connector received, newest first, with each outcome",
        responses=problems(400, 401, 403, 404, 422),
    )
    async def list_receipts(
        self,
        connector_id: FromPath[uuid.UUID],
        db: DB,
        outcome: FromQuery[Outcome | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = 50,
    ) -> ReceiptPage:
        page = await db.run(lambda uow: receipts.list_receipts(uow, connector_id, outcome, cursor, limit))
        return ReceiptPage(items=[receipt_view(r) for r in page.items], next_cursor=page.next_cursor)

    @post(
        "/{connector_id:uuid}/receipts/{receipt_id:uuid}/replay",
        operation_id="replayConnectorReceipt",
        summary="Process an unmapped, invalid or pending receipt again (after fixing the maps)",
        description="409 for a receipt whose outcome is final: applied, duplicate, stale or ignored.",
        status_code=200,
        responses=problems(401, 403, 404, 409),
    )
    async def replay(
        self,
        connector_id: FromPath[uuid.UUID],
        receipt_id: FromPath[uuid.UUID],
        db: DB,
        flow: ProcessingDep,
    ) -> ReceiptView:
        return receipt_view(await receipts.replay(flow, connector_id, receipt_id))

    @post(
        "/{connector_id:uuid}/poll",
        operation_id="pollConnector",
        summary="Poll an Amazon connector now (getOrders since its cursor), whatever its interval",
        status_code=200,
        responses=problems(401, 403, 404, 409),
    )
    async def poll(
        self,
        connector_id: FromPath[uuid.UUID],
        db: DB,
        flow: ProcessingDep,
    ) -> ConnectorStatusView:
        found = await db.run(lambda uow: registry.connector(uow, connector_id))
        if found.kind != Kind.AMAZON.value:
            raise Conflict(f"{found.kind} connectors are not polled", kind=found.kind)
        await amazon_poller.poll(flow, connector_id, force=True)
        return await _status_view(db, connector_id)
