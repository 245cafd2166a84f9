"""A customer's identities: attached one at a time, each owned by one customer, found by exact
value. Lookups that verify a customer by email or phone (an order list filter, the guest lookup,
the store counter) go through them, so an address used on an order still works after the
customer who used it was merged into another."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.customers.model import Identity
from orchestrator.customers.tables import CustomerIdentity
from orchestrator.platform.db import fetch
from orchestrator.platform.errors import IdentityTaken


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    kind: str
    value: str
    created_at: datetime


_ATTACH = """
WITH attached AS (
    INSERT INTO customer_identities (kind, value, customer_id, created_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (kind, value) DO NOTHING
    RETURNING customer_id
)
SELECT customer_id, true FROM attached
UNION ALL
SELECT customer_id, false FROM customer_identities
WHERE kind = $1 AND value = $2 AND NOT EXISTS (SELECT 1 FROM attached)
"""
# A customer without a primary email (or phone) takes the one attached.
# (Unless a customer row written before identities existed holds it as its primary.)
_PRIMARY = {
    "email": "UPDATE customers SET email = $2 WHERE id = $1 AND email IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM customers WHERE email = $2)",
    "phone": "UPDATE customers SET phone = $2 WHERE id = $1 AND phone IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM customers WHERE phone = $2)",
}


async def attach(session: AsyncSession, customer_id: uuid.UUID, identity: Identity, now: datetime) -> bool:
    """Attach ``identity``: ``True`` when new, ``False`` when the customer had it already;
    ``IdentityTaken`` when another customer owns it."""
    kind, value = identity
    rows = await fetch(session, _ATTACH, kind, value, customer_id, now)
    owner, created = rows[0]
    if owner != customer_id:
        raise IdentityTaken(f"this {kind} belongs to another customer", kind=kind, customer_id=str(owner))
    if created and kind in _PRIMARY:
        await fetch(session, _PRIMARY[kind], customer_id, value)
    return created


async def identities_of(session: AsyncSession, customer_id: uuid.UUID) -> list[IdentityRecord]:
    rows = await fetch(
        session,
        "SELECT kind, value, created_at FROM customer_identities WHERE customer_id = $1"
        " ORDER BY created_at, kind, value",
        customer_id,
    )
    return [IdentityRecord(*r) for r in rows]


async def owner_of_all(session: AsyncSession, identities: list[Identity]) -> uuid.UUID | None:
    """The one customer owning every one of ``identities`` (exact values), if any."""
    rows = await fetch(
        session,
        """SELECT i.customer_id FROM customer_identities i
           JOIN unnest($1::text[], $2::text[]) AS q(kind, value) ON i.kind = q.kind AND i.value = q.value
           GROUP BY i.customer_id HAVING count(*) = $3""",
        [k for k, _ in identities],
        [v for _, v in identities],
        len(identities),
    )
    return rows[0][0] if rows else None


def owns(customer_id: ColumnElement[Any], kind: str, value: str | None) -> ColumnElement[bool]:
    """``customer_id`` (a column) owns the identity: for a query filtering by an email or phone."""
    return customer_id.in_(
        select(CustomerIdentity.customer_id).where(CustomerIdentity.kind == kind, CustomerIdentity.value == value)
    )


def offered_or_primary(
    customer_id: ColumnElement[Any], kind: str, offered: str | None, primary: ColumnElement[Any]
) -> ColumnElement[Any]:
    """The ``offered`` value when ``customer_id`` owns it as an identity of ``kind``, else the
    customer's ``primary`` one: what a verification compares the offered value with, so any of
    the customer's emails (or phones) verifies, and only theirs."""
    owned = (
        select(CustomerIdentity.value)
        .where(
            and_(
                CustomerIdentity.customer_id == customer_id,
                CustomerIdentity.kind == kind,
                CustomerIdentity.value == offered,
            )
        )
        .scalar_subquery()
    )
    return func.coalesce(owned, primary)
