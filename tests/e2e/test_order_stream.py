"""Issue 11 — live updates: ``GET /v1/orders/{id}/stream`` over a real server (httpx's in-process
transport holds a response until it ends, so streams go through uvicorn in this event loop), fed
by the outbox relay run in-process, never carrying a pickup code."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn

from orchestrator.app import create_app
from orchestrator.orders.order_stream import OrderEventFeed
from orchestrator.platform.embedded import free_port
from orchestrator.platform.outbox_relay import relay_outbox
from orchestrator.settings import Settings
from tests.e2e.conftest import settings_for
from tests.e2e.support import act, assert_problem

READY = "fulfillment.ready_for_pickup"


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    return settings_for(
        database_url,
        redis_url,
        events_stream=f"test:events:{uuid.uuid4().hex}",
        order_stream_heartbeat_seconds=0.2,
        order_stream_max_per_key=2,
    )


@dataclass
class Live:
    client: httpx.AsyncClient
    app: object


@pytest.fixture
async def live(settings, db, redis, clock) -> AsyncIterator[Live]:
    """The app behind uvicorn on a free port, in this event loop."""
    app = create_app(settings, db=db, redis=redis, clock=clock)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_config=None, access_log=False, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn offers a flag only)
                await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=httpx.Timeout(10.0)) as client:
            yield Live(client, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=15)
        await redis.delete(settings.events_stream)


@dataclass
class Event:
    id: str | None = None
    type: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)


async def sse(response: httpx.Response) -> AsyncIterator[Event]:
    """The messages of an open event stream (heartbeats are messages with only a comment)."""
    current = Event()
    async for line in response.aiter_lines():
        if line == "":
            yield current
            current = Event()
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                current.id = value
            elif name == "event":
                current.type = value
            elif name == "data":
                current.data += value


@asynccontextmanager
async def opened(live: Live, order_id: str, headers: dict, last_event_id: str | None = None):
    h = {**headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    async with live.client.stream("GET", f"/v1/orders/{order_id}/stream", headers=h) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield response


async def answer(live: Live, order_id: str, headers: dict) -> httpx.Response:
    """The server's answer, its body read unless it is a stream (a stream would never end)."""
    async with live.client.stream("GET", f"/v1/orders/{order_id}/stream", headers=headers) as response:
        if not response.headers["content-type"].startswith("text/event-stream"):
            await response.aread()
        return response


async def until(events: AsyncIterator[Event], type_: str, seen: list[Event], *, entry: str | None = None) -> Event:
    """Read events (into ``seen``) until one of ``type_`` (or the one with id ``entry``); at most 10 s."""
    async with asyncio.timeout(10):
        async for event in events:
            if event.type is not None:
                seen.append(event)
                if event.id == entry if entry else event.type == type_:
                    return event
    raise AssertionError(f"the stream ended before {entry or type_}")


async def relay(db, redis, settings) -> None:
    await relay_outbox(db, redis, stream=settings.events_stream)


async def entries_of(redis, settings, order_id: str, *, after: str) -> list[str]:
    """The ids of the order's entries in the events stream after ``after``."""
    page = await redis.xrange(settings.events_stream, min=f"({after}")
    return [i.decode() for i, f in page if f[b"order_id"].decode() == order_id]


async def pickup_order(shop) -> tuple[dict, dict]:
    await shop.location("S1", capabilities=("pickup",))
    await shop.product("A")
    await shop.stock("S1", "A", 10)
    staff = await shop.staff("S1")
    r = await shop.place(shop.order_body([("A", 2)], method="pickup", location="S1"))
    assert r.status_code == 201, r.text
    return r.json(), staff


async def test_a_client_receives_ready_for_pickup_after_the_staff_marks_it_ready_without_the_pickup_code(
    shop, live, db, redis, settings
):
    order, staff = await pickup_order(shop)
    fo = order["fulfillment_orders"][0]
    await relay(db, redis, settings)  # what came before the client connected is not sent
    before = (await redis.xrevrange(settings.events_stream, count=1))[0][0].decode()
    async with opened(live, order["id"], await shop.channel()) as response:
        events = sse(response)
        heartbeat = await anext(events)  # nothing has happened since the client connected
        assert heartbeat.type is None and heartbeat.comments == ["heartbeat"]
        await act(shop, staff, fo["id"], "accept")
        await act(shop, staff, fo["id"], "start-picking")
        await act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
        await act(shop, staff, fo["id"], "ready")
        await relay(db, redis, settings)
        expected = await entries_of(redis, settings, order["id"], after=before)
        seen: list[Event] = []
        await until(events, READY, seen, entry=expected[-1])
    ready = next(e for e in seen if e.type == READY)

    body = json.loads(ready.data)
    assert (body["type"], body["order_id"]) == (READY, order["id"])
    assert "pickup_deadline" in body["data"]
    assert "pickup_code" not in body["data"] and "pickup_code" not in ready.data
    # The stream entry the relay wrote does carry it: the SSE endpoint is what takes it out.
    entry = next(f for i, f in await redis.xrange(settings.events_stream) if i.decode() == ready.id)
    assert "pickup_code" in json.loads(entry[b"payload"])["data"]
    # Only this order's events, each once, in stream order, from after the client connected.
    assert [e.id for e in seen] == expected
    assert [e.type for e in seen if e.type.startswith("fulfillment.")] == [
        "fulfillment.accepted",
        "fulfillment.picking_started",
        "fulfillment.picked",
        READY,
    ]
    assert all(json.loads(e.data)["order_id"] == order["id"] for e in seen)


