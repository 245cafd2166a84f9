"""Square's webhooks over HTTP: Square's own example events (tests/fixtures/square), signed as Square
signs them (notification URL + body), and the order fetched from a loopback stand-in for Square's
Orders API (``GET /v2/orders/{id}``) become one canonical order each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.square.signature import STAND_IN_URL, signature_of
from orchestrator.connections import receipts
from orchestrator.connections.handlers import processing
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.payments.gateway import UnconfiguredGateway
from tests.e2e.connector_support import orders_on, receipts_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "square"
KEY = "Ibxx_5AKakO-3qeNVR61Dw"
TOKEN = "EAAAl_square_access_token"
NOTIFICATION_URL = "https://orchestrator.example.com/v1/connectors/square-main/square/webhooks"
CHANNEL = "marketplace:square"
ORDER_ID = "eA3vssLHKJrv9H0IdJCM3gNqfdcZY"  # the id in Square's documentation events
SKUS = ("ITEM-1", "ITEM-2")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def event(name: str, **changes) -> bytes:
    body = fixture(name)
    for path, value in changes.items():  # "data.object.order_updated.state" → value
        target = body
        *parents, last = path.split("__")
        for p in parents:
            target = target[p]
        target[last] = value
    return json.dumps(body).encode()


@dataclass
class SquareApi:
    """Square's Orders API on a loopback port: ``orders`` by id; ``answers``: statuses to give first."""

    orders: dict[str, dict] = field(default_factory=dict)
    answers: list[int] = field(default_factory=list)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            path = head[0].split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
            self.seen.append((path, headers))
            order_id = path.removeprefix("/v2/orders/")
            status = self.answers.pop(0) if self.answers else (200 if order_id in self.orders else 404)
            payload = {"order": self.orders[order_id]} if status == 200 else {"errors": [{"code": "X"}]}
            body = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def square_api() -> AsyncIterator[SquareApi]:
    api = SquareApi()
    server = await asyncio.start_server(api.handle, "127.0.0.1", 0)
    api.port = server.sockets[0].getsockname()[1]
    try:
        yield api
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def square(shop):
    """A warehouse W1 that ships and a pickup store S1 (Square's location FPYCBCHYMXFK1), 10 of each sku."""
    await shop.location("W1", 45.40, -75.70, capabilities=("ship",))
    await shop.location("S1", 45.41, -75.69, capabilities=("pickup",))
    for sku in SKUS:
        await shop.product(sku)
        await shop.stock("W1", sku, 10)
        await shop.stock("S1", sku, 10)
    async with square_api() as api:
        api.orders[ORDER_ID] = fixture("order_pickup.json")["order"]
        shop.square = api
        yield shop


async def register(shop, **overrides) -> dict:
    body = {
        "kind": "square",
        "name": "Square main",
        "channel": CHANNEL,
        "credentials": {"signature_key": KEY, "access_token": TOKEN},
        "location_map": {"FPYCBCHYMXFK1": "S1"},
        "sku_map": {"catalog_object_id5": "ITEM-1", "catalog_object_id6": "ITEM-2"},
        "settings": {"notification_url": NOTIFICATION_URL, "api_base": shop.square.base},
        **overrides,
    }
    r = await shop.client.post("/v1/connectors", json=body, headers=shop.admin)
    assert r.status_code == 201, r.text
    return r.json()


async def deliver(shop, connector_id, body: bytes, *, key=KEY, url=NOTIFICATION_URL, **headers):
    sent = {
        "Content-Type": "application/json",
        "square-version": "2025-01-23",
        "x-square-hmacsha256-signature": signature_of(url, body, key),
        **headers,
    }
    sent = {k: v for k, v in sent.items() if v is not None}
    return await shop.client.post(f"/v1/connectors/{connector_id}/square/webhooks", content=body, headers=sent)


async def test_a_signed_order_created_is_fetched_and_becomes_one_pickup_at_the_mapped_store(square):
    shop = square
    c = await register(shop)
    r = await deliver(shop, c["id"], event("order_created.json"))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "applied" and r.json()["duplicate"] is False
    [(path, headers)] = shop.square.seen
    assert path == f"/v2/orders/{ORDER_ID}" and headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["square-version"]
    [order] = await orders_on(shop, CHANNEL)
    assert order["channel_order_ref"] == ORDER_ID
    assert (order["fulfillment"]["method"], order["fulfillment"]["location"]) == ("pickup", "S1")
    assert sorted((ln["sku"], ln["quantity"], ln["unit_price"]) for ln in order["lines"]) == [
        ("ITEM-1", 1, 500),
        ("ITEM-2", 2, 300),
    ]
    assert (order["subtotal"], order["discount_total"], order["total"]) == (1100, 550, 550)
    assert order["payment"]["provider"] == "marketplace" and order["payment"]["external_id"] == ORDER_ID
    [receipt] = await receipts_of(shop, c["id"])
    assert receipt["order_id"] == order["id"] and receipt["dedupe_key"] == "116038d3-2948-439f-8679-fc86dbf80f69"
    assert "x-square-hmacsha256-signature" not in receipt["headers"] and receipt["topic"] == "order.created"


