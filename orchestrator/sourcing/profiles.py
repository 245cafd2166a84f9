"""Sourcing profiles per channel (versioned), decisions per order, and what-if simulation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import String, cast, func, insert, select
from sqlalchemy.exc import IntegrityError

from orchestrator.catalogue.tables import Product
from orchestrator.orders.queries import load_order
from orchestrator.orders.tables import OrderEvent
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import Database, UnitOfWork
from orchestrator.platform.errors import InvalidRequest, UnknownLocation, UnknownSku
from orchestrator.sourcing.engine import SourcingProfile, SourcingRequest
from orchestrator.sourcing.service import allocation_dicts, candidate_dicts, current_profile, load_site, source
from orchestrator.sourcing.tables import SourcingDecision, SourcingProfileVersion


class ProfileView(msgspec.Struct, kw_only=True):
    channel: str
    version: int
    pickup_policy: str
    min_split_line_value: int
    suggestion_limit: int
    created_at: datetime | None = None
    created_by: str | None = None


class DecisionView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    trigger: str
    rule: str
    profile_channel: str
    profile_version: int
    request: dict[str, Any]
    candidates: list[dict[str, Any]]
    plan: list[dict[str, Any]]
    unfilled: dict[str, int]
    created_at: datetime


class SimulationView(msgspec.Struct, kw_only=True):
    rule: str
    complete: bool
    plan: list[dict[str, Any]]
    unfilled: dict[str, int]
    suggestions: list[str]
    candidates: list[dict[str, Any]]
    profile_version: int


def _view(channel: str, profile: SourcingProfile, row: SourcingProfileVersion | None = None) -> ProfileView:
    return ProfileView(
        channel=channel,
        version=profile.version,
        pickup_policy=profile.pickup_policy.value,
        min_split_line_value=profile.min_split_line_value,
        suggestion_limit=profile.suggestion_limit,
        created_at=row.created_at if row else None,
        created_by=row.created_by if row else None,
    )


async def get_profile(db: Database, channel: str) -> ProfileView:
    async with db.unit_of_work() as uow:
        profile = await current_profile(uow.session, channel)
        row = None
        if profile.version:
            row = await uow.session.get(SourcingProfileVersion, (channel, profile.version))
        return _view(channel, profile, row)


async def put_profile(db: Database, channel: str, fields: dict[str, Any], actor: Actor, now: datetime) -> ProfileView:
    """Every change is a new version; orders keep the version they were sourced with."""

    async def attempt(uow: UnitOfWork) -> ProfileView:
        session = uow.session
        latest = await session.scalar(
            select(func.max(SourcingProfileVersion.version)).where(SourcingProfileVersion.channel == channel)
        )
        row = SourcingProfileVersion(
            channel=channel, version=(latest or 0) + 1, created_by=actor.label, created_at=now, **fields
        )
        await session.execute(insert(SourcingProfileVersion), [row.model_dump()])
        await uow.commit()
        return ProfileView(
            channel=channel,
            version=row.version,
            pickup_policy=row.pickup_policy,
            min_split_line_value=row.min_split_line_value,
            suggestion_limit=row.suggestion_limit,
            created_at=now,
            created_by=actor.label,
        )

    return await db.run(attempt, also_retry=(IntegrityError,), attempts=3)


async def decisions(db: Database, order_id: uuid.UUID, actor: Actor) -> list[DecisionView]:
    async with db.unit_of_work() as uow:
        await load_order(uow.session, order_id, actor)
        # Newest first by the timeline event that announced each decision (its seq is strictly
        # increasing per order); timestamps alone tie under a frozen clock or skew across hosts.
        announced = (
            select(func.max(OrderEvent.seq))
            .where(
                OrderEvent.order_id == order_id,
                OrderEvent.data["decision_id"].astext == cast(SourcingDecision.id, String),
            )
            .correlate(SourcingDecision)
            .scalar_subquery()
        )
        rows = await uow.session.execute(
            select(SourcingDecision)
            .where(SourcingDecision.order_id == order_id)
            .order_by(announced.desc().nulls_last(), SourcingDecision.created_at.desc(), SourcingDecision.id)
        )
        return [
            DecisionView(
                id=d.id,
                trigger=d.trigger,
                rule=d.rule,
                profile_channel=d.profile_channel,
                profile_version=d.profile_version,
                request=d.request,
                candidates=d.candidates,
                plan=d.plan,
                unfilled=d.unfilled,
                created_at=d.created_at,
            )
            for d in rows.scalars()
        ]


async def simulate(db: Database, request: SourcingRequest, channel: str) -> SimulationView:
    """The engine over a hypothetical order against live stock; nothing is reserved or written."""
    async with db.unit_of_work() as uow:
        session = uow.session
        skus = sorted({line.sku for line in request.lines})
        products = dict((await session.execute(select(Product.sku, Product.id).where(Product.sku.in_(skus)))).all())
        unknown = [s for s in skus if s not in products]
        if unknown:
            raise UnknownSku(f"unknown sku: {', '.join(unknown)}", field="lines", skus=unknown)
        store = None
        if request.method.is_pickup:
            if not request.pickup_location:
                raise InvalidRequest("a pickup needs a location", field="location")
            store = await load_site(session, code=request.pickup_location)
            if store is None:
                raise UnknownLocation(f"unknown location {request.pickup_location}", field="location")
        profile = await current_profile(session, channel)
        sourced = await source(session, request, profile, products, store=store)
        plan = sourced.plan
        return SimulationView(
            rule=plan.rule.value,
            complete=plan.complete,
            plan=allocation_dicts(plan),
            unfilled=dict(plan.unfilled),
            suggestions=list(plan.suggestions),
            candidates=candidate_dicts(plan),
            profile_version=profile.version,
        )
