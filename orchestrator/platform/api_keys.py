"""API keys: shown once at creation, stored as a digest, resolved to an Actor per request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime

from cachetools import TTLCache
from sqlalchemy import select

from orchestrator.catalogue.tables import Location
from orchestrator.platform.access_tables import ApiKey
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.db import Database, UnitOfWork
from orchestrator.platform.errors import InvalidRequest, NotFound

PREFIX = "oo"


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
        known = set((await uow.session.execute(select(Location.code).where(Location.code.in_(locations)))).scalars())
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
    await uow.commit()
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
        async with self._db.unit_of_work() as uow:
            found = await uow.session.scalar(
                select(ApiKey).where(ApiKey.secret_digest == key, ApiKey.revoked_at.is_(None))
            )
        actor = actor_of(found) if found else None
        self._cache[key] = actor
        return actor
