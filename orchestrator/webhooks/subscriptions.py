"""Webhook subscriptions and their deliveries: the use cases behind the API. An admin manages
every subscription; a channel's key its own channel's, and receives only events of orders it
may read (every channel's for an owned channel, its own for a marketplace)."""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from orchestrator.platform.actors import Actor
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import Conflict, Forbidden, InvalidRequest, NotFound
from orchestrator.platform.events import EventType
from orchestrator.platform.pagination import Key, Keyset, Page
from orchestrator.webhooks.fanout import delivery_row
from orchestrator.webhooks.model import (
    SERVICE_EVENTS,
    TEST_EVENT,
    checked_event_types,
    checked_url,
    ping_envelope,
)
from orchestrator.webhooks.tables import WebhookDelivery, WebhookSubscription

NOT_FOUND = "webhook subscription not found"
DELIVERY_NOT_FOUND = "webhook delivery not found"
NEWEST_SUBSCRIPTIONS = Keyset(
    Key(WebhookSubscription.created_at, datetime, descending=True),
    Key(WebhookSubscription.id, uuid.UUID, descending=True),
)
NEWEST_DELIVERIES = Keyset(
    Key(WebhookDelivery.created_at, datetime, descending=True), Key(WebhookDelivery.id, uuid.UUID, descending=True)
)
KNOWN_TYPES = [t.value for t in EventType] + list(SERVICE_EVENTS)
_UNSENT_NOTIFICATIONS_DEAD = text(
    """
    UPDATE notifications SET status = 'dead', body = coalesce(redacted, body), redacted = NULL
    WHERE id IN (SELECT notification_id FROM webhook_deliveries
                 WHERE subscription_id = :id AND status IN ('pending', 'failed'))
    """
)


