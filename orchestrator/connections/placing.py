"""What every platform's processing does the same way: act as the connector's channel, place a
mapped order through intake and say what came of it, find the order a platform id placed, and
read the newest version of a platform order already taken in (for ``stale``)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.connections.model import Outcome
from orchestrator.connections.receipts import Processing, Result
from orchestrator.connections.tables import Connector, ConnectorReceipt
from orchestrator.customers.model import CustomerDetails, normalise_email, normalise_phone
from orchestrator.order_record.tables import Order
from orchestrator.orders import paid_intake
from orchestrator.orders.commands import NewPayment, PlaceOrder
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.errors import DomainError, InvalidRequest, UnknownLocation, UnknownSku
from orchestrator.platform.scopes import defaults


def channel_actor(connector: Connector) -> Actor:
    """The connector acts as its channel's key would, with a marketplace key's default scopes."""
    scopes = frozenset(s.value for s in defaults(Role.CHANNEL, connector.channel))
    return Actor(kind=Role.CHANNEL.value, id=f"connector:{connector.name}", channel=connector.channel, scopes=scopes)


def missing(exc: UnknownSku | UnknownLocation, connector: Connector, cmd: PlaceOrder) -> tuple[str, ...]:
    """What intake did not know, named as the platform names it (the sku before the connector's map)."""
    if isinstance(exc, UnknownLocation):
        return (f"location:{cmd.location}",)
    theirs = {ours: sku for sku, ours in connector.sku_map.items()}
    return tuple(f"sku:{theirs.get(sku, sku)}" for sku in exc.context.get("skus", ()))


def reachable(customer: CustomerDetails, flow: Processing) -> CustomerDetails:
    """An email or phone intake would refuse is left out: a marketplace's buyer contact must not
    cost the order (the account identity still attaches it)."""
    email, phone = customer.email, customer.phone
    try:
        email = normalise_email(email) if email else None
    except InvalidRequest:
        email = None
    try:
        phone = normalise_phone(phone, flow.settings.default_phone_region) if phone else None
    except InvalidRequest:
        phone = None
    return dataclasses.replace(customer, email=email, phone=phone)


async def place(
    flow: Processing,
    connector: Connector,
    cmd: PlaceOrder,
    payment: NewPayment | None,
    *,
    source: str,
    updated_at: datetime | None = None,
) -> Result:
    """The order placed through intake as the connector's channel: ``applied`` (also when the same
    platform order was placed before: intake's channel reference), ``unmapped`` (a sku or store we
    do not know), or ``invalid`` (any other refusal, such as no stock)."""
    cmd = dataclasses.replace(cmd, customer=reachable(cmd.customer, flow))
    at = {"resource_id": cmd.channel_order_ref, "resource_updated_at": updated_at}
    intake = paid_intake.Intake.configured(
        flow.settings,
        db=flow.db,
        gateway=flow.gateway,
        actor=channel_actor(connector),
        clock=flow.clock,
        lifecycle=flow.lifecycle,
        claim=None,
        instance=source,
    )
    try:
        placed = await paid_intake.place_paid_order(intake, cmd, payment)
    except (UnknownSku, UnknownLocation) as exc:
        return Result(Outcome.UNMAPPED, detail=exc.detail, unmapped=missing(exc, connector, cmd), **at)
    except DomainError as exc:
        return Result(Outcome.INVALID, detail=exc.detail, **at)
    if placed.status >= 400 or placed.order_id is None:
        return Result(Outcome.INVALID, detail=f"intake answered {placed.status}", **at)
    detail = None if placed.created else f"the order was placed before (same {connector.kind} order id)"
    return Result(Outcome.APPLIED, detail=detail, order_id=placed.order_id, **at)


async def order_of(session: AsyncSession, channel: str, ref: str) -> uuid.UUID | None:
    """The order placed for a platform order id on the connector's channel, if any."""
    return await session.scalar(select(Order.id).where(Order.channel == channel, Order.channel_order_ref == ref))


async def newest_version(
    session: AsyncSession,
    connector_id: uuid.UUID,
    ref: str,
    other_than: uuid.UUID,
    outcomes: Collection[Outcome],
    topics: Collection[str] | None = None,
) -> datetime | None:
    """The latest version of the platform order ``ref`` among receipts with ``outcomes`` (not
    counting ``other_than``, the one being processed)."""
    query = select(func.max(ConnectorReceipt.resource_updated_at)).where(
        ConnectorReceipt.connector_id == connector_id,
        ConnectorReceipt.resource_id == ref,
        ConnectorReceipt.outcome.in_([o.value for o in outcomes]),
        ConnectorReceipt.id != other_than,
    )
    if topics is not None:
        query = query.where(ConnectorReceipt.topic.in_(list(topics)))
    return await session.scalar(query)
