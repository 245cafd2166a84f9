"""Sourcing decisions: why an order's units come from where they do, serialised and stored with
the order, read back newest first."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import String, cast, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.order_record.aggregate import load_order
from orchestrator.order_record.tables import OrderEvent
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import UnitOfWork
from orchestrator.sourcing.model import SourcingPlan, SourcingProfile, SourcingRequest
from orchestrator.sourcing.tables import SourcingDecision

# A decision keeps the best-ranked candidates; at 1,000 stores the rest is noise in a timeline.
KEPT_CANDIDATES = 25


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


def decision_row(
    *,
    order_id: uuid.UUID,
    trigger: str,
    channel: str,
    profile: SourcingProfile,
    request: SourcingRequest,
    plan: SourcingPlan,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "order_id": order_id,
        "trigger": trigger,
        "rule": plan.rule.value,
        "profile_channel": channel,
        "profile_version": profile.version,
        "request": {
            "method": request.method.value,
            "pickup_location": request.pickup_location,
            "destination": [request.destination.lat, request.destination.lon] if request.destination else None,
            "excluded": sorted(request.excluded),
            "lines": [{"line": ln.line_key, "sku": ln.sku, "quantity": ln.quantity} for ln in request.lines],
            "candidates_considered": len(plan.candidates),
        },
        "candidates": candidate_dicts(plan),
        "plan": allocation_dicts(plan),
        "unfilled": dict(plan.unfilled),
        "created_at": now,
    }


async def insert_decision(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(SourcingDecision), [row])


def candidate_dicts(plan: SourcingPlan) -> list[dict[str, Any]]:
    """The chosen candidates first, then the eligible ones, in the engine's preference order."""
    ranked = sorted(plan.candidates, key=lambda c: (not c.chosen, not c.eligible))[:KEPT_CANDIDATES]
    return [
        {
            "location": c.location,
            "distance_km": c.distance_km,
            "headroom": c.headroom,
            "covers_units": c.covers_units,
            "covers_all": c.covers_all,
            "eligible": c.eligible,
            "reason": c.reason,
            "chosen": c.chosen,
        }
        for c in ranked
    ]


def allocation_dicts(plan: SourcingPlan) -> list[dict[str, Any]]:
    return [
        {"location": a.location, "line": a.line_key, "sku": a.sku, "quantity": a.quantity, "transfer_to": a.transfer_to}
        for a in plan.allocations
    ]


async def decisions(uow: UnitOfWork, order_id: uuid.UUID, actor: Actor) -> list[DecisionView]:
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