def new_secret() -> str:
    """Standard Webhooks' form: ``whsec_`` and the base64 of the key's bytes (24 random)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    url: str
    event_types: list[str]
    description: str | None = None
    enabled: bool = True
    channel: str | None = None  # only events of this channel's orders
    kind: str = "events"  # or a notification channel: email | sms | whatsapp | push


def _event_types(kind: str, asked: list[str]) -> list[str]:
    if kind == "events":
        return checked_event_types(asked, KNOWN_TYPES)
    if asked:
        raise InvalidRequest(
            f"a {kind} subscription receives the customers' {kind} notifications, not events: leave event_types out",
            field="event_types",
        )
    return []


def _orders_channel(actor: Actor, asked: str | None) -> str | None:
    if actor.reads_all_channels:
        return asked
    if asked not in (None, actor.channel):
        raise Forbidden(f"this key receives events of channel {actor.channel}'s orders only")
    return actor.channel


def _owned_by(actor: Actor):  # type: ignore[no-untyped-def]
    return True if actor.is_admin else WebhookSubscription.owner_channel == actor.channel


async def create(uow: UnitOfWork, actor: Actor, spec: SubscriptionSpec, allow_private: bool, now: datetime):
    if spec.kind != "events" and not actor.is_admin:
        raise Forbidden("only an admin key subscribes a messaging service to the customers' notifications")
    sub = WebhookSubscription(
        kind=spec.kind,
        url=checked_url(spec.url, allow_private),
        event_types=_event_types(spec.kind, spec.event_types),
        description=spec.description,
        enabled=spec.enabled,
        owner_channel=None if actor.is_admin else actor.channel,
        orders_channel=_orders_channel(actor, spec.channel),
        created_by=actor.label,
        secret=new_secret(),
        created_at=now,
    )
    uow.session.add(sub)
    await uow.session.flush()
    return sub


async def subscription(uow: UnitOfWork, actor: Actor, sub_id: uuid.UUID, *, lock: bool = False):
    query = select(WebhookSubscription).where(WebhookSubscription.id == sub_id, _owned_by(actor))
    found = await uow.session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise NotFound(NOT_FOUND)
    return found


async def list_subscriptions(uow: UnitOfWork, actor: Actor, cursor: str | None, limit: int) -> Page[Any]:
    query = NEWEST_SUBSCRIPTIONS.query(select(WebhookSubscription).where(_owned_by(actor)), cursor, limit)
    return NEWEST_SUBSCRIPTIONS.page((await uow.session.execute(query)).all(), limit)


async def update(
    uow: UnitOfWork, actor: Actor, sub_id: uuid.UUID, changes: dict[str, Any], allow_private: bool, now: datetime
):
    sub = await subscription(uow, actor, sub_id, lock=True)
    if "url" in changes:
        sub.url = checked_url(changes["url"], allow_private)
    if "event_types" in changes:
        sub.event_types = _event_types(sub.kind, changes["event_types"])
    if "description" in changes:
        sub.description = changes["description"]
    if "channel" in changes:
        sub.orders_channel = _orders_channel(actor, changes["channel"])
    if "enabled" in changes:
        if changes["enabled"] and not sub.enabled:  # switched on again: a fresh start
            sub.failing_since, sub.disabled_reason = None, None
        sub.enabled = changes["enabled"]
    sub.updated_at = now
    return sub


async def delete(uow: UnitOfWork, actor: Actor, sub_id: uuid.UUID) -> None:
    """With its deliveries (the database cascades); a request open to it is recorded as gone.
    Notifications it still had to send will not be sent: they are dead, without their code."""
    sub = await subscription(uow, actor, sub_id, lock=True)
    await uow.session.execute(_UNSENT_NOTIFICATIONS_DEAD, {"id": sub.id})
    await uow.session.delete(sub)


async def rotate_secret(uow: UnitOfWork, actor: Actor, sub_id: uuid.UUID, overlap: timedelta, now: datetime):
    """A new signing secret; deliveries carry both signatures for ``overlap``."""
    sub = await subscription(uow, actor, sub_id, lock=True)
    sub.previous_secret, sub.previous_secret_expires_at = sub.secret, now + overlap
    sub.secret = new_secret()
    sub.updated_at = now
    return sub


async def send_test(uow: UnitOfWork, actor: Actor, sub_id: uuid.UUID, now: datetime) -> WebhookDelivery:
    """A ``webhook.test`` event, delivered (and retried) like any other."""
    sub = await subscription(uow, actor, sub_id)
    event_id = uuid.uuid4()
    row = delivery_row(sub.id, event_id, TEST_EVENT, None, ping_envelope(event_id, sub.id, now), now)
    await uow.session.execute(insert(WebhookDelivery).values([row]))
    return await _delivery(uow, actor, row["id"])


async def _delivery(uow: UnitOfWork, actor: Actor, delivery_id: uuid.UUID, *, lock: bool = False):
    query = (
        select(WebhookDelivery)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.id == delivery_id, _owned_by(actor))
    )
    found = await uow.session.scalar(query.with_for_update(of=WebhookDelivery) if lock else query)
    if found is None:
        raise NotFound(DELIVERY_NOT_FOUND)
    return found


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    subscription: uuid.UUID | None = None
    status: str | None = None
    cursor: str | None = None
    limit: int = 50


async def list_deliveries(uow: UnitOfWork, actor: Actor, flt: DeliveryFilter) -> Page[Any]:
    query = (
        select(WebhookDelivery)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(_owned_by(actor))
    )
    if flt.subscription:
        query = query.where(WebhookDelivery.subscription_id == flt.subscription)
    if flt.status:
        query = query.where(WebhookDelivery.status == flt.status)
    query = NEWEST_DELIVERIES.query(query, flt.cursor, flt.limit)
    return NEWEST_DELIVERIES.page((await uow.session.execute(query)).all(), flt.limit)


async def replay(uow: UnitOfWork, actor: Actor, delivery_id: uuid.UUID, now: datetime) -> WebhookDelivery:
    """Sent again now (the same ``webhook-id``: a receiver that has it deduplicates), with a new 72 h."""
    delivery = await _delivery(uow, actor, delivery_id, lock=True)
    if delivery.claimed_until is not None and delivery.claimed_until > now:
        raise Conflict("the delivery is being sent right now; replay it once that attempt is recorded")
    delivery.status, delivery.next_attempt_at, delivery.due_since = "pending", now, now
    delivery.claimed_until = None
    return delivery
