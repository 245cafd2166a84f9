"""Sourcing profiles per channel (versioned) and what-if simulation. The use cases work in the
unit of work they are given; the entry point commits it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.catalogue.tables import Product
from orchestrator.order_record.states import Method
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import RetryOnFreshRead, UnitOfWork
from orchestrator.platform.errors import InvalidRequest, UnknownLocation, UnknownSku
from orchestrator.sourcing.candidates import Sourced, load_location, source
from orchestrator.sourcing.decisions import allocation_dicts, candidate_dicts
from orchestrator.sourcing.model import SourcingProfile, SourcingRequest, profile_from_row
from orchestrator.sourcing.tables import SourcingProfileVersion


class ProfileVersionTaken(RetryOnFreshRead):
    """A concurrent change drew the same version number first: run the change again."""


class ProfileView(msgspec.Struct, kw_only=True):
    channel: str
    version: int
    # When the pickup store cannot serve it all: transfer | move | ask_customer; an order waiting
    # for the customer gets ``ask_customer_fallback`` after ``ask_customer_timeout_hours``.
    on_pickup_shortfall: str
    ask_customer_fallback: str
    ask_customer_timeout_hours: int
    min_split_line_value: int
    suggestion_limit: int
    # How long units take to travel to a pickup store, in hours (expected ready times).
    transfer_hours: int
    created_at: datetime | None = None
    created_by: str | None = None


class PlannedFulfillment(msgspec.Struct, kw_only=True):
    """A fulfillment the plan would create: where from, how, and when it is expected ready."""

    location: str
    method: str
    destination: str | None
    expected_ready_at: datetime


class SimulationView(msgspec.Struct, kw_only=True):
    rule: str
    complete: bool
    plan: list[dict[str, Any]]
    fulfillments: list[PlannedFulfillment]
    unfilled: dict[str, int]
    suggestions: list[str]
    candidates: list[dict[str, Any]]
    profile_version: int


async def current_profile(session: AsyncSession, channel: str) -> SourcingProfile:
    row = await session.scalar(
        select(SourcingProfileVersion)
        .where(SourcingProfileVersion.channel == channel)
        .order_by(SourcingProfileVersion.version.desc())
        .limit(1)
    )
    return profile_from_row(row.model_dump() if row is not None else None)


def _view(channel: str, profile: SourcingProfile, row: SourcingProfileVersion | None = None) -> ProfileView:
    return ProfileView(
        channel=channel,
        version=profile.version,
        on_pickup_shortfall=profile.on_pickup_shortfall.value,
        ask_customer_fallback=profile.ask_customer_fallback.value,
        ask_customer_timeout_hours=profile.ask_customer_timeout_hours,
        min_split_line_value=profile.min_split_line_value,
        suggestion_limit=profile.suggestion_limit,
        transfer_hours=profile.transfer_hours,
        created_at=row.created_at if row else None,
        created_by=row.created_by if row else None,
    )


async def get_profile(uow: UnitOfWork, channel: str) -> ProfileView:
    profile = await current_profile(uow.session, channel)
    row = None
    if profile.version:
        row = await uow.session.get(SourcingProfileVersion, (channel, profile.version))
    return _view(channel, profile, row)


async def put_profile(
    uow: UnitOfWork, channel: str, fields: dict[str, Any], actor: Actor, now: datetime
) -> ProfileView:
    """Every change is a new version; orders keep the version they were sourced with."""
    session = uow.session
    latest = await session.scalar(
        select(func.max(SourcingProfileVersion.version)).where(SourcingProfileVersion.channel == channel)
    )
    row = SourcingProfileVersion(
        channel=channel, version=(latest or 0) + 1, created_by=actor.label, created_at=now, **fields
    )
    try:
        await session.execute(insert(SourcingProfileVersion), [row.model_dump()])
    except IntegrityError:
        raise ProfileVersionTaken(channel) from None
    return _view(channel, profile_from_row(row.model_dump()), row)


async def simulate(uow: UnitOfWork, request: SourcingRequest, channel: str, now: datetime) -> SimulationView:
    """The engine over a hypothetical order against live stock; nothing is reserved or written."""
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
        store = await load_location(session, code=request.pickup_location)
        if store is None:
            raise UnknownLocation(f"unknown location {request.pickup_location}", field="location")
    profile = await current_profile(session, channel)
    sourced = await source(session, request, profile, products, store=store)
    plan = sourced.plan
    return SimulationView(
        rule=plan.rule.value,
        complete=plan.complete,
        plan=allocation_dicts(plan),
        fulfillments=_planned(sourced, request.method, now) if plan.complete else [],
        unfilled=dict(plan.unfilled),
        suggestions=list(plan.suggestions),
        candidates=candidate_dicts(plan),
        profile_version=profile.version,
    )


def _planned(sourced: Sourced, method: Method, now: datetime) -> list[PlannedFulfillment]:
    """What the customer waits for first, then the transfers feeding it."""
    planned = [
        PlannedFulfillment(
            location=site,
            method=(Method.TRANSFER if destination else method).value,
            destination=destination,
            expected_ready_at=ready_at,
        )
        for (site, destination), ready_at in sourced.ready_times(method, now).items()
    ]
    return sorted(planned, key=lambda p: (p.destination is not None, p.location))
