"""Issue #12, the client library: the same Idempotency-Key on every retry (a lost answer makes no
second order), 429/503 retried after ``Retry-After``, If-Match on changes, the order stream
followed and resumed, webhooks verified — against the real app."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orchestrator.client import ApiError, OrchestratorClient, verify_webhook
from tests.e2e.support import act
from tests.e2e.test_order_stream import READY, live, pickup_order, relay, settings  # noqa: F401 - fixtures


class Flaky(httpx.AsyncBaseTransport):
    """Passes requests to the app; ``plan`` says, per request, what to do instead: ``503`` (or
    ``429``) answers that without reaching the app, ``"lose"`` lets the app answer and drops it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, plan: list) -> None:
        self.inner, self.plan, self.seen = inner, plan, []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        step = self.plan.pop(0) if self.plan else None
        if step in (429, 503):
            return httpx.Response(step, headers={"Retry-After": "0"}, json={"title": "busy"})
        response = await self.inner.handle_async_request(request)
        if step == "lose":
            await response.aread()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response


class Dropping(httpx.AsyncBaseTransport):
    """A real connection whose first event stream breaks after its first event (as a proxy or a
    flaky network would cut it)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.streams: list[httpx.Request] = []
        # Set once the server answered a stream's headers: it follows the order from then on, so
        # what happens after it is sent (what happened before it is not).
        self.opened = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not request.url.path.endswith("/stream"):
            return response
        self.streams.append(request)
        self.opened.set()
        if len(self.streams) > 1:
            return response
        upstream = response.stream

        class Cut(httpx.AsyncByteStream):
            async def __aiter__(self):
                seen = b""
                async for chunk in upstream:
                    yield chunk
                    seen += chunk
                    tail = seen.replace(b"\r\n", b"\n").partition(b"id:")[2]
                    if b"\n\n" in tail:  # one whole event with an id has passed
                        raise httpx.ReadError("connection reset", request=request)

            async def aclose(self) -> None:
                await upstream.aclose()

        return httpx.Response(response.status_code, headers=response.headers, stream=Cut(), request=request)


def client_of(shop, key: dict, plan: list | None = None) -> tuple[OrchestratorClient, Flaky]:
    transport = Flaky(shop.client._transport, plan or [])
    token = key["Authorization"].removeprefix("Bearer ")
    return OrchestratorClient("http://orchestrator.test", token, transport=transport), transport


async def test_a_lost_answer_is_retried_with_the_same_key_and_makes_one_order(store):
    shop = store
    oo, seen = client_of(shop, await shop.channel("web"), plan=["lose", 503])
    async with oo:
        order = await oo.place_order(shop.order_body())
        again = await oo.get_order(order.id)
        listed = await oo.list_orders()
    keys = [r.headers["Idempotency-Key"] for r in seen.seen[:3]]
    assert len(set(keys)) == 1 and len(seen.seen) == 5  # lost, 503, answered; then two reads
    assert [o.id for o in listed] == [order.id] and again.version == order.version
    assert order.customer_status and order.customer_status["code"]


async def test_429_is_retried_after_retry_after_and_a_problem_raises_api_error(store):
    shop = store
    oo, seen = client_of(shop, await shop.channel("app"), plan=[429, 429])
    async with oo:
        order = await oo.place_order(shop.order_body())
        assert len(seen.seen) == 3
        with pytest.raises(ApiError) as missing:
            await oo.get_order("00000000-0000-0000-0000-000000000000")
        assert missing.value.status == 404 and missing.value.type == "not-found"
        by_number = await oo.get_order_by_number(order.number)
        assert by_number.id == order.id


async def test_changes_are_sent_with_if_match_and_a_stale_version_is_412(store):
    shop = store
    oo, _ = client_of(shop, await shop.channel("app"))
    async with oo:
        order = await oo.place_order(shop.order_body([("A", 2)]))
        line = order.lines[0]["id"]
        preview = await oo.change_order(
            order.id, order.version, [{"type": "set_quantity", "line_id": line, "quantity": 1}], dry_run=True
        )
        assert (await oo.get_order(order.id)).version == order.version  # a dry run writes nothing
        assert preview
        await oo.change_order(order.id, order.version, [{"type": "set_quantity", "line_id": line, "quantity": 1}])
        with pytest.raises(ApiError) as stale:
            await oo.change_order(order.id, order.version, [{"type": "cancel_order"}])
        assert stale.value.status == 412
        now = await oo.get_order(order.id)
        assert now.version > order.version and now.lines[0]["quantity_cancelled"] == 1


async def test_follow_yields_ready_for_pickup_and_resumes_after_a_dropped_connection(shop, live, db, redis, settings):  # noqa: F811
    order, staff = await pickup_order(shop)
    fo = order["fulfillment_orders"][0]
    key = (await shop.channel())["Authorization"].removeprefix("Bearer ")
    seen: list = []
    cutting = Dropping()
    async with OrchestratorClient(str(live.client.base_url), key, transport=cutting) as oo:
        stream = oo.follow(order["id"])
        first = asyncio.ensure_future(anext(stream))
        async with asyncio.timeout(10):
            await cutting.opened.wait()  # the stream is open: what happens now reaches it
        await act(shop, staff, fo["id"], "accept")
        await relay(db, redis, settings)
        async with asyncio.timeout(10):
            seen.append(await first)
        # The connection breaks after that first event: the client reconnects with Last-Event-ID
        # and misses nothing of what happened meanwhile.
        await act(shop, staff, fo["id"], "start-picking")
        await act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
        await act(shop, staff, fo["id"], "ready")
        await relay(db, redis, settings)
        async with asyncio.timeout(10):
            async for event in stream:
                seen.append(event)
                if event.event == READY:
                    break
        await stream.aclose()
    assert len(cutting.streams) == 2 and cutting.streams[1].headers["Last-Event-ID"] == seen[0].id
    types = [e.event for e in seen if e.event.startswith("fulfillment.")]
    assert types == ["fulfillment.accepted", "fulfillment.picking_started", "fulfillment.picked", READY]
    assert len({e.id for e in seen}) == len(seen)
    assert "pickup_code" not in seen[-1].data["data"]


def test_verify_webhook_accepts_a_signed_delivery_and_refuses_a_tampered_one():
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"id":"e1","type":"order.placed","timestamp":"2026-12-01T12:00:00+00:00","data":{}}'
    now = datetime.now(UTC)
    headers = {"Webhook-Id": "e1", "Webhook-Timestamp": str(int(now.timestamp()))}
    headers["Webhook-Signature"] = Webhook(secret).sign("e1", now, body)
    assert verify_webhook(body.encode(), headers, secret)["type"] == "order.placed"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body.replace("placed", "paid"), headers, secret)
