"""API keys: shown once at creation, stored as a digest, resolved to an Actor per request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

from cachetools import TTLCache
from sqlalchemy import column, select, table, text
from sqlmodel import Field, SQLModel

from orchestrator.platform import scopes
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.clock import Clock
from orchestrator.platform.columns import created_at, text_array, timestamp
from orchestrator.platform.db import Database, UnitOfWork, committing
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
    # What the key may do (``platform/scopes.py``): its role's defaults unless chosen at creation.
    scopes: list[str] = text_array()
    created_at: datetime = created_at()
    revoked_at: datetime | None = timestamp()
    # Rotation keeps the key (id, name, scopes) and gives it a new secret; the old one keeps
    # working until ``previous_expires_at`` so clients can switch without an outage.
    previous_digest: str | None = Field(default=None, unique=True, max_length=64)
    previous_expires_at: datetime | None = timestamp()
    rotated_at: datetime | None = timestamp()
    # Written at most once per cache period per process (``KeyResolver``), not per request.
    last_used_at: datetime | None = timestamp()


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
    scopes: Iterable[str] | None = None,
    now: datetime,
) -> tuple[str, ApiKey]:
    """Returns the token (the only time it exists in clear) and the stored key. ``scopes``: the
    role's defaults unless given; an admin key holds every scope."""
    locations = sorted(set(locations or []))
    chosen = _chosen_scopes(role, channel, scopes)
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
        scopes=chosen,
        created_at=now,
    )
    uow.session.add(key)
    return token, key


def _chosen_scopes(role: Role, channel: str | None, asked: Iterable[str] | None) -> list[str]:
    if asked is None or role is Role.ADMIN:
        return sorted(scopes.defaults(role, channel) if role is not Role.ADMIN else scopes.ALL)
    allowed = scopes.grantable(role, channel)
    wanted = set(asked)
    refused = sorted(wanted - set(allowed))
    if refused:
        raise InvalidRequest(
            f"a {role.value} key for {channel or 'its stores'} may not hold {', '.join(refused)}; "
            f"allowed: {', '.join(sorted(allowed))}",
            field="scopes",
        )
    return sorted(wanted)


async def working_tokens(uow: UnitOfWork, tokens: Iterable[str]) -> set[str]:
    """The tokens among ``tokens`` that are keys of this database and not revoked."""
    by_digest = {digest(t): t for t in tokens}
    found = await uow.session.scalars(
        select(ApiKey.secret_digest).where(ApiKey.secret_digest.in_(list(by_digest)), ApiKey.revoked_at.is_(None))
    )
    return {by_digest[d] for d in found}


# The key a token opens (its current secret, or its previous one during a rotation's overlap),
# its last use written when more than ``_TOUCH`` old: one round trip, a write a minute at most.
_RESOLVE = text(
    """
WITH k AS (
    SELECT id, name, role, channel, location_codes, scopes, last_used_at,
           CASE WHEN secret_digest = :digest THEN NULL ELSE previous_expires_at END AS expires_at
    FROM api_keys
    WHERE (secret_digest = :digest OR previous_digest = :digest) AND revoked_at IS NULL
), touched AS (
    UPDATE api_keys a SET last_used_at = :now FROM k
    WHERE a.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < :stale)
    RETURNING 1
)
SELECT id, name, role, channel, location_codes, scopes, expires_at, (SELECT count(*) FROM touched) FROM k
"""
)
_TOUCH = timedelta(minutes=1)


class KeyResolver:
    """Token → Actor, with a short cache so a busy channel does not cost a query per request.
    A revoked key stops working within ``ttl`` seconds (at once in the process that revoked it);
    a rotated-away secret at the end of its overlap, read on ``clock``."""

    def __init__(self, db: Database, admin_token: str | None, clock: Clock, ttl: float = 10.0) -> None:
        self._db = db
        self._admin = admin_token
        self._clock = clock
        self._cache: TTLCache[str, tuple[Actor, datetime | None] | None] = TTLCache(maxsize=10_000, ttl=ttl)

    async def resolve(self, token: str) -> Actor | None:
        if self._admin and hmac.compare_digest(token.encode(), self._admin.encode()):
            return Actor(kind=Role.ADMIN.value, id="bootstrap", key_id="bootstrap", scopes=frozenset(scopes.ALL))
        key = digest(token)
        now = self._clock.now()
        if key in self._cache:
            found = self._cache[key]
        else:
            # Committed: the lookup writes the key's last use.
            found = await self._db.run(committing(partial(_resolve, key=key, now=now)))
            self._cache[key] = found
        if found is None or (found[1] is not None and now >= found[1]):
            return None
        return found[0]

    def forget(self) -> None:
        """Drop what is cached: a key was revoked or rotated in this process."""
        self._cache.clear()


async def _resolve(uow: UnitOfWork, key: str, now: datetime) -> tuple[Actor, datetime | None] | None:
    row = (await uow.session.execute(_RESOLVE, {"digest": key, "now": now, "stale": now - _TOUCH})).first()
    if row is None:
        return None
    key_id, name, role, channel, locations, granted, expires_at, _ = row
    actor = Actor(
        kind=role,
        id=name,
        channel=channel,
        locations=frozenset(locations),
        key_id=str(key_id),
        scopes=frozenset(granted),
    )
    return actor, expires_at
