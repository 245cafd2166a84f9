"""Issue #11 — one status, every channel: the order's ``customer_status`` reads the same from
every endpoint that shows the order, and follows the store's work from accepted to picked up."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.e2e.support import act, assert_problem, fields_of, pickup_code

HOURS = {"mon": [["09:00", "20:00"]], "tue": [["09:00", "13:00"], ["14:00", "20:00"]], "sun": []}
ADDRESS = {"line1": "Alexanderplatz 1", "city": "Berlin", "postal_code": "10178", "country": "DE"}


async def statuses_everywhere(shop, order) -> list[dict]:
    """The order's customer status through GET, by-number, the list and a channel's key."""
    one = (await shop.client.get(f"/v1/orders/{order['id']}", headers=shop.admin)).json()
    by_number = (await shop.client.get(f"/v1/orders/by-number/{order['number']}", headers=shop.admin)).json()
    listed = (await shop.client.get("/v1/orders", headers=shop.admin)).json()["items"]
    in_list = next(o for o in listed if o["id"] == order["id"])
    channel = (await shop.client.get(f"/v1/orders/{order['id']}", headers=await shop.channel("app"))).json()
    return [v["customer_status"] for v in (one, by_number, in_list, channel)]


async def the_one_status(shop, order) -> dict:
    seen = await statuses_everywhere(shop, order)
    assert all(s == seen[0] for s in seen), seen
    return seen[0]


async def berlin_store(shop) -> dict:
    await shop.location("S1", name="Berlin Mitte", timezone="Europe/Berlin", address=ADDRESS, opening_hours=HOURS)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    return await shop.staff("S1")


async def test_a_pickup_reads_the_same_everywhere_from_confirmed_to_picked_up(shop, db) -> None:
    staff = await berlin_store(shop)
    r = await shop.place(shop.order_body([("A", 2)], method="pickup", location="S1"))
    assert r.status_code == 201, r.text
    order = r.json()
    fo = order["fulfillment_orders"][0]
    assert order["customer_status"] == await the_one_status(shop, order)  # the intake answer too
    assert order["customer_status"]["code"] == "confirmed"
    assert order["customer_status"]["text"] == "Order confirmed"

    await act(shop, staff, fo["id"], "accept")
    preparing = await the_one_status(shop, order)
    assert (preparing["code"], preparing["text"]) == ("preparing", "Being prepared at Berlin Mitte")
    assert preparing["location"] == {
        "code": "S1",
        "name": "Berlin Mitte",
        "address": ADDRESS,
        "timezone": "Europe/Berlin",
        "opening_hours": HOURS,
    }

    ready_fo = await to_ready_from_accepted(shop, staff, fo)
    ready = await the_one_status(shop, order)
    deadline = datetime.fromisoformat(ready_fo["pickup_deadline"])
    local = deadline.astimezone(ZoneInfo("Europe/Berlin"))
    assert ready["code"] == "ready_for_pickup"
    assert ready["text"] == f"Ready for pickup at Berlin Mitte until {local:%a} {local.day} {local:%b, %H:%M}"
    assert datetime.fromisoformat(ready["until"]) == deadline
    assert ready["location"]["code"] == "S1"

    await act(shop, staff, fo["id"], "handover", {"code": await pickup_code(db, fo["id"])})
    done = await the_one_status(shop, order)
    assert (done["code"], done["text"], done["location"], done["until"]) == ("picked_up", "Picked up", None, None)


async def to_ready_from_accepted(shop, staff, fo) -> dict:
    await act(shop, staff, fo["id"], "start-picking")
    picks = [{"line_id": ln["id"], "quantity": ln["quantity"]} for ln in fo["lines"]]
    await act(shop, staff, fo["id"], "pick", {"lines": picks})
    return await act(shop, staff, fo["id"], "ready")


async def test_a_pickup_past_its_expected_ready_time_reads_delayed_everywhere(shop, clock) -> None:
    staff = await berlin_store(shop)
    order = (await shop.place(shop.order_body([("A", 1)], method="pickup", location="S1"))).json()
    fo = order["fulfillment_orders"][0]
    await act(shop, staff, fo["id"], "accept")
    expected = datetime.fromisoformat(order["expected_ready_at"])
    clock.advance(expected - clock.now() + timedelta(minutes=1))
    late = await the_one_status(shop, order)
    assert late["code"] == "delayed"
    assert late["text"].startswith("Delayed: expected ready at Berlin Mitte by ")
    await to_ready_from_accepted(shop, staff, fo)
    assert (await the_one_status(shop, order))["code"] == "ready_for_pickup"


async def test_a_cancelled_order_says_why_in_the_cancel_answer_and_everywhere(shop) -> None:
    await berlin_store(shop)
    order = (await shop.place(shop.order_body([("A", 1)], method="pickup", location="S1"))).json()
    r = await shop.client.post(
        f"/v1/orders/{order['id']}/cancel", json={"reason": "Found it cheaper"}, headers=await shop.channel()
    )
    assert r.status_code == 200, r.text
    answered = r.json()["customer_status"]
    assert (answered["code"], answered["text"]) == ("cancelled", "Cancelled: Found it cheaper")
    assert await the_one_status(shop, order) == answered


async def test_a_shipped_order_is_on_its_way_with_the_carriers_link(shop) -> None:
    await shop.location("DC1")
    await shop.product("A")
    await shop.stock("DC1", "A", 3)
    staff = await shop.staff("DC1")
    r = await shop.place(shop.order_body([("A", 1)], method="ship", location=None))
    assert r.status_code == 201, r.text
    order = r.json()
    fo = order["fulfillment_orders"][0]
    for action, body in [
        ("accept", None),
        ("start-picking", None),
        ("pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 1}]}),
        ("pack", None),
        ("ship", {"carrier": "UPS", "tracking_number": "1Z999"}),
    ]:
        await act(shop, staff, fo["id"], action, body)
    shipped = await the_one_status(shop, order)
    assert (shipped["code"], shipped["text"]) == ("on_its_way", "On its way with UPS")
    assert shipped["tracking_url"] == "https://www.ups.com/track?tracknum=1Z999"


async def test_opening_hours_are_kept_shown_and_checked(shop) -> None:
    created = await shop.location("S1", opening_hours={"mon": [["14:00", "20:00"], ["09:00", "12:00"]]})
    assert created["opening_hours"] == {"mon": [["09:00", "12:00"], ["14:00", "20:00"]]}
    patched = await shop.client.patch("/v1/locations/S1", json={"opening_hours": HOURS}, headers=shop.admin)
    assert patched.status_code == 200, patched.text
    shown = (await shop.client.get("/v1/locations/S1", headers=shop.admin)).json()
    assert shown["opening_hours"] == HOURS
    cleared = await shop.client.patch("/v1/locations/S1", json={"opening_hours": None}, headers=shop.admin)
    assert cleared.json()["opening_hours"] is None

    for bad in [
        {"monday": [["09:00", "20:00"]]},
        {"mon": [["9:00", "20:00"]]},
        {"mon": [["09:00", "25:00"]]},
        {"mon": [["09:00"]]},
        {"mon": [["20:00", "09:00"]]},
        {"mon": [["09:00", "13:00"], ["12:00", "20:00"]]},
    ]:
        r = await shop.client.patch("/v1/locations/S1", json={"opening_hours": bad}, headers=shop.admin)
        assert 400 <= r.status_code < 500 and r.status_code != 404, (bad, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
    r = await shop.client.patch(
        "/v1/locations/S1", json={"opening_hours": {"mon": [["20:00", "09:00"]]}}, headers=shop.admin
    )
    problem = assert_problem(r, 422, "invalid-request")
    assert fields_of(problem) == ["opening_hours.mon"]


async def test_the_change_answer_carries_the_status_a_later_read_shows(shop) -> None:
    await berlin_store(shop)
    await shop.location("S2", name="Munich", timezone="Europe/Berlin")
    await shop.stock("S2", "A", 5)
    order = (await shop.place(shop.order_body([("A", 1)], method="pickup", location="S1"))).json()
    r = await shop.client.post(
        f"/v1/orders/{order['id']}/changes",
        json={"actions": [{"type": "move_pickup", "location": "S2"}]},
        headers={**await shop.channel("app"), "If-Match": f'"{order["version"]}"'},
    )
    assert r.status_code == 200, r.text
    answered = r.json()["order"]["customer_status"]
    assert answered == await the_one_status(shop, order)
    assert answered["code"] == "confirmed"
