"""Issue #7 item 6: the pickup code is derived, never stored; the ordering channel (or an admin)
can have it re-sent, and the timeline records that it was (without the code)."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import text

from tests.conftest import TABLES
from tests.e2e.support import act, assert_problem, events, pickup_code, to_ready


async def world(shop):
    for code in ("S1", "S2"):
        await shop.location(code)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    return await shop.staff("S1")


async def ready_pickup(shop, staff, *, channel: str = "web") -> tuple[dict, dict]:
    r = await shop.place(shop.order_body([("A", 1)], location="S1"), headers=await shop.channel(channel))
    assert r.status_code == 201, r.text
    order = r.json()
    fo = order["fulfillment_orders"][0]
    await to_ready(shop, staff, fo)
    return order, fo


async def resend(shop, fo_id, headers):
    return await shop.client.post(f"/v1/fulfillments/{fo_id}/resend-code", headers=headers)


def holds(code: str, text_: str) -> bool:
    """``code`` as a value of its own, not six digits inside a uuid, a digest or a timestamp."""
    return re.search(rf"(?<![\w.:-]){code}(?![\w.:-])", text_) is not None


async def test_resent_code_is_the_one_in_the_ready_event_and_hands_over(shop, db):
    staff = await world(shop)
    order, fo = await ready_pickup(shop, staff)
    sent = await pickup_code(db, fo["id"])

    r = await resend(shop, fo["id"], await shop.channel("web"))
    assert r.status_code == 200, r.text
    assert r.json() == {"code": sent}
    assert (await resend(shop, fo["id"], shop.admin)).json() == {"code": sent}

    timeline = await events(shop, order["id"])
    resent = [e for e in timeline if e["type"] == "fulfillment.pickup_code_resent"]
    assert len(resent) == 2 and resent[0]["data"]["fulfillment_id"] == fo["id"]
    assert all(not holds(sent, str(e)) and "code" not in e["data"] for e in timeline)

    done = await act(shop, staff, fo["id"], "handover", {"code": r.json()["code"]})
    assert done["status"] == "picked_up"


async def test_no_table_row_holds_the_code_but_the_unpublished_ready_message(shop, db):
    staff = await world(shop)
    order, fo = await ready_pickup(shop, staff)
    code = (await resend(shop, fo["id"], shop.admin)).json()["code"]
    async with db.unit_of_work() as uow:
        found = []
        for table in TABLES:
            rows = await uow.session.execute(text(f"SELECT row_to_json(t)::text FROM {table} t"))
            found += [(table, row) for (row,) in rows if holds(code, row)]
    assert len(found) == 1, found
    table, row = found[0]
    assert table == "outbox" and "fulfillment.ready_for_pickup" in row


async def test_the_code_survives_the_pickup_moving_to_another_store(shop, db):
    staff = await world(shop)
    order, fo = await ready_pickup(shop, staff)
    code = await pickup_code(db, fo["id"])
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            text(
                "UPDATE fulfillment_orders SET location_id = (SELECT id FROM locations WHERE code = 'S2')"
                " WHERE id = :id"
            ),
            {"id": fo["id"]},
        )
        await uow.commit()
    assert (await resend(shop, fo["id"], shop.admin)).json() == {"code": code}
    done = await act(shop, await shop.staff("S2"), fo["id"], "handover", {"code": code})
    assert done["status"] == "picked_up" and done["location"] == "S2"


async def test_a_new_ready_is_a_new_code_and_the_old_one_no_longer_opens(shop, db):
    staff = await world(shop)
    order, fo = await ready_pickup(shop, staff)
    first = await pickup_code(db, fo["id"])
    async with db.unit_of_work() as uow:
        issue = (
            await uow.session.execute(
                text(
                    "UPDATE fulfillment_orders SET pickup_code_issue = pickup_code_issue + 1 WHERE id = :id"
                    " RETURNING pickup_code_issue"
                ),
                {"id": fo["id"]},
            )
        ).scalar_one()
        await uow.commit()
    assert issue == 2
    second = (await resend(shop, fo["id"], shop.admin)).json()["code"]
    assert second != first
    r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/handover", json={"code": first}, headers=staff)
    assert_problem(r, 422, "wrong-pickup-code")
    assert (await act(shop, staff, fo["id"], "handover", {"code": second}))["status"] == "picked_up"


async def test_resend_is_for_channels_and_admins_staff_get_403_naming_their_role(shop, db):
    staff = await world(shop)
    _, fo = await ready_pickup(shop, staff)
    body = assert_problem(await resend(shop, fo["id"], staff), 403, "forbidden")
    assert "staff" in body["detail"]


async def test_resend_for_another_channel_is_the_same_404_as_no_such_pickup(shop, db):
    staff = await world(shop)
    _, fo = await ready_pickup(shop, staff, channel="web")
    amazon = await shop.channel("amazon")
    theirs = await resend(shop, fo["id"], amazon)
    assert_problem(theirs, 404, "not-found")
    missing = await resend(shop, uuid.uuid4(), amazon)
    assert_problem(missing, 404, "not-found")
    assert {k: v for k, v in theirs.json().items() if k != "instance"} == {
        k: v for k, v in missing.json().items() if k != "instance"
    }


async def test_resend_before_ready_or_after_pickup_is_409_naming_the_state(shop, db):
    staff = await world(shop)
    r = await shop.place(shop.order_body([("A", 1)], location="S1"))
    fo = r.json()["fulfillment_orders"][0]
    body = assert_problem(await resend(shop, fo["id"], shop.admin), 409, "illegal-transition")
    assert body["state"] == "pending"
    await to_ready(shop, staff, fo)
    code = (await resend(shop, fo["id"], shop.admin)).json()["code"]
    await act(shop, staff, fo["id"], "handover", {"code": code})
    body = assert_problem(await resend(shop, fo["id"], shop.admin), 409, "illegal-transition")
    assert body["state"] == "picked_up"