async def test_a_shipment_order_ships_to_the_recipient(square):
    shop = square
    c = await register(shop)
    shop.square.orders[ORDER_ID] = fixture("order_shipment.json")["order"] | {"id": ORDER_ID}
    r = await deliver(shop, c["id"], event("order_created.json"))
    assert r.json()["outcome"] == "applied", r.text
    [order] = await orders_on(shop, CHANNEL)
    assert order["fulfillment"]["method"] == "ship"


@pytest.mark.parametrize(
    "spoil",
    [
        {"key": "MCmhFRxGX82xMwg5FsaoQA"},  # another key
        {"url": "https://orchestrator.example.com/v1/connectors/square-main/square/webhooks/"},  # not the URL
        {"x-square-hmacsha256-signature": None},
        {"x-square-hmacsha256-signature": "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="},
        {"x-square-hmacsha256-signature": signature_of(NOTIFICATION_URL, b"{}", KEY)},  # another body's
    ],
)
async def test_a_bad_missing_or_wrong_url_signature_is_401_and_nothing_is_stored(square, spoil):
    shop = square
    c = await register(shop)
    r = await deliver(shop, c["id"], event("order_created.json"), **spoil)
    assert r.status_code == 401, r.text
    assert r.json()["type"].endswith("/webhook-signature-invalid")
    assert await receipts_of(shop, c["id"]) == [] and await orders_on(shop, CHANNEL) == [] and shop.square.seen == []


async def test_an_unknown_connector_is_404_and_one_without_its_notification_url_accepts_nothing(square):
    shop = square
    c = await register(shop, settings={"api_base": shop.square.base})
    assert (await deliver(shop, uuid.uuid4(), event("order_created.json"))).status_code == 404
    shopify = await register(shop, kind="shopify", name="s", credentials={"webhook_secret": KEY})
    assert (await deliver(shop, shopify["id"], event("order_created.json"))).status_code == 404
    assert (await deliver(shop, c["id"], event("order_created.json"))).status_code == 401
    # Not even signed over the stand-in URL an unknown connector is checked against (it is public).
    assert (await deliver(shop, c["id"], event("order_created.json"), url=STAND_IN_URL)).status_code == 401
    assert await receipts_of(shop, c["id"]) == []


async def test_a_repeated_event_is_kept_as_a_duplicate_and_applied_once(square):
    shop = square
    c = await register(shop)
    body = event("order_created.json")
    answers = [await deliver(shop, c["id"], body, **{"square-retry-number": str(n)}) for n in range(3)]
    assert [r.json()["duplicate"] for r in answers] == [False, True, True]
    assert answers[1].json()["outcome"] == "duplicate"
    assert len(await orders_on(shop, CHANNEL)) == 1 and len(shop.square.seen) == 1
    assert len(await receipts_of(shop, c["id"], "duplicate")) == 2


async def test_an_unknown_sku_is_unmapped_until_the_map_is_fixed_and_replayed(square):
    shop = square
    c = await register(shop, sku_map={"catalog_object_id5": "ITEM-1"})
    r = await deliver(shop, c["id"], event("order_created.json"))
    assert r.status_code == 200 and r.json()["outcome"] == "unmapped", r.text
    [receipt] = await receipts_of(shop, c["id"], "unmapped")
    assert receipt["unmapped"] == ["sku:catalog_object_id6"] and await orders_on(shop, CHANNEL) == []

    fix = {"sku_map": {"catalog_object_id5": "ITEM-1", "catalog_object_id6": "ITEM-2"}}
    assert (await shop.client.patch(f"/v1/connectors/{c['id']}", json=fix, headers=shop.admin)).status_code == 200
    replay = f"/v1/connectors/{c['id']}/receipts/{receipt['id']}/replay"
    r = await shop.client.post(replay, headers=shop.admin)
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    [placed] = await orders_on(shop, CHANNEL)
    assert {ln["sku"] for ln in placed["lines"]} == {"ITEM-1", "ITEM-2"}
    assert (await shop.client.post(replay, headers=shop.admin)).status_code == 409


async def test_a_pickup_at_an_unmapped_location_waits_for_the_map(square):
    shop = square
    c = await register(shop, location_map={})
    r = await deliver(shop, c["id"], event("order_created.json"))
    assert r.json()["outcome"] == "unmapped"
    [receipt] = await receipts_of(shop, c["id"])
    assert receipt["unmapped"] == ["location:FPYCBCHYMXFK1"]


