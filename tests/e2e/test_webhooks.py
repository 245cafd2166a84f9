"""Issue #12, webhook subscriptions: signed per Standard Webhooks (checked with its own library),
retried on a schedule read off the injected clock, dead after 72 h and replayable, two signatures
during a secret rotation, one hanging subscriber never holding up another, and each subscription
receiving only events of orders its key may read."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from orchestrator.app import create_app
from orchestrator.platform.outbox_relay import relay_outbox
from orchestrator.webhooks.dispatch import DeliveryLimits, Dispatcher
from orchestrator.webhooks.outbound import fan_out_at
from tests.e2e.conftest import Shop, serving, settings_for
from tests.e2e.support import assert_problem
from tests.e2e.webhook_receiver import receiving


@dataclass
class Hooks:
    shop: Shop
    redis: object
    stream: str
    dispatcher: Dispatcher

    async def relay(self) -> int:
        """The worker's relay: publish the outbox and fan out deliveries (on the test's clock)."""
        return await relay_outbox(self.shop.db, self.redis, stream=self.stream, fan_out=fan_out_at(self.shop.clock.now))

    async def send(self) -> int:
        """Send what is due now, and wait until those requests are answered and recorded, until
        nothing more is due (a subscriber's slots bound each round); returns how many were sent."""
        total = 0
        while started := await self.dispatcher.dispatch_due():
            await self.dispatcher.wait_idle()
            total += started
        return total

    async def subscribe(self, url: str, types: list[str], headers: dict | None = None, **extra) -> dict:
        body = {"url": url, "event_types": types, **extra}
        r = await self.shop.client.post("/v1/webhook-subscriptions", json=body, headers=headers or self.shop.admin)
        assert r.status_code == 201, r.text
        return r.json()

    async def deliveries(self, subscription: str, **query) -> list[dict]:
        params = {"subscription": subscription, **query}
        r = await self.shop.client.get("/v1/webhook-deliveries", params=params, headers=self.shop.admin)
        assert r.status_code == 200, r.text
        return r.json()["items"]


@pytest.fixture
async def hooks(database_url, redis_url, db, redis, clock) -> AsyncIterator[Hooks]:
    settings = settings_for(database_url, redis_url, webhook_allow_private_urls=True)
    stream = f"test:webhooks:{uuid.uuid4().hex}"
    limits = DeliveryLimits(timeout_seconds=5.0, per_subscription=2, total=16, allow_private=True)
    async with (
        serving(create_app(settings, db=db, redis=redis, clock=clock)) as client,
        httpx.AsyncClient() as http,
    ):
        shop = Shop(client, db, clock)
        await shop.location("S1", capabilities=("pickup", "ship"))
        await shop.product("A")
        await shop.stock("S1", "A", 20)
        dispatcher = Dispatcher(db, clock, limits, http)
        try:
            yield Hooks(shop, redis, stream, dispatcher)
        finally:
            await dispatcher.aclose()
            await redis.delete(stream)


def verified(secret: str, received) -> dict:
    """The body, verified with the Standard Webhooks library (it raises on a bad signature)."""
    return Webhook(secret).verify(received.body, received.headers)


def signed_by(secret: str, received) -> dict:
    """The body, its signature checked with the library's own signing but not its clock: a test
    that moved the injected clock days ahead signs at that time, which ``verify`` calls too new."""
    at = datetime.fromtimestamp(int(received.headers["webhook-timestamp"]), tz=UTC)
    expected = Webhook(secret).sign(received.headers["webhook-id"], at, received.body)
    assert expected in received.headers["webhook-signature"].split(" ")
    return json.loads(received.body)


async def test_events_arrive_signed_in_the_standard_envelope(hooks):
    async with receiving() as receiver:
        sub = await hooks.subscribe(receiver.url, ["order.*"])
        assert sub["secret"].startswith("whsec_")
        placed = (await hooks.shop.place(hooks.shop.order_body(location="S1"))).json()
        await hooks.relay()
        assert await hooks.send() == 2  # order.placed and order.sourced; no fulfillment.* event
        bodies = [verified(sub["secret"], r) for r in receiver.received]
    assert sorted(b["type"] for b in bodies) == ["order.placed", "order.sourced"]
    for body, got in zip(bodies, receiver.received, strict=True):
        assert set(body) == {"id", "type", "timestamp", "data"}
        assert got.headers["webhook-id"] == body["id"]
        assert body["data"]["order_id"] == placed["id"]
        assert body["data"]["order_number"] == placed["number"]
        assert body["data"]["order_version"] == 1
        datetime.fromisoformat(body["timestamp"])
    with pytest.raises(Exception):  # noqa: B017,PT011 - the library's WebhookVerificationError
        Webhook(sub["secret"]).verify(receiver.received[0].body.replace("order", "0rder"), receiver.received[0].headers)
    delivered = await hooks.deliveries(sub["id"], status="delivered")
    assert len(delivered) == 2 and all(d["last_status_code"] == 200 for d in delivered)
    assert await hooks.relay() == 0 and await hooks.send() == 0  # nothing twice


async def test_a_failing_subscriber_is_retried_with_growing_delays_on_the_clock(hooks):
    async with receiving([500, 503, 200]) as receiver:
        sub = await hooks.subscribe(receiver.url, ["order.placed"])
        await hooks.shop.place(hooks.shop.order_body(location="S1"))
        await hooks.relay()
        await hooks.send()
        (first,) = await hooks.deliveries(sub["id"])
        assert (first["status"], first["attempts"], first["last_status_code"]) == ("failed", 1, 500)
        wait_1 = datetime.fromisoformat(first["next_attempt_at"]) - hooks.shop.clock.now()
        assert timedelta(seconds=3.7) <= wait_1 <= timedelta(seconds=6.3)
        assert await hooks.send() == 0  # not due yet

        hooks.shop.clock.advance(wait_1)
        assert await hooks.send() == 1
        (second,) = await hooks.deliveries(sub["id"])
        assert (second["status"], second["attempts"], second["last_status_code"]) == ("failed", 2, 503)
        wait_2 = datetime.fromisoformat(second["next_attempt_at"]) - hooks.shop.clock.now()
        assert timedelta(seconds=7.4) <= wait_2 <= timedelta(seconds=12.6)  # doubled, jittered

        hooks.shop.clock.advance(wait_2)
        assert await hooks.send() == 1
        (done,) = await hooks.deliveries(sub["id"])
    assert (done["status"], done["attempts"]) == ("delivered", 3)
    assert [a["status_code"] for a in done["attempt_log"]] == [500, 503, 200]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # one event, three tries


async def test_a_dead_delivery_is_replayed_and_a_subscriber_failing_for_days_is_disabled(hooks):
    async with receiving([500]) as receiver, receiving() as ops:
        sub = await hooks.subscribe(receiver.url, ["order.placed"])
        watcher = await hooks.subscribe(ops.url, ["webhook.subscription_disabled"])
        await hooks.shop.place(hooks.shop.order_body(location="S1"))
        await hooks.relay()
        for _ in range(200):
            await hooks.send()
            (d,) = await hooks.deliveries(sub["id"])
            if d["status"] == "dead":
                break
            hooks.shop.clock.advance(datetime.fromisoformat(d["next_attempt_at"]) - hooks.shop.clock.now())
        assert d["status"] == "dead" and d["next_attempt_at"] is None
        assert (
            timedelta(hours=70)
            < hooks.shop.clock.now() - datetime.fromisoformat(d["created_at"])
            <= timedelta(hours=72)
        )
        sent = len(receiver.received)
        assert await hooks.send() == 0  # dead stays dead

        receiver.answers = [200]
        r = await hooks.shop.client.post(f"/v1/webhook-deliveries/{d['id']}/replay", headers=hooks.shop.admin)
        assert r.status_code == 202 and r.json()["status"] == "pending"
        assert await hooks.send() == 1
        assert len(receiver.received) == sent + 1
        assert (await hooks.deliveries(sub["id"]))[0]["status"] == "delivered"

        # Five days of nothing but failures switch a subscription off.
        receiver.answers = [500]
        async with hooks.shop.db.unit_of_work() as uow:
            since = hooks.shop.clock.now() - timedelta(days=5)
            await uow.session.execute(text("UPDATE webhook_subscriptions SET failing_since = :s"), {"s": since})
            await uow.commit()
        test = await hooks.shop.client.post(f"/v1/webhook-subscriptions/{sub['id']}/test", headers=hooks.shop.admin)
        assert test.status_code == 202, test.text
        await hooks.send()  # fails: switched off, and announced to the subscriptions that take it
        (announced,) = ops.received
    body = signed_by(watcher["secret"], announced)
    assert body["type"] == "webhook.subscription_disabled" and body["data"]["subscription_id"] == sub["id"]
    now = (await hooks.shop.client.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=hooks.shop.admin)).json()
    assert now["enabled"] is False and "failed since" in now["disabled_reason"]
    again = await hooks.shop.client.patch(
        f"/v1/webhook-subscriptions/{sub['id']}", json={"enabled": True}, headers=hooks.shop.admin
    )
    assert again.json()["enabled"] is True and again.json()["failing_since"] is None


