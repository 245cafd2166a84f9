"""Capture follows the goods, void on cancel: handovers and cancels queue the operation in their
own transaction; the worker's job (run here as the worker runs it, ``captures.sweep`` /
``run_payment_operations``) calls the Stripe-shaped test server and applies its answer."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from orchestrator.payments import captures
from tests.e2e.conftest import Shop
from tests.e2e.support import act, events, get_order, pickup_code, ship_through, to_ready


async def ready_paid_order(shop: Shop, card: str = "pm_card_visa") -> tuple[dict, dict, dict]:
    """2 × A at 12.50 + 5.00 shipping = 30.00 authorised; the pickup ready at S1."""
    body = {**shop.order_body([("A", 2)], price=1250), "shipping_total": 500}
    r = await shop.place({**body, "payment": {"provider": "stripe", "payment_method": card}})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["payment"]["status"] == "authorised"
    staff = await shop.staff("S1")
    fo = await to_ready(shop, staff, order["fulfillment_orders"][0])
    return order, fo, staff


async def hand_over(shop: Shop, staff: dict, fo: dict, quantity: int | None = None) -> dict:
    body: dict = {"code": await pickup_code(shop.db, fo["id"])}
    if quantity is not None:
        body["lines"] = [{"line_id": fo["lines"][0]["id"], "quantity": quantity}]
    return await act(shop, staff, fo["id"], "handover", body)


async def run_jobs(shop: Shop, gateway) -> int:
    """The worker's sweep: every payment with a queued operation, as its job runs it."""
    return await captures.sweep(shop.db, gateway, shop.clock)


async def money(shop: Shop, stripe_api, order: dict) -> dict:
    """The payment as the service shows it, checked against the test server's PaymentIntent and
    the goods: captured ≤ authorised, Stripe holds what we recorded, nothing captured beyond
    what the handed-over goods made due."""
    shown = await get_order(shop, order["id"])
    payment = shown["payment"]
    intent = stripe_api.ledger.intent(payment["external_id"])
    assert payment["amount_captured"] <= payment["amount_authorised"]
    assert intent["amount_received"] == payment["amount_captured"]
    handed = sum(ln["quantity_fulfilled"] * ln["unit_price"] for ln in shown["lines"])
    subtotal = sum(ln["quantity"] * ln["unit_price"] for ln in shown["lines"])
    assert payment["amount_captured"] <= handed * shown["total"] // subtotal
    return {"order": shown, "payment": payment, "intent": intent}


async def crash_after_stripe(shop: Shop, gateway, monkeypatch, payment_id) -> None:
    """The job sends the payment's queued operations to Stripe, then the database goes away before
    Stripe's answer is applied: the operations stay queued for a retry under the same keys."""
    real = captures.apply_done

    async def crash(uow, call, clock):
        raise ConnectionError("the database went away")

    monkeypatch.setattr(captures, "apply_done", crash)
    with pytest.raises(ConnectionError):
        await captures.run_payment_operations(shop.db, gateway, shop.clock, payment_id)
    monkeypatch.setattr(captures, "apply_done", real)


def capture_requests(stripe_api) -> list:
    return [r for r in stripe_api.state.requests if r.path.endswith("/capture")]


async def outbox_types(shop: Shop, order_id: str) -> list[str]:
    async with shop.db.unit_of_work() as uow:
        rows = await uow.session.execute(
            text("SELECT type FROM outbox WHERE order_id = :o ORDER BY id"), {"o": order_id}
        )
        return list(rows.scalars())


async def test_a_handover_captures_exactly_the_handed_over_value_through_the_outbox(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo)
    assert capture_requests(stripe_api) == []  # the handover did not wait on Stripe
    assert "payment.capture_due" in await outbox_types(paid, order["id"])
    assert (await money(paid, stripe_api, order))["payment"]["status"] == "authorised"

    assert await run_jobs(paid, stripe_test_gateway) == 1
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 3000)
    assert seen["intent"]["status"] == "succeeded"
    [sent] = capture_requests(stripe_api)
    assert sent.params["amount_to_capture"] == "3000" and "final_capture" not in sent.params
    assert sent.idempotency_key.startswith(f"order:{order['id']}:capture:{fo['id']}")
    captured = [e for e in await events(paid, order["id"]) if e["type"] == "payment.captured"]
    assert [(e["data"]["amount"], e["data"]["final"]) for e in captured] == [(3000, True)]
    assert "payment.captured" in await outbox_types(paid, order["id"])


