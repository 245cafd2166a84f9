"""Orders, fulfillment orders, reservations and the order timeline."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, jsonb, timestamp
from orchestrator.platform.money import OrderTotals


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        # A channel's reference names one order, but an order whose payment failed lets go of it
        # (``holds_channel_ref`` false), so the storefront can retry that order with another card.
        Index(
            "uq_orders_channel_ref",
            "channel",
            "channel_order_ref",
            unique=True,
            postgresql_where=text("holds_channel_ref"),
        ),
        Index("ix_orders_customer_created", "customer_id", "created_at"),
        Index("ix_orders_created", "created_at", "id"),
        Index("ix_orders_action_deadline", "action_deadline", postgresql_where=text("action_deadline IS NOT NULL")),
        CheckConstraint(
            "shipping_total >= 0 AND tax_total >= 0 AND discount_total >= 0 "
            "AND discount_total <= subtotal + shipping_total + tax_total",
            name="totals_within_order",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    number: str = Field(unique=True, max_length=12)
    channel: str = Field(max_length=80, index=True)
    channel_order_ref: str = Field(max_length=200)
    holds_channel_ref: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    customer_id: uuid.UUID = Field(foreign_key="customers.id")
    currency: str = Field(max_length=3)
    subtotal: int = Field(sa_type=BigInteger)
    # What is added to the goods and taken off them (minor units); the total is derived from them
    # (``OrderTotals.total``), so it cannot disagree. Orders from before they existed hold 0.
    shipping_total: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": text("0")})
    tax_total: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": text("0")})
    discount_total: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": text("0")})
    status: str = Field(max_length=30, index=True)
    attention_reason: str | None = None
    # While the order waits for the customer (``action_required``): the ready-made changes they can
    # choose from (each a ``POST /v1/orders/{id}/changes`` body), and when the fallback applies.
    action_options: list | None = jsonb(default_factory=lambda: None, nullable=True)
    action_deadline: datetime | None = timestamp()
    fulfillment_method: str = Field(max_length=20)
    pickup_location_id: int | None = Field(default=None, foreign_key="locations.id")
    ship_address: dict | None = jsonb(default_factory=lambda: None, nullable=True)
    sourcing_profile_version: int = 0
    version: int = 1
    last_event_seq: int = 0
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()

    @property
    def totals(self) -> OrderTotals:
        """Its money as ``platform.money`` reckons it (total = subtotal + shipping + tax − discount;
        the table's CHECKs keep a stored order's totals valid)."""
        return OrderTotals(self.subtotal, self.shipping_total, self.tax_total, self.discount_total)


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_no", name="uq_order_lines_order_line_no"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id")
    line_no: int
    product_id: int = Field(foreign_key="products.id")
    sku: str = Field(max_length=64)
    quantity: int
    unit_price: int = Field(sa_type=BigInteger)
    quantity_cancelled: int = 0
    quantity_fulfilled: int = 0
    quantity_returned: int = 0
    # Units no location could take after a rejection or short pick: why an order needs attention.
    quantity_unsourced: int = 0


class FulfillmentOrder(SQLModel, table=True):
    __tablename__ = "fulfillment_orders"
    __table_args__ = (
        Index("ix_fulfillment_orders_order", "order_id"),
        Index("ix_fulfillment_orders_location_status", "location_id", "status"),
        Index(
            "ix_fulfillment_orders_pickup_deadline",
            "pickup_deadline",
            postgresql_where=text("status = 'ready_for_pickup'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id")
    location_id: int = Field(foreign_key="locations.id")
    method: str = Field(max_length=20)
    status: str = Field(max_length=30)
    version: int = 1
    # A transfer carries stock to the pickup store that serves ``feeds_fulfillment_id``.
    destination_location_id: int | None = Field(default=None, foreign_key="locations.id")
    feeds_fulfillment_id: uuid.UUID | None = Field(default=None, foreign_key="fulfillment_orders.id")
    sourcing_decision_id: uuid.UUID | None = None
    ship_address: dict | None = jsonb(default_factory=lambda: None, nullable=True)
    # When the goods should be ready (the location's prep time, plus a transfer's travel).
    expected_ready_at: datetime | None = timestamp()
    ready_at: datetime | None = timestamp()
    pickup_deadline: datetime | None = timestamp()
    reminder_sent_at: datetime | None = timestamp()
    # The pickup code is derived (domain.pickup.pickup_code) from the secret, this row's id and
    # this issue number, never stored; 0: no code issued yet. Handover names the fulfillment, so
    # two open pickups at one store sharing a code is harmless and needs no unique index.
    pickup_code_issue: int = 0
    pickup_failed_attempts: int = 0
    pickup_locked_until: datetime | None = timestamp()
    arrived_at: datetime | None = timestamp()
    arrival: dict | None = jsonb(default_factory=lambda: None, nullable=True)
    carrier: str | None = Field(default=None, max_length=80)
    tracking_number: str | None = Field(default=None, max_length=120)
    shipped_at: datetime | None = timestamp()
    closed_at: datetime | None = timestamp()
    close_reason: str | None = None
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()


class FulfillmentOrderLine(SQLModel, table=True):
    __tablename__ = "fulfillment_order_lines"
    __table_args__ = (
        Index("ix_fulfillment_order_lines_fo", "fulfillment_order_id"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint(
            "quantity_picked + quantity_cancelled <= quantity AND quantity_handed_over <= quantity_picked",
            name="quantities_consistent",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    fulfillment_order_id: uuid.UUID = Field(foreign_key="fulfillment_orders.id")
    order_line_id: uuid.UUID = Field(foreign_key="order_lines.id")
    product_id: int = Field(foreign_key="products.id")
    sku: str = Field(max_length=64)
    quantity: int
    quantity_picked: int = 0
    quantity_handed_over: int = 0
    quantity_cancelled: int = 0


class Reservation(SQLModel, table=True):
    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_line", "fulfillment_order_line_id"),
        Index("ix_reservations_active_stock", "location_id", "product_id", postgresql_where=text("status = 'active'")),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    fulfillment_order_line_id: uuid.UUID = Field(foreign_key="fulfillment_order_lines.id")
    location_id: int = Field(foreign_key="locations.id")
    product_id: int = Field(foreign_key="products.id")
    quantity: int
    status: str = Field(default="active", max_length=20)
    expires_at: datetime | None = timestamp()
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()


class OrderEvent(SQLModel, table=True):
    """The order's timeline: append-only, one row per thing that happened, in order."""

    __tablename__ = "order_events"
    __table_args__ = (UniqueConstraint("order_id", "seq", name="uq_order_events_order_seq"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id")
    seq: int
    type: str = Field(max_length=60)
    actor_kind: str = Field(max_length=20)
    actor_id: str | None = Field(default=None, max_length=120)
    data: dict = jsonb()
    occurred_at: datetime = created_at()


class OrderChange(SQLModel, table=True):
    """One applied change to an order (``POST /v1/orders/{id}/changes``): who, from which channel,
    the actions, the totals before and after, the sourcing decisions it took."""

    __tablename__ = "order_changes"
    __table_args__ = (Index("ix_order_changes_order", "order_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id")
    actor_kind: str = Field(max_length=20)
    actor_id: str | None = Field(default=None, max_length=120)
    channel: str | None = Field(default=None, max_length=80)
    actions: list = jsonb(default_factory=list)
    before: dict = jsonb()
    after: dict = jsonb()
    decisions: list = jsonb(default_factory=list)
    version_before: int
    version_after: int
    created_at: datetime = created_at()


class FulfillmentDelay(SQLModel, table=True):
    """A fulfillment announced late (``fulfillment.delayed``): once per expected ready time, so a
    later promise that is missed again is announced again, and nothing twice."""

    __tablename__ = "fulfillment_delays"

    fulfillment_id: uuid.UUID = Field(foreign_key="fulfillment_orders.id", primary_key=True)
    expected_ready_at: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)
    announced_at: datetime = created_at()
