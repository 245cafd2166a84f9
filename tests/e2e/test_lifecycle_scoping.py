"""Issue #4 — staff keys are scoped to their stores (another store's fulfillment is 404 on every
staff endpoint, before any state check), concurrent staff actions serialise (one wins, one 409),
and a stale If-Match is 412."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from tests.e2e.support import act

ACTIONS = [
    ("accept", None),
    ("reject", {"reason": "not mine"}),
    ("start-picking", None),
    ("pick", "PICK"),
    ("ready", None),
    ("pack", None),
    ("ship", {"carrier": "DHL", "tracking_number": "X"}),
    ("deliver", None),
    ("handover", {"override_reason": "trust me"}),
    ("cancel", {"reason": "not mine"}),
]


async def two_stores(shop):
    await shop.location("S1")
    await shop.location("S2")
    await shop.product("A")
    await shop.stock("S1", "A", 10)
    await shop.stock("S2", "A", 10)
    return await shop.staff("S1"), await shop.staff("S2")


async def place(shop, method="pickup", location="S1", qty=1):
    r = await shop.place(shop.order_body([("A", qty)], method=method, location=location))
    assert r.status_code == 201, r.text
    return r.json()


async def fo_state(shop, fo_id):
    fo = (await shop.client.get(f"/v1/fulfillments/{fo_id}", headers=shop.admin)).json()
    return fo["status"], fo["version"]


async def event_count(db, order_id):
    async with db.unit_of_work() as uow:
        return (
            await uow.session.execute(text("SELECT count(*) FROM order_events WHERE order_id = :o"), {"o": order_id})
        ).scalar_one()


def body_for(action_body, fo):
    if action_body == "PICK":
        return {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 1}]}
    return action_body


@pytest.mark.parametrize("stage", ["pending", "picking", "ready_for_pickup"])
async def test_other_stores_staff_get_404_on_every_staff_endpoint(shop, db, stage):
    s1, s2 = await two_stores(shop)
    order = await place(shop)
    fo = order["fulfillment_orders"][0]
    if stage != "pending":
        await act(shop, s1, fo["id"], "accept")
        await act(shop, s1, fo["id"], "start-picking")
    if stage == "ready_for_pickup":
        await act(shop, s1, fo["id"], "pick", body_for("PICK", fo))
        await act(shop, s1, fo["id"], "ready")
    before_state = await fo_state(shop, fo["id"])
    before_events = await event_count(db, order["id"])

    r = await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=s2)
    assert r.status_code == 404, r.text
    r = await shop.client.get("/v1/locations/S1/fulfillments", headers=s2)
    assert r.status_code == 404, r.text
    for action, action_body in ACTIONS:
        r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/{action}", json=body_for(action_body, fo), headers=s2)
        assert r.status_code == 404, (action, r.status_code, r.text)
        # The answer is the same as for a fulfillment that does not exist: nothing leaks.
        assert "state" not in r.json() and "allowed_actions" not in r.json()
    for path in (f"/v1/orders/{order['id']}", f"/v1/orders/{order['id']}/events", f"/v1/orders/{order['id']}/sourcing"):
        r = await shop.client.get(path, headers=s2)
        assert r.status_code == 404, (path, r.text)

    assert await fo_state(shop, fo["id"]) == before_state
    assert await event_count(db, order["id"]) == before_events
    # The store's own staff still can.
    assert (await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=s1)).status_code == 200
    queue = (await shop.client.get("/v1/locations/S1/fulfillments", headers=s1)).json()["items"]
    assert [f["id"] for f in queue] == [fo["id"]]


async def test_unknown_fulfillment_is_404_for_every_action(shop):
    s1, _ = await two_stores(shop)
    missing = uuid.uuid4()
    assert (await shop.client.get(f"/v1/fulfillments/{missing}", headers=s1)).status_code == 404
    for action, action_body in ACTIONS:
        body = {"lines": [{"line_id": str(uuid.uuid4()), "quantity": 1}]} if action_body == "PICK" else action_body
        r = await shop.client.post(f"/v1/fulfillments/{missing}/{action}", json=body, headers=s1)
        assert r.status_code == 404, (action, r.text)


async def test_staff_queue_shows_only_their_own_stores_work(shop):
    s1, s2 = await two_stores(shop)
    at_s1 = await place(shop, location="S1")
    at_s2 = await place(shop, location="S2")
    q1 = (await shop.client.get("/v1/locations/S1/fulfillments", headers=s1)).json()["items"]
    q2 = (await shop.client.get("/v1/locations/S2/fulfillments", headers=s2)).json()["items"]
    assert [f["order_id"] for f in q1] == [at_s1["id"]]
    assert [f["order_id"] for f in q2] == [at_s2["id"]]
    both = await shop.staff("S1", "S2")
    for code in ("S1", "S2"):
        assert (await shop.client.get(f"/v1/locations/{code}/fulfillments", headers=both)).status_code == 200
    await act(shop, both, at_s2["fulfillment_orders"][0]["id"], "accept")


async def test_channel_key_may_not_use_staff_endpoints(shop):
    await two_stores(shop)
    order = await place(shop)
    fo = order["fulfillment_orders"][0]
    channel = await shop.channel()
    r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/accept", headers=channel)
    assert r.status_code == 403, r.text
    r = await shop.client.get("/v1/locations/S1/fulfillments", headers=channel)
    assert r.status_code == 403, r.text
    assert (await fo_state(shop, fo["id"]))[0] == "pending"


async def test_two_staff_accepting_at_once_one_wins_and_the_other_gets_409(shop, db):
    await two_stores(shop)
    alice = await shop.staff("S1")
    bob = await shop.staff("S1", "S2")  # another key for the same store
    for _ in range(3):
        order = await place(shop)
        fo = order["fulfillment_orders"][0]
        results = await asyncio.gather(
            shop.client.post(f"/v1/fulfillments/{fo['id']}/accept", headers=alice),
            shop.client.post(f"/v1/fulfillments/{fo['id']}/accept", headers=bob),
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 409], [r.text for r in results]
        loser = next(r for r in results if r.status_code == 409).json()
        assert loser["state"] == "accepted" and "start_picking" in loser["allowed_actions"]
        assert await fo_state(shop, fo["id"]) == ("accepted", fo["version"] + 1)
        async with db.unit_of_work() as uow:
            accepted = (
                await uow.session.execute(
                    text("SELECT count(*) FROM order_events WHERE order_id = :o AND type = 'fulfillment.accepted'"),
                    {"o": order["id"]},
                )
            ).scalar_one()
            outbox = (
                await uow.session.execute(
                    text("SELECT count(*) FROM outbox WHERE order_id = :o AND type = 'fulfillment.accepted'"),
                    {"o": order["id"]},
                )
            ).scalar_one()
        assert (accepted, outbox) == (1, 1)


async def test_concurrent_reject_and_accept_leave_one_consistent_outcome(shop, db):
    s1, _ = await two_stores(shop)
    other = await shop.staff("S1", "S2")
    order = await place(shop, method="ship", qty=2)
    fo = order["fulfillment_orders"][0]
    results = await asyncio.gather(
        shop.client.post(f"/v1/fulfillments/{fo['id']}/reject", json={"reason": "busy"}, headers=s1),
        shop.client.post(f"/v1/fulfillments/{fo['id']}/accept", headers=other),
    )
    ok = [r for r in results if r.status_code == 200]
    assert len(ok) >= 1 and all(r.status_code in (200, 409) for r in results), [r.text for r in results]
    o = (await shop.client.get(f"/v1/orders/{order['id']}", headers=shop.admin)).json()
    open_units = sum(
        ln["quantity"] - ln["quantity_cancelled"]
        for f in o["fulfillment_orders"]
        if f["status"] not in ("rejected", "cancelled")
        for ln in f["lines"]
    )
    assert open_units == 2
    s1_stock = (await shop.client.get("/v1/locations/S1/stock/A", headers=shop.admin)).json()
    s2_stock = (await shop.client.get("/v1/locations/S2/stock/A", headers=shop.admin)).json()
    assert s1_stock["reserved"] + s2_stock["reserved"] == 2


async def test_stale_if_match_is_412_for_the_second_of_two_staff(shop):
    s1, _ = await two_stores(shop)
    other = await shop.staff("S1", "S2")
    order = await place(shop)
    fo = order["fulfillment_orders"][0]
    seen = (await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=s1)).json()["version"]
    await act(shop, s1, fo["id"], "accept")
    r = await shop.client.post(
        f"/v1/fulfillments/{fo['id']}/reject", json={"reason": "busy"}, headers={**other, "If-Match": f'"{seen}"'}
    )
    assert r.status_code == 412, r.text
    assert r.json()["type"].endswith("version-mismatch")
    assert await fo_state(shop, fo["id"]) == ("accepted", seen + 1)
    r = await shop.client.post(
        f"/v1/fulfillments/{fo['id']}/start-picking", headers={**other, "If-Match": "not-a-version"}
    )
    assert r.status_code == 422, r.text
    await act(shop, {**other, "If-Match": f'W/"{seen + 1}"'}, fo["id"], "start-picking")