async def test_order_updated_canceled_after_placement_cancels_the_order_and_older_versions_are_stale(square):
    shop = square
    c = await register(shop)
    await deliver(shop, c["id"], event("order_created.json"))
    canceled = event(
        "order_updated.json",
        event_id="cancel-1",
        data__object__order_updated__state="CANCELED",
        data__object__order_updated__version=5,
    )
    r = await deliver(shop, c["id"], canceled)
    assert r.json()["outcome"] == "applied", r.text
    [order] = await orders_on(shop, CHANNEL)
    assert order["status"] == "cancelled"
    older = await deliver(shop, c["id"], event("order_updated.json"))  # version 2 < 5 applied
    assert older.json()["outcome"] == "stale"
    again = await deliver(
        shop,
        c["id"],
        event(
            "order_updated.json",
            event_id="cancel-2",
            data__object__order_updated__state="CANCELED",
            data__object__order_updated__version=7,
        ),
    )
    assert again.json()["outcome"] == "ignored"  # nothing left open


async def test_a_fulfillment_update_and_a_payment_are_recorded(square):
    shop = square
    c = await register(shop)
    await deliver(shop, c["id"], event("order_created.json"))
    r = await deliver(shop, c["id"], event("order_fulfillment_updated.json"))
    assert r.json()["outcome"] == "applied", r.text
    paid = await deliver(shop, c["id"], event("payment_updated.json"))
    assert paid.json()["outcome"] == "applied"
    [receipt] = [x for x in await receipts_of(shop, c["id"]) if x["topic"] == "payment.updated"]
    [order] = await orders_on(shop, CHANNEL)
    assert receipt["order_id"] == order["id"] and "550 USD" in receipt["detail"]
    other = await deliver(shop, c["id"], event("order_created.json", event_id="e-9", type="customer.created"))
    assert other.status_code == 200 and other.json()["outcome"] == "ignored"


async def test_a_completed_in_store_sale_is_kept_and_ignored_saying_so(square):
    shop = square
    c = await register(shop)
    shop.square.orders[ORDER_ID] = fixture("order_completed_in_store.json")["order"] | {"id": ORDER_ID}
    r = await deliver(shop, c["id"], event("order_created.json", data__object__order_created__state="COMPLETED"))
    assert r.json()["outcome"] == "ignored"
    [receipt] = await receipts_of(shop, c["id"])
    assert "in-store sale" in receipt["detail"] and "not built" in receipt["detail"]
    assert await orders_on(shop, CHANNEL) == []


async def test_a_signed_body_without_an_event_id_is_kept_as_invalid(square):
    shop = square
    c = await register(shop)
    r = await deliver(shop, c["id"], b'{"type": "order.created"}')
    assert r.status_code == 200 and r.json()["outcome"] == "invalid"


async def test_square_not_answering_leaves_the_receipt_pending_and_the_sweep_applies_it(square, settings):
    shop = square
    c = await register(shop)
    shop.square.answers = [503]
    r = await deliver(shop, c["id"], event("order_created.json"))
    assert r.status_code == 200 and r.json()["outcome"] == "pending", r.text
    [receipt] = await receipts_of(shop, c["id"], "pending")
    assert receipt["detail"] == "processing failed: SquareUnavailable" and await orders_on(shop, CHANNEL) == []

    flow = processing(shop.db, shop.clock, LifecycleSettings.from_settings(settings), settings, UnconfiguredGateway())
    shop.square.answers = [429]
    shop.clock.advance(receipts.SWEEP_AFTER + timedelta(seconds=1))
    assert await receipts.sweep(flow) == 0  # still not answering: still pending
    assert [r["outcome"] for r in await receipts_of(shop, c["id"])] == ["pending"]
    assert await receipts.sweep(flow) == 1
    [receipt] = await receipts_of(shop, c["id"])
    assert receipt["outcome"] == "applied" and receipt["attempts"] == 3 and len(await orders_on(shop, CHANNEL)) == 1
    assert len(shop.square.seen) == 3


async def test_square_refusing_the_fetch_is_invalid_and_a_replay_applies_it_once_fixed(square):
    shop = square
    c = await register(shop, credentials={"signature_key": KEY})  # no access token
    r = await deliver(shop, c["id"], event("order_created.json"))
    assert r.json()["outcome"] == "invalid" and shop.square.seen == []
    fix = {"credentials": {"signature_key": KEY, "access_token": TOKEN}}
    assert (await shop.client.patch(f"/v1/connectors/{c['id']}", json=fix, headers=shop.admin)).status_code == 200
    shop.square.answers = [404]
    [receipt] = await receipts_of(shop, c["id"])
    replay = f"/v1/connectors/{c['id']}/receipts/{receipt['id']}/replay"
    r = await shop.client.post(replay, headers=shop.admin)
    assert r.json()["outcome"] == "invalid" and "answered 404" in r.json()["detail"]
    r = await shop.client.post(replay, headers=shop.admin)
    assert r.json()["outcome"] == "applied", r.text
    assert len(await orders_on(shop, CHANNEL)) == 1
