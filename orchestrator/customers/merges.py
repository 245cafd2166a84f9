"""Merging two customers who are one person: everything the merged one had moves to the survivor
(orders, identities, interactions, merge suggestions), the merged row stays, pointing at the
survivor (``merged_into``), so an old id still finds them. Run inside the caller's transaction:
the admin's merge (``customers/records.merge``) or intake's auto-merge."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.customers.model import CustomerRecord, MergeConflict, MergeSide, merge_needed, suggestion_pairs
from orchestrator.platform.db import RetryOnFreshRead, fetch

# The one lock order for customer rows: by id (two merges of one pair, in either direction, or a
# merge and an auto-merging intake, queue instead of deadlocking).
_LOCK = "SELECT id, merged_into FROM customers WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"

# Orders reference their customer; a merge re-points them (their history, events, stays theirs).
_MOVE = """
WITH orders_moved AS (
    UPDATE orders SET customer_id = $1 WHERE customer_id = $2 RETURNING 1
), identities_moved AS (
    UPDATE customer_identities SET customer_id = $1 WHERE customer_id = $2 RETURNING 1
), interactions_moved AS (
    UPDATE customer_interactions SET customer_id = $1 WHERE customer_id = $2 RETURNING 1
), earlier_merges AS (
    UPDATE customers SET merged_into = $1 WHERE merged_into = $2 RETURNING 1
)
SELECT (SELECT count(*) FROM orders_moved)
"""
# The pair's own suggestion is settled; one of the merged customer with a third that the survivor
# already has with that third is a duplicate.
_DROP_SUGGESTIONS = """
DELETE FROM customer_merge_suggestions s
WHERE (s.first_id = least($1::uuid, $2::uuid) AND s.second_id = greatest($1::uuid, $2::uuid))
   OR ((s.first_id = $2 OR s.second_id = $2) AND EXISTS (
        SELECT 1 FROM customer_merge_suggestions t
        WHERE t.first_id = least($1::uuid, CASE WHEN s.first_id = $2 THEN s.second_id ELSE s.first_id END)
          AND t.second_id = greatest($1::uuid, CASE WHEN s.first_id = $2 THEN s.second_id ELSE s.first_id END)))
"""
_REPOINT_SUGGESTIONS = """
UPDATE customer_merge_suggestions s
SET first_id = least($1::uuid, CASE WHEN s.first_id = $2 THEN s.second_id ELSE s.first_id END),
    second_id = greatest($1::uuid, CASE WHEN s.first_id = $2 THEN s.second_id ELSE s.first_id END)
WHERE s.first_id = $2 OR s.second_id = $2
"""
# The merged row gives up its primary email and phone first (the unique indexes), then the
# survivor takes what it lacks: primary email, phone, name, and the preferred contact.
_RETIRE = """
UPDATE customers m SET merged_into = $1, merged_at = $3, email = NULL, phone = NULL
FROM customers old WHERE m.id = $2 AND old.id = m.id
RETURNING old.email, old.phone, old.name, old.preferred_channel, old.preferred_identity
"""
_INHERIT = """
UPDATE customers SET email = coalesce(email, $2), phone = coalesce(phone, $3), name = coalesce(name, $4),
    preferred_channel = CASE WHEN preferred_channel IS NULL THEN $5 ELSE preferred_channel END,
    preferred_identity = CASE WHEN preferred_channel IS NULL THEN $6 ELSE preferred_identity END
WHERE id = $1
"""


class CustomersMergedMeanwhile(RetryOnFreshRead):
    """An order's customers were merged by someone else between intake's read and its merge."""


async def lock_customers(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, MergeSide]:
    """Lock the customers' rows (in the one order) and say which of them were merged into whom."""
    rows = await fetch(session, _LOCK, sorted(set(ids)))
    return {r[0]: MergeSide(r[0], r[1]) for r in rows}


async def merge_customers(session: AsyncSession, survivor_id: uuid.UUID, merged_id: uuid.UUID, now: datetime) -> bool:
    """Merge ``merged_id`` into ``survivor_id``; ``False`` when it already was (idempotent).
    ``NotFound``, ``InvalidRequest`` (itself) or ``MergeConflict`` (merged elsewhere) otherwise."""
    sides = await lock_customers(session, [survivor_id, merged_id])
    if not merge_needed(sides.get(survivor_id), sides.get(merged_id)):
        return False
    await fetch(session, _MOVE, survivor_id, merged_id)
    await fetch(session, _DROP_SUGGESTIONS, survivor_id, merged_id)
    await fetch(session, _REPOINT_SUGGESTIONS, survivor_id, merged_id)
    retired = (await fetch(session, _RETIRE, survivor_id, merged_id, now))[0]
    await fetch(session, _INHERIT, survivor_id, *retired)
    return True


async def merged_or_suggested(
    session: AsyncSession,
    who: CustomerRecord,
    others: list[tuple[uuid.UUID, str, str]],
    auto_merge: bool,
    now: datetime,
) -> tuple[CustomerRecord, list[dict]]:
    """The customer an order attaches to, and the merge suggestions to record with it (intake's
    write does, ``sql.record_suggestions``) for ``others``, the customers owning the order's other
    identities: none when ``auto_merge`` merged them into ``who`` at once (uncommon: these extra
    round trips are only for such an order)."""
    if not others:
        return who, []
    if not auto_merge:
        return who, suggestion_pairs(who.id, others)
    for other in dict.fromkeys(o[0] for o in others):
        try:
            await merge_customers(session, who.id, other, now)
        except MergeConflict:  # one of them was merged since intake read them: read them again
            raise CustomersMergedMeanwhile() from None
    row = (await fetch(session, "SELECT id, email, phone, name FROM customers WHERE id = $1", who.id))[0]
    return CustomerRecord(*row), []
