"""Refunds through ``POST /v1/orders/{id}/refunds``: never above what was captured minus what was
refunded or is in flight, never twice under one Idempotency-Key, Stripe's ledger always equal to
ours; a refund Stripe could not take stays queued for the worker's sweep, which sends it again
under the same key."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from orchestrator.payments import refunds
from orchestrator.payments.refunds import Refundable, check_refund, status_after_refund, stripe_reason
from orchestrator.payments.stripe_gateway import StripeGateway
from orchestrator.platform.errors import (
    GatewayUnavailable,
    NothingToRefund,
    RefundedByMarketplace,
    RefundExceedsRefundable,
)
from tests.e2e.conftest import Shop
from tests.e2e.support import events, get_order
from tests.e2e.test_payments_capture import hand_over, money, operations, outbox_types, ready_paid_order, run_jobs


async def captured_order(shop: Shop, stripe_api, gateway) -> dict:
    """30.00 EUR authorised, handed over and captured."""
    order, fo, staff = await ready_paid_order(shop)
    await hand_over(shop, staff, fo)
    assert await run_jobs(shop, gateway) == 1
    assert (await money(shop, stripe_api, order))["payment"]["amount_captured"] == 3000
    return order


_seq = 0


async def refund(
    shop: Shop, order: dict, amount: int, reason: str | None = None, *, key: str | None = None, headers=None
):
    global _seq
    _seq += 1
    body: dict = {"amount": amount}
    if reason is not None:
        body["reason"] = reason
    h = {**(headers or await shop.channel()), "Idempotency-Key": key or f"refund-{_seq}"}
    return await shop.client.post(f"/v1/orders/{order['id']}/refunds", json=body, headers=h)


def refund_requests(stripe_api) -> list:
    return [r for r in stripe_api.state.requests if r.path == "/v1/refunds"]


async def refunded_money(shop: Shop, stripe_api, order: dict) -> dict:
    """``money``'s checks, and: refunded ≤ captured; what Stripe refunded on the intent equals
    what we recorded."""
    seen = await money(shop, stripe_api, order)
    payment = seen["payment"]
    assert 0 <= payment["amount_refunded"] <= payment["amount_captured"]
    at_stripe = [r for r in stripe_api.ledger.refunds.values() if r["payment_intent"] == payment["external_id"]]
    assert sum(r["amount"] for r in at_stripe) == payment["amount_refunded"]
    return {**seen, "refunds": at_stripe}


def problem_slug(r) -> str:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return r.json()["type"].rsplit("/", 1)[-1]


async def test_a_partial_refund_then_the_rest(paid, stripe_api, stripe_test_gateway):
    order = await captured_order(paid, stripe_api, stripe_test_gateway)
    r = await refund(paid, order, 1000, "requested_by_customer")
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["amount"], first["currency"], first["status"]) == (1000, "EUR", "succeeded")
    assert first["reason"] == "requested_by_customer" and first["external_id"].startswith("re_")
    seen = await refunded_money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_refunded"]) == ("partially_refunded", 1000)

    paid.clock.advance(timedelta(minutes=5))
    r = await refund(paid, order, 2000, "box arrived damaged")
    assert r.status_code == 201, r.text
    seen = await refunded_money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_refunded"]) == ("refunded", 3000)
    one, two = refund_requests(stripe_api)
    # Stripe's reason takes three words; any other reason travels as metadata only.
    assert one.params["reason"] == "requested_by_customer" and "reason" not in one.params["metadata"]
    assert "reason" not in two.params and two.params["metadata"]["reason"] == "box arrived damaged"
    assert one.idempotency_key == f"order:{order['id']}:refund:{first['id']}"
    assert two.params["metadata"]["refund_id"] == r.json()["id"]

    refunded = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.refunded"]
    assert [(e["amount"], e["amount_refunded"], e["reason"]) for e in refunded] == [
        (1000, 1000, "requested_by_customer"),
        (2000, 3000, "box arrived damaged"),
    ]
    assert [e["external_refund_id"] for e in refunded] == [x["id"] for x in seen["refunds"]]
    assert (await outbox_types(paid, order["id"])).count("payment.refunded") == 2
    ops = [op for op in await operations(paid, order["id"]) if op["kind"] == "refund"]
    assert [(op["amount"], op["status"], op["reason"]) for op in ops] == [
        (1000, "succeeded", "requested_by_customer"),
        (2000, "succeeded", "box arrived damaged"),
    ]
    r = await refund(paid, order, 1)
    assert (r.status_code, problem_slug(r)) == (422, "refund-exceeds-captured")


async def test_never_more_than_captured_minus_refunded(paid, stripe_api, stripe_test_gateway):
    order = await captured_order(paid, stripe_api, stripe_test_gateway)
    r = await refund(paid, order, 3001)
    assert (r.status_code, problem_slug(r)) == (422, "refund-exceeds-captured")
    assert "at most 3000 EUR" in r.json()["detail"] and r.json()["context"]["refundable"] == 3000
    assert (await refund(paid, order, 1000)).status_code == 201
    r = await refund(paid, order, 2001)
    assert (r.status_code, problem_slug(r)) == (422, "refund-exceeds-captured")
    assert r.json()["context"]["refundable"] == 2000
    assert len(refund_requests(stripe_api)) == 1  # refusals of ours never reach Stripe
    assert (await refunded_money(paid, stripe_api, order))["payment"]["amount_refunded"] == 1000


async def test_nothing_is_refunded_before_capture(paid, stripe_api, stripe_test_gateway):
    order, fo, staff = await ready_paid_order(paid)
    r = await refund(paid, order, 100)
    assert (r.status_code, problem_slug(r)) == (422, "nothing-to-refund")
    await hand_over(paid, staff, fo)  # queued, not yet captured: still nothing
    r = await refund(paid, order, 100)
    assert (r.status_code, problem_slug(r)) == (422, "nothing-to-refund")
    assert refund_requests(stripe_api) == []
    assert (await get_order(paid, order["id"]))["payment"]["amount_refunded"] == 0


async def test_who_may_refund(paid, stripe_api, stripe_test_gateway):
    order = await captured_order(paid, stripe_api, stripe_test_gateway)
    r = await refund(paid, order, 100, headers=await paid.staff("S1"))
    assert r.status_code == 403, r.text
    r = await refund(paid, {"id": "00000000-0000-4000-8000-000000000000"}, 100)
    assert (r.status_code, problem_slug(r)) == (404, "not-found")
    assert (await refund(paid, order, 100, headers=paid.admin)).status_code == 201
    r = await paid.client.post(
        f"/v1/orders/{order['id']}/refunds", json={"amount": 0}, headers={**paid.admin, "Idempotency-Key": "z"}
    )
    assert r.status_code == 422, r.text
    r = await paid.client.post(f"/v1/orders/{order['id']}/refunds", json={"amount": 5}, headers=paid.admin)
    assert r.status_code in (400, 422), r.text  # no Idempotency-Key


async def test_a_marketplace_payment_is_refunded_by_the_marketplace(paid, stripe_api):
    body = {**paid.order_body([("A", 1)]), "payment": {"provider": "marketplace", "reference": "mkt-1"}}
    r = await paid.place(body)
    assert r.status_code == 201, r.text
    r = await refund(paid, r.json(), 100)
    assert (r.status_code, problem_slug(r)) == (422, "refunded-by-marketplace")


async def test_pay_in_store_money_is_handed_back_at_the_counter(paid, stripe_api):
    r = await paid.place({**paid.order_body([("A", 1)]), "payment": {"provider": "pos"}})
    assert r.status_code == 201, r.text
    order = r.json()
    r = await refund(paid, order, 100)
    assert (r.status_code, problem_slug(r)) == (422, "nothing-to-refund")  # nothing tendered yet
    # The counter took 10.00 (as a tender at handover records it).
    async with paid.db.unit_of_work() as uow:
        await uow.session.execute(
            text(
                "UPDATE payments SET amount_authorised = 1000, amount_captured = 1000, status = 'captured' "
                "WHERE order_id = :o"
            ),
            {"o": order["id"]},
        )
        await uow.commit()
    r = await refund(paid, order, 400, "wrong size")
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["external_id"]) == ("succeeded", None)
    payment = (await get_order(paid, order["id"]))["payment"]
    assert (payment["status"], payment["amount_refunded"]) == ("partially_refunded", 400)
    assert refund_requests(stripe_api) == []
    [e] = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.refunded"]
    assert (e["provider"], e["external_refund_id"], e["amount_refunded"]) == ("pos", None, 400)


async def test_a_repeated_request_refunds_once(paid, stripe_api, stripe_test_gateway):
    order = await captured_order(paid, stripe_api, stripe_test_gateway)
    first = await refund(paid, order, 1200, "duplicate", key="refund-once")
    again = await refund(paid, order, 1200, "duplicate", key="refund-once")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert len(refund_requests(stripe_api)) == 1
    assert (await refunded_money(paid, stripe_api, order))["payment"]["amount_refunded"] == 1200
    other = await refund(paid, order, 1300, "duplicate", key="refund-once")
    assert (other.status_code, problem_slug(other)) == (422, "idempotency-key-reused")


@pytest.fixture
def stripe_unreachable(monkeypatch):
    """Refunds cannot reach Stripe (in the app's gateway and the worker's alike) until undone."""

    async def unreachable(self, *args, **kwargs):
        raise GatewayUnavailable("Stripe did not answer: connection refused")

    monkeypatch.setattr(StripeGateway, "refund", unreachable)
    return monkeypatch.undo


async def test_stripe_unreachable_leaves_it_pending_and_the_sweep_completes_it(
    paid, stripe_api, stripe_test_gateway, stripe_unreachable
):
    order = await captured_order(paid, stripe_api, stripe_test_gateway)
    r = await refund(paid, order, 1000, key="refund-later")
    assert r.status_code == 202, r.text
    pending = r.json()
    assert (pending["status"], pending["external_id"]) == ("pending", None)
    assert (await get_order(paid, order["id"]))["payment"]["amount_refunded"] == 0
    # The queued refund reserves its amount: the rest is all another refund may take.
    r = await refund(paid, order, 2001)
    assert (r.status_code, r.json()["context"]["refundable"]) == (422, 2000)
    assert await run_jobs(paid, stripe_test_gateway) == 0  # still unreachable: still queued

    stripe_unreachable()
    assert await run_jobs(paid, stripe_test_gateway) == 1
    [sent] = refund_requests(stripe_api)
    assert sent.idempotency_key == f"order:{order['id']}:refund:{pending['id']}"
    seen = await refunded_money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_refunded"]) == ("partially_refunded", 1000)
    assert await run_jobs(paid, stripe_test_gateway) == 0
    # The client's retry learns how its refund ended, and moves no money again.
    r = await refund(paid, order, 1000, key="refund-later")
    assert (r.status_code, r.json()["status"], r.json()["id"]) == (201, "succeeded", pending["id"])
    assert len(refund_requests(stripe_api)) == 1
    types = [e["type"] for e in await events(paid, order["id"])]
    assert types.count("payment.refunded") == 1


async def test_a_retry_by_the_client_sends_a_pending_refund_again(
    paid, stripe_api, stripe_test_gateway, stripe_unreachable
):
    order = await captured_order(paid, stripe_api, stripe_test_gateway)
    assert (await refund(paid, order, 500, key="k")).status_code == 202
    stripe_unreachable()
    r = await refund(paid, order, 500, key="k")
    assert (r.status_code, r.json()["status"]) == (201, "succeeded")
    assert (await refunded_money(paid, stripe_api, order))["payment"]["amount_refunded"] == 500
    assert await run_jobs(paid, stripe_test_gateway) == 0


async def test_a_crash_after_stripe_refunded_is_retried_under_the_same_key_once(
    paid, stripe_api, stripe_test_gateway, stripe_unreachable, monkeypatch
):
    order = await captured_order(paid, stripe_api, stripe_test_gateway)
    pending = (await refund(paid, order, 1000)).json()
    stripe_unreachable()

    async def crash(*args, **kwargs):
        raise ConnectionError("the database went away")

    real = refunds.apply_refund
    monkeypatch.setattr(refunds, "apply_refund", crash)
    with pytest.raises(ConnectionError):
        await run_jobs(paid, stripe_test_gateway)
    monkeypatch.setattr(refunds, "apply_refund", real)
    assert stripe_api.ledger.intent(order["payment"]["external_id"])["amount_received"] == 3000
    assert len(stripe_api.ledger.refunds) == 1  # Stripe refunded; we did not record it yet

    # Two retries at once: Stripe replays the key's answer, the first to apply wins.
    runs = await asyncio.gather(*(run_jobs(paid, stripe_test_gateway) for _ in range(2)))
    assert sorted(runs) == [0, 1]
    sent = refund_requests(stripe_api)
    assert {r.idempotency_key for r in sent} == {f"order:{order['id']}:refund:{pending['id']}"}
    seen = await refunded_money(paid, stripe_api, order)
    assert (seen["payment"]["amount_refunded"], len(seen["refunds"])) == (1000, 1)
    assert [e["type"] for e in await events(paid, order["id"])].count("payment.refunded") == 1


async def test_a_refund_stripe_refuses_fails_and_moves_nothing(paid, stripe_api, stripe_test_gateway):
    order = await captured_order(paid, stripe_api, stripe_test_gateway)
    intent_id = order["payment"]["external_id"]
    stripe_api.ledger.refund({"payment_intent": intent_id})  # refunded in Stripe's dashboard meanwhile
    r = await refund(paid, order, 1000, key="refused")
    assert (r.status_code, problem_slug(r)) == (422, "refund-refused")
    assert r.json()["context"]["code"] == "charge_already_refunded"
    [op] = [op for op in await operations(paid, order["id"]) if op["kind"] == "refund"]
    assert (op["status"], op["error_code"]) == ("failed", "charge_already_refunded")
    payment = (await get_order(paid, order["id"]))["payment"]
    assert (payment["status"], payment["amount_refunded"]) == ("captured", 0)
    failed = [e["data"] for e in await events(paid, order["id"]) if e["type"] == "payment.failed"]
    assert [f["code"] for f in failed] == ["charge_already_refunded"]
    again = await refund(paid, order, 1000, key="refused")
    assert (again.status_code, again.json()) == (422, r.json())
    assert len(refund_requests(stripe_api)) == 1
    assert await run_jobs(paid, stripe_test_gateway) == 0  # refused is final, not retried


async def test_two_refunds_racing_for_the_last_money_refund_it_once(paid, stripe_api, stripe_test_gateway):
    order = await captured_order(paid, stripe_api, stripe_test_gateway)
    headers = await paid.channel()
    async with paid.db.unit_of_work() as holder:
        # Hold the order's row so both requests are inside their first transaction at once.
        await holder.session.execute(text("SELECT 1 FROM orders WHERE id = :o FOR UPDATE"), {"o": order["id"]})
        racing = [asyncio.create_task(refund(paid, order, 3000, key=f"race-{i}", headers=headers)) for i in (1, 2)]
        for _ in range(1000):  # both requests blocked on the row: a fact, polled
            # pg_stat_activity is read once per transaction unless its snapshot is dropped.
            await holder.session.execute(text("SELECT pg_stat_clear_snapshot()"))
            waiting = await holder.session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            )
            if waiting == 2:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the two refunds never both waited for the order's row")
        await holder.session.rollback()
    answers = await asyncio.gather(*racing)
    assert sorted(r.status_code for r in answers) == [201, 422]
    [lost] = [r for r in answers if r.status_code == 422]
    assert problem_slug(lost) == "refund-exceeds-captured"  # refused by us, never sent to Stripe
    assert len(refund_requests(stripe_api)) == 1
    seen = await refunded_money(paid, stripe_api, order)
    assert (seen["payment"]["status"], seen["payment"]["amount_refunded"]) == ("refunded", 3000)


# --- the rule, pure -----------------------------------------------------------------------------


def test_the_refundable_amount_counts_refunds_in_flight():
    assert Refundable("stripe", captured=3000, refunded=1000, in_flight=500).amount == 1500
    check_refund(Refundable("stripe", 3000, 1000, 500), 1500, "EUR")
    with pytest.raises(RefundExceedsRefundable) as exceeded:
        check_refund(Refundable("stripe", 3000, 1000, 500), 1501, "EUR")
    assert exceeded.value.refundable == 1500
    with pytest.raises(NothingToRefund):
        check_refund(Refundable("pos", 0, 0, 0), 1, "EUR")
    with pytest.raises(RefundedByMarketplace):
        check_refund(Refundable("marketplace", 3000, 0, 0), 1, "EUR")


def test_a_payment_still_capturing_keeps_its_status_when_refunded():
    assert status_after_refund("captured", 3000, 1000) == "partially_refunded"
    assert status_after_refund("partially_refunded", 3000, 3000) == "refunded"
    # Multicapture with goods still to hand over: later captures must still find it live.
    assert status_after_refund("partially_captured", 1500, 1500) == "partially_captured"
    assert stripe_reason("fraudulent") == "fraudulent" and stripe_reason("wrong size") is None
