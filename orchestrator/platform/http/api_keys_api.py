"""API keys over the API (admin): create (the secret shown once), list (never a secret), revoke,
rotate with an overlap. The CLI's ``keys create`` makes the same keys."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from orchestrator.platform import key_management
from orchestrator.platform.actors import Role
from orchestrator.platform.api_keys import ApiKey, KeyResolver, create_key
from orchestrator.platform.auth import ADMIN
from orchestrator.platform.db import committing
from orchestrator.platform.http.dependencies import DB, ClockDep
from orchestrator.platform.pagination import PageResponse
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import Code, RequestBody
from orchestrator.platform.scopes import Scope

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]


class ApiKeyIn(RequestBody, kw_only=True):
    name: Name
    role: Literal["admin", "channel", "staff"]
    channel: Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")] | None = None
    locations: Annotated[list[Code], msgspec.Meta(max_length=200)] | None = None
    # Absent: the role's defaults (platform/scopes.py); an admin key always holds every scope.
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=len(Scope))] | None = None


class RotateIn(RequestBody, kw_only=True):
    overlap_seconds: Annotated[int, msgspec.Meta(ge=0, le=int(key_management.MAX_OVERLAP.total_seconds()))] = 0


class ApiKeyView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    role: str
    channel: str | None
    locations: list[str]
    scopes: list[str]
    prefix: str  # the secret's first characters, to tell keys apart in a log or a config
    created_at: datetime
    last_used_at: datetime | None
    rotated_at: datetime | None
    # Until then the secret from before the last rotation still works.
    previous_secret_expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyView, kw_only=True):
    secret: str  # shown this once; only its digest is stored


class ApiKeyPage(PageResponse, kw_only=True):
    items: list[ApiKeyView]


def view_of(key: ApiKey, now: datetime) -> dict:
    live_previous = key.previous_expires_at is not None and key.previous_expires_at > now
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "channel": key.channel,
        "locations": list(key.location_codes),
        "scopes": sorted(key.scopes),
        "prefix": key.prefix,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "rotated_at": key.rotated_at,
        "previous_secret_expires_at": key.previous_expires_at if live_previous else None,
        "revoked_at": key.revoked_at,
    }


def _forget_cached(request: Request) -> None:
    resolver: KeyResolver = request.app.state.key_resolver
    resolver.forget()


class ApiKeyController(Controller):
    path = "/v1/api-keys"
    tags = ["api keys"]
    guards = [ADMIN]

    @post(
        "/",
        operation_id="createApiKey",
        summary="Create a key; its secret is in this answer only",
        status_code=201,
        responses=problems(400, 401, 403, 404, 422),
    )
    async def create(self, data: JSONBody[ApiKeyIn], db: DB, clock: ClockDep) -> ApiKeyCreated:
        now = clock.now()
        making = partial(
            create_key,
            role=Role(data.role),
            name=data.name,
            channel=data.channel,
            locations=data.locations,
            scopes=[s.value for s in data.scopes] if data.scopes is not None else None,
            now=now,
        )
        token, key = await db.run(committing(making))
        return ApiKeyCreated(**view_of(key, now), secret=token)

    @get(
        "/",
        operation_id="listApiKeys",
        summary="Keys, newest first (never a secret)",
        responses=problems(401, 403, 422),
    )
    async def list_keys(
        self,
        db: DB,
        clock: ClockDep,
        role: FromQuery[Literal["admin", "channel", "staff"] | None] = None,
        channel: FromQuery[str | None] = None,
        include_revoked: FromQuery[bool] = False,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> ApiKeyPage:
        flt = key_management.KeyFilter(role, channel, include_revoked, cursor, limit)
        page = await db.run(lambda uow: key_management.list_keys(uow, flt))
        now = clock.now()
        return ApiKeyPage(items=[ApiKeyView(**view_of(k, now)) for k in page.items], next_cursor=page.next_cursor)

    @post(
        "/{key_id:uuid}/revoke",
        operation_id="revokeApiKey",
        summary="Revoke a key (idempotent); it stops working at once here, within the key cache's seconds elsewhere",
        status_code=200,
        responses=problems(401, 403, 404),
    )
    async def revoke(self, key_id: FromPath[uuid.UUID], request: Request, db: DB, clock: ClockDep) -> ApiKeyView:
        now = clock.now()
        key = await db.run(committing(lambda uow: key_management.revoke(uow, key_id, now)))
        _forget_cached(request)
        return ApiKeyView(**view_of(key, now))

    @post(
        "/{key_id:uuid}/rotate",
        operation_id="rotateApiKey",
        summary="A new secret for the key; the old one works `overlap_seconds` more (default 0)",
        status_code=200,
        responses=problems(400, 401, 403, 404, 409, 422),
    )
    async def rotate(
        self, key_id: FromPath[uuid.UUID], request: Request, db: DB, clock: ClockDep, data: JSONBody[RotateIn]
    ) -> ApiKeyCreated:
        now = clock.now()
        overlap = timedelta(seconds=data.overlap_seconds)
        token, key = await db.run(committing(lambda uow: key_management.rotate(uow, key_id, overlap, now)))
        _forget_cached(request)
        return ApiKeyCreated(**view_of(key, now), secret=token)
