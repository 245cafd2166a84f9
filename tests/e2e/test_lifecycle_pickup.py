"""Issue #4 — BOPIS and curbside through the API: the store lifecycle from pending to picked up,
pickup codes (secret, hashed, lockout), partial pickup, arrival and the staff queue."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import text

from tests.e2e.support import act, events, get_order, get_stock, movement_kinds, pickup_code, to_ready

# --- helpers ---------------------------------------------------------------------------------


async def place_pickup(shop, lines, *, method="pickup", location="S1"):
    r = await shop.place(shop.order_body(lines, method=method, location=location))
    assert r.status_code == 201, r.text
    return r.json()


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


async def statuses_everywhere(shop, order):
    """The order's status through every endpoint that shows an order."""
    one = (await shop.client.get(f"/v1/orders/{order['id']}", headers=shop.admin)).json()["status"]
    by_number = (await shop.client.get(f"/v1/orders/by-number/{order['number']}", headers=shop.admin)).json()["status"]
    listed = (await shop.client.get("/v1/orders", headers=shop.admin)).json()["items"]
    in_list = next(o["status"] for o in listed if o["id"] == order["id"])
    channel_view = (await shop.client.get(f"/v1/orders/{order['id']}", headers=await shop.channel("app"))).json()[
        "status"
    ]
    return {one, by_number, in_list, channel_view}


async def world(shop, *, hold_days=3, stock=5, skus=("A",)):
    await shop.location("S1", pickup_hold_days=hold_days)
    for sku in skus:
        await shop.product(sku)
        await shop.stock("S1", sku, stock)
    return await shop.staff("S1")


# --- tests -----------------------------------------------------------------------------------


async def test_bopis_end_to_end_status_follows_fulfillment_the_same_through_every_endpoint(shop, db, clock):
    staff = await world(shop, hold_days=3)
    order = await place_pickup(shop, [("A", 2)])
    fo = order["fulfillment_orders"][0]
    assert (fo["location"], fo["method"], fo["status"]) == ("S1", "pickup", "pending")
    assert await statuses_everywhere(shop, order) == {"received"}

    await act(shop, staff, fo["id"], "accept")
    assert await statuses_everywhere(shop, order) == {"in_progress"}
    await act(shop, staff, fo["id"], "start-picking")
    await act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 2}]})
    stock = await get_stock(shop, "S1", "A")
    assert (stock["on_hand"], stock["reserved"]) == (3, 0)

    clock.advance(timedelta(minutes=30))
    ready_at = clock.now()
    ready = await act(shop, staff, fo["id"], "ready")
    assert ready["status"] == "ready_for_pickup"
    assert datetime.fromisoformat(ready["pickup_deadline"]) == ready_at + timedelta(days=3)
    assert await statuses_everywhere(shop, order) == {"ready_for_pickup"}

    clock.advance(timedelta(hours=2))
    done = await act(shop, staff, fo["id"], "handover", {"code": await pickup_code(db, fo["id"])})
    assert done["status"] == "picked_up"
    assert await statuses_everywhere(shop, order) == {"completed"}
    final = await get_order(shop, order["id"])
    assert final["lines"][0]["quantity_fulfilled"] == 2
    stock = await get_stock(shop, "S1", "A")
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (3, 0, 3)
    assert "pick" in await movement_kinds(shop, "S1", "A")

    types = [e["type"] for e in await events(shop, order["id"])]
    for t in (
        "order.placed",
        "order.sourced",
        "fulfillment.accepted",
        "fulfillment.picking_started",
        "fulfillment.picked",
        "fulfillment.ready_for_pickup",
        "fulfillment.picked_up",
    ):
        assert types.count(t) == 1, (t, types)


