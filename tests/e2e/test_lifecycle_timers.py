"""Issue #4 — uncollected pickups, driven by the ManualClock (no sleeps): a reminder a
configurable time before the deadline (once), expiry at the deadline with restock."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from orchestrator.fulfillment import timers as pickup_timers
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.platform.db import committing
from tests.e2e.support import act, events, get_order, on_hand_reserved, pickup_code, to_ready

HOLD_DAYS = 2


async def get_fo(shop, fo_id):
    r = await shop.client.get(f"/v1/fulfillments/{fo_id}", headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def movements(shop, code, sku):
    return (await shop.client.get(f"/v1/locations/{code}/stock/{sku}/movements", headers=shop.admin)).json()["items"]


async def outbox_count(db, type_, order_id):
    async with db.unit_of_work() as uow:
        return (
            await uow.session.execute(
                text("SELECT count(*) FROM outbox WHERE type = :t AND order_id = :o"), {"t": type_, "o": order_id}
            )
        ).scalar_one()


async def expire_if_due(db, fulfillment_id, clock, lifecycle) -> bool:
    """The deferred expiry job: the use case in a transaction of its own, as the worker runs it."""
    return await db.run(committing(lambda uow: pickup_timers.expire_if_due(uow, fulfillment_id, clock, lifecycle)))


async def remind_if_due(db, fulfillment_id, clock, lifecycle, ahead) -> bool:
    """The deferred reminder job, as the worker runs it."""
    return await db.run(
        committing(lambda uow: pickup_timers.remind_if_due(uow, fulfillment_id, clock, lifecycle, ahead))
    )


@pytest.fixture
def lifecycle(settings):
    return LifecycleSettings.from_settings(settings)


@pytest.fixture
def ahead(settings):
    return timedelta(hours=settings.pickup_reminder_hours)


async def ready_order(shop, lines=(("A", 2),)):
    """A pickup at S1 (5 of each sku on hand), picked and ready now."""
    await shop.location("S1", pickup_hold_days=HOLD_DAYS)
    for sku, _ in lines:
        await shop.product(sku)
        await shop.stock("S1", sku, 5)
    staff = await shop.staff("S1")
    r = await shop.place(shop.order_body(list(lines)))
    assert r.status_code == 201, r.text
    order = r.json()
    fo = order["fulfillment_orders"][0]
    ready = await to_ready(shop, staff, fo)
    return order, ready, staff


async def test_uncollected_pickup_expires_at_the_deadline_and_goes_back_on_the_shelf(shop, db, clock, lifecycle, ahead):
    order, ready, _ = await ready_order(shop)
    deadline = datetime.fromisoformat(ready["pickup_deadline"])
    assert deadline == clock.now() + timedelta(days=HOLD_DAYS)
    assert await on_hand_reserved(shop, "S1", "A") == (3, 0)

    clock.advance(deadline - clock.now() - timedelta(seconds=1))
    expired, _ = await pickup_timers.sweep(db, clock, lifecycle, ahead)
    assert expired == 0
    assert (await get_fo(shop, ready["id"]))["status"] == "ready_for_pickup"

    clock.advance(timedelta(seconds=1))
    expired, _ = await pickup_timers.sweep(db, clock, lifecycle, ahead)
    assert expired == 1

    fo = await get_fo(shop, ready["id"])
    assert fo["status"] == "expired"
    assert "not collected" in fo["close_reason"]
    assert fo["lines"][0]["quantity_cancelled"] == 2
    o = await get_order(shop, order["id"])
    assert o["status"] == "cancelled"
    assert o["lines"][0]["quantity_cancelled"] == 2 and o["lines"][0]["quantity_fulfilled"] == 0
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)
    restocks = [m for m in await movements(shop, "S1", "A") if m["kind"] == "restock"]
    assert len(restocks) == 1 and restocks[0]["on_hand_delta"] == 2

    timeline = await events(shop, order["id"])
    expired_events = [e for e in timeline if e["type"] == "fulfillment.expired"]
    assert len(expired_events) == 1
    assert "not collected" in expired_events[0]["data"]["reason"]
    assert expired_events[0]["actor"].startswith("system")
    assert any(e["type"] == "order.status_changed" and e["data"]["to"] == "cancelled" for e in timeline)
    assert await outbox_count(db, "fulfillment.expired", order["id"]) == 1

    # Idempotent: later sweeps and a late deferred job change nothing.
    clock.advance(timedelta(days=1))
    assert await pickup_timers.sweep(db, clock, lifecycle, ahead) == (0, 0)
    assert await expire_if_due(db, uuid.UUID(ready["id"]), clock, lifecycle) is False
    assert len(await events(shop, order["id"])) == len(timeline)
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)


async def test_expired_pickup_can_no_longer_be_handed_over(shop, db, clock, lifecycle):
    _, ready, staff = await ready_order(shop)
    code = await pickup_code(db, ready["id"])
    clock.advance(timedelta(days=HOLD_DAYS))
    assert await expire_if_due(db, uuid.UUID(ready["id"]), clock, lifecycle) is True
    problem = await act(shop, staff, ready["id"], "handover", {"code": code}, expect=409)
    assert problem["state"] == "expired"


async def test_expire_if_due_does_nothing_before_the_deadline(shop, db, clock, lifecycle):
    order, ready, _ = await ready_order(shop)
    clock.advance(timedelta(days=HOLD_DAYS) - timedelta(minutes=1))
    before = len(await events(shop, order["id"]))
    assert await expire_if_due(db, uuid.UUID(ready["id"]), clock, lifecycle) is False
    assert (await get_fo(shop, ready["id"]))["status"] == "ready_for_pickup"
    assert len(await events(shop, order["id"])) == before
    assert await on_hand_reserved(shop, "S1", "A") == (3, 0)


async def test_reminder_is_sent_once_the_configured_time_before_the_deadline(shop, db, clock, lifecycle, ahead):
    order, ready, _ = await ready_order(shop)
    deadline = datetime.fromisoformat(ready["pickup_deadline"])
    assert ahead < timedelta(days=HOLD_DAYS)

    clock.advance(deadline - ahead - clock.now() - timedelta(minutes=1))
    assert await pickup_timers.sweep(db, clock, lifecycle, ahead) == (0, 0)
    assert await remind_if_due(db, uuid.UUID(ready["id"]), clock, lifecycle, ahead) is False

    clock.advance(timedelta(minutes=1))
    assert await pickup_timers.sweep(db, clock, lifecycle, ahead) == (0, 1)
    # Once only: the sweep, a deferred job and later moments do not repeat it.
    assert await pickup_timers.sweep(db, clock, lifecycle, ahead) == (0, 0)
    assert await remind_if_due(db, uuid.UUID(ready["id"]), clock, lifecycle, ahead) is False
    clock.advance(ahead / 2)
    assert await pickup_timers.sweep(db, clock, lifecycle, ahead) == (0, 0)

    reminders = [e for e in await events(shop, order["id"]) if e["type"] == "fulfillment.pickup_reminder"]
    assert len(reminders) == 1
    assert datetime.fromisoformat(reminders[0]["data"]["pickup_deadline"]) == deadline
    assert datetime.fromisoformat(reminders[0]["occurred_at"]) == deadline - ahead
    assert await outbox_count(db, "fulfillment.pickup_reminder", order["id"]) == 1
    # Still waiting for the customer.
    assert (await get_fo(shop, ready["id"]))["status"] == "ready_for_pickup"
    assert (await get_order(shop, order["id"]))["status"] == "ready_for_pickup"


async def test_collected_pickup_is_neither_reminded_nor_expired(shop, db, clock, lifecycle, ahead):
    order, ready, staff = await ready_order(shop)
    await act(shop, staff, ready["id"], "handover", {"code": await pickup_code(db, ready["id"])})
    clock.advance(timedelta(days=HOLD_DAYS + 1))
    assert await pickup_timers.sweep(db, clock, lifecycle, ahead) == (0, 0)
    assert await expire_if_due(db, uuid.UUID(ready["id"]), clock, lifecycle) is False
    assert (await get_fo(shop, ready["id"]))["status"] == "picked_up"
    assert (await get_order(shop, order["id"]))["status"] == "completed"
    assert await on_hand_reserved(shop, "S1", "A") == (3, 0)


async def test_rest_of_a_partial_pickup_expires_and_only_the_uncollected_units_are_restocked(
    shop, db, clock, lifecycle, ahead
):
    order, ready, staff = await ready_order(shop, lines=(("A", 2), ("B", 1)))
    code = await pickup_code(db, ready["id"])
    line_a = next(ln for ln in ready["lines"] if ln["sku"] == "A")
    await act(shop, staff, ready["id"], "handover", {"code": code, "lines": [{"line_id": line_a["id"], "quantity": 1}]})
    assert (await get_order(shop, order["id"]))["status"] == "partially_fulfilled"

    clock.advance(timedelta(days=HOLD_DAYS))
    expired, _ = await pickup_timers.sweep(db, clock, lifecycle, ahead)
    assert expired == 1
    assert (await get_fo(shop, ready["id"]))["status"] == "expired"
    assert await on_hand_reserved(shop, "S1", "A") == (4, 0)  # 5 - 2 picked + 1 uncollected back
    assert await on_hand_reserved(shop, "S1", "B") == (5, 0)
    o = await get_order(shop, order["id"])
    by_sku = {ln["sku"]: ln for ln in o["lines"]}
    assert (by_sku["A"]["quantity_fulfilled"], by_sku["A"]["quantity_cancelled"]) == (1, 1)
    assert (by_sku["B"]["quantity_fulfilled"], by_sku["B"]["quantity_cancelled"]) == (0, 1)
    # The customer has one unit and nothing more will happen: finished, never "cancelled".
    assert o["status"] == "completed"
    changed = [e["data"] for e in await events(shop, order["id"]) if e["type"] == "order.status_changed"]
    assert changed[-1] == {"from": "partially_fulfilled", "to": "completed"}
    # ...and nothing is left open for a cancel to take.
    r = await shop.client.post(f"/v1/orders/{order['id']}/cancel", json={"reason": "x"}, headers=shop.admin)
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/order-not-cancellable"), r.text
