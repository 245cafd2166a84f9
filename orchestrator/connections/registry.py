"""The connector registry's use cases: register, read, change and remove a connector. Each runs
in the unit of work its entry point opened and commits nothing itself."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from orchestrator.catalogue.tables import Location
from orchestrator.connections.model import Kind, Outcome, checked_credentials
from orchestrator.connections.tables import Connector, ConnectorReceipt
from orchestrator.platform.db import UnitOfWork, is_unique_violation
from orchestrator.platform.errors import AlreadyExists, NotFound, UnknownLocation
from orchestrator.platform.pagination import Key, Keyset, Page

CONNECTOR_NOT_FOUND = "connector not found"
CONNECTORS = Keyset(Key(Connector.created_at, datetime, descending=True), Key(Connector.id, uuid.UUID, descending=True))


@dataclass(frozen=True)
class ConnectorSpec:
    kind: Kind
    name: str
    channel: str
    credentials: dict[str, Any]
    location_map: dict[str, str]
    sku_map: dict[str, str]
    settings: dict[str, Any]


@dataclass(frozen=True)
class ConnectorStatus:
    last_receipt_at: datetime | None
    counts: dict[str, int]
    backlog: int  # receipts still pending
    last_error: str | None
    last_error_at: datetime | None
    # A poller's: where it is, when it last polled, what its last poll gave up on (None: fine).
    cursor: dict[str, Any] | None = None
    last_polled_at: datetime | None = None
    last_poll_error: str | None = None


async def _check_locations(uow: UnitOfWork, location_map: dict[str, str]) -> None:
    codes = sorted(set(location_map.values()))
    if not codes:
        return
    known = set((await uow.session.scalars(select(Location.code).where(Location.code.in_(codes)))).all())
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise UnknownLocation(f"unknown location code(s): {', '.join(unknown)}", field="location_map")


async def create(uow: UnitOfWork, spec: ConnectorSpec, now: datetime) -> Connector:
    await _check_locations(uow, spec.location_map)
    connector = Connector(
        kind=spec.kind.value,
        name=spec.name,
        channel=spec.channel,
        credentials=checked_credentials(spec.kind, spec.credentials),
        location_map=spec.location_map,
        sku_map=spec.sku_map,
        settings=spec.settings,
        created_at=now,
    )
    uow.session.add(connector)
    await _flush_named(uow, spec.name)
    return connector


async def _flush_named(uow: UnitOfWork, name: str) -> None:
    try:
        await uow.session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise AlreadyExists(f"a connector named {name!r} exists", field="name") from None
        raise


async def connector(uow: UnitOfWork, connector_id: uuid.UUID, *, lock: bool = False) -> Connector:
    query = select(Connector).where(Connector.id == connector_id)
    found = await uow.session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise NotFound(CONNECTOR_NOT_FOUND)
    return found


async def list_connectors(uow: UnitOfWork, cursor: str | None, limit: int) -> Page[Connector]:
    rows = (await uow.session.execute(CONNECTORS.query(select(Connector), cursor, limit))).all()
    return CONNECTORS.page(rows, limit)


async def update(uow: UnitOfWork, connector_id: uuid.UUID, changes: dict[str, Any], now: datetime) -> Connector:
    """``changes``: the fields a PATCH carried. New credentials replace the old ones whole."""
    found = await connector(uow, connector_id, lock=True)
    if "location_map" in changes:
        await _check_locations(uow, changes["location_map"])
    if "credentials" in changes:
        changes = {**changes, "credentials": checked_credentials(Kind(found.kind), changes["credentials"])}
    for field, value in changes.items():
        setattr(found, field, value)
    found.updated_at = now
    await _flush_named(uow, found.name)
    return found


async def delete(uow: UnitOfWork, connector_id: uuid.UUID) -> None:
    """The connector and its receipts; the orders it placed stay."""
    await uow.session.delete(await connector(uow, connector_id, lock=True))
    await uow.session.flush()


async def status(uow: UnitOfWork, connector_id: uuid.UUID) -> ConnectorStatus:
    found = await connector(uow, connector_id)
    session = uow.session
    of_it = ConnectorReceipt.connector_id == connector_id
    counts = dict(
        (await session.execute(select(ConnectorReceipt.outcome, func.count()).where(of_it).group_by("outcome"))).all()
    )
    last = await session.scalar(select(func.max(ConnectorReceipt.received_at)).where(of_it))
    failed = (
        await session.execute(
            select(ConnectorReceipt.detail, ConnectorReceipt.processed_at)
            .where(of_it, ConnectorReceipt.outcome.in_([Outcome.INVALID.value, Outcome.UNMAPPED.value]))
            .order_by(ConnectorReceipt.processed_at.desc().nulls_last(), ConnectorReceipt.id.desc())
            .limit(1)
        )
    ).first()
    return ConnectorStatus(
        last_receipt_at=last,
        counts={o.value: counts.get(o.value, 0) for o in Outcome},
        backlog=counts.get(Outcome.PENDING.value, 0),
        last_error=failed[0] if failed else None,
        last_error_at=failed[1] if failed else None,
        cursor=dict(found.cursor) or None,
        last_polled_at=found.last_polled_at,
        last_poll_error=found.last_poll_error,
    )