async def test_the_rest_of_a_partial_pickup_cancelled_is_never_charged(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo, quantity=1)
    await act(paid, staff, fo["id"], "cancel", {"reason": "customer left the rest"})
    await run_jobs(paid, stripe_test_gateway)
    seen = await money(paid, stripe_api, order)
    # Half the goods: half their value plus half the shipping, once; the rest released.
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 1500)
    assert seen["intent"]["status"] == "succeeded" and seen["intent"]["amount_capturable"] == 0


async def test_without_multicapture_a_partial_pickup_is_captured_once_when_the_last_part_is_handed_over(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo, quantity=1)
    assert await run_jobs(paid, stripe_test_gateway) == 0  # held: a partial capture would release the rest
    assert capture_requests(stripe_api) == []
    await money(paid, stripe_api, order)
    await hand_over(paid, staff, fo)
    assert await run_jobs(paid, stripe_test_gateway) == 1
    [sent] = capture_requests(stripe_api)
    assert sent.params["amount_to_capture"] == "3000" and "final_capture" not in sent.params
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 3000)
    ops = [op for op in await operations(paid, order["id"]) if op["kind"] == "capture"]
    assert [(op["amount"], op["status"]) for op in ops] == [(1500, "succeeded"), (1500, "succeeded")]


async def test_with_multicapture_each_part_is_captured_and_the_last_is_final(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await ready_paid_order(paid, card="pm_card_visa_multicapture")
    assert order["payment"]["multicapture"] is True
    await hand_over(paid, staff, fo, quantity=1)
    assert await run_jobs(paid, stripe_test_gateway) == 1
    first = await money(paid, stripe_api, order)
    assert (first["payment"]["status"], first["payment"]["amount_captured"]) == ("partially_captured", 1500)
    assert first["intent"]["status"] == "requires_capture" and first["intent"]["amount_capturable"] == 1500
    await hand_over(paid, staff, fo)
    assert await run_jobs(paid, stripe_test_gateway) == 1
    one, two = capture_requests(stripe_api)
    assert (one.params["amount_to_capture"], one.params.get("final_capture")) == ("1500", "false")
    assert (two.params["amount_to_capture"], two.params.get("final_capture")) == ("1500", None)
    assert one.idempotency_key != two.idempotency_key
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 3000)
    assert seen["intent"]["status"] == "succeeded"
    captured = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.captured"]
    assert [(c["amount"], c["final"], c["amount_captured"]) for c in captured] == [
        (1500, False, 1500),
        (1500, True, 3000),
    ]


async def test_an_order_cancelled_before_capture_voids_the_payment_intent(paid, stripe_api, stripe_test_gateway):
    order, _, _ = await ready_paid_order(paid)
    r = await paid.client.post(f"/v1/orders/{order['id']}/cancel", json={}, headers=await paid.channel())
    assert r.status_code == 200, r.text
    assert "payment.void_due" in await outbox_types(paid, order["id"])
    assert await run_jobs(paid, stripe_test_gateway) == 1
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("voided", 0)
    assert seen["intent"]["status"] == "canceled" and capture_requests(stripe_api) == []
    assert "payment.voided" in [e["type"] for e in await events(paid, order["id"])]
    assert await run_jobs(paid, stripe_test_gateway) == 0


async def test_a_refused_capture_leaves_the_order_needing_attention(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await ready_paid_order(paid)
    stripe_api.ledger.cancel(order["payment"]["external_id"], {})  # Stripe no longer holds it
    await hand_over(paid, staff, fo)
    await run_jobs(paid, stripe_test_gateway)
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["attention_reason"]) == ("needs_attention", "capture_failed")
    assert shown["payment"]["amount_captured"] == 0
    failed = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.failed"]
    assert [f["code"] for f in failed] == ["payment_intent_unexpected_state"]
    [op] = [op for op in await operations(paid, order["id"]) if op["kind"] == "capture"]
    assert op["status"] == "failed"
    assert await run_jobs(paid, stripe_test_gateway) == 0  # an operator settles it, not a retry loop


