"""Receipts: every delivery a connector got, kept raw, then processed into the service's use cases.

A delivery is stored in a transaction of its own before anything is done with it, so the platform
gets its 2xx whatever processing comes to; processing runs after, in its own transactions
(placing an order is intake's), and writes the outcome last. What a crash leaves ``pending``
the worker's sweep processes again; every step is idempotent (intake returns the order already
placed under the channel reference; an applied receipt is never processed again).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from orchestrator.connections import registry
from orchestrator.connections.model import REPLAYABLE, Outcome
from orchestrator.connections.tables import Connector, ConnectorReceipt
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.payments.gateway import PaymentGateway
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.errors import Conflict, NotFound
from orchestrator.platform.pagination import Key, Keyset, Page
from orchestrator.settings import Settings
from orchestrator.webhooks.model import RECEIPT_UNMAPPED
from orchestrator.webhooks.service_events import announce

log = structlog.get_logger("orchestrator.connectors")
RECEIPT_NOT_FOUND = "receipt not found"
RECEIPTS = Keyset(
    Key(ConnectorReceipt.received_at, datetime, descending=True), Key(ConnectorReceipt.id, uuid.UUID, descending=True)
)
# A pending receipt younger than this is probably being processed by the request that stored it.
SWEEP_AFTER = timedelta(seconds=30)
SWEEP_BATCH = 50


@dataclass(frozen=True)
class Delivery:
    """One delivery as received: ``headers`` already without the signature."""

    connector_id: uuid.UUID
    topic: str
    dedupe_key: str
    headers: dict[str, str]
    body: bytes
    outcome: Outcome = Outcome.PENDING
    detail: str | None = None


@dataclass(frozen=True)
class Result:
    """What processing came to, written onto the receipt."""

    outcome: Outcome
    detail: str | None = None
    unmapped: tuple[str, ...] = ()
    order_id: uuid.UUID | None = None
    resource_id: str | None = None
    resource_updated_at: datetime | None = None


@dataclass(frozen=True)
class Processing:
    """What processing a receipt needs (intake's flow, the clock); ``handlers``: per connector kind."""

    db: Database
    clock: Clock
    lifecycle: LifecycleSettings
    settings: Settings
    gateway: PaymentGateway
    handlers: dict[str, Handler] = field(default_factory=dict)


Handler = Callable[[Processing, Connector, ConnectorReceipt], Awaitable[Result]]


async def secret_of(uow: UnitOfWork, connector_id: uuid.UUID, kind: str, key: str) -> str | None:
    """The connector's signing secret, or None when no connector of ``kind`` has that id."""
    found = await uow.session.scalar(select(Connector).where(Connector.id == connector_id, Connector.kind == kind))
    secret = found.credentials.get(key) if found is not None else None
    return secret if isinstance(secret, str) else None


async def store(uow: UnitOfWork, delivery: Delivery, now: datetime) -> ConnectorReceipt:
    """The delivery as a receipt; a second delivery of the same event is stored as a ``duplicate``."""
    values: dict[str, Any] = {
        "connector_id": delivery.connector_id,
        "topic": delivery.topic[:100],
        "dedupe_key": delivery.dedupe_key[:200],
        "headers": delivery.headers,
        "body": delivery.body,
        "detail": delivery.detail,
        "unmapped": [],
        "attempts": 0,
        "received_at": now,
    }
    session = uow.session
    first = await session.scalar(
        insert(ConnectorReceipt)
        .values(id=uuid.uuid4(), outcome=delivery.outcome.value, **values)
        .on_conflict_do_nothing(
            index_elements=["connector_id", "dedupe_key"], index_where=ConnectorReceipt.duplicate_of.is_(None)
        )
        .returning(ConnectorReceipt.id)
    )
    if first is None:
        original = await session.scalar(
            select(ConnectorReceipt.id).where(
                ConnectorReceipt.connector_id == delivery.connector_id,
                ConnectorReceipt.dedupe_key == values["dedupe_key"],
                ConnectorReceipt.duplicate_of.is_(None),
            )
        )
        first = await session.scalar(
            insert(ConnectorReceipt)
            .values(
                id=uuid.uuid4(),
                outcome=Outcome.DUPLICATE.value,
                duplicate_of=original,
                processed_at=now,
                **{**values, "detail": f"a repeat of receipt {original}"},
            )
            .returning(ConnectorReceipt.id)
        )
    return await session.get_one(ConnectorReceipt, first)


async def process(flow: Processing, receipt_id: uuid.UUID) -> Outcome:
    """Process a receipt that may be (again); its outcome. A failure leaves it ``pending``."""
    claimed = await flow.db.run(committing(lambda uow: _claim(uow, receipt_id)))
    if claimed is None:
        receipt = await flow.db.run(lambda uow: uow.session.get_one(ConnectorReceipt, receipt_id))
        return Outcome(receipt.outcome)
    connector, receipt = claimed
    handler = flow.handlers.get(connector.kind)
    try:
        if handler is None:
            result = Result(Outcome.IGNORED, detail=f"{connector.kind} receipts are not processed yet")
        else:
            result = await handler(flow, connector, receipt)
    except Exception as exc:
        failure = f"processing failed: {type(exc).__name__}"
        log.warning("connector receipt not processed", receipt_id=str(receipt_id), error=failure)
        await flow.db.run(committing(lambda uow: _failed(uow, receipt_id, failure)))
        raise
    return await flow.db.run(committing(lambda uow: _record(uow, receipt_id, result, flow.clock.now())))


async def _claim(uow: UnitOfWork, receipt_id: uuid.UUID) -> tuple[Connector, ConnectorReceipt] | None:
    receipt = await uow.session.scalar(
        select(ConnectorReceipt).where(ConnectorReceipt.id == receipt_id).with_for_update()
    )
    if receipt is None:
        raise NotFound(RECEIPT_NOT_FOUND)
    if Outcome(receipt.outcome) not in REPLAYABLE:
        return None
    receipt.attempts += 1
    return await registry.connector(uow, receipt.connector_id), receipt


async def _failed(uow: UnitOfWork, receipt_id: uuid.UUID, detail: str) -> None:
    await uow.session.execute(
        update(ConnectorReceipt)
        .where(ConnectorReceipt.id == receipt_id, ConnectorReceipt.outcome.in_([o.value for o in REPLAYABLE]))
        .values(outcome=Outcome.PENDING.value, detail=detail)
    )


async def _record(uow: UnitOfWork, receipt_id: uuid.UUID, result: Result, now: datetime) -> Outcome:
    """Written only over an outcome that may still change: two processings of one receipt (the
    request and the sweep) never turn an applied receipt into anything else."""
    written = await uow.session.scalar(
        update(ConnectorReceipt)
        .where(ConnectorReceipt.id == receipt_id, ConnectorReceipt.outcome.in_([o.value for o in REPLAYABLE]))
        .values(
            outcome=result.outcome.value,
            detail=result.detail[:1000] if result.detail else None,
            unmapped=list(result.unmapped),
            order_id=result.order_id,
            resource_id=result.resource_id,
            resource_updated_at=result.resource_updated_at,
            processed_at=now,
        )
        .returning(ConnectorReceipt.outcome)
    )
    if written is None:
        current = await uow.session.scalar(select(ConnectorReceipt.outcome).where(ConnectorReceipt.id == receipt_id))
        return Outcome(current)
    if result.outcome is Outcome.UNMAPPED:
        log.info("connector receipt unmapped", receipt_id=str(receipt_id), unmapped=list(result.unmapped))
        await _announce_unmapped(uow, receipt_id, list(result.unmapped), now)
    return result.outcome


async def _announce_unmapped(uow: UnitOfWork, receipt_id: uuid.UUID, unmapped: list[str], now: datetime) -> None:
    """``connector.receipt_unmapped`` to the admin's subscriptions that take it: someone fixes the
    map and replays the receipt."""
    row = (
        await uow.session.execute(
            select(Connector.id, Connector.name, Connector.kind, ConnectorReceipt.topic)
            .join(ConnectorReceipt, ConnectorReceipt.connector_id == Connector.id)
            .where(ConnectorReceipt.id == receipt_id)
        )
    ).one()
    data = {
        "connector_id": str(row[0]),
        "connector_name": row[1],
        "kind": row[2],
        "receipt_id": str(receipt_id),
        "topic": row[3],
        "unmapped": unmapped,
        "replay": f"/v1/connectors/{row[0]}/receipts/{receipt_id}/replay",
    }
    await announce(uow.session, RECEIPT_UNMAPPED, data, now, channel=None)


async def replay(flow: Processing, connector_id: uuid.UUID, receipt_id: uuid.UUID) -> ConnectorReceipt:
    """Process a receipt again (after its connector's maps were fixed); 409 for one whose outcome
    is final (applied, duplicate, stale, ignored)."""
    receipt = await flow.db.run(lambda uow: receipt_of(uow, connector_id, receipt_id))
    if Outcome(receipt.outcome) not in REPLAYABLE:
        raise Conflict(
            f"a receipt that is {receipt.outcome} is not processed again",
            outcome=receipt.outcome,
            receipt=str(receipt.id),
        )
    try:
        await process(flow, receipt_id)
    except Exception as exc:  # noqa: BLE001 - the receipt says what went wrong; the sweep retries it
        log.warning("replay failed", receipt_id=str(receipt_id), error=type(exc).__name__)
    return await flow.db.run(lambda uow: receipt_of(uow, connector_id, receipt_id))


async def sweep(flow: Processing) -> int:
    """Receipts left pending (a crash, an outage) for ``SWEEP_AFTER``: processed again."""
    before = flow.clock.now() - SWEEP_AFTER
    pending = await flow.db.run(
        lambda uow: uow.session.scalars(
            select(ConnectorReceipt.id)
            .where(ConnectorReceipt.outcome == Outcome.PENDING.value, ConnectorReceipt.received_at < before)
            .order_by(ConnectorReceipt.received_at)
            .limit(SWEEP_BATCH)
        )
    )
    done = 0
    for receipt_id in list(pending):
        try:
            await process(flow, receipt_id)
            done += 1
        except Exception as exc:  # noqa: BLE001 - one bad receipt must not stop the others
            log.warning("sweep could not process a receipt", receipt_id=str(receipt_id), error=type(exc).__name__)
    return done


async def receipt_of(uow: UnitOfWork, connector_id: uuid.UUID, receipt_id: uuid.UUID) -> ConnectorReceipt:
    receipt = await uow.session.scalar(
        select(ConnectorReceipt).where(ConnectorReceipt.id == receipt_id, ConnectorReceipt.connector_id == connector_id)
    )
    if receipt is None:
        raise NotFound(RECEIPT_NOT_FOUND)
    return receipt


async def list_receipts(
    uow: UnitOfWork, connector_id: uuid.UUID, outcome: Outcome | None, cursor: str | None, limit: int
) -> Page[ConnectorReceipt]:
    await registry.connector(uow, connector_id)
    query = select(ConnectorReceipt).where(ConnectorReceipt.connector_id == connector_id)
    if outcome is not None:
        query = query.where(ConnectorReceipt.outcome == outcome.value)
    rows = (await uow.session.execute(RECEIPTS.query(query, cursor, limit))).all()
    return RECEIPTS.page(rows, limit)


async def signing_secret(db: Database, connector_id: uuid.UUID, kind: str, key: str) -> str | None:
    """For a receiver (which opens no transaction of its own): ``secret_of`` in a read."""
    return await db.run(lambda uow: secret_of(uow, connector_id, kind, key))


async def receive(db: Database, delivery: Delivery, now: datetime) -> ConnectorReceipt:
    """For a receiver: the delivery stored (``store``) in a transaction of its own, committed."""
    return await db.run(committing(lambda uow: store(uow, delivery, now)))


async def take_in(flow: Processing, delivery: Delivery) -> tuple[ConnectorReceipt, Outcome]:
    """For a receiver: the delivery stored, then processed if it is to be. What processing comes
    to is the receipt's outcome, never the platform's answer: a failure leaves it ``pending`` for
    the worker's sweep (the platform got its 200 once the receipt was stored)."""
    receipt = await receive(flow.db, delivery, flow.clock.now())
    outcome = Outcome(receipt.outcome)
    if outcome is Outcome.PENDING:
        try:
            outcome = await process(flow, receipt.id)
        except Exception as exc:  # noqa: BLE001 - kept pending; the worker's sweep processes it again
            log.warning("connector receipt left pending", receipt_id=str(receipt.id), error=type(exc).__name__)
    return receipt, outcome
