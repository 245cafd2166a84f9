"""Webhook subscriptions and deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, jsonb, text_array, timestamp


class WebhookSubscription(SQLModel, table=True):
    __tablename__ = "webhook_subscriptions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # ``events``: the events it subscribed to; ``email | sms | whatsapp | push``: the customers'
    # notifications for that channel, rendered, for the provider or messaging service at ``url``.
    kind: str = Field(default="events", max_length=12)
    url: str = Field(max_length=2000)
    # Event types and wildcards (``order.*``, ``*``), as the subscriber chose them.
    event_types: list[str] = text_array()
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True
    # Whose it is: the channel whose key made it (null: an admin's), and whose orders' events it
    # receives (null: every channel's, for keys that read every channel).
    owner_channel: str | None = Field(default=None, max_length=80)
    orders_channel: str | None = Field(default=None, max_length=80)
    created_by: str = Field(max_length=200)
    # Kept to sign with (a receiver verifies with the same secret); ``whsec_`` + base64 of 24 bytes.
    secret: str = Field(max_length=100)
    # After a rotation deliveries carry both signatures until ``previous_secret_expires_at``.
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: datetime | None = timestamp()
    # Since when every delivery failed (null: the last one succeeded); five days of it disables.
    failing_since: datetime | None = timestamp()
    disabled_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: sent until a 2xx, retried on a schedule, dead after 72 h."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The relay is at-least-once: an event fanned out twice is one delivery.
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
        # Per subscriber: a backlog for one that hangs is never scanned while its slots are taken.
        Index(
            "ix_webhook_deliveries_due",
            "subscription_id",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'failed')"),
        ),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    subscription_id: uuid.UUID = Field(
        sa_column=Column(UUID(as_uuid=True), ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False)
    )
    # The event's stable id: the ``webhook-id`` header, the same on every attempt and replay.
    event_id: uuid.UUID
    event_type: str = Field(max_length=60)
    order_id: uuid.UUID | None = None
    payload: dict = jsonb()  # the body sent, as JSON
    # A notification's body without its pickup code: what ``payload`` becomes once the delivery
    # is delivered or dead, so the code is stored only while it may still have to be sent.
    redacted_payload: dict | None = Field(default=None, sa_type=JSONB(none_as_null=True), nullable=True)
    notification_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(UUID(as_uuid=True), ForeignKey("notifications.id", ondelete="CASCADE"), nullable=True),
    )
    status: str = Field(max_length=12)  # pending | delivered | failed | dead
    attempts: int = 0
    # Since when it has been due: its event's fan-out, or its last replay. Dead 72 h after.
    due_since: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
    next_attempt_at: datetime | None = timestamp()
    # A sender holds a delivery while its request is open; a crashed sender's claim lapses.
    claimed_until: datetime | None = timestamp()
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    last_duration_ms: int | None = None
    # The latest attempts, newest last: [{at, status_code, duration_ms, error}].
    attempt_log: list = jsonb(default_factory=list)
    created_at: datetime = created_at()
    delivered_at: datetime | None = timestamp()


class Notification(SQLModel, table=True):
    """A message for the customer (order confirmed, ready for pickup with its code, shipped ...),
    rendered from a template and sent through the notification subscription of its channel."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", name="uq_notifications_event"),
        Index("ix_notifications_order", "order_id", "created_at"),
        Index("ix_notifications_customer", "customer_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id")
    customer_id: uuid.UUID = Field(foreign_key="customers.id")
    event_id: uuid.UUID
    template: str = Field(max_length=40)  # confirmed | ready_for_pickup | shipped | ...
    channel: str | None = Field(default=None, max_length=12)  # email | sms | whatsapp | push; none: unroutable
    recipient: str | None = Field(default=None, max_length=320)
    # {subject, text, html} as sent; ``redacted``: the same without a pickup code, which replaces
    # ``body`` once the notification is delivered, dead or unroutable.
    body: dict = jsonb()
    redacted: dict | None = Field(default=None, sa_type=JSONB(none_as_null=True), nullable=True)
    status: str = Field(max_length=12)  # pending | delivered | dead | unroutable
    created_at: datetime = created_at()
    sent_at: datetime | None = timestamp()
