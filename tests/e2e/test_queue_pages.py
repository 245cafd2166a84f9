"""The store queue pages by an opaque keyset cursor: walking it page by page reads the queue
exactly as one page does, ties on every time included; a cursor it did not write is a 422."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.support import assert_problem, fields_of, to_ready


async def _walk(shop, staff, limit: int) -> list[str]:
    seen, cursor = [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await shop.client.get("/v1/locations/S1/fulfillments", params=params, headers=staff)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        seen += [f["id"] for f in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


async def test_walking_the_store_queue_page_by_page_reads_it_in_urgency_order_without_gaps(shop, clock):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 50)
    staff = await shop.staff("S1")
    placed = []
    for i in range(7):
        if i % 3 == 0:
            clock.advance(timedelta(minutes=1))  # the others are created at the same instant: ties
        r = await shop.place(shop.order_body([("A", 1)], method="curbside" if i % 2 else "pickup", location="S1"))
        assert r.status_code == 201, r.text
        placed.append(r.json())
    for order in placed[1:3]:
        await to_ready(shop, staff, order["fulfillment_orders"][0])  # a pickup deadline
    for order in (placed[5], placed[3]):
        r = await shop.client.post(f"/v1/orders/{order['id']}/arrival", json={}, headers=await shop.channel())
        assert r.status_code == 200, r.text  # waiting outside, in this order
        clock.advance(timedelta(seconds=30))

    whole = await _walk(shop, staff, 200)
    assert len(whole) == 7
    first = [placed[i]["fulfillment_orders"][0]["id"] for i in (5, 3)]
    assert whole[:2] == first
    assert set(whole[2:4]) == {placed[i]["fulfillment_orders"][0]["id"] for i in (1, 2)}
    for limit in (1, 2, 3):
        assert await _walk(shop, staff, limit) == whole, limit


async def test_a_store_queue_cursor_it_did_not_write_is_an_invalid_request(shop):
    await shop.location("S1")
    staff = await shop.staff("S1")
    for cursor in ("12", "%%%garbage", "eA"):
        r = await shop.client.get("/v1/locations/S1/fulfillments", params={"cursor": cursor}, headers=staff)
        assert "cursor" in fields_of(assert_problem(r, 422, "invalid-request")), r.text
