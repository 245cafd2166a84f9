"""API keys: shown once at creation, stored as a digest, resolved to an Actor per request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime

from cachetools import TTLCache
from sqlalchemy import column, select, table
from sqlmodel import Field, SQLModel

from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.columns import created_at, text_array, timestamp
from orchestrator.platform.db import Database, UnitOfWork
from orchestrator.platform.errors import InvalidRequest, NotFound

PREFIX = "oo"

# The catalogue's locations, by code only: the platform names the table rather than import the
# catalogue (which builds on the platform).
_LOCATIONS = table("locations", column("code"))


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=120)
    # SHA-256 of a 256-bit random secret: a slow hash adds nothing at that entropy.
    secret_digest: str = Field(unique=True, max_length=64)
    prefix: str = Field(max_length=16)
    role: str = Field(max_length=20)
    channel: str | None = Field(default=None, max_length=80)
    location_codes: list[str] = text_array()
    created_at: datetime = created_at()
    revoked_at: datetime | None = timestamp()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(role: Role) -> str:
    return f"{PREFIX}_{role.value[0]}_{secrets.token_urlsafe(32)}"


async def create_key(
    uow: UnitOfWork,
    *,
    role: Role,
    name: str,
    channel: str | None = None,
    locations: list[str] | None = None,
    now: datetime,
) -> tuple[str, ApiKey]:
    """Returns the token (the only time it exists in clear) and the stored key."""
    locations = sorted(set(locations or []))
    if role is Role.CHANNEL and not channel:
        raise InvalidRequest("a channel key needs its channel name", field="channel")
    if role is Role.STAFF:
        if not locations:
            raise InvalidRequest("a staff key needs at least one location", field="locations")
        known = set(await uow.session.scalars(select(_LOCATIONS.c.code).where(_LOCATIONS.c.code.in_(locations))))
        missing = [c for c in locations if c not in known]
        if missing:
            raise NotFound(f"unknown locations: {', '.join(missing)}")
    token = new_token(role)
    key = ApiKey(
        name=name,
        secret_digest=digest(token),
        prefix=token[:10],
        role=role.value,
        channel=channel if role is Role.CHANNEL else None,
        location_codes=locations if role is Role.STAFF else [],
        created_at=now,
    )
    uow.session.add(key)
    return token, key


async def working_tokens(uow: UnitOfWork, tokens: Iterable[str]) -> set[str]:
    """The tokens among ``tokens`` that are keys of this database and not revoked."""
    by_digest = {digest(t): t for t in tokens}
    found = await uow.session.scalars(
        select(ApiKey.secret_digest).where(ApiKey.secret_digest.in_(list(by_digest)), ApiKey.revoked_at.is_(None))
    )
    return {by_digest[d] for d in found}


def actor_of(key: ApiKey) -> Actor:
    return Actor(
        kind=key.role, id=key.name, channel=key.channel, locations=frozenset(key.location_codes), key_id=str(key.id)
    )


class KeyResolver:
    """Token → Actor, with a short cache so a busy channel does not cost a query per request.
    A revoked key stops working within ``ttl`` seconds."""

    def __init__(self, db: Database, admin_token: str | None, ttl: float = 10.0) -> None:
        self._db = db
        self._admin = admin_token
        self._cache: TTLCache[str, Actor | None] = TTLCache(maxsize=10_000, ttl=ttl)

    async def resolve(self, token: str) -> Actor | None:
        if self._admin and hmac.compare_digest(token.encode(), self._admin.encode()):
            return Actor(kind=Role.ADMIN.value, id="bootstrap", key_id="bootstrap")
        key = digest(token)
        if key in self._cache:
            return self._cache[key]
        query = select(ApiKey).where(ApiKey.secret_digest == key, ApiKey.revoked_at.is_(None))
        found = await self._db.run(lambda uow: uow.session.scalar(query))
        actor = actor_of(found) if found else None
        self._cache[key] = actor
        return actor
