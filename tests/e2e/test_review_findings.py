"""Findings of a correctness review, over HTTP: inputs that produced a 500 instead of a problem."""

from __future__ import annotations

import base64
import uuid

from tests.e2e.support import BASE, PROBLEM


def _is_4xx_problem(r) -> bool:
    return (
        400 <= r.status_code < 500
        and r.headers["content-type"].startswith(PROBLEM)
        and r.json()["type"].startswith(BASE)
    )


async def test_a_queue_cursor_beyond_any_offset_is_a_4xx_problem_not_a_500(shop):
    await shop.location("S1")
    r = await shop.client.get("/v1/locations/S1/fulfillments?cursor=99999999999999999999999", headers=shop.admin)
    assert _is_4xx_problem(r), (r.status_code, r.text)


async def test_an_order_cursor_whose_time_is_out_of_range_is_a_4xx_problem_not_a_500(shop):
    for stamp in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        cursor = base64.urlsafe_b64encode(f"{stamp}|{uuid.uuid4()}".encode()).decode().rstrip("=")
        r = await shop.client.get(f"/v1/orders?cursor={cursor}", headers=shop.admin)
        assert _is_4xx_problem(r), (stamp, r.status_code, r.text)


async def test_if_match_with_a_non_ascii_digit_is_a_4xx_problem_not_a_500(shop):
    await shop.location("S1")
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    order = (await shop.place(shop.order_body([("A", 1)]))).json()
    fo = order["fulfillment_orders"][0]
    staff = await shop.staff("S1")
    # "²" is a digit to str.isdigit() but not to int(); a header may carry it (latin-1).
    headers = [*staff.items(), ("If-Match", "\u00b2".encode("latin-1"))]
    r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/accept", headers=headers)
    assert _is_4xx_problem(r), (r.status_code, r.text)
    r = await shop.client.post(
        f"/v1/orders/{order['id']}/cancel", json={}, headers=[*(await shop.channel()).items(), ("If-Match", b"\xb9")]
    )
    assert _is_4xx_problem(r), (r.status_code, r.text)
    again = (await shop.client.get(f"/v1/orders/{order['id']}", headers=shop.admin)).json()
    assert again["status"] == "received" and again["fulfillment_orders"][0]["status"] == "pending"


async def test_a_sourcing_profile_for_a_channel_name_longer_than_a_channel_is_a_4xx_problem_not_a_500(shop):
    r = await shop.client.put("/v1/sourcing-profiles/" + "x" * 81, json={}, headers=shop.admin)
    assert _is_4xx_problem(r), (r.status_code, r.text)
    r = await shop.client.put("/v1/sourcing-profiles/" + "x" * 80, json={}, headers=shop.admin)
    assert r.status_code == 200, r.text