async def test_during_a_secret_rotation_deliveries_carry_both_signatures(hooks):
    async with receiving() as receiver:
        sub = await hooks.subscribe(receiver.url, ["webhook.test", "order.placed"])
        r = await hooks.shop.client.post(
            f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret",
            json={"overlap_seconds": 60},
            headers=hooks.shop.admin,
        )
        assert r.status_code == 200, r.text
        new = r.json()["secret"]
        assert new != sub["secret"] and r.json()["previous_secret_expires_at"] is not None
        await hooks.shop.client.post(f"/v1/webhook-subscriptions/{sub['id']}/test", headers=hooks.shop.admin)
        await hooks.send()
        during = receiver.received[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        assert verified(new, during)["type"] == "webhook.test"
        assert verified(sub["secret"], during)["type"] == "webhook.test"  # the old secret still verifies

        hooks.shop.clock.advance(timedelta(seconds=61))
        await hooks.shop.client.post(f"/v1/webhook-subscriptions/{sub['id']}/test", headers=hooks.shop.admin)
        await hooks.send()
        after = receiver.received[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert signed_by(new, after)["type"] == "webhook.test"
    with pytest.raises(AssertionError):
        signed_by(sub["secret"], after)  # the overlap is over: the old secret no longer signs


async def test_a_hanging_subscriber_does_not_hold_up_a_healthy_one(hooks):
    async with receiving([None]) as hanging, receiving() as healthy:
        await hooks.subscribe(hanging.url, ["order.*"])
        await hooks.subscribe(healthy.url, ["order.*"])
        for _ in range(3):
            await hooks.shop.place(hooks.shop.order_body(location="S1"))
        await hooks.relay()
        running = asyncio.create_task(hooks.dispatcher.run())  # as the worker runs it
        try:
            await healthy.wait_for(6)  # every event, while the hanging one holds its requests
        finally:
            running.cancel()
        assert hanging.open_requests == 2  # still held open: at most per_subscription
        assert len(hanging.received) == 2


async def test_redirects_are_not_followed(hooks):
    async with receiving([302]) as receiver:
        sub = await hooks.subscribe(receiver.url, ["webhook.test"])
        await hooks.shop.client.post(f"/v1/webhook-subscriptions/{sub['id']}/test", headers=hooks.shop.admin)
        await hooks.send()
    (d,) = await hooks.deliveries(sub["id"])
    assert (d["status"], d["last_status_code"]) == ("failed", 302)
    assert len(receiver.received) == 1


async def test_a_subscription_receives_only_events_of_orders_its_key_may_read(hooks):
    shop = hooks.shop
    amazon = await shop.channel("marketplace:amazon")
    web = await shop.channel("web")
    async with receiving() as market_hook, receiving() as web_hook:
        market = await hooks.subscribe(market_hook.url, ["order.placed"], headers=amazon)
        assert market["channel"] == "marketplace:amazon"
        mine = await hooks.subscribe(web_hook.url, ["order.placed"], headers=web)
        assert mine["channel"] is None  # an owned channel reads every channel
        await shop.place(shop.order_body(location="S1"), headers=web)
        await shop.place(shop.order_body(location="S1"), headers=amazon)
        await hooks.relay()
        await hooks.send()
        channels = [json.loads(r.body)["data"]["channel"] for r in market_hook.received]
        assert channels == ["marketplace:amazon"]
        assert sorted(json.loads(r.body)["data"]["channel"] for r in web_hook.received) == [
            "marketplace:amazon",
            "web",
        ]
    # Each channel manages its own; another's is the same 404 as an unknown one.
    listed = (await shop.client.get("/v1/webhook-subscriptions", headers=amazon)).json()["items"]
    assert [s["id"] for s in listed] == [market["id"]]
    theirs = await shop.client.get(f"/v1/webhook-subscriptions/{mine['id']}", headers=amazon)
    unknown = await shop.client.get(f"/v1/webhook-subscriptions/{uuid.uuid4()}", headers=amazon)
    assert theirs.status_code == unknown.status_code == 404
    wider = await shop.client.post(
        "/v1/webhook-subscriptions",
        json={"url": "https://example.com/h", "event_types": ["order.*"], "channel": "web"},
        headers=amazon,
    )
    assert wider.status_code == 403
    staff = await shop.staff("S1")
    assert (await shop.client.get("/v1/webhook-subscriptions", headers=staff)).status_code == 403


async def test_subscriptions_validate_their_urls_and_event_types(hooks):
    shop = hooks.shop
    for body, field in (
        ({"url": "ftp://example.com/h", "event_types": ["order.*"]}, "url"),
        ({"url": "https://user:pw@example.com/h", "event_types": ["order.*"]}, "url"),
        ({"url": "https://example.com/h", "event_types": ["order.nope"]}, "event_types"),
        ({"url": "https://example.com/h", "event_types": ["nothing.*"]}, "event_types"),
    ):
        r = await shop.client.post("/v1/webhook-subscriptions", json=body, headers=shop.admin)
        problem = assert_problem(r, 422, "invalid-request")
        assert problem.get("field") == field or field in json.dumps(problem), problem
    ok = await hooks.subscribe("https://example.com/h", ["*"], description="everything")
    r = await shop.client.delete(f"/v1/webhook-subscriptions/{ok['id']}", headers=shop.admin)
    assert r.status_code == 204
    assert (await shop.client.get(f"/v1/webhook-subscriptions/{ok['id']}", headers=shop.admin)).status_code == 404


async def test_without_private_urls_allowed_loopback_is_refused_at_creation_and_at_delivery(shop, redis):
    plain = await shop.client.post(
        "/v1/webhook-subscriptions", json={"url": "http://127.0.0.1:9/h", "event_types": ["*"]}, headers=shop.admin
    )
    assert "https" in assert_problem(plain, 422, "invalid-request")["detail"]
    # https to a name that resolves to loopback: accepted as a URL, refused when it is resolved.
    sub = await shop.client.post(
        "/v1/webhook-subscriptions",
        json={"url": "https://localhost:9/h", "event_types": ["webhook.test"]},
        headers=shop.admin,
    )
    assert sub.status_code == 201, sub.text
    await shop.client.post(f"/v1/webhook-subscriptions/{sub.json()['id']}/test", headers=shop.admin)
    async with httpx.AsyncClient() as http:
        dispatcher = Dispatcher(shop.db, shop.clock, DeliveryLimits(allow_private=False), http)
        assert await dispatcher.dispatch_due() == 1
        await dispatcher.wait_idle()
    r = await shop.client.get("/v1/webhook-deliveries", params={"status": "failed"}, headers=shop.admin)
    (d,) = r.json()["items"]
    assert d["last_status_code"] is None and d["last_error"].startswith("address not allowed")


async def test_the_worker_delivers_as_soon_as_the_order_commits(hooks, database_url, redis_url):
    """The whole path: intake commits → the worker's outbox listener relays and fans out → its
    sender delivers; nothing here calls the relay or the sender by hand."""
    from arq.connections import RedisSettings, create_pool

    from orchestrator.worker import shutdown, startup

    settings = settings_for(database_url, redis_url, webhook_allow_private_urls=True, events_stream=hooks.stream)
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    ctx = {"settings": settings, "db": hooks.shop.db, "clock": hooks.shop.clock, "redis": pool}
    async with receiving() as receiver:
        sub = await hooks.subscribe(receiver.url, ["order.placed"])
        await startup(ctx)
        try:
            placed = (await hooks.shop.place(hooks.shop.order_body(location="S1"))).json()
            (got,) = await receiver.wait_for(1)
        finally:
            await shutdown(ctx)
            await pool.aclose()
    assert verified(sub["secret"], got)["data"]["order_id"] == placed["id"]


README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readme_verification_snippet_verifies_a_real_delivery(hooks):
    readme = README.read_text()  # noqa: ASYNC240 - a small local file, once
    snippet = next(b for b in readme.split("```python\n")[1:] if "def orchestrator_event" in b).split("```")[0]
    scope: dict = {}
    exec(snippet, scope)  # noqa: S102 - the README's own code, as a reader would paste it
    async with receiving() as receiver:
        sub = await hooks.subscribe(receiver.url, ["webhook.test"])
        await hooks.shop.client.post(f"/v1/webhook-subscriptions/{sub['id']}/test", headers=hooks.shop.admin)
        await hooks.send()
    (got,) = receiver.received
    assert scope["orchestrator_event"](got.body.encode(), got.headers, sub["secret"])["type"] == "webhook.test"
    with pytest.raises(scope["WebhookVerificationError"]):
        scope["orchestrator_event"](got.body.encode(), got.headers, "whsec_" + "A" * 32)


async def test_unattempted_deliveries_die_after_72_hours_and_old_ones_are_forgotten(hooks):
    from orchestrator.platform.db import committing
    from orchestrator.webhooks.dispatch import expire_stale

    shop = hooks.shop
    async with receiving() as receiver:
        sub = await hooks.subscribe(receiver.url, ["webhook.test"])
        for _ in range(2):
            await shop.client.post(f"/v1/webhook-subscriptions/{sub['id']}/test", headers=shop.admin)
        await hooks.send()
        await shop.client.patch(f"/v1/webhook-subscriptions/{sub['id']}", json={"enabled": False}, headers=shop.admin)
        await shop.client.post(f"/v1/webhook-subscriptions/{sub['id']}/test", headers=shop.admin)
    keep = timedelta(days=30)

    async def expire() -> int:
        now = shop.clock.now()
        return await shop.db.run(committing(lambda uow: expire_stale(uow, now, keep)))

    assert await expire() == 0
    shop.clock.advance(timedelta(hours=72, seconds=1))
    assert await expire() == 1  # the one its switched-off subscription never sent
    assert sorted(d["status"] for d in await hooks.deliveries(sub["id"])) == ["dead", "delivered", "delivered"]
    shop.clock.advance(keep)
    await expire()
    assert await hooks.deliveries(sub["id"]) == []
