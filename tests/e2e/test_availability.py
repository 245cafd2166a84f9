"""GET /v1/availability: available = on_hand − reserved − safety_stock (never below 0), per
location with the method's capability, nearest first when `near` is given."""

from __future__ import annotations

import pytest

from tests.e2e.support import BASE, PROBLEM, assert_problem

BERLIN = "52.52,13.40"


async def available(shop, query: str, headers=None) -> list[dict]:
    r = await shop.client.get(f"/v1/availability?{query}", headers=headers or await shop.channel())
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
async def stores(shop):
    """Berlin (all methods), Potsdam (~27 km, pickup), Hamburg (~255 km, ship only), Munich
    (~505 km, pickup and ship)."""
    await shop.location("BER", 52.52, 13.40, ("pickup", "curbside", "ship"))
    await shop.location("POT", 52.39, 13.06, ("pickup",))
    await shop.location("HAM", 53.55, 9.99, ("ship",))
    await shop.location("MUC", 48.14, 11.58, ("pickup", "ship"))
    for sku in ("A", "B"):
        await shop.product(sku)
    return shop


async def test_available_is_on_hand_minus_reserved_minus_safety_stock(stores):
    shop = stores
    await shop.stock("BER", "A", 10, safety_stock=2)
    await shop.stock("BER", "B", 4)
    r = await shop.place(shop.order_body([("A", 3), ("B", 1)], location="BER"))
    assert r.status_code == 201, r.text
    rows = await available(shop, "skus=A,B&method=pickup")
    assert [(x["location"], x["available"], x["covers_all"]) for x in rows] == [("BER", {"A": 5, "B": 3}, True)]


async def test_available_is_floored_at_zero_when_safety_stock_exceeds_what_is_left(stores):
    shop = stores
    await shop.stock("BER", "A", 5)
    await shop.stock("BER", "B", 3, safety_stock=2)
    assert (await shop.place(shop.order_body([("B", 1)], location="BER"))).status_code == 201
    # B: 3 on hand, 1 reserved, 2 safety → 0; then safety stock raised past what is left.
    await shop.stock("BER", "B", 3, safety_stock=5)
    rows = await available(shop, "skus=A,B&method=pickup")
    assert rows[0]["available"] == {"A": 5, "B": 0}
    assert rows[0]["covers_all"] is False


async def test_only_locations_with_the_methods_capability_are_listed(stores):
    shop = stores
    for code in ("BER", "POT", "HAM", "MUC"):
        await shop.stock(code, "A", 2)
    pickup = await available(shop, "skus=A&method=pickup")
    ship = await available(shop, "skus=A&method=ship")
    curbside = await available(shop, "skus=A&method=curbside")
    assert sorted(x["location"] for x in pickup) == ["BER", "MUC", "POT"]
    assert sorted(x["location"] for x in ship) == ["BER", "HAM", "MUC"]
    assert [x["location"] for x in curbside] == ["BER"]


async def test_inactive_locations_and_locations_without_stock_are_not_listed(stores):
    shop = stores
    await shop.stock("BER", "A", 2)
    await shop.stock("MUC", "A", 2)
    await shop.stock("POT", "A", 0)
    assert (await shop.client.delete("/v1/locations/MUC", headers=shop.admin)).status_code == 204
    rows = await available(shop, "skus=A&method=pickup")
    assert [x["location"] for x in rows] == ["BER"]


async def test_sorted_by_distance_when_near_is_given(stores):
    shop = stores
    for code in ("BER", "POT", "MUC"):
        await shop.stock(code, "A", 2)
    rows = await available(shop, f"skus=A&method=pickup&near={BERLIN}")
    assert [x["location"] for x in rows] == ["BER", "POT", "MUC"]
    distances = [x["distance_km"] for x in rows]
    assert distances == sorted(distances)
    assert distances[0] < 1 and 20 < distances[1] < 35 and 480 < distances[2] < 530
    from_munich = await available(shop, "skus=A&method=pickup&near=48.14,11.58")
    assert [x["location"] for x in from_munich] == ["MUC", "POT", "BER"]
    by_code = await available(shop, "skus=A&method=pickup")
    assert [(x["location"], x["distance_km"]) for x in by_code] == [
        ("BER", None),
        ("MUC", None),
        ("POT", None),
    ]


async def test_radius_filter_keeps_only_locations_within_it(stores):
    shop = stores
    for code in ("BER", "POT", "MUC"):
        await shop.stock(code, "A", 2)
    within_50 = await available(shop, f"skus=A&method=pickup&near={BERLIN}&radius_km=50")
    assert [x["location"] for x in within_50] == ["BER", "POT"]
    within_10 = await available(shop, f"skus=A&method=pickup&near={BERLIN}&radius_km=10")
    assert [x["location"] for x in within_10] == ["BER"]
    everything = await available(shop, f"skus=A&method=pickup&near={BERLIN}&radius_km=1000")
    assert [x["location"] for x in everything] == ["BER", "POT", "MUC"]
    r = await shop.client.get("/v1/availability?skus=A&radius_km=10", headers=shop.admin)
    assert_problem(r, 422, "invalid-request")


async def test_unknown_or_missing_sku_is_422(stores):
    shop = stores
    await shop.stock("BER", "A", 2)
    r = await shop.client.get("/v1/availability?skus=A,NOPE&method=pickup", headers=shop.admin)
    problem = assert_problem(r, 422, "unknown-sku")
    assert "NOPE" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["skus"]
    for query in ("", "skus=", "skus=,,"):
        r = await shop.client.get(f"/v1/availability?{query}", headers=shop.admin)
        assert r.status_code in (400, 422), (query, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)


async def test_bad_near_is_a_4xx_problem_naming_near(stores):
    for near in ("abc", "1,2,3", "95,10", "10,200", "nan,1", "inf,1", ",", "52.5", "52.5;13.4"):
        r = await stores.client.get("/v1/availability", params={"skus": "A", "near": near}, headers=stores.admin)
        assert r.status_code in (400, 422), (near, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.json()["type"].startswith(BASE)
        assert "near" in [e.get("field") for e in r.json().get("errors") or []], near


async def test_staff_and_channel_keys_may_read_availability(stores):
    shop = stores
    await shop.stock("BER", "A", 2)
    assert len(await available(shop, "skus=A", headers=await shop.staff("POT"))) == 1
    r = await shop.client.get("/v1/availability?skus=A")
    assert_problem(r, 401, "unauthenticated")
