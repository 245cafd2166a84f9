"""Small helpers the e2e tests share: calling a transition, reading what the API says, checking a
problem response, and fishing the pickup code out of the outbox (it never appears in the API)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

PROBLEM = "application/problem+json"
BASE = "https://orchestrator.example/problems/"

# Places around Berlin (and Hamburg, far away) for stores and ship-to addresses.
NEAR = (52.53, 13.41)
MID = (52.40, 13.05)
FAR = (53.55, 9.99)
CUSTOMER = {"line1": "1 Main St", "city": "Berlin", "country": "DE", "lat": 52.52, "lon": 13.40}


def assert_problem(r, status: int, slug: str) -> dict:
    """An RFC 9457 problem of the documented type, with a title."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["type"] == BASE + slug, body
    assert body["status"] == status
    assert body["title"]
    return body


def fields_of(problem: dict) -> list[str]:
    """The fields a problem's ``errors`` name, in order."""
    return [e.get("field") for e in problem.get("errors") or []]


async def act(shop, headers, fo_id, action, body=None, *, expect=200, if_match=None) -> Any:
    h = dict(headers)
    if if_match is not None:
        h["If-Match"] = if_match
    r = await shop.client.post(f"/v1/fulfillments/{fo_id}/{action}", json=body, headers=h)
    assert r.status_code == expect, (action, r.status_code, r.text)
    return r.json()


async def to_ready(shop, staff, fo) -> dict:
    """Accept, pick every line in full, mark ready for pickup."""
    await act(shop, staff, fo["id"], "accept")
    await act(shop, staff, fo["id"], "start-picking")
    picks = [{"line_id": ln["id"], "quantity": ln["quantity"]} for ln in fo["lines"]]
    await act(shop, staff, fo["id"], "pick", {"lines": picks})
    return await act(shop, staff, fo["id"], "ready")


async def ship_through(shop, staff, fo, quantity: int, tracking: str = "T") -> dict:
    """Accept, pick ``quantity`` of the first line, pack and ship."""
    for action, body in [
        ("accept", None),
        ("start-picking", None),
        ("pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": quantity}]}),
        ("pack", None),
        ("ship", {"carrier": "DHL", "tracking_number": tracking}),
    ]:
        shipped = await act(shop, staff, fo["id"], action, body)
    return shipped


async def get_order(shop, order_id, headers=None) -> dict:
    r = await shop.client.get(f"/v1/orders/{order_id}", headers=headers or shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def get_stock(shop, code, sku) -> dict:
    return (await shop.client.get(f"/v1/locations/{code}/stock/{sku}", headers=shop.admin)).json()


async def on_hand_reserved(shop, code, sku) -> tuple[int, int]:
    s = await get_stock(shop, code, sku)
    return s["on_hand"], s["reserved"]


async def events(shop, order_id) -> list[dict]:
    r = await shop.client.get(f"/v1/orders/{order_id}/events", headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def decisions(shop, order_id, headers=None) -> list[dict]:
    r = await shop.client.get(f"/v1/orders/{order_id}/sourcing", headers=headers or shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def movement_kinds(shop, code, sku) -> list[str]:
    r = await shop.client.get(f"/v1/locations/{code}/stock/{sku}/movements", headers=shop.admin)
    assert r.status_code == 200, r.text
    return [m["kind"] for m in r.json()["items"]]


async def place_ship(shop, lines, *, price=1000, expect=201) -> dict:
    r = await shop.place(shop.order_body(lines, method="ship", address=CUSTOMER, price=price))
    assert r.status_code == expect, r.text
    return r.json()


async def pickup_code(db, fo_id) -> str:
    """The code only the customer's notification carries: the outbox message, newest first."""
    async with db.unit_of_work() as uow:
        rows = (
            (
                await uow.session.execute(
                    text(
                        "SELECT payload FROM outbox WHERE type = 'fulfillment.ready_for_pickup' "
                        "AND payload->'data'->>'fulfillment_id' = :fo ORDER BY id DESC"
                    ),
                    {"fo": str(fo_id)},
                )
            )
            .scalars()
            .all()
        )
    assert rows, "no ready_for_pickup outbox message"
    return rows[0]["data"]["pickup_code"]


class Recorder:
    """Stands in for a structlog logger: every line logged, with its level and fields."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str):  # type: ignore[no-untyped-def]
        def record(event: str, **kw: Any) -> None:
            self.calls.append((level, event, kw))

        return record


async def payment_rows(shop, order_id: str, columns: str) -> list[dict]:
    """``columns`` of the order's payment rows, oldest first (what the API does not show)."""
    async with shop.db.unit_of_work() as uow:
        rows = await uow.session.execute(
            text(f"SELECT {columns} FROM payments WHERE order_id = :o ORDER BY created_at, id"), {"o": order_id}
        )
        return [dict(r._mapping) for r in rows]
