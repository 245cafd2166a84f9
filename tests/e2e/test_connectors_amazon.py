"""Amazon's orders, polled from a local SP-API (tests/e2e/sp_api_server.py) serving the documented
shapes with Amazon's own example payloads (tests/fixtures/amazon): paging, throttling, an expired
token, the cursor, duplicates, unmapped skus, ISPU pickups and cancellations."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from connectors.amazon import poller, sp_api
from orchestrator.connections.handlers import processing
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.payments.gateway import UnconfiguredGateway
from tests.e2e.connector_support import orders_on, receipts_of
from tests.e2e.sp_api_server import ORDERS, Answer, SpApiServer, running

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "amazon"
SKU = "NABetaASINB00551Q3CS"
CHANNEL = "marketplace:amazon"
MARKETPLACE = "ATVPDKIKX0DER"


def moment(shop, minutes: int) -> datetime:
    """Half a day ago (inside the first poll's one-day lookback), ``minutes`` on, to the second."""
    base = shop.clock.now().replace(microsecond=0) - timedelta(hours=12)
    return base + timedelta(minutes=minutes)


def stamp(shop, minutes: int) -> str:
    return moment(shop, minutes).strftime("%Y-%m-%dT%H:%M:%SZ")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def order(order_id: str, updated: str, **changes) -> dict:
    """Amazon's example order (get_orders_example.json), paid: Unshipped, seller-fulfilled."""
    base = fixture("get_orders_example.json")["payload"]["Orders"][0]
    return base | {
        "AmazonOrderId": order_id,
        "LastUpdateDate": updated,
        "OrderStatus": "Unshipped",
        "FulfillmentChannel": "MFN",
        **changes,
    }


def item(**changes) -> dict:
    """Amazon's sandbox order item (get_order_items_sandbox_200.json) without its cancel request
    and store id (the ISPU and cancel tests put them back)."""
    base = copy.deepcopy(fixture("get_order_items_sandbox_200.json")["payload"]["OrderItems"][0])
    base.pop("BuyerRequestedCancel")
    base.pop("StoreChainStoreId")
    return base | changes


@pytest.fixture
async def amazon(shop):
    await shop.location("W1", 45.40, -75.70, capabilities=("ship",))
    await shop.location("S1", 45.41, -75.69, capabilities=("pickup",))
    await shop.product(SKU)
    await shop.stock("W1", SKU, 10)
    await shop.stock("S1", SKU, 10)
    async with running(SpApiServer()) as server:
        shop.amazon = server
        yield shop


@pytest.fixture
def flow(amazon, settings):
    return processing(
        amazon.db, amazon.clock, LifecycleSettings.from_settings(settings), settings, UnconfiguredGateway()
    )


async def register(shop, **overrides) -> dict:
    server: SpApiServer = shop.amazon
    client_id, secret, refresh = server.client
    body = {
        "kind": "amazon",
        "name": f"Amazon {uuid.uuid4().hex[:6]}",
        "channel": CHANNEL,
        "credentials": {"client_id": client_id, "client_secret": secret, "refresh_token": refresh},
        "location_map": {"ISPU_StoreId": "S1"},
        "settings": {
            "api_base": server.base,
            "token_url": f"{server.base}/auth/o2/token",
            "marketplace_ids": [MARKETPLACE],
        },
        **overrides,
    }
    r = await shop.client.post("/v1/connectors", json=body, headers=shop.admin)
    assert r.status_code == 201, r.text
    return r.json()


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)  # waits recorded, not slept


async def poll(flow, c, **options):
    sleeps = Sleeps()
    result = await poller.poll(flow, uuid.UUID(c["id"]), sleep=sleeps, force=True, **options)
    return result, sleeps


async def status_of(shop, c) -> dict:
    return (await shop.client.get(f"/v1/connectors/{c['id']}/status", headers=shop.admin)).json()


