"""Managing API keys after creation: list, revoke, rotate (a new secret, the old one kept alive
for an overlap so a client can switch without an outage)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from orchestrator.platform.actors import Role
from orchestrator.platform.api_keys import ApiKey, digest, new_token
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import Conflict, NotFound
from orchestrator.platform.pagination import Key, Keyset, Page

NEWEST_KEYS = Keyset(Key(ApiKey.created_at, datetime, descending=True), Key(ApiKey.id, uuid.UUID, descending=True))
KEY_NOT_FOUND = "API key not found"
# A rotation's overlap is for a deploy to pick the new secret up, not a second permanent secret.
MAX_OVERLAP = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class KeyFilter:
    role: str | None = None
    channel: str | None = None
    include_revoked: bool = False
    cursor: str | None = None
    limit: int = 50


async def list_keys(uow: UnitOfWork, flt: KeyFilter) -> Page[ApiKey]:
    query = select(ApiKey)
    if flt.role:
        query = query.where(ApiKey.role == flt.role)
    if flt.channel:
        query = query.where(ApiKey.channel == flt.channel)
    if not flt.include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    rows = (await uow.session.execute(NEWEST_KEYS.query(query, flt.cursor, flt.limit))).all()
    return NEWEST_KEYS.page(rows, flt.limit)


async def _locked(uow: UnitOfWork, key_id: uuid.UUID) -> ApiKey:
    key = await uow.session.scalar(select(ApiKey).where(ApiKey.id == key_id).with_for_update())
    if key is None:
        raise NotFound(KEY_NOT_FOUND)
    return key


async def revoke(uow: UnitOfWork, key_id: uuid.UUID, now: datetime) -> ApiKey:
    """Idempotent: a revoked key stays revoked at its first revocation's time."""
    key = await _locked(uow, key_id)
    if key.revoked_at is None:
        key.revoked_at = now
    return key


async def rotate(uow: UnitOfWork, key_id: uuid.UUID, overlap: timedelta, now: datetime) -> tuple[str, ApiKey]:
    """A new secret for the key; the current one keeps working for ``overlap`` (a secret from an
    earlier rotation still in its overlap stops at once: one previous secret at a time)."""
    key = await _locked(uow, key_id)
    if key.revoked_at is not None:
        raise Conflict("a revoked key cannot be rotated; create a new one", key_id=str(key_id))
    token = new_token(Role(key.role))
    key.previous_digest = key.secret_digest
    key.previous_expires_at = now + overlap
    key.secret_digest = digest(token)
    key.prefix = token[:10]
    key.rotated_at = now
    return token, key
