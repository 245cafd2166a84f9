"""Webhook subscriptions and deliveries over HTTP: parse, call the use case, map."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from orchestrator.platform.auth import SUBSCRIBERS
from orchestrator.platform.db import committing
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep, SettingsDep
from orchestrator.platform.pagination import PageResponse
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import RequestBody, set_fields
from orchestrator.webhooks import subscriptions as webhooks
from orchestrator.webhooks.tables import WebhookDelivery, WebhookSubscription

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000)]
EventTypes = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[a-z_.*]+$")]],
    msgspec.Meta(max_length=100),
]
Description = Annotated[str, msgspec.Meta(max_length=500)]
Channel = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
Overlap = Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 3600)]


class SubscriptionIn(RequestBody, kw_only=True):
    url: Url
    # ``events`` (default): the event types chosen; a notification channel: the customers'
    # notifications for it, rendered, for the provider or messaging service (admin only).
    kind: Literal["events", "email", "sms", "whatsapp", "push"] = "events"
    event_types: EventTypes = []
    description: Description | None = None
    enabled: bool = True
    channel: Channel | None = None


class SubscriptionPatch(RequestBody, kw_only=True):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType = msgspec.UNSET
    description: Description | None | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    channel: Channel | None | msgspec.UnsetType = msgspec.UNSET


class RotateSecretIn(RequestBody, kw_only=True):
    overlap_seconds: Overlap = 86400


class SubscriptionView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    kind: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    channel: str | None  # whose orders' events it receives (null: every channel's)
    owner_channel: str | None
    created_by: str
    failing_since: datetime | None
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime | None


class SubscriptionCreated(SubscriptionView, kw_only=True):
    secret: str  # shown at creation and rotation only


class SubscriptionPage(PageResponse, kw_only=True):
    items: list[SubscriptionView]


class DeliveryView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    order_id: uuid.UUID | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_duration_ms: int | None
    attempt_log: list[dict[str, Any]]
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(PageResponse, kw_only=True):
    items: list[DeliveryView]


def subscription_view(sub: WebhookSubscription, now: datetime) -> dict[str, Any]:
    overlap = sub.previous_secret_expires_at
    return {
        "id": sub.id,
        "kind": sub.kind,
        "url": sub.url,
        "event_types": list(sub.event_types),
        "description": sub.description,
        "enabled": sub.enabled,
        "channel": sub.orders_channel,
        "owner_channel": sub.owner_channel,
        "created_by": sub.created_by,
        "failing_since": sub.failing_since,
        "disabled_reason": sub.disabled_reason,
        "previous_secret_expires_at": overlap if overlap and overlap > now else None,
        "created_at": sub.created_at,
        "updated_at": sub.updated_at,
    }


def delivery_view(d: WebhookDelivery) -> DeliveryView:
    fields = {f: getattr(d, f) for f in DeliveryView.__struct_fields__}
    return DeliveryView(**fields)


class WebhookSubscriptionController(Controller):
    path = "/v1/webhook-subscriptions"
    tags = ["webhooks"]
    guards = [SUBSCRIBERS]

    @post(
        "/",
        operation_id="createWebhookSubscription",
        summary="Subscribe a URL to event types (wildcards like `order.*`); the signing secret is shown once",
        status_code=201,
        responses=problems(400, 401, 403, 422),
    )
    async def create(
        self, data: JSONBody[SubscriptionIn], actor: ActorDep, db: DB, clock: ClockDep, settings: SettingsDep
    ) -> SubscriptionCreated:
        now = clock.now()
        spec = webhooks.SubscriptionSpec(**msgspec.structs.asdict(data))
        allow = settings.webhook_allow_private_urls
        sub = await db.run(committing(lambda uow: webhooks.create(uow, actor, spec, allow, now)))
        return SubscriptionCreated(**subscription_view(sub, now), secret=sub.secret)

    @get(
        "/",
        operation_id="listWebhookSubscriptions",
        summary="Subscriptions, newest first",
        responses=problems(401, 403, 422),
    )
    async def list_all(
        self,
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> SubscriptionPage:
        page = await db.run(lambda uow: webhooks.list_subscriptions(uow, actor, cursor, limit))
        now = clock.now()
        items = [SubscriptionView(**subscription_view(s, now)) for s in page.items]
        return SubscriptionPage(items=items, next_cursor=page.next_cursor)

    @get(
        "/{sub_id:uuid}",
        operation_id="getWebhookSubscription",
        summary="One subscription",
        responses=problems(401, 403, 404),
    )
    async def get_one(self, sub_id: FromPath[uuid.UUID], actor: ActorDep, db: DB, clock: ClockDep) -> SubscriptionView:
        sub = await db.run(lambda uow: webhooks.subscription(uow, actor, sub_id))
        return SubscriptionView(**subscription_view(sub, clock.now()))

    @patch(
        "/{sub_id:uuid}",
        operation_id="updateWebhookSubscription",
        summary="Change the URL, event types, description or channel; enable (a fresh start) or disable",
        responses=problems(400, 401, 403, 404, 422),
    )
    async def update(
        self,
        sub_id: FromPath[uuid.UUID],
        data: JSONBody[SubscriptionPatch],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
    ) -> SubscriptionView:
        now, changes, allow = clock.now(), set_fields(data), settings.webhook_allow_private_urls
        sub = await db.run(committing(lambda uow: webhooks.update(uow, actor, sub_id, changes, allow, now)))
        return SubscriptionView(**subscription_view(sub, now))

    @delete(
        "/{sub_id:uuid}",
        operation_id="deleteWebhookSubscription",
        summary="Unsubscribe (its deliveries go with it)",
        status_code=204,
        responses=problems(401, 403, 404),
    )
    async def remove(self, sub_id: FromPath[uuid.UUID], actor: ActorDep, db: DB) -> None:
        await db.run(committing(lambda uow: webhooks.delete(uow, actor, sub_id)))

    @post(
        "/{sub_id:uuid}/rotate-secret",
        operation_id="rotateWebhookSecret",
        summary="A new signing secret; for `overlap_seconds` (default a day) deliveries carry both signatures",
        status_code=200,
        responses=problems(400, 401, 403, 404, 422),
    )
    async def rotate_secret(
        self, sub_id: FromPath[uuid.UUID], data: JSONBody[RotateSecretIn], actor: ActorDep, db: DB, clock: ClockDep
    ) -> SubscriptionCreated:
        now, overlap = clock.now(), timedelta(seconds=data.overlap_seconds)
        sub = await db.run(committing(lambda uow: webhooks.rotate_secret(uow, actor, sub_id, overlap, now)))
        return SubscriptionCreated(**subscription_view(sub, now), secret=sub.secret)

    @post(
        "/{sub_id:uuid}/test",
        operation_id="testWebhookSubscription",
        summary="Send a `webhook.test` event now (delivered and retried like any other)",
        status_code=202,
        responses=problems(401, 403, 404),
    )
    async def send_test(self, sub_id: FromPath[uuid.UUID], actor: ActorDep, db: DB, clock: ClockDep) -> DeliveryView:
        now = clock.now()
        return delivery_view(await db.run(committing(lambda uow: webhooks.send_test(uow, actor, sub_id, now))))


class WebhookDeliveryController(Controller):
    path = "/v1/webhook-deliveries"
    tags = ["webhooks"]
    guards = [SUBSCRIBERS]

    @get(
        "/",
        operation_id="listWebhookDeliveries",
        summary="Deliveries, newest first, with their attempts' response codes and timings",
        responses=problems(400, 401, 403, 422),
    )
    async def list_all(
        self,
        actor: ActorDep,
        db: DB,
        subscription: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[Literal["pending", "delivered", "failed", "dead"] | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> DeliveryPage:
        flt = webhooks.DeliveryFilter(subscription, status, cursor, limit)
        page = await db.run(lambda uow: webhooks.list_deliveries(uow, actor, flt))
        return DeliveryPage(items=[delivery_view(d) for d in page.items], next_cursor=page.next_cursor)

    @post(
        "/{delivery_id:uuid}/replay",
        operation_id="replayWebhookDelivery",
        summary="Send a delivery again now (also a dead one); the same `webhook-id`",
        status_code=202,
        responses=problems(401, 403, 404, 409),
    )
    async def replay(
        self, delivery_id: FromPath[uuid.UUID], actor: ActorDep, db: DB, clock: ClockDep
    ) -> Response[DeliveryView]:
        now = clock.now()
        delivery = await db.run(committing(lambda uow: webhooks.replay(uow, actor, delivery_id, now)))
        return Response(delivery_view(delivery), status_code=202)
