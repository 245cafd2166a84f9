"""The transactional outbox and its relay to Redis: written with the change, published at least
once with a stable event id, never lost to a crash between publishing and marking."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from orchestrator.config import Settings
from orchestrator.domain.errors import InsufficientStock
from orchestrator.domain.fulfillment import Action
from orchestrator.jobs.worker import drain_outbox
from orchestrator.services import fulfillment_steps as steps
from orchestrator.services.fulfillment import LifecycleSettings, transition
from orchestrator.services.outbox_relay import claim_batch, publish, relay_outbox
from tests.integration.invariants import all_violations
from tests.integration.world import ADMIN, add_location, add_product, place, set_stock

LIFECYCLE = LifecycleSettings(secret="integration-secret")


@pytest.fixture
async def stream(redis):
    name = f"test:events:{uuid.uuid4().hex}"
    yield name
    await redis.delete(name)


@pytest.fixture
async def arq_pool(redis_url):
    queue = f"test:jobs:{uuid.uuid4().hex}"
    pool: ArqRedis = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue)
    yield pool
    job_ids = [j.decode() for j in await pool.zrange(queue, 0, -1)]
    await pool.delete(queue, *[f"arq:job:{j}" for j in job_ids])
    await pool.aclose()


@pytest.fixture
async def store(db):
    await add_location(db, "S1")
    await add_product(db, "A")
    await set_stock(db, "S1", "A", 10)


async def _outbox(db) -> list[dict]:
    async with db.unit_of_work() as uow:
        rows = await uow.session.execute(
            text("SELECT id, event_id, type, order_id, published_at, attempts, claimed_until FROM outbox ORDER BY id")
        )
        return [dict(r._mapping) for r in rows]


async def _stream_ids(redis, stream: str) -> list[str]:
    return [fields[b"id"].decode() for _, fields in await redis.xrange(stream)]


async def test_placing_an_order_writes_its_events_to_the_outbox_in_the_same_transaction(db, clock, store):
    order = await place(db, clock, [("A", 2)])
    rows = await _outbox(db)
    assert [r["type"] for r in rows] == ["order.placed", "order.sourced"]
    assert {str(r["order_id"]) for r in rows} == {order["id"]}
    async with db.unit_of_work() as uow:
        events = (await uow.session.execute(text("SELECT id, type FROM order_events ORDER BY seq"))).all()
    assert [(r["event_id"], r["type"]) for r in rows] == [tuple(e) for e in events]


async def test_a_refused_placement_writes_no_outbox_row(db, clock, store):
    with pytest.raises(InsufficientStock):
        await place(db, clock, [("A", 11)])
    assert await _outbox(db) == []


async def test_a_placement_failing_at_commit_leaves_neither_outbox_rows_nor_events_nor_stock_behind(db, clock, store):
    # A deferred trigger fails the transaction at COMMIT, after every row of the order was written.
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            text(
                "CREATE FUNCTION it_doom() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'doomed order'; END $$"
            )
        )
        await uow.session.execute(
            text(
                "CREATE CONSTRAINT TRIGGER it_doom AFTER INSERT ON orders DEFERRABLE INITIALLY DEFERRED "
                "FOR EACH ROW WHEN (NEW.channel_order_ref = 'doomed') EXECUTE FUNCTION it_doom()"
            )
        )
        await uow.commit()
    try:
        with pytest.raises(DBAPIError, match="doomed order"):
            await place(db, clock, [("A", 2)], ref="doomed")
    finally:
        async with db.unit_of_work() as uow:
            await uow.session.execute(text("DROP TRIGGER it_doom ON orders"))
            await uow.session.execute(text("DROP FUNCTION it_doom()"))
            await uow.commit()
    assert await _outbox(db) == []
    async with db.unit_of_work() as uow:
        counts = (
            await uow.session.execute(
                text(
                    "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_events), "
                    "(SELECT count(*) FROM reservations), (SELECT reserved FROM stock_levels)"
                )
            )
        ).one()
    assert tuple(counts) == (0, 0, 0, 0)
    assert await all_violations(db) == []
    await place(db, clock, [("A", 2)], ref="fine")  # the same order without the trap goes through
    assert [r["type"] for r in await _outbox(db)] == ["order.placed", "order.sourced"]


async def test_relay_publishes_every_row_once_with_its_event_id_and_marks_it(db, redis, clock, store, stream):
    for _ in range(3):
        await place(db, clock, [("A", 1)])
    rows = await _outbox(db)
    assert len(rows) == 6
    published = await relay_outbox(db, redis, stream=stream, batch=4)  # two batches
    assert published == 6
    assert await _stream_ids(redis, stream) == [str(r["event_id"]) for r in rows]
    entries = await redis.xrange(stream)
    first = entries[0][1]
    payload = json.loads(first[b"payload"])
    assert first[b"type"].decode() == "order.placed" and payload["id"] == first[b"id"].decode()
    assert all(r["published_at"] is not None for r in await _outbox(db))

    assert await relay_outbox(db, redis, stream=stream) == 0
    assert await redis.xlen(stream) == 6


async def test_a_claim_that_is_never_marked_is_published_again_after_it_expires(db, redis, clock, store, stream):
    await place(db, clock, [("A", 1)])
    # A relay claims and publishes, then dies before marking.
    claimed = await claim_batch(db, 100, 30)
    assert len(claimed) == 2
    await publish(redis, stream, 1000, claimed)
    # While the claim holds, nobody else takes the rows.
    assert await relay_outbox(db, redis, stream=stream) == 0
    async with db.unit_of_work() as uow:
        await uow.session.execute(text("UPDATE outbox SET claimed_until = now() - interval '1 second'"))
        await uow.commit()
    assert await relay_outbox(db, redis, stream=stream) == 2
    ids = await _stream_ids(redis, stream)
    assert Counter(ids) == {m.event_id: 2 for m in claimed}, "at least once, with the same event id"
    rows = await _outbox(db)
    assert all(r["published_at"] is not None and r["attempts"] == 2 for r in rows)
    assert await relay_outbox(db, redis, stream=stream) == 0


async def test_two_relays_draining_at_once_publish_each_row_exactly_once(db, redis, clock, store, stream):
    for _ in range(10):
        await place(db, clock, [("A", 1)])
    counts = await asyncio.gather(*[relay_outbox(db, redis, stream=stream, batch=3) for _ in range(4)])
    assert sum(counts) == 20
    ids = await _stream_ids(redis, stream)
    assert sorted(ids) == sorted(str(r["event_id"]) for r in await _outbox(db))


async def _ready_for_pickup(db, clock) -> tuple[dict, dict]:
    order = await place(db, clock, [("A", 2)])
    fo = order["fulfillment_orders"][0]
    fo_id = uuid.UUID(fo["id"])
    line_id = uuid.UUID(fo["lines"][0]["id"])
    await transition(db, fo_id, Action.ACCEPT, ADMIN, clock, LIFECYCLE, steps.accept)
    await transition(db, fo_id, Action.START_PICKING, ADMIN, clock, LIFECYCLE, steps.start_picking)
    await transition(db, fo_id, Action.PICK, ADMIN, clock, LIFECYCLE, steps.pick_lines({line_id: 2}))
    ready = await transition(db, fo_id, Action.READY, ADMIN, clock, LIFECYCLE, steps.mark_ready)
    return order, {"id": str(fo_id), "pickup_deadline": ready.pickup_deadline}


def _worker_ctx(db, pool: ArqRedis, database_url: str, redis_url: str, stream: str) -> dict:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        events_stream=stream,
        outbox_batch_size=5,
        pickup_reminder_hours=24.0,
    )
    return {"settings": settings, "db": db, "redis": pool, "relay_lock": asyncio.Lock()}


async def test_worker_drain_publishes_the_outbox_to_the_configured_stream(
    db, clock, store, stream, arq_pool, database_url, redis_url
):
    for _ in range(3):
        await place(db, clock, [("A", 1)])
    ctx = _worker_ctx(db, arq_pool, database_url, redis_url, stream)
    assert await drain_outbox(ctx) == 6
    assert await _stream_ids(arq_pool, stream) == [str(r["event_id"]) for r in await _outbox(db)]
    assert await drain_outbox(ctx) == 0
    assert await arq_pool.queued_jobs() == []  # no pickup became ready: no timers


async def test_worker_drain_schedules_reminder_and_expiry_for_a_ready_pickup_once(
    db, clock, store, stream, arq_pool, database_url, redis_url
):
    _, fo = await _ready_for_pickup(db, clock)
    deadline: datetime = fo["pickup_deadline"]
    ctx = _worker_ctx(db, arq_pool, database_url, redis_url, stream)
    assert await drain_outbox(ctx) > 0
    jobs = {j.function: j for j in await arq_pool.queued_jobs()}
    assert set(jobs) == {"remind_pickup", "expire_pickup"}
    assert jobs["expire_pickup"].args == (fo["id"],) and jobs["remind_pickup"].args == (fo["id"],)
    assert jobs["expire_pickup"].score == int(deadline.timestamp() * 1000)
    assert jobs["remind_pickup"].score == int((deadline - timedelta(hours=24)).timestamp() * 1000)
    assert jobs["expire_pickup"].job_id == f"expire:{fo['id']}:{deadline.isoformat()}"

    # The ready event delivered again (at-least-once) does not schedule the timers twice.
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            text(
                "UPDATE outbox SET published_at = NULL, claimed_until = NULL"
                " WHERE type = 'fulfillment.ready_for_pickup'"
            )
        )
        await uow.commit()
    assert await drain_outbox(ctx) == 1
    assert len(await arq_pool.queued_jobs()) == 2


async def test_the_running_worker_is_woken_by_a_commit_and_publishes_without_waiting_for_a_poll(
    db, redis, redis_url, database_url, stream, store, clock
):
    """`orchestrator worker` end to end: the outbox trigger NOTIFYs at commit, the worker's
    listener drains at once — well before its 10-second fallback poll."""
    from arq import Worker

    from orchestrator.jobs.worker import worker_settings

    settings = Settings(database_url=database_url, redis_url=redis_url, events_stream=stream)
    options = worker_settings(settings)
    options["queue_name"] = f"test:jobs:{uuid.uuid4().hex}"
    options["cron_jobs"] = []  # only the LISTEN/NOTIFY path may deliver in this test
    worker = Worker(**options)
    running = asyncio.create_task(worker.main())
    try:
        await asyncio.sleep(0.5)  # the listener connects
        placed = await place(db, clock, [("A", 2)])
        deadline = asyncio.get_running_loop().time() + 5
        entries = []
        while asyncio.get_running_loop().time() < deadline and len(entries) < 2:
            entries = await redis.xrange(stream)
            await asyncio.sleep(0.05)
        assert [e[1][b"type"] for e in entries] == [b"order.placed", b"order.sourced"]
        assert json.loads(entries[0][1][b"payload"])["order_id"] == placed["id"]
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()
