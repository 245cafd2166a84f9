"""The customer use cases that touch only customers: read one, name them, choose how they are
contacted, record an interaction, list merge suggestions (attaching an identity:
``identities.attach``; merging: ``merges.merge_customers``). Each runs in the caller's
transaction (the entry point opens it with ``db.run``)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.customers import identities
from orchestrator.customers.model import (
    CUSTOMER_NOT_FOUND,
    INTERACTION_KINDS,
    CustomerMerged,
    Identity,
    check_preferred_contact,
)
from orchestrator.platform.db import fetch
from orchestrator.platform.errors import InvalidRequest, NotFound


@dataclass(frozen=True, slots=True)
class CustomerRow:
    id: uuid.UUID
    email: str | None
    phone: str | None
    name: str | None
    preferred_channel: str | None
    preferred_identity: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SuggestionRecord:
    id: uuid.UUID
    customer_id: uuid.UUID  # the other customer of the pair
    identities: list[list[str]]
    order_id: uuid.UUID | None
    created_at: datetime


class InteractionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An interaction as recorded; the API answers it as it is."""

    id: uuid.UUID
    kind: str
    channel: str
    summary: str
    order_id: uuid.UUID | None
    agent: str | None
    recorded_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewInteraction:
    kind: str
    channel: str
    summary: str
    order_id: uuid.UUID | None = None
    agent: str | None = None


_CUSTOMER = """SELECT id, email, phone, name, preferred_channel, preferred_identity, created_at, merged_into
FROM customers WHERE id = $1"""


async def load_customer(session: AsyncSession, customer_id: uuid.UUID, *, lock: bool = False) -> CustomerRow:
    """The customer; ``NotFound``, or ``CustomerMerged`` naming the survivor of a merged-away id.
    ``lock``: for a write, which a merge (it locks both customers first) then waits for, or which
    waits for the merge and then finds the customer merged."""
    rows = await fetch(session, _CUSTOMER + (" FOR KEY SHARE" if lock else ""), customer_id)
    if not rows:
        raise NotFound(CUSTOMER_NOT_FOUND)
    *fields, merged_into = rows[0]
    if merged_into is not None:
        raise CustomerMerged(customer_id, merged_into)
    return CustomerRow(*fields)


async def rename(session: AsyncSession, customer_id: uuid.UUID, name: str) -> None:
    await fetch(session, "UPDATE customers SET name = $2 WHERE id = $1", customer_id, name.strip() or None)


async def prefer_contact(session: AsyncSession, customer_id: uuid.UUID, contact: tuple[str, str] | None) -> None:
    """Notifications go to ``(channel, identity)``, one of the customer's own; ``None``: to the
    channel they last ordered on."""
    if contact is not None:
        owned: list[Identity] = [(i.kind, i.value) for i in await identities.identities_of(session, customer_id)]
        check_preferred_contact(contact[0], contact[1], owned)
    channel, identity = contact if contact is not None else (None, None)
    await fetch(
        session,
        "UPDATE customers SET preferred_channel = $2, preferred_identity = $3 WHERE id = $1",
        customer_id,
        channel,
        identity,
    )


async def suggestions_of(session: AsyncSession, customer_id: uuid.UUID) -> list[SuggestionRecord]:
    rows = await fetch(
        session,
        """SELECT id, CASE WHEN first_id = $1 THEN second_id ELSE first_id END, identities, order_id, created_at
           FROM customer_merge_suggestions WHERE first_id = $1 OR second_id = $1 ORDER BY created_at DESC, id""",
        customer_id,
    )
    return [SuggestionRecord(r[0], r[1], _json(r[2]), r[3], r[4]) for r in rows]


async def record_interaction(
    session: AsyncSession, customer_id: uuid.UUID, new: NewInteraction, recorded_by: str, now: datetime
) -> InteractionRecord:
    """What was said, for the next agent; an order it names must be the customer's."""
    if new.kind not in INTERACTION_KINDS:
        raise InvalidRequest(f"kind is one of {', '.join(sorted(INTERACTION_KINDS))}", field="kind")
    if new.order_id is not None:
        mine = await fetch(
            session, "SELECT 1 FROM orders WHERE id = $1 AND customer_id = $2", new.order_id, customer_id
        )
        if not mine:
            raise InvalidRequest("the order is not this customer's", field="order_id")
    record = InteractionRecord(
        id=uuid.uuid4(),
        kind=new.kind,
        channel=new.channel,
        summary=new.summary,
        order_id=new.order_id,
        agent=new.agent,
        recorded_by=recorded_by,
        created_at=now,
    )
    await fetch(
        session,
        """INSERT INTO customer_interactions (id, customer_id, kind, channel, summary, order_id, agent, recorded_by,
                                              created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        record.id,
        customer_id,
        record.kind,
        record.channel,
        record.summary,
        record.order_id,
        record.agent,
        record.recorded_by,
        record.created_at,
    )
    return record


def _json(value: object) -> list[list[str]]:
    return json.loads(value) if isinstance(value, str) else value  # type: ignore[return-value]
