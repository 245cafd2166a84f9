"""The connector registry and Shopify's webhooks over HTTP: Shopify's own example payloads
(tests/fixtures/shopify), signed as Shopify signs them, become one canonical order each."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.shopify.signature import signature_of
from orchestrator.connections import receipts
from orchestrator.connections.handlers import HANDLERS, processing
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.payments.gateway import UnconfiguredGateway
from tests.e2e.connector_support import orders_on, receipts_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
SECRET = "shpss_0123456789abcdef"
SKUS = ("IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK")
CHANNEL = "marketplace:shopify"


def body_of(name: str, **changes) -> bytes:
    return json.dumps(json.loads((FIXTURES / name).read_text()) | changes).encode()


@pytest.fixture
async def shopify(shop):
    """A warehouse W1 that ships and a pickup store S1, each with 10 of every fixture sku."""
    await shop.location("W1", 45.40, -75.70, capabilities=("ship",))
    await shop.location("S1", 45.41, -75.69, capabilities=("pickup",))
    for sku in SKUS:
        await shop.product(sku)
        await shop.stock("W1", sku, 10)
        await shop.stock("S1", sku, 10)
    return shop


async def register(shop, **overrides) -> dict:
    body = {
        "kind": "shopify",
        "name": "Shopify main",
        "channel": CHANNEL,
        "credentials": {"webhook_secret": SECRET, "access_token": "shpat_secret_token"},
        "location_map": {"905684977": "S1"},
        **overrides,
    }
    r = await shop.client.post("/v1/connectors", json=body, headers=shop.admin)
    assert r.status_code == 201, r.text
    return r.json()


async def deliver(shop, connector_id, body: bytes, topic="orders/create", *, webhook_id=None, secret=SECRET, **extra):
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "example.myshopify.com",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-API-Version": "2025-01",
        "X-Shopify-Hmac-Sha256": signature_of(body, secret),
        **extra,
    }
    headers = {k: v for k, v in headers.items() if v is not None}
    return await shop.client.post(f"/v1/connectors/{connector_id}/shopify/webhooks", content=body, headers=headers)


async def test_a_connector_keeps_its_credentials_to_itself(shopify):
    shop = shopify
    made = await register(shop)
    assert made["credentials_set"] == ["access_token", "webhook_secret"]
    for path in ("/v1/connectors", f"/v1/connectors/{made['id']}"):
        r = await shop.client.get(path, headers=shop.admin)
        assert r.status_code == 200 and SECRET not in r.text and "shpat_secret_token" not in r.text
    r = await shop.client.patch(
        f"/v1/connectors/{made['id']}", json={"sku_map": {"X": "IPOD2008RED"}}, headers=shop.admin
    )
    assert r.status_code == 200 and r.json()["sku_map"] == {"X": "IPOD2008RED"}
    assert r.json()["credentials_set"] == ["access_token", "webhook_secret"]
    r = await shop.client.delete(f"/v1/connectors/{made['id']}", headers=shop.admin)
    assert r.status_code == 204
    assert (await shop.client.get(f"/v1/connectors/{made['id']}", headers=shop.admin)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"credentials": {"access_token": "t"}}, "credentials"),  # no webhook_secret
        ({"credentials": {"webhook_secret": "s", "extra": "x"}}, "credentials"),
        ({"location_map": {"905684977": "NOPE"}}, "location_map"),
        ({"kind": "amazon", "credentials": {"client_id": "a", "client_secret": "b"}}, "credentials"),
    ],
)
async def test_a_connector_is_refused_what_its_kind_does_not_take(shopify, body, field):
    base = {"kind": "shopify", "name": "n", "channel": CHANNEL, "credentials": {"webhook_secret": SECRET}}
    r = await shopify.client.post("/v1/connectors", json=base | body, headers=shopify.admin)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == field and SECRET not in r.text


async def test_the_other_kinds_take_their_documented_credentials_and_only_admins_register(shopify):
    shop = shopify
    kinds = {
        "amazon": {"client_id": "a", "client_secret": "b", "refresh_token": "c"},
        "walmart": {"client_id": "a", "client_secret": "b"},
        "square": {"signature_key": "k"},
    }
    for kind, credentials in kinds.items():
        made = await register(shop, kind=kind, name=kind, channel=f"marketplace:{kind}", credentials=credentials)
        assert made["credentials_set"] == sorted(credentials)
    web = await shop.channel("web")
    body = {"kind": "shopify", "name": "x", "channel": CHANNEL, "credentials": {"webhook_secret": "s"}}
    assert (await shop.client.post("/v1/connectors", json=body, headers=web)).status_code == 403


async def test_a_signed_order_becomes_one_canonical_order_paid_by_the_marketplace(shopify):
    shop = shopify
    c = await register(shop)
    r = await deliver(shop, c["id"], body_of("order.json"))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "applied" and r.json()["duplicate"] is False
    [order] = await orders_on(shop, CHANNEL)
    assert order["channel_order_ref"] == "450789469" and order["fulfillment"]["method"] == "ship"
    assert sorted((ln["sku"], ln["quantity"], ln["unit_price"]) for ln in order["lines"]) == [
        (sku, 1, 19900) for sku in sorted(SKUS)
    ]
    assert (order["subtotal"], order["tax_total"], order["total"]) == (59700, 1194, 60894)
    assert order["payment"]["provider"] == "marketplace" and order["payment"]["external_id"] == "450789469"
    [receipt] = await receipts_of(shop, c["id"])
    assert receipt["order_id"] == order["id"] and receipt["body"] == body_of("order.json").decode()
    assert (
        "x-shopify-hmac-sha256" not in receipt["headers"] and receipt["headers"]["x-shopify-topic"] == "orders/create"
    )


@pytest.mark.parametrize(
    "spoil",
    [
        {"secret": "not-the-secret"},
        {"X-Shopify-Hmac-Sha256": None},
        {"X-Shopify-Hmac-Sha256": "AAAA"},
        {"X-Shopify-Hmac-Sha256": signature_of(b"{}", SECRET)},  # another body's signature
    ],
)
async def test_a_bad_or_missing_signature_is_401_and_nothing_is_stored(shopify, spoil):
    shop = shopify
    c = await register(shop)
    r = await deliver(shop, c["id"], body_of("order.json"), **spoil)
    assert r.status_code == 401, r.text
    assert r.json()["type"].endswith("/webhook-signature-invalid")
    assert await receipts_of(shop, c["id"]) == [] and await orders_on(shop, CHANNEL) == []


async def test_an_unknown_connector_is_404_and_missing_headers_400_after_the_signature(shopify):
    shop = shopify
    c = await register(shop)
    assert (await deliver(shop, uuid.uuid4(), body_of("order.json"))).status_code == 404
    r = await deliver(shop, c["id"], body_of("order.json"), **{"X-Shopify-Webhook-Id": None})
    assert r.status_code == 400 and "x-shopify-webhook-id" in r.json()["detail"]
    unsigned = await deliver(shop, c["id"], body_of("order.json"), secret="x", **{"X-Shopify-Topic": None})
    assert unsigned.status_code == 401
    assert await receipts_of(shop, c["id"]) == []


async def test_a_repeated_delivery_is_kept_as_a_duplicate_and_applied_once(shopify):
    shop = shopify
    c = await register(shop)
    body = body_of("order.json")
    first = await deliver(shop, c["id"], body, webhook_id="wh-1")
    again = await deliver(shop, c["id"], body, webhook_id="wh-1")
    # Same event, another webhook delivery id: the event id decides.
    event_a = await deliver(shop, c["id"], body, webhook_id="wh-2", **{"X-Shopify-Event-Id": "ev-9"})
    event_b = await deliver(shop, c["id"], body, webhook_id="wh-3", **{"X-Shopify-Event-Id": "ev-9"})
    assert [r.status_code for r in (first, again, event_a, event_b)] == [200] * 4
    assert (first.json()["duplicate"], again.json()["duplicate"], event_b.json()["duplicate"]) == (False, True, True)
    assert again.json()["outcome"] == "duplicate"
    assert len(await orders_on(shop, CHANNEL)) == 1
    assert len(await receipts_of(shop, c["id"], "duplicate")) == 2


async def test_an_unknown_sku_is_unmapped_until_the_map_is_fixed_and_replayed(shopify):
    shop = shopify
    c = await register(shop)
    ops = await shop.client.post(
        "/v1/webhook-subscriptions",
        json={"url": "https://ops.example/hooks", "event_types": ["connector.*"]},
        headers=shop.admin,
    )
    order = json.loads((FIXTURES / "order.json").read_text())
    order["line_items"][2]["sku"] = "IPOD-BLACK-SHOPIFY"
    r = await deliver(shop, c["id"], json.dumps(order).encode())
    assert r.status_code == 200 and r.json()["outcome"] == "unmapped"
    [receipt] = await receipts_of(shop, c["id"], "unmapped")
    # The admin's subscription hears of it: connector.receipt_unmapped, naming what to map.
    sent = await shop.client.get(f"/v1/webhook-deliveries?subscription={ops.json()['id']}", headers=shop.admin)
    [announced] = sent.json()["items"]
    assert announced["event_type"] == "connector.receipt_unmapped"
    assert announced["payload"]["data"]["unmapped"] == ["sku:IPOD-BLACK-SHOPIFY"]
    assert announced["payload"]["data"]["receipt_id"] == receipt["id"]
    assert receipt["unmapped"] == ["sku:IPOD-BLACK-SHOPIFY"] and await orders_on(shop, CHANNEL) == []
    status = (await shop.client.get(f"/v1/connectors/{c['id']}/status", headers=shop.admin)).json()
    assert status["counts"]["unmapped"] == 1 and status["backlog"] == 0 and "IPOD-BLACK-SHOPIFY" in status["last_error"]

    fix = {"sku_map": {"IPOD-BLACK-SHOPIFY": "IPOD2008BLACK"}}
    assert (await shop.client.patch(f"/v1/connectors/{c['id']}", json=fix, headers=shop.admin)).status_code == 200
    replay = f"/v1/connectors/{c['id']}/receipts/{receipt['id']}/replay"
    r = await shop.client.post(replay, headers=shop.admin)
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    [placed] = await orders_on(shop, CHANNEL)
    assert "IPOD2008BLACK" in {ln["sku"] for ln in placed["lines"]}
    again = await shop.client.post(replay, headers=shop.admin)
    assert again.status_code == 409 and len(await orders_on(shop, CHANNEL)) == 1


async def test_a_local_pickup_is_a_pickup_at_the_mapped_store(shopify):
    shop = shopify
    c = await register(shop)
    r = await deliver(shop, c["id"], body_of("order_local_pickup.json"))
    assert r.json()["outcome"] == "applied", r.text
    [order] = await orders_on(shop, CHANNEL)
    assert (order["fulfillment"]["method"], order["fulfillment"]["location"]) == ("pickup", "S1")
    assert {fo["location"] for fo in order["fulfillment_orders"]} == {"S1"}


async def test_a_pickup_at_an_unmapped_location_waits_for_the_map(shopify):
    shop = shopify
    c = await register(shop, location_map={})
    r = await deliver(shop, c["id"], body_of("order_local_pickup.json"))
    assert r.json()["outcome"] == "unmapped"
    [receipt] = await receipts_of(shop, c["id"])
    assert receipt["unmapped"] == ["location:905684977"]


async def test_orders_cancelled_after_placement_cancels_the_order(shopify):
    shop = shopify
    c = await register(shop)
    await deliver(shop, c["id"], body_of("order.json"))
    cancelled = body_of("order.json", cancel_reason="customer", cancelled_at="2008-01-10T12:00:00-05:00")
    r = await deliver(shop, c["id"], cancelled, topic="orders/cancelled")
    assert r.json()["outcome"] == "applied", r.text
    [order] = await orders_on(shop, CHANNEL)
    assert order["status"] == "cancelled"
    late = await deliver(shop, c["id"], cancelled, topic="orders/cancelled")
    assert late.json()["outcome"] == "ignored"  # nothing left open: recorded, changes nothing


async def test_an_update_older_than_the_applied_one_is_stale(shopify):
    shop = shopify
    c = await register(shop)
    await deliver(shop, c["id"], body_of("order.json"))  # updated_at 2008-01-10T11:00
    newer = await deliver(
        shop, c["id"], body_of("order.json", updated_at="2008-01-10T13:00:00-05:00"), "orders/updated"
    )
    older = await deliver(
        shop, c["id"], body_of("order.json", updated_at="2008-01-10T12:00:00-05:00"), "orders/updated"
    )
    assert (newer.json()["outcome"], older.json()["outcome"]) == ("applied", "stale")


async def test_a_refund_is_recorded_and_other_topics_are_kept_as_ignored(shopify):
    shop = shopify
    c = await register(shop)
    await deliver(shop, c["id"], body_of("order.json"))
    refund = await deliver(shop, c["id"], body_of("refund.json"), "refunds/create")
    assert refund.json()["outcome"] == "applied"
    [receipt] = [r for r in await receipts_of(shop, c["id"]) if r["topic"] == "refunds/create"]
    assert "209.00 USD" in receipt["detail"]
    other = await deliver(shop, c["id"], b'{"id": 1}', "products/update")
    assert other.status_code == 200 and other.json()["outcome"] == "ignored"
    [order] = await orders_on(shop, CHANNEL)
    assert order["payment"]["amount_refunded"] == 0  # the marketplace refunds; we move no money


async def test_the_sweep_processes_a_receipt_a_crash_left_pending(shopify, settings):
    shop = shopify
    c = await register(shop)
    body = body_of("order.json")
    delivery = receipts.Delivery(uuid.UUID(c["id"]), "orders/create", "wh-crash", {}, body)
    stored = await receipts.receive(shop.db, delivery, shop.clock.now() - timedelta(minutes=5))
    flow = processing(shop.db, shop.clock, LifecycleSettings.from_settings(settings), settings, UnconfiguredGateway())
    assert await receipts.sweep(flow) == 1
    [receipt] = await receipts_of(shop, c["id"])
    assert receipt["id"] == str(stored.id) and receipt["outcome"] == "applied" and receipt["attempts"] == 1
    assert len(await orders_on(shop, CHANNEL)) == 1
    assert await receipts.sweep(flow) == 0


async def test_a_processing_failure_still_answers_200_and_the_sweep_applies_it_later(shopify, settings, monkeypatch):
    shop = shopify
    c = await register(shop)

    async def crash(flow, connector, receipt):
        raise RuntimeError("the database went away mid-processing")

    monkeypatch.setitem(HANDLERS, "shopify", crash)
    r = await deliver(shop, c["id"], body_of("order.json"))
    assert r.status_code == 200 and r.json()["outcome"] == "pending"
    [receipt] = await receipts_of(shop, c["id"], "pending")
    assert receipt["detail"] == "processing failed: RuntimeError" and await orders_on(shop, CHANNEL) == []
    status = (await shop.client.get(f"/v1/connectors/{c['id']}/status", headers=shop.admin)).json()
    assert status["backlog"] == 1

    monkeypatch.undo()
    flow = processing(shop.db, shop.clock, LifecycleSettings.from_settings(settings), settings, UnconfiguredGateway())
    assert await receipts.sweep(flow) == 0  # too young: the request that stored it may still be at it
    shop.clock.advance(receipts.SWEEP_AFTER + timedelta(seconds=1))
    assert await receipts.sweep(flow) == 1
    [receipt] = await receipts_of(shop, c["id"])
    assert receipt["outcome"] == "applied" and receipt["attempts"] == 2 and len(await orders_on(shop, CHANNEL)) == 1


async def test_receipts_page_newest_first(shopify):
    shop = shopify
    c = await register(shop)
    for n in range(3):
        await deliver(shop, c["id"], b'{"id": %d}' % n, "products/update")
        shop.clock.advance(timedelta(seconds=1))
    path = f"/v1/connectors/{c['id']}/receipts?limit=2"
    first = (await shop.client.get(path, headers=shop.admin)).json()
    rest = (await shop.client.get(f"{path}&cursor={first['next_cursor']}", headers=shop.admin)).json()
    bodies = [r["body"] for r in first["items"] + rest["items"]]
    assert bodies == ['{"id": 2}', '{"id": 1}', '{"id": 0}'] and rest["next_cursor"] is None
    bad = await shop.client.get(f"/v1/connectors/{c['id']}/receipts?outcome=lost", headers=shop.admin)
    assert bad.status_code in (400, 422)


async def test_two_deliveries_of_one_event_at_once_apply_once(shopify):
    shop = shopify
    c = await register(shop)
    body = body_of("order.json")
    answers = await asyncio.gather(*(deliver(shop, c["id"], body, webhook_id="wh-race") for _ in range(4)))
    assert [r.status_code for r in answers] == [200] * 4
    assert sorted(r.json()["duplicate"] for r in answers) == [False, True, True, True]
    assert len(await orders_on(shop, CHANNEL)) == 1 and len(await receipts_of(shop, c["id"], "applied")) == 1
