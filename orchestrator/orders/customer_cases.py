"""The customer endpoints' use cases, each one transaction (the entry point's ``db.run``, which
commits the writing ones): the key's reach first (``customer_views``), then the customers
capability's rule, then the view."""

from __future__ import annotations

import uuid
from datetime import datetime

from orchestrator.customers import identities, records
from orchestrator.customers.merges import merge_customers
from orchestrator.customers.model import Identity
from orchestrator.orders.customer_timeline import InteractionItem, OrderEventItem, timeline
from orchestrator.orders.customer_views import (
    CustomerFullView,
    customer_view,
    in_reach,
    reached_customer,
    shown,
    view_in_reach,
)
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.pagination import Page


async def get_customer(uow: UnitOfWork, customer_id: uuid.UUID, actor: Actor, now: datetime) -> CustomerFullView:
    return await view_in_reach(uow.session, customer_id, actor, now)


async def find_customers(
    uow: UnitOfWork, wanted: list[Identity], actor: Actor, now: datetime
) -> list[CustomerFullView]:
    """The customer owning every one of ``wanted`` (exact values), if within reach: zero or one."""
    if not all(shown(kind, value, actor) for kind, value in wanted):
        return []
    owner = await identities.owner_of_all(uow.session, wanted)
    if owner is None:
        return []
    customer = await records.load_customer(uow.session, owner)
    if not await in_reach(uow.session, owner, actor):
        return []
    return [await customer_view(uow.session, customer, actor, now)]


async def attach_identity(
    uow: UnitOfWork, customer_id: uuid.UUID, identity: Identity, actor: Actor, now: datetime
) -> tuple[bool, CustomerFullView]:
    await reached_customer(uow.session, customer_id, actor, lock=True)
    created = await identities.attach(uow.session, customer_id, identity, now)
    view = await view_in_reach(uow.session, customer_id, actor, now)
    return created, view


async def change_customer(
    uow: UnitOfWork,
    customer_id: uuid.UUID,
    actor: Actor,
    now: datetime,
    *,
    name: str | None,
    contact: tuple[str, str] | None,
    contact_given: bool,
) -> CustomerFullView:
    await reached_customer(uow.session, customer_id, actor, lock=True)
    if name is not None:
        await records.rename(uow.session, customer_id, name)
    if contact_given:
        await records.prefer_contact(uow.session, customer_id, contact)
    view = await view_in_reach(uow.session, customer_id, actor, now)
    return view


async def merge(
    uow: UnitOfWork, survivor_id: uuid.UUID, merged_id: uuid.UUID, actor: Actor, now: datetime
) -> CustomerFullView:
    """Idempotent: merging again what was merged answers the survivor as the first time."""
    await merge_customers(uow.session, survivor_id, merged_id, now)
    view = await view_in_reach(uow.session, survivor_id, actor, now)
    return view


async def suggestions(uow: UnitOfWork, customer_id: uuid.UUID, actor: Actor) -> list[records.SuggestionRecord]:
    await reached_customer(uow.session, customer_id, actor)
    return await records.suggestions_of(uow.session, customer_id)


async def record_interaction(
    uow: UnitOfWork, customer_id: uuid.UUID, new: records.NewInteraction, actor: Actor, now: datetime
) -> records.InteractionRecord:
    await reached_customer(uow.session, customer_id, actor, lock=True)
    recorded = await records.record_interaction(uow.session, customer_id, new, actor.label, now)
    return recorded


async def customer_timeline(
    uow: UnitOfWork, customer_id: uuid.UUID, actor: Actor, cursor: str | None, limit: int
) -> Page[InteractionItem | OrderEventItem]:
    await reached_customer(uow.session, customer_id, actor)
    return await timeline(uow.session, customer_id, actor, cursor, limit)