async def test_pages_with_next_tokens_become_one_order_each_and_the_cursor_moves(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {
        "111-0000001-0000001": [item()],
        "111-0000002-0000002": [item(QuantityOrdered=2, ItemPrice={"CurrencyCode": "USD", "Amount": "20.00"})],
    }
    server.script(
        ORDERS,
        server.page([order("111-0000001-0000001", stamp(shop, 0))], "page-2"),
        server.page([], "page-3"),  # an empty page that still has a next one
        server.page([order("111-0000002-0000002", stamp(shop, 120))]),
    )
    result, _ = await poll(flow, c)
    assert (result.fetched, result.stored, result.error) == (2, 2, None)
    first, second, third = server.calls(ORDERS)
    since = (shop.clock.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first.query == {"MarketplaceIds": MARKETPLACE, "LastUpdatedAfter": since}
    assert second.query == {"MarketplaceIds": MARKETPLACE, "NextToken": "page-2"}
    assert third.query == {"MarketplaceIds": MARKETPLACE, "NextToken": "page-3"}
    assert len(server.calls(f"{ORDERS}/111-0000001-0000001/orderItems")) == 1
    placed = {o["channel_order_ref"]: o for o in await orders_on(shop, CHANNEL)}
    assert sorted(placed) == ["111-0000001-0000001", "111-0000002-0000002"]
    one = placed["111-0000001-0000001"]
    assert [(ln["sku"], ln["quantity"], ln["unit_price"]) for ln in one["lines"]] == [(SKU, 1, 1000)]
    assert one["tax_total"] == 101 and one["fulfillment"]["method"] == "ship"
    assert one["payment"]["provider"] == "marketplace" and one["payment"]["external_id"] == "111-0000001-0000001"
    assert [(ln["quantity"], ln["unit_price"]) for ln in placed["111-0000002-0000002"]["lines"]] == [(2, 1000)]
    status = await status_of(shop, c)
    assert (
        status["cursor"] == {"last_updated_after": moment(shop, 120).isoformat()} and status["last_poll_error"] is None
    )

    # The next poll asks from the cursor; the order at the cursor's second comes again and is skipped.
    cursor = stamp(shop, 120)
    server.script(ORDERS, server.page([order("111-0000002-0000002", cursor)]))
    shop.clock.advance(timedelta(minutes=3))
    [again] = await poller.poll_due(flow, sleep=Sleeps())
    assert (again.fetched, again.stored) == (1, 0)
    assert server.calls(ORDERS)[-1].query == {"MarketplaceIds": MARKETPLACE, "LastUpdatedAfter": cursor}
    assert len(await orders_on(shop, CHANNEL)) == 2 and len(await receipts_of(shop, c["id"])) == 2
    assert await poller.poll_due(flow) == []  # polled just now: not due


async def test_throttling_and_server_errors_are_waited_out(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {"111-0000003-0000003": [item()]}
    items_path = f"{ORDERS}/111-0000003-0000003/orderItems"
    server.script(
        ORDERS,
        Answer(
            429, {"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota"}]}, {"Retry-After": "3"}
        ),
        Answer(503, {"errors": [{"code": "ServiceUnavailable", "message": "try again"}]}),
        server.page([order("111-0000003-0000003", stamp(shop, 0))]),
    )
    server.script(items_path, Answer(429, {"errors": []}, {"x-amzn-RateLimit-Limit": "0.5"}))
    result, sleeps = await poll(flow, c)
    assert result.error is None and result.stored == 1
    # Retry-After as sent; a 5xx after the base backoff; an unannounced 429 after 1/rate (0.5/s → 2 s).
    assert sleeps == [3.0, 2.0, 2.0]
    assert len(server.calls(ORDERS)) == 3 and len(server.calls(items_path)) == 2
    assert len(await orders_on(shop, CHANNEL)) == 1


async def test_a_poll_that_gives_up_records_the_error_and_keeps_the_cursor(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.script(ORDERS, server.page([order("111-0000004-0000004", stamp(shop, 0))]))
    server.items = {"111-0000004-0000004": [item()]}
    await poll(flow, c)
    cursor = (await status_of(shop, c))["cursor"]
    # A newer order on the first page, then the second page fails past the limits.
    server.items["111-0000013-0000013"] = [item()]
    later = server.page([order("111-0000013-0000013", stamp(shop, 60))], "page-2")
    server.script(ORDERS, later, *[Answer(500, {"errors": []})] * 3)
    result, sleeps = await poll(flow, c, limits=sp_api.Limits(attempts=3))
    assert result.error and "500" in result.error and len(sleeps) == 2 and result.stored == 1
    status = await status_of(shop, c)
    assert status["cursor"] == cursor and "500" in status["last_poll_error"]
    assert len(await orders_on(shop, CHANNEL)) == 2  # what was fetched before it gave up is kept
    server.script(ORDERS, server.page([order("111-0000013-0000013", stamp(shop, 60))]))
    result, _ = await poll(flow, c)
    assert result.error is None and result.stored == 0 and (await status_of(shop, c))["last_poll_error"] is None
    assert server.calls(ORDERS)[-1].query["LastUpdatedAfter"] == stamp(shop, 0)  # asked again from the cursor


async def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {"111-0000005-0000005": [item()]}
    server.script(ORDERS, server.page([order("111-0000005-0000005", stamp(shop, 0))]))
    await poll(flow, c)
    tokens = server.calls("/auth/o2/token")
    assert len(tokens) == 1 and tokens[0].form["grant_type"] == "refresh_token"  # one token for both calls
    assert {r.headers["x-amz-access-token"] for r in server.requests if r.path != "/auth/o2/token"} == {
        server.issued[0]
    }
    server.expire_tokens()
    result, sleeps = await poll(flow, c)
    assert result.error is None and len(server.calls("/auth/o2/token")) == 2
    assert server.calls(ORDERS)[-1].headers["x-amz-access-token"] == server.issued[1]


async def test_a_refused_refresh_token_is_the_connectors_error(amazon, flow):
    shop = amazon
    c = await register(
        shop,
        credentials={
            "client_id": shop.amazon.client[0],
            "client_secret": shop.amazon.client[1],
            "refresh_token": "Atzr|revoked",
        },
    )
    result, _ = await poll(flow, c)
    assert result.error and "refused the refresh token" in result.error and "revoked" not in result.error
    assert "revoked" not in (await status_of(shop, c))["last_poll_error"]


async def test_an_order_seen_twice_is_applied_once_and_a_new_version_places_nothing_more(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {"111-0000006-0000006": [item()]}
    seen = order("111-0000006-0000006", stamp(shop, 0))
    server.script(ORDERS, server.page([seen], "next"), server.page([seen]))
    result, _ = await poll(flow, c)
    assert (result.fetched, result.stored) == (2, 1)
    server.script(ORDERS, server.page([order("111-0000006-0000006", stamp(shop, 60), OrderStatus="PartiallyShipped")]))
    await poll(flow, c)
    assert len(await orders_on(shop, CHANNEL)) == 1
    later, first = sorted(await receipts_of(shop, c["id"]), key=lambda r: "PartiallyShipped" not in r["body"])
    assert (first["outcome"], later["outcome"]) == ("applied", "applied") and first["order_id"] == later["order_id"]
    assert "placed before" in later["detail"]


async def test_an_unknown_sku_is_unmapped_until_the_map_is_fixed_and_replayed(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {"111-0000007-0000007": [item(SellerSKU="AMZ-ONLY-SKU")]}
    server.script(ORDERS, server.page([order("111-0000007-0000007", stamp(shop, 0))]))
    await poll(flow, c)
    [receipt] = await receipts_of(shop, c["id"], "unmapped")
    assert receipt["unmapped"] == ["sku:AMZ-ONLY-SKU"] and await orders_on(shop, CHANNEL) == []
    assert "AMZ-ONLY-SKU" in (await status_of(shop, c))["last_error"]
    fix = {"sku_map": {"AMZ-ONLY-SKU": SKU}}
    assert (await shop.client.patch(f"/v1/connectors/{c['id']}", json=fix, headers=shop.admin)).status_code == 200
    r = await shop.client.post(f"/v1/connectors/{c['id']}/receipts/{receipt['id']}/replay", headers=shop.admin)
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    [placed] = await orders_on(shop, CHANNEL)
    assert placed["lines"][0]["sku"] == SKU


async def test_an_ispu_order_is_a_pickup_at_the_mapped_store_and_an_unmapped_store_waits(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {
        "111-0000008-0000008": [item(StoreChainStoreId="ISPU_StoreId")],
        "111-0000009-0000009": [item(StoreChainStoreId="OTHER_STORE")],
    }
    server.script(
        ORDERS,
        server.page(
            [
                order("111-0000008-0000008", stamp(shop, 0), IsISPU=True),
                order("111-0000009-0000009", stamp(shop, 0), IsISPU=True),
            ]
        ),
    )
    await poll(flow, c)
    [placed] = await orders_on(shop, CHANNEL)
    assert (placed["fulfillment"]["method"], placed["fulfillment"]["location"]) == ("pickup", "S1")
    [waiting] = await receipts_of(shop, c["id"], "unmapped")
    assert waiting["unmapped"] == ["location:OTHER_STORE"]


async def test_a_canceled_order_cancels_the_placed_one_and_pending_waits_for_payment(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {"111-0000010-0000010": [item()]}
    server.script(ORDERS, server.page([order("111-0000010-0000010", stamp(shop, -60), OrderStatus="Pending")]))
    await poll(flow, c)
    [pending] = await receipts_of(shop, c["id"])
    assert pending["outcome"] == "ignored" and await orders_on(shop, CHANNEL) == []
    assert server.calls(f"{ORDERS}/111-0000010-0000010/orderItems") == []  # no prices while Pending
    server.script(ORDERS, server.page([order("111-0000010-0000010", stamp(shop, 0))]))
    await poll(flow, c)
    [placed] = await orders_on(shop, CHANNEL)
    assert placed["status"] != "cancelled"
    server.script(ORDERS, server.page([order("111-0000010-0000010", stamp(shop, 60), OrderStatus="Canceled")]))
    await poll(flow, c)
    [cancelled] = await orders_on(shop, CHANNEL)
    assert cancelled["status"] == "cancelled"
    assert len(server.calls(f"{ORDERS}/111-0000010-0000010/orderItems")) == 1
    [canceled] = [r for r in await receipts_of(shop, c["id"]) if '"Canceled"' in r["body"]]
    assert canceled["outcome"] == "applied" and canceled["order_id"] == placed["id"]


async def test_a_buyer_requested_cancel_cancels_the_placed_order(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {"111-0000011-0000011": [item()]}
    server.script(ORDERS, server.page([order("111-0000011-0000011", stamp(shop, 0))]))
    await poll(flow, c)
    # Amazon's sandbox item as it is: BuyerRequestedCancel "true", "Found cheaper somewhere else."
    server.items = {"111-0000011-0000011": fixture("get_order_items_sandbox_200.json")["payload"]["OrderItems"]}
    server.script(ORDERS, server.page([order("111-0000011-0000011", stamp(shop, 60))]))
    await poll(flow, c)
    [cancelled] = await orders_on(shop, CHANNEL)
    assert cancelled["status"] == "cancelled"
    [request] = [r for r in await receipts_of(shop, c["id"]) if "BuyerRequestedCancel" in r["body"]]
    assert request["outcome"] == "applied" and "Found cheaper somewhere else." in request["detail"]


async def test_poll_now_over_http_and_only_for_amazon(amazon):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {"111-0000012-0000012": [item()]}
    server.script(ORDERS, server.page([order("111-0000012-0000012", stamp(shop, 0))]))
    r = await shop.client.post(f"/v1/connectors/{c['id']}/poll", headers=shop.admin)
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["applied"] == 1 and r.json()["cursor"] and r.json()["last_polled_at"]
    assert len(await orders_on(shop, CHANNEL)) == 1
    shopify = await register(shop, kind="shopify", credentials={"webhook_secret": "s"}, settings={})
    r = await shop.client.post(f"/v1/connectors/{shopify['id']}/poll", headers=shop.admin)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert (await shop.client.post(f"/v1/connectors/{uuid.uuid4()}/poll", headers=shop.admin)).status_code == 404
    web = await shop.channel("web")
    assert (await shop.client.post(f"/v1/connectors/{c['id']}/poll", headers=web)).status_code == 403


async def test_an_unmapped_version_replayed_after_the_order_was_canceled_places_nothing(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.items = {"111-0000014-0000014": [item(SellerSKU="AMZ-LATE")]}
    server.script(ORDERS, server.page([order("111-0000014-0000014", stamp(shop, 0))]))
    await poll(flow, c)
    [unmapped] = await receipts_of(shop, c["id"], "unmapped")
    server.script(ORDERS, server.page([order("111-0000014-0000014", stamp(shop, 60), OrderStatus="Canceled")]))
    await poll(flow, c)
    [canceled] = await receipts_of(shop, c["id"], "ignored")
    assert "never placed" in canceled["detail"]
    fix = {"sku_map": {"AMZ-LATE": SKU}}
    assert (await shop.client.patch(f"/v1/connectors/{c['id']}", json=fix, headers=shop.admin)).status_code == 200
    r = await shop.client.post(f"/v1/connectors/{c['id']}/receipts/{unmapped['id']}/replay", headers=shop.admin)
    assert r.status_code == 200 and r.json()["outcome"] == "stale", r.text
    assert await orders_on(shop, CHANNEL) == []


async def test_a_poll_that_runs_out_of_time_says_so_and_keeps_the_cursor(amazon, flow):
    shop, server = amazon, amazon.amazon
    c = await register(shop)
    server.script(ORDERS, Answer(429, {"errors": []}, {"Retry-After": "30"}))

    async def really_sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    result = await poller.poll(flow, uuid.UUID(c["id"]), sleep=really_sleep, force=True, budget_seconds=0.3)
    assert result.error and "ran out" in result.error
    status = await status_of(shop, c)
    assert status["cursor"] is None and "ran out" in status["last_poll_error"]
