"""Every event the service wrote, checked against the catalogue: each timeline row's data, and
each outbox message (its envelope, and its data with the private keys while it waits to be
relayed, without them once published)."""

from __future__ import annotations

from sqlalchemy import text

from orchestrator.platform.db import Database
from orchestrator.platform.events import EventMismatch, check_event, check_outbox_payload


async def event_violations(db: Database) -> list[str]:
    out = []
    async with db.unit_of_work() as uow:
        timeline = (await uow.session.execute(text("SELECT seq, type, data FROM order_events ORDER BY seq"))).all()
        outbox = (
            await uow.session.execute(
                text("SELECT id, type, payload, published_at IS NOT NULL FROM outbox ORDER BY id")
            )
        ).all()
    for seq, type_, data in timeline:
        try:
            check_event(type_, data)
        except EventMismatch as exc:
            out.append(f"timeline event {seq}: {exc}")
    for id_, type_, payload, published in outbox:
        try:
            if payload.get("type") != type_:
                raise EventMismatch(f"the row says {type_}, its payload {payload.get('type')}")
            check_outbox_payload(payload, published=published)
        except EventMismatch as exc:
            out.append(f"outbox message {id_}: {exc}")
    return out