async def test_a_repeated_or_concurrent_job_never_captures_twice(paid, stripe_api, stripe_test_gateway, monkeypatch):
    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo)
    [payment_id] = await paid.db.run(captures.payments_with_queued_operations)

    # A crash between Stripe's answer and the database: the operation stays queued.
    await crash_after_stripe(paid, stripe_test_gateway, monkeypatch, payment_id)
    assert stripe_api.ledger.intent(order["payment"]["external_id"])["amount_received"] == 3000

    # The retries (two at once) replay the key; the first to apply wins, the other finds it done.
    runs = await asyncio.gather(
        *(captures.run_payment_operations(paid.db, stripe_test_gateway, paid.clock, payment_id) for _ in range(2))
    )
    assert sorted(runs) == [0, 1]
    sent = capture_requests(stripe_api)
    assert len({r.idempotency_key for r in sent}) == 1 and len(sent) in (2, 3)
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 3000)
    assert [e["type"] for e in await events(paid, order["id"])].count("payment.captured") == 1
    assert await run_jobs(paid, stripe_test_gateway) == 0


async def operations(shop: Shop, order_id: str) -> list[dict]:
    r = await shop.client.get(f"/v1/orders/{order_id}/payments", headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_shipment_captures_what_was_shipped(paid, stripe_api, stripe_test_gateway):
    await paid.location("W1", capabilities=("ship",))
    await paid.stock("W1", "A", 2)
    body = {**paid.order_body([("A", 2)], method="ship", price=1250), "shipping_total": 500}
    r = await paid.place({**body, "payment": {"provider": "stripe", "payment_method": "pm_card_visa"}})
    assert r.status_code == 201, r.text
    order = r.json()
    staff = await paid.staff(*{fo["location"] for fo in order["fulfillment_orders"]})
    [fo] = order["fulfillment_orders"]
    await ship_through(paid, staff, fo, 2)
    assert "payment.capture_due" in await outbox_types(paid, order["id"])
    assert await run_jobs(paid, stripe_test_gateway) == 1
    seen = await money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_captured"]) == ("captured", 3000)


async def test_a_refused_capture_stays_for_an_operator_while_the_rest_is_handed_over(
    paid, stripe_api, stripe_test_gateway
):
    order, fo, staff = await ready_paid_order(paid, card="pm_card_visa_multicapture")
    stripe_api.ledger.cancel(order["payment"]["external_id"], {})
    await hand_over(paid, staff, fo, quantity=1)
    await run_jobs(paid, stripe_test_gateway)
    await hand_over(paid, staff, fo)  # the goods still leave: the handover never waits on Stripe
    shown = await get_order(paid, order["id"])
    assert (shown["status"], shown["attention_reason"]) == ("needs_attention", "capture_failed")
    await run_jobs(paid, stripe_test_gateway)
    assert (await money(paid, stripe_api, order))["payment"]["amount_captured"] == 0


async def test_the_worker_runs_the_job_of_a_relayed_capture_due_message(paid, stripe_test_gateway):
    from orchestrator.platform.outbox_relay import OutboxMessageOut
    from orchestrator.worker import schedule_payment_operations

    order, fo, staff = await ready_paid_order(paid)
    await hand_over(paid, staff, fo)
    async with paid.db.unit_of_work() as uow:
        row = (
            await uow.session.execute(
                text("SELECT id, event_id, type, payload FROM outbox WHERE type = 'payment.capture_due'")
            )
        ).one()
    message = OutboxMessageOut(row.id, str(row.event_id), row.type, order["id"], row.payload)
    enqueued = []

    class Redis:
        async def enqueue_job(self, name, *args, **kwargs):
            enqueued.append((name, args, kwargs["_job_id"]))

    await schedule_payment_operations({"redis": Redis()}, [message])
    payment_id = row.payload["data"]["payment_id"]
    assert enqueued == [("run_payment_operations", (payment_id,), f"payment:{row.event_id}")]