async def test_every_transition_writes_a_timeline_event_and_a_matching_outbox_row(shop, db):
    staff = await world(shop)
    order = await place_pickup(shop, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    before = len(await events(shop, order["id"]))
    await to_ready(shop, staff, fo)
    await act(shop, staff, fo["id"], "handover", {"code": await pickup_code(db, fo["id"])})
    timeline = await events(shop, order["id"])
    assert len(timeline) >= before + 5
    async with db.unit_of_work() as uow:
        rows = (
            await uow.session.execute(
                text("SELECT event_id::text, type FROM outbox WHERE order_id = :o"), {"o": order["id"]}
            )
        ).all()
    outbox = {event_id: type_ for event_id, type_ in rows}
    assert {e["id"]: e["type"] for e in timeline} == outbox
    seqs = [e["seq"] for e in timeline]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_pickup_code_is_six_digits_never_stored_and_never_on_timeline_or_staff_api(shop, db):
    staff = await world(shop)
    order = await place_pickup(shop, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    ready = await to_ready(shop, staff, fo)
    code = await pickup_code(db, fo["id"])
    assert re.fullmatch(r"\d{6}", code)

    async with db.unit_of_work() as uow:
        issue = (
            await uow.session.execute(
                text("SELECT pickup_code_issue FROM fulfillment_orders WHERE id = :id"), {"id": fo["id"]}
            )
        ).scalar_one()
        row = (
            await uow.session.execute(
                text("SELECT row_to_json(f)::text FROM fulfillment_orders f WHERE id = :id"), {"id": fo["id"]}
            )
        ).scalar_one()
        event_rows = (
            (
                await uow.session.execute(
                    text("SELECT data::text FROM order_events WHERE order_id = :o"), {"o": order["id"]}
                )
            )
            .scalars()
            .all()
        )
    assert issue == 1  # the code is derived from the secret, the pickup's id and this number
    assert f'"{code}"' not in row

    seen = [
        str(ready),
        (await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=staff)).text,
        (await shop.client.get("/v1/locations/S1/fulfillments", headers=staff)).text,
        (await shop.client.get(f"/v1/orders/{order['id']}", headers=staff)).text,
        (await shop.client.get(f"/v1/orders/{order['id']}", headers=shop.admin)).text,
        (await shop.client.get(f"/v1/orders/{order['id']}/events", headers=shop.admin)).text,
        *event_rows,
    ]
    for body in seen:
        assert "pickup_code" not in body
        assert code not in body


async def test_illegal_transition_is_409_problem_naming_state_and_allowed_actions(shop):
    staff = await world(shop)
    order = await place_pickup(shop, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/ready", headers=staff)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["state"] == "pending"
    assert set(problem["allowed_actions"]) == {"accept", "reject", "cancel"}

    await act(shop, staff, fo["id"], "accept")
    await act(shop, staff, fo["id"], "start-picking")
    # A pickup is never packed or shipped.
    r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/pack", headers=staff)
    assert r.status_code == 409
    assert r.json()["state"] == "picking"
    assert "ready" in r.json()["allowed_actions"] and "pack" not in r.json()["allowed_actions"]
    r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/handover", json={"code": "123456"}, headers=staff)
    assert r.status_code == 409 and r.json()["state"] == "picking"
    # Nothing moved.
    current = (await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=staff)).json()
    assert current["status"] == "picking"


async def test_stale_if_match_is_412_and_changes_nothing(shop):
    staff = await world(shop)
    order = await place_pickup(shop, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    v1 = fo["version"]
    accepted = await act(shop, staff, fo["id"], "accept", if_match=f'"{v1}"')
    assert accepted["version"] > v1
    r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/start-picking", headers={**staff, "If-Match": f'"{v1}"'})
    assert r.status_code == 412, r.text
    assert r.json()["current_version"] == accepted["version"]
    current = (await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=staff)).json()
    assert (current["status"], current["version"]) == ("accepted", accepted["version"])
    await act(shop, staff, fo["id"], "start-picking", if_match=str(accepted["version"]))


async def test_five_wrong_codes_lock_the_pickup_for_15_minutes_even_against_the_right_code(shop, db, clock):
    staff = await world(shop)
    order = await place_pickup(shop, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    await to_ready(shop, staff, fo)
    code = await pickup_code(db, fo["id"])
    for _ in range(4):
        await act(shop, staff, fo["id"], "handover", {"code": wrong(code)}, expect=422)
    locked = await act(shop, staff, fo["id"], "handover", {"code": wrong(code)}, expect=423)
    assert locked["locked_until"]
    assert datetime.fromisoformat(locked["locked_until"]) == clock.now() + timedelta(minutes=15)

    refused = await act(shop, staff, fo["id"], "handover", {"code": code}, expect=423)
    assert refused["type"].endswith("pickup-locked")
    clock.advance(timedelta(minutes=14, seconds=59))
    await act(shop, staff, fo["id"], "handover", {"code": code}, expect=423)
    current = (await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=staff)).json()
    assert current["status"] == "ready_for_pickup"

    clock.advance(timedelta(seconds=1))
    done = await act(shop, staff, fo["id"], "handover", {"code": code})
    assert done["status"] == "picked_up"
    types = [e["type"] for e in await events(shop, order["id"])]
    assert types.count("fulfillment.pickup_code_rejected") == 5


async def test_wrong_code_is_422_and_hands_nothing_over(shop, db):
    staff = await world(shop)
    order = await place_pickup(shop, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    await to_ready(shop, staff, fo)
    code = await pickup_code(db, fo["id"])
    await act(shop, staff, fo["id"], "handover", {"code": wrong(code)}, expect=422)
    await act(shop, staff, fo["id"], "handover", {}, expect=422)
    current = (await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=staff)).json()
    assert current["status"] == "ready_for_pickup"
    assert current["lines"][0]["quantity_handed_over"] == 0
    assert (await get_order(shop, order["id"]))["status"] == "ready_for_pickup"


async def test_handover_without_code_needs_an_override_reason_recorded_in_the_event(shop):
    staff = await world(shop)
    order = await place_pickup(shop, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    await to_ready(shop, staff, fo)
    reason = "customer lost phone; checked passport"
    done = await act(shop, staff, fo["id"], "handover", {"override_reason": reason})
    assert done["status"] == "picked_up"
    picked = [e for e in await events(shop, order["id"]) if e["type"] == "fulfillment.picked_up"]
    assert len(picked) == 1 and picked[0]["data"]["override_reason"] == reason
    assert picked[0]["actor"].startswith("staff")


async def test_channel_key_cannot_hand_over(shop):
    staff = await world(shop)
    order = await place_pickup(shop, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    await to_ready(shop, staff, fo)
    r = await shop.client.post(
        f"/v1/fulfillments/{fo['id']}/handover", json={"override_reason": "trust me"}, headers=await shop.channel()
    )
    assert r.status_code in (403, 404), r.text
    current = (await shop.client.get(f"/v1/fulfillments/{fo['id']}", headers=staff)).json()
    assert current["status"] == "ready_for_pickup"


async def test_partial_pickup_hands_over_some_lines_and_leaves_the_rest_ready(shop, db):
    staff = await world(shop, skus=("A", "B"))
    order = await place_pickup(shop, [("A", 2), ("B", 1)])
    fo = order["fulfillment_orders"][0]
    await to_ready(shop, staff, fo)
    code = await pickup_code(db, fo["id"])
    line_a = next(ln for ln in fo["lines"] if ln["sku"] == "A")
    line_b = next(ln for ln in fo["lines"] if ln["sku"] == "B")

    part = await act(
        shop, staff, fo["id"], "handover", {"code": code, "lines": [{"line_id": line_a["id"], "quantity": 1}]}
    )
    assert part["status"] == "ready_for_pickup"
    handed = {ln["sku"]: ln["quantity_handed_over"] for ln in part["lines"]}
    assert handed == {"A": 1, "B": 0}
    assert await statuses_everywhere(shop, order) == {"partially_fulfilled"}
    o = await get_order(shop, order["id"])
    assert {ln["sku"]: ln["quantity_fulfilled"] for ln in o["lines"]} == {"A": 1, "B": 0}
    assert "fulfillment.partially_picked_up" in [e["type"] for e in await events(shop, order["id"])]

    # More than is left on the line is refused.
    await act(
        shop,
        staff,
        fo["id"],
        "handover",
        {"code": code, "lines": [{"line_id": line_a["id"], "quantity": 2}]},
        expect=422,
    )

    rest = await act(
        shop,
        staff,
        fo["id"],
        "handover",
        {"code": code, "lines": [{"line_id": line_a["id"], "quantity": 1}, {"line_id": line_b["id"], "quantity": 1}]},
    )
    assert rest["status"] == "picked_up"
    assert await statuses_everywhere(shop, order) == {"completed"}


async def test_curbside_arrival_puts_that_customer_on_top_of_the_queue(shop, db, clock):
    staff = await world(shop, stock=20)
    oldest = await place_pickup(shop, [("A", 1)], method="curbside")
    clock.advance(timedelta(minutes=5))
    with_deadline = await place_pickup(shop, [("A", 1)])
    clock.advance(timedelta(minutes=5))
    newest = await place_pickup(shop, [("A", 1)], method="curbside")
    await to_ready(shop, staff, with_deadline["fulfillment_orders"][0])

    async def queue(**params):
        r = await shop.client.get("/v1/locations/S1/fulfillments", params=params, headers=staff)
        assert r.status_code == 200, r.text
        return [f["order_id"] for f in r.json()["items"]]

    # A pickup deadline first, then the oldest.
    assert await queue() == [with_deadline["id"], oldest["id"], newest["id"]]

    clock.advance(timedelta(minutes=1))
    r = await shop.client.post(
        f"/v1/orders/{newest['id']}/arrival",
        json={"parking_spot": "P7", "vehicle": "red VW Golf"},
        headers=await shop.channel(),
    )
    assert r.status_code == 200, r.text
    assert r.json()[0]["arrival"]["parking_spot"] == "P7"

    items = (await shop.client.get("/v1/locations/S1/fulfillments", headers=staff)).json()["items"]
    assert [f["order_id"] for f in items] == [newest["id"], with_deadline["id"], oldest["id"]]
    assert items[0]["arrival"]["parking_spot"] == "P7"
    assert items[0]["arrival"]["vehicle"] == "red VW Golf"
    assert datetime.fromisoformat(items[0]["arrival"]["arrived_at"]) == clock.now()
    arrived = [e for e in await events(shop, newest["id"]) if e["type"] == "order.customer_arrived"]
    assert len(arrived) == 1 and arrived[0]["data"]["parking_spot"] == "P7"

    # Two customers outside: whoever arrived first is served first.
    clock.advance(timedelta(minutes=1))
    r = await shop.client.post(
        f"/v1/orders/{oldest['id']}/arrival", json={"parking_spot": "P1"}, headers=await shop.channel()
    )
    assert r.status_code == 200, r.text
    assert (await queue())[:2] == [newest["id"], oldest["id"]]

    assert await queue(status="ready_for_pickup") == [with_deadline["id"]]
    bad = await shop.client.get("/v1/locations/S1/fulfillments", params={"status": "bogus"}, headers=staff)
    assert bad.status_code == 422


async def test_curbside_runs_to_picked_up(shop, db):
    staff = await world(shop)
    order = await place_pickup(shop, [("A", 1)], method="curbside")
    fo = order["fulfillment_orders"][0]
    assert fo["method"] == "curbside"
    await to_ready(shop, staff, fo)
    r = await shop.client.post(
        f"/v1/orders/{order['id']}/arrival", json={"parking_spot": "3"}, headers=await shop.channel()
    )
    assert r.status_code == 200, r.text
    done = await act(shop, staff, fo["id"], "handover", {"code": await pickup_code(db, fo["id"])})
    assert done["status"] == "picked_up"
    assert (await get_order(shop, order["id"]))["status"] == "completed"
    # Nobody is waiting outside for a finished order.
    queue = (await shop.client.get("/v1/locations/S1/fulfillments", headers=staff)).json()["items"]
    assert queue == []


async def test_arrival_needs_an_open_pickup(shop, db):
    staff = await world(shop)
    ship = await shop.place(shop.order_body([("A", 1)], method="ship"))
    assert ship.status_code == 201, ship.text
    r = await shop.client.post(
        f"/v1/orders/{ship.json()['id']}/arrival", json={"parking_spot": "1"}, headers=await shop.channel()
    )
    assert r.status_code == 409, r.text
    order = await place_pickup(shop, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    await to_ready(shop, staff, fo)
    await act(shop, staff, fo["id"], "handover", {"code": await pickup_code(db, fo["id"])})
    r = await shop.client.post(
        f"/v1/orders/{order['id']}/arrival", json={"parking_spot": "1"}, headers=await shop.channel()
    )
    assert r.status_code == 409, r.text
    r = await shop.client.post(f"/v1/orders/{order['id']}/arrival", json={}, headers=staff)
    assert r.status_code == 403, r.text
