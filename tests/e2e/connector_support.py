"""What the connector tests share: a connector's receipts, and the orders on its channel."""

from __future__ import annotations


async def receipts_of(shop, connector_id: str, outcome: str | None = None) -> list[dict]:
    query = f"?outcome={outcome}" if outcome else ""
    r = await shop.client.get(f"/v1/connectors/{connector_id}/receipts{query}", headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def orders_on(shop, channel: str) -> list[dict]:
    r = await shop.client.get("/v1/orders", params={"channel": channel}, headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()["items"]
