"""The tracking link's live stream (``GET /v1/public/orders/{token}/stream``): no API key, the
token is the credential; each event of the order says only what happened and when (the page
reads the redacted view again), never its data; a bad token is the same 404 as an unknown one."""

from __future__ import annotations

import json

from orchestrator.orders.public_lookup import TrackingTokens
from tests.e2e.support import act, assert_problem
from tests.e2e.test_order_stream import READY, live, pickup_order, relay, settings, sse, until  # noqa: F401

__all__ = ["live", "settings"]


async def test_the_tracking_stream_tells_what_happened_and_nothing_of_the_order(shop, live, db, redis, settings, clock):
    order, staff = await pickup_order(shop)
    fo = order["fulfillment_orders"][0]
    # The token the lookup would give (the lookup itself, and its limits, are test_public_tracking's).
    token = TrackingTokens.from_settings(settings).issue(order["number"], clock.now()).token
    await relay(db, redis, settings)
    bad = await live.client.get(f"/v1/public/orders/{token}x/stream")
    assert_problem(bad, 404, "not-found")
    async with live.client.stream("GET", f"/v1/public/orders/{token}/stream") as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse(response)
        await act(shop, staff, fo["id"], "accept")
        await act(shop, staff, fo["id"], "start-picking")
        await act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
        await act(shop, staff, fo["id"], "ready")
        await relay(db, redis, settings)
        seen: list = []
        ready = await until(events, READY, seen)
    for event in seen:
        body = json.loads(event.data)
        assert set(body) <= {"type", "occurred_at", "order_version"} and body["type"] == event.type
    assert "pickup_code" not in ready.data and "S1" not in ready.data
