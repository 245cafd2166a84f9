"""A polling connector's bookkeeping (Amazon's; Walmart's can share it): which are due, the claim
of one poll, which orders were seen already, and the cursor a finished poll moves. Each runs in the
unit of work its caller opened; no HTTP call ever runs inside one of them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from orchestrator.connections import registry
from orchestrator.connections.tables import Connector, ConnectorReceipt
from orchestrator.platform.db import Database, UnitOfWork, committing

DEFAULT_POLL_SECONDS = 120


@dataclass(frozen=True)
class PollTarget:
    """What a poller needs of its connector (the credentials are the poller's to use, never show)."""

    id: uuid.UUID
    kind: str
    channel: str
    credentials: dict[str, Any]
    settings: dict[str, Any]
    cursor: dict[str, Any]


def interval_of(settings: dict[str, Any]) -> timedelta:
    seconds = settings.get("poll_interval_seconds")
    return timedelta(seconds=seconds if isinstance(seconds, int) and seconds > 0 else DEFAULT_POLL_SECONDS)


def _is_due(c: Connector, now: datetime) -> bool:
    return c.last_polled_at is None or c.last_polled_at <= now - interval_of(c.settings)


async def due(uow: UnitOfWork, kind: str, now: datetime) -> list[uuid.UUID]:
    found = await uow.session.scalars(select(Connector).where(Connector.kind == kind).order_by(Connector.id))
    return [c.id for c in found if _is_due(c, now)]


async def claim(uow: UnitOfWork, connector_id: uuid.UUID, now: datetime, *, force: bool = False) -> PollTarget | None:
    """The poll is this caller's (``last_polled_at`` set under the row's lock), or None when the
    connector is not due: another worker polled it meanwhile. ``force``: poll now (the API)."""
    c = await registry.connector(uow, connector_id, lock=True)
    if not force and not _is_due(c, now):
        return None
    c.last_polled_at = now
    return PollTarget(c.id, c.kind, c.channel, dict(c.credentials), dict(c.settings), dict(c.cursor))


async def known_keys(uow: UnitOfWork, connector_id: uuid.UUID, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    rows = await uow.session.scalars(
        select(ConnectorReceipt.dedupe_key).where(
            ConnectorReceipt.connector_id == connector_id, ConnectorReceipt.dedupe_key.in_(keys)
        )
    )
    return set(rows)


async def finish(uow: UnitOfWork, connector_id: uuid.UUID, cursor: dict[str, Any] | None, error: str | None) -> None:
    """A poll that gave up (``error``) keeps the cursor where it was: the next one asks again."""
    c = await registry.connector(uow, connector_id, lock=True)
    c.last_poll_error = error[:1000] if error else None
    if error is None and cursor is not None:
        c.cursor = cursor


# For a poller (which opens no transaction of its own): each step committed on its own.
async def start(db: Database, connector_id: uuid.UUID, now: datetime, *, force: bool = False) -> PollTarget | None:
    return await db.run(committing(lambda uow: claim(uow, connector_id, now, force=force)))


async def seen(db: Database, connector_id: uuid.UUID, keys: list[str]) -> set[str]:
    return await db.run(lambda uow: known_keys(uow, connector_id, keys))


async def end(db: Database, connector_id: uuid.UUID, cursor: dict[str, Any] | None, error: str | None) -> None:
    await db.run(committing(lambda uow: finish(uow, connector_id, cursor, error)))


async def due_now(db: Database, kind: str, now: datetime) -> list[uuid.UUID]:
    return await db.run(lambda uow: due(uow, kind, now))
