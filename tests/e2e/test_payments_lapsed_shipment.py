"""Goods never leave unpaid, by parcel too: a parcel takes no tender, so when the card's
authorisation ran out it does not ship until the order is paid again (409 ``payment-needed``);
paid again by card, it ships and the new card is captured for it — only for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from orchestrator.orders import authorisation_timers
from tests.e2e.conftest import Shop, stripe_shop
from tests.e2e.support import act, assert_problem, get_order
from tests.e2e.test_payments_capture import run_jobs
from tests.integration.money_invariants import money_violations

WARNING = timedelta(hours=24)


@pytest.fixture
async def paid(database_url, redis_url, db, redis, clock, stripe_api) -> AsyncIterator[Shop]:
    # Stripe's clock is ours: the authorisation lapses there when it does here.
    stripe_api.ledger.clock = lambda: clock.now().timestamp()
    async with stripe_shop(database_url, redis_url, db, redis, clock, stripe_api) as shop:
        await shop.location("S2", 52.50, 13.30, capabilities=("ship",))
        await shop.stock("S2", "A", 10)
        await shop.stock("S1", "A", 0)
        yield shop


async def picked_parcel(shop: Shop) -> tuple[dict, dict, dict]:
    """3 × A at 10.00 + 4.99 shipping, authorised, picked and packed at S2."""
    body = {**shop.order_body([("A", 3)], method="ship", price=1000), "shipping_total": 499}
    r = await shop.place({**body, "payment": {"provider": "stripe", "payment_method": "pm_card_visa"}})
    assert r.status_code == 201, r.text
    order = r.json()
    staff = await shop.staff("S2")
    fo = order["fulfillment_orders"][0]
    await act(shop, staff, fo["id"], "accept")
    await act(shop, staff, fo["id"], "start-picking")
    await act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 3}]})
    await act(shop, staff, fo["id"], "pack")
    return order, fo, staff


async def lapse(shop: Shop, gateway, order: dict) -> None:
    """Past ``capture_before``: the expiry sweep records the authorisation ran out."""
    deadline = datetime.fromisoformat(order["payment"]["capture_before"])
    shop.clock.advance(deadline - shop.clock.now() + timedelta(minutes=1))
    await authorisation_timers.sweep(shop.db, gateway, shop.clock, WARNING)


SHIP = {"carrier": "DHL", "tracking_number": "JD0001"}


async def test_a_parcel_whose_authorisation_ran_out_does_not_ship_until_paid_again(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await picked_parcel(paid)
    await lapse(paid, stripe_test_gateway, order)
    assert (await get_order(paid, order["id"]))["payment"]["status"] == "voided"

    r = await paid.client.post(f"/v1/fulfillments/{fo['id']}/ship", json=SHIP, headers=staff)
    problem = assert_problem(r, 409, "payment-needed")
    assert problem["context"]["amount_due"] == 3499 and f"/v1/orders/{order['id']}/payments" in problem["detail"]
    assert (await get_order(paid, order["id"]))["fulfillment_orders"][0]["status"] == "packed"
    assert not await money_violations(paid.db, stripe_api.ledger)

    headers = {**paid.admin, "Idempotency-Key": "pay-again-1"}
    card = {"provider": "stripe", "payment_method": "pm_card_visa"}
    r = await paid.client.post(f"/v1/orders/{order['id']}/payments", json=card, headers=headers)
    assert r.status_code == 201, r.text
    shipped = await act(paid, staff, fo["id"], "ship", SHIP)
    assert shipped["status"] == "shipped"
    await run_jobs(paid, stripe_test_gateway)

    shown = await get_order(paid, order["id"])
    assert [(p["status"], p["amount_captured"]) for p in shown["payments"]] == [("voided", 0), ("captured", 3499)]
    assert not await money_violations(paid.db, stripe_api.ledger)


async def test_a_parcel_under_a_live_authorisation_ships_without_asking(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await picked_parcel(paid)
    assert (await act(paid, staff, fo["id"], "ship", SHIP))["status"] == "shipped"
    await run_jobs(paid, stripe_test_gateway)
    assert (await get_order(paid, order["id"]))["payment"]["amount_captured"] == 3499
    assert not await money_violations(paid.db, stripe_api.ledger)


async def test_pay_in_store_is_refused_for_a_shipment_and_nothing_is_reserved(paid):
    body = {**paid.order_body([("A", 1)], method="ship"), "payment": {"provider": "pos"}}
    r = await paid.place(body)
    problem = assert_problem(r, 422, "invalid-request")
    assert problem["errors"][0]["field"] == "payment.provider"
    stock = (await paid.client.get("/v1/locations/S2/stock/A", headers=paid.admin)).json()
    assert stock["reserved"] == 0