async def test_a_client_that_lost_its_connection_resumes_with_last_event_id_without_gaps_or_duplicates(
    shop, live, db, redis, settings
):
    order, staff = await pickup_order(shop)
    other = await shop.place(shop.order_body([("A", 1)], method="pickup", location="S1"))
    fo = order["fulfillment_orders"][0]
    web = await shop.channel()
    await relay(db, redis, settings)
    async with opened(live, order["id"], web) as response:
        await act(shop, staff, fo["id"], "accept")
        await relay(db, redis, settings)
        first = await until(sse(response), "fulfillment.accepted", [])
    # Disconnected: what happens now must reach the client when it comes back.
    await act(shop, staff, fo["id"], "start-picking")
    await act(shop, staff, other.json()["fulfillment_orders"][0]["id"], "accept")
    await act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
    await act(shop, staff, fo["id"], "ready")
    await relay(db, redis, settings)

    expected = await entries_of(redis, settings, order["id"], after=first.id)
    async with opened(live, order["id"], web, last_event_id=first.id) as response:
        missed: list[Event] = []
        events = sse(response)
        await until(events, READY, missed, entry=expected[-1])
        heartbeat = await anext(events)  # and then nothing more: all of it came
        assert heartbeat.type is None, heartbeat

    assert [e.id for e in missed] == expected
    assert [e.type for e in missed if e.type.startswith("fulfillment.")] == [
        "fulfillment.picking_started",
        "fulfillment.picked",
        READY,
    ]


async def test_a_key_that_may_not_read_the_order_gets_404_and_a_bad_last_event_id_422(shop, live):
    order, _ = await pickup_order(shop)
    await shop.location("S2", capabilities=("pickup",))
    elsewhere = await shop.staff("S2")
    r = await answer(live, order["id"], elsewhere)
    assert_problem(r, 404, "not-found")
    unknown = await answer(live, str(uuid.uuid4()), elsewhere)
    assert unknown.json() == {**r.json(), "instance": unknown.json()["instance"]}
    bad = await answer(live, order["id"], {**await shop.channel(), "Last-Event-ID": "x; DROP"})
    assert_problem(bad, 422, "invalid-request")


async def test_open_streams_are_bounded_per_key_beyond_429_with_retry_after_freed_when_a_client_leaves(shop, live):
    order, _ = await pickup_order(shop)
    web = await shop.channel()
    slots = live.app.state.order_stream_slots
    async with opened(live, order["id"], web), opened(live, order["id"], web):
        r = await answer(live, order["id"], web)
        assert_problem(r, 429, "too-many-requests")
        assert int(r.headers["Retry-After"]) > 0
        # Another key still has its own streams.
        async with opened(live, order["id"], await shop.channel("app")):
            assert slots.open_count == 3
    async with asyncio.timeout(10):  # the server notices the disconnects
        while slots.open_count:  # noqa: ASYNC110 (a counter, no event to wait on)
            await asyncio.sleep(0.02)
    async with opened(live, order["id"], web):
        pass


async def test_an_event_both_read_by_the_catch_up_and_handed_out_live_comes_once(redis):
    """The window a resuming stream has to close: it joins the live hand-out before it reads the
    stream, so an event committed in between reaches it both ways."""
    stream, order = f"test:events:{uuid.uuid4().hex}", str(uuid.uuid4())
    feed = OrderEventFeed(redis, stream)

    async def add(type_: str) -> str:
        payload = {"type": type_, "order_id": order, "data": {}}
        fields = {"id": str(uuid.uuid4()), "type": type_, "order_id": order, "payload": json.dumps(payload)}
        return (await redis.xadd(stream, fields)).decode()

    start, live = await add("order.placed"), []
    read_stream = feed._catch_up

    async def catch_up_late(order_id: str, after: str):
        live.append(await add("order.status_changed"))
        async with asyncio.timeout(10):  # handed out live first...
            while not any(f.pending for f in feed._followers[order_id]):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return await read_stream(order_id, after)  # ...then read from the stream too

    feed._catch_up = catch_up_late
    events = feed.events(order, start, heartbeat_seconds=0.2)
    try:
        got = [await anext(events), await anext(events)]
    finally:
        await events.aclose()
        await feed.aclose()
        await redis.delete(stream)
    assert got[0] is not None and got[0].entry_id == live[0]
    assert got[1] is None  # a heartbeat next, not the same event again
