"""Two first orders of one person at once still make one customer: the placement that loses the
race to the customer's identity (or primary email) starts again and attaches to the winner's."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from orchestrator.customers.merges import merge_customers
from tests.e2e.conftest import Shop
from tests.integration.lock_waits import backend_pid, queued_behind

pytestmark = pytest.mark.usefixtures("two_stores")

_CUSTOMER = "INSERT INTO customers (id, email, created_at) VALUES (:id, :email, now())"
_IDENTITY = "INSERT INTO customer_identities (kind, value, customer_id, created_at) VALUES (:k, :v, :id, now())"


async def first_order_racing(shop: Shop, identity: tuple[str, str], customer: dict) -> tuple[str, dict]:
    """Another first order's customer (with ``identity``) is written but not committed while this
    order, carrying ``customer``, is placed: the placement waits on it, then attaches to it."""
    other = str(uuid.uuid4())
    email = identity[1] if identity[0] == "email" else None
    body = shop.order_body()
    body["customer"] = customer
    headers = await shop.channel("pos")
    async with shop.db.unit_of_work() as racing:
        await racing.session.execute(text(_CUSTOMER), {"id": other, "email": email})
        await racing.session.execute(text(_IDENTITY), {"k": identity[0], "v": identity[1], "id": other})
        placing = asyncio.create_task(shop.place(body, headers=headers))
        await queued_behind(shop.db, await backend_pid(racing.session), placing)
        await racing.commit()
    r = await placing
    assert r.status_code == 201, r.text
    return other, r.json()


async def test_a_loyalty_card_taken_by_a_racing_first_order_attaches_to_its_customer(shop):
    other, order = await first_order_racing(shop, ("loyalty_id", "CARD-1"), {"loyalty_id": "CARD-1"})
    assert order["customer"]["id"] == other
    async with shop.db.unit_of_work() as uow:
        customers = await uow.session.scalar(text("SELECT count(*) FROM customers"))
    assert customers == 1


async def test_an_email_taken_by_a_racing_first_order_attaches_to_it_with_the_orders_other_identities(shop):
    customer = {"email": "ann@example.com", "loyalty_id": "CARD-2", "name": "Ann"}
    other, order = await first_order_racing(shop, ("email", "ann@example.com"), customer)
    assert order["customer"]["id"] == other
    r = await shop.client.get(f"/v1/customers/{other}", headers=shop.admin)
    assert {(i["kind"], i["value"]) for i in r.json()["identities"]} == {
        ("email", "ann@example.com"),
        ("loyalty_id", "CARD-2"),
    }


async def test_an_order_arriving_during_a_merge_lands_on_the_survivor(shop):
    """An admin's merge holds both customers while an order of the merged one comes in: the
    order waits, then attaches to the survivor (not to the customer merged away under it)."""
    web = await shop.channel("web")
    bodies = []
    for email in ("ann@example.com", "ann.work@example.com"):
        body = shop.order_body(email=email)
        r = await shop.place(body, headers=web)
        assert r.status_code == 201, r.text
        bodies.append(r.json())
    survivor, merged = (uuid.UUID(b["customer"]["id"]) for b in bodies)
    late = shop.order_body(email="ann.work@example.com")
    async with shop.db.unit_of_work() as admin:
        assert await merge_customers(admin.session, survivor, merged, shop.clock.now())
        placing = asyncio.create_task(shop.place(late, headers=web))
        await queued_behind(shop.db, await backend_pid(admin.session), placing)
        await admin.commit()
    r = await placing
    assert r.status_code == 201, r.text
    assert r.json()["customer"]["id"] == str(survivor)
    view = await shop.client.get(f"/v1/customers/{survivor}", headers=shop.admin)
    assert {o["id"] for o in view.json()["orders"]} == {bodies[0]["id"], bodies[1]["id"], r.json()["id"]}
