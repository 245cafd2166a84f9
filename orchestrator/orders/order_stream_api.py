"""``GET /v1/orders/{id}/stream``: the order's events as Server-Sent Events, live."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from litestar import Controller, get
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter
from litestar.response import ServerSentEvent

from orchestrator.order_record.aggregate import load_order
from orchestrator.orders.order_stream import (
    ConnectionSlots,
    OrderEventFeed,
    holding,
    order_events_stream,
    parse_last_event_id,
)
from orchestrator.platform.actors import Actor
from orchestrator.platform.auth import READ_ORDERS
from orchestrator.platform.db import Database
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep, SettingsDep
from orchestrator.platform.problems import problems
from orchestrator.settings import Settings

LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        required=False,
        description="the `id` of the last event received: the stream resumes after it",
        schema_extra={"pattern": r"^\d+-\d+$"},
    ),
]


def order_stream_state(settings: Settings, redis) -> dict[str, object]:
    """What the app keeps for its order streams (``app.state``): one feed, one set of slots."""
    return {
        "order_feed": OrderEventFeed(redis, settings.events_stream),
        "order_stream_slots": ConnectionSlots(settings.order_stream_max_per_key, settings.order_stream_max_connections),
    }


def slot_key(actor: Actor) -> str:
    return actor.key_id or actor.label


async def check_visible(db: Database, order_id: uuid.UUID, actor: Actor, now) -> None:
    """NotFound unless ``actor`` may read the order; a short transaction, closed before streaming."""

    async def visible(uow) -> None:
        await load_order(uow.session, order_id, actor, granted_at=now)

    await db.run(visible)


class OrderStreamController(Controller):
    path = "/v1/orders"
    tags = ["orders"]

    @get(
        "/{order_id:uuid}/stream",
        operation_id="streamOrderEvents",
        summary="The order's events as they happen (Server-Sent Events)",
        description=(
            "`text/event-stream`: one message per event of the order (`id` = stream position, "
            "`event` = event type, `data` = the event as JSON, never a pickup code), and a comment "
            "line every `ORCHESTRATOR_ORDER_STREAM_HEARTBEAT_SECONDS` while nothing happens. "
            "Reconnect with `Last-Event-ID` to get every event after it (kept for the stream's "
            "retention, 72 h by default). Open streams are bounded per key and per server: "
            "beyond, 429 with `Retry-After`."
        ),
        guards=[READ_ORDERS],
        responses={
            200: ResponseSpec(
                data_container=str,
                media_type="text/event-stream",
                description="Server-Sent Events, without end (`id:`, `event:`, `data:` lines; `: heartbeat`)",
                generate_examples=False,
            ),
            **problems(401, 403, 404, 422, 429),
        },
        media_type="text/event-stream",
    )
    async def stream(
        self,
        order_id: FromPath[uuid.UUID],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
        state: State,
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        resume = parse_last_event_id(last_event_id)
        await check_visible(db, order_id, actor, clock.now())
        return await open_stream(state, settings, order_id, slot_key(actor), resume)


async def open_stream(
    state: State,
    settings: Settings,
    order_id: uuid.UUID,
    key: str,
    resume: str | None,
    *,
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ServerSentEvent:
    """The order's event stream, in one of ``key``'s slots (429 when they are taken), from
    ``resume`` or from the newest event now; ``shape`` redacts each event further."""
    feed: OrderEventFeed = state.order_feed
    slot = state.order_stream_slots.take(key)
    try:
        start = None if resume else await feed.latest_entry_id()
    except BaseException:
        slot.release()
        raise
    messages = order_events_stream(
        feed, str(order_id), resume, heartbeat_seconds=settings.order_stream_heartbeat_seconds, shape=shape, start=start
    )
    return ServerSentEvent(
        holding(slot, messages),
        # nginx would hold the events back otherwise
        headers={"X-Accel-Buffering": "no", **(headers or {})},
        background=BackgroundTask(slot.release_after_response),
    )
