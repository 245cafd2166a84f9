"""Idempotency keys with Stripe's semantics, for any mutating endpoint: the first response is the
answer for that key; the same key with another body is a 422; the same key while its first
request is still running is a 409.

A key lives in its principal's space (``idempotency_scope``). Claiming takes a transaction-scoped
advisory lock on (principal, key) and reads any stored answer, in one statement; completing
stores the answer in the same transaction as the work, so both commit or neither does. Intake
embeds the same two fragments (``claim_columns``, ``record``) in its own statements to keep its
round trips; everyone else calls ``claim`` and ``complete``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.db import fetch
from orchestrator.platform.errors import IdempotencyKeyInFlight, IdempotencyKeyReused


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A request that carried an ``Idempotency-Key``: the key is per principal."""

    principal: str
    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first answer given for a key."""

    fingerprint: str
    status_code: int
    body: bytes


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """The same JSON document in any key order or spacing is the same request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def lock_id(principal: str, key: str) -> int:
    """A signed 64-bit number for ``pg_try_advisory_xact_lock``: held while the key is in flight."""
    digest = hashlib.blake2b(f"{principal}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def idempotency_scope(actor: Actor) -> str:
    """Whose key space an ``Idempotency-Key`` lives in: a channel's (every key of that channel
    places the same channel's orders), else the API key's own. Never a key's display name, which
    any number of keys may share."""
    if actor.kind == Role.CHANNEL and actor.channel:
        return f"channel:{actor.channel}"
    return f"key:{actor.key_id or actor.label}"


def replay_of(claim: IdempotencyClaim, held: bool, stored: StoredAnswer | None) -> StoredAnswer | None:
    """What a claim found decides the request: the stored answer to replay, or None to go ahead.
    ``held``: this transaction got the key's lock (no other request with the key is running)."""
    if not held:
        raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still being processed")
    if stored is None:
        return None
    if stored.fingerprint != claim.fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body", field="Idempotency-Key"
        )
    return stored


def stored_answer(row: Any) -> StoredAnswer | None:
    """A ``row(fingerprint, status_code, response_body)`` read by ``claim_columns``."""
    return None if row is None else StoredAnswer(row[0], row[1], bytes(row[2]))


def claim_columns(*, lock: str, principal: str, key: str) -> str:
    """Two select-list columns: whether the key's lock was taken (always true with no key: a NULL
    principal), and the stored answer as ``row(fingerprint, status_code, response_body)`` or NULL.
    The arguments are the statement's parameter placeholders."""
    return (
        f"CASE WHEN {principal}::text IS NULL THEN true ELSE pg_try_advisory_xact_lock({lock}) END, "
        f"(SELECT row(fingerprint, status_code, response_body) FROM idempotency_keys "
        f"WHERE principal = {principal} AND key = {key})"
    )


def record(*, principal: str, key: str, fingerprint: str, status_code: str, body: str, now: str) -> str:
    """The statement storing an answer (none when the principal is NULL: the request had no key).
    The arguments are the statement's parameter placeholders; each is cast, so the statement
    types its parameters the same wherever it is embedded."""
    return (
        "INSERT INTO idempotency_keys (principal, key, fingerprint, status_code, response_body, created_at) "
        f"SELECT {principal}::text, {key}::text, {fingerprint}::text, {status_code}::int, {body}::bytea, "
        f"{now}::timestamptz "
        f"WHERE {principal}::text IS NOT NULL RETURNING 1"
    )


_CLAIM = f"SELECT {claim_columns(lock='$1', principal='$2', key='$3')}"
_COMPLETE = record(principal="$1", key="$2", fingerprint="$3", status_code="$4", body="$5", now="$6")


async def claim(session: AsyncSession, request: IdempotencyClaim) -> StoredAnswer | None:
    """Hold the key for this transaction: the first answer to replay, or None to do the work and
    then ``complete``. Raises ``IdempotencyKeyInFlight`` / ``IdempotencyKeyReused``."""
    held, stored = (
        await fetch(session, _CLAIM, lock_id(request.principal, request.key), request.principal, request.key)
    )[0]
    return replay_of(request, held, stored_answer(stored))


async def complete(
    session: AsyncSession, request: IdempotencyClaim, status_code: int, body: bytes, now: datetime
) -> None:
    """Store the answer given for the key, in the transaction that did the work."""
    await fetch(session, _COMPLETE, request.principal, request.key, request.fingerprint, status_code, body, now)


_REPLACE = (
    "UPDATE idempotency_keys SET status_code = $4, response_body = $5 "
    "WHERE principal = $1 AND key = $2 AND fingerprint = $3"
)
_FORGET = "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND fingerprint = $3"


async def replace(session: AsyncSession, request: IdempotencyClaim, status_code: int, body: bytes) -> None:
    """The final answer for a key whose request took more than one transaction (a card payment:
    the order is placed, the processor called, its outcome applied): the first transaction stored
    a provisional answer, the last one stores what the client is told."""
    await fetch(session, _REPLACE, request.principal, request.key, request.fingerprint, status_code, body)


async def forget(session: AsyncSession, request: IdempotencyClaim) -> None:
    """No answer is kept for the key: the request failed in a way worth retrying as it was."""
    await fetch(session, _FORGET, request.principal, request.key, request.fingerprint)
