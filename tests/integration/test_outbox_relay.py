"""The transactional outbox and its relay to Redis: written with the change, published at least
once with a stable event id, never lost to a crash between publishing and marking."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from arq import Worker
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import JobDef
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from orchestrator.fulfillment.requests import Accept, MarkReady, Pick, StartPicking
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.payments.gateway import UnconfiguredGateway
from orchestrator.platform.clock import ManualClock
from orchestrator.platform.errors import InsufficientStock
from orchestrator.platform.outbox_relay import claim_batch, publish, relay_outbox
from orchestrator.settings import Settings
from orchestrator.worker import drain_outbox, expire_pickup, remind_pickup
from tests.integration.invariants import all_violations
from tests.integration.world import act, add_location, add_product, place, set_stock

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
    await act(db, clock, fo_id, Accept(), LIFECYCLE)
    await act(db, clock, fo_id, StartPicking(), LIFECYCLE)
    await act(db, clock, fo_id, Pick({line_id: 2}), LIFECYCLE)
    ready = await act(db, clock, fo_id, MarkReady(), LIFECYCLE)
    return order, {"id": str(fo_id), "pickup_deadline": ready.pickup_deadline}


def _worker_ctx(db, pool: ArqRedis, database_url: str, redis_url: str, stream: str, clock, batch: int = 5) -> dict:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        events_stream=stream,
        outbox_batch_size=batch,
        pickup_reminder_hours=24.0,
    )
    return {
        "settings": settings,
        "db": db,
        "redis": pool,
        "clock": clock,
        "lifecycle": LIFECYCLE,
        "relay_lock": asyncio.Lock(),
        "gateway": UnconfiguredGateway(),  # the payment jobs' processor: none configured here
    }


def _ms(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)


async def _jobs_by_id(pool: ArqRedis) -> dict[str, JobDef]:
    return {j.job_id: j for j in await pool.queued_jobs()}


async def test_worker_drain_publishes_the_outbox_to_the_configured_stream(
    db, clock, store, stream, arq_pool, database_url, redis_url
):
    for _ in range(3):
        await place(db, clock, [("A", 1)])
    ctx = _worker_ctx(db, arq_pool, database_url, redis_url, stream, clock)
    assert await drain_outbox(ctx) == 6
    assert await _stream_ids(arq_pool, stream) == [str(r["event_id"]) for r in await _outbox(db)]
    assert await drain_outbox(ctx) == 0
    assert await arq_pool.queued_jobs() == []  # no pickup became ready: no timers


async def test_worker_drain_schedules_reminder_and_expiry_for_a_ready_pickup_once(
    db, clock, store, stream, arq_pool, database_url, redis_url
):
    _, fo = await _ready_for_pickup(db, clock)
    deadline: datetime = fo["pickup_deadline"]
    ctx = _worker_ctx(db, arq_pool, database_url, redis_url, stream, clock)
    assert await drain_outbox(ctx) > 0
    jobs = {j.function: j for j in await arq_pool.queued_jobs()}
    assert set(jobs) == {"remind_pickup", "expire_pickup"}
    assert jobs["expire_pickup"].args == (fo["id"],) and jobs["remind_pickup"].args == (fo["id"],)
    # Deferred by the injected clock: due that long after arq enqueued them.
    expire, remind = jobs["expire_pickup"], jobs["remind_pickup"]
    enqueued_ms = int(expire.enqueue_time.timestamp() * 1000)
    assert abs(expire.score - enqueued_ms - _ms(deadline - clock.now())) <= 1
    enqueued_ms = int(remind.enqueue_time.timestamp() * 1000)
    assert abs(remind.score - enqueued_ms - _ms(deadline - timedelta(hours=24) - clock.now())) <= 1
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


async def test_a_ready_event_relayed_after_its_timers_fell_due_schedules_them_to_run_now(
    db, store, stream, arq_pool, database_url, redis_url
):
    """The worker was down for ten days: the pickup's reminder and deadline have passed. Its
    timers run at once, and the fresh pickup relayed in the same batch still gets its own."""
    clock = ManualClock(datetime.now(UTC) - timedelta(days=10))
    _, late = await _ready_for_pickup(db, clock)
    clock.advance(datetime.now(UTC) - clock.now())  # back to the real time, which arq uses too
    _, fresh = await _ready_for_pickup(db, clock)
    ctx = _worker_ctx(db, arq_pool, database_url, redis_url, stream, clock, batch=200)
    assert await drain_outbox(ctx) == len(await _outbox(db))  # both ready events in one batch

    jobs = await _jobs_by_id(arq_pool)
    late_jobs = [jobs[f"{kind}:{late['id']}:{late['pickup_deadline'].isoformat()}"] for kind in ("remind", "expire")]
    for job in late_jobs:
        assert job.score <= int(job.enqueue_time.timestamp() * 1000) + 1, "due already: runs now"
    fresh_expiry = jobs[f"expire:{fresh['id']}:{fresh['pickup_deadline'].isoformat()}"]
    assert fresh_expiry.score > int(fresh_expiry.enqueue_time.timestamp() * 1000) + _ms(timedelta(days=6))
    assert f"remind:{fresh['id']}:{fresh['pickup_deadline'].isoformat()}" in jobs

    # The late pickup's timers run now and expire it; the fresh pickup's stay deferred.
    worker = Worker(
        functions=[expire_pickup, remind_pickup],
        redis_pool=arq_pool,
        queue_name=arq_pool.default_queue_name,
        ctx=ctx,
        burst=True,
        max_burst_jobs=2,
        poll_delay=0.01,
        handle_signals=False,
    )
    await asyncio.wait_for(worker.main(), timeout=30)
    assert worker.jobs_complete == 2 and worker.jobs_failed == 0
    async with db.unit_of_work() as uow:
        statuses = dict(
            (await uow.session.execute(text("SELECT CAST(id AS text), status FROM fulfillment_orders"))).all()
        )
    assert statuses == {late["id"]: "expired", fresh["id"]: "ready_for_pickup"}


async def test_a_ready_event_that_cannot_be_scheduled_leaves_the_rest_of_the_batch_its_timers(
    db, clock, store, stream, arq_pool, database_url, redis_url
):
    async with db.unit_of_work() as uow:  # first in the batch, and unreadable
        await uow.session.execute(
            text(
                "INSERT INTO outbox (event_id, type, payload, created_at, attempts)"
                " VALUES (:id, 'fulfillment.ready_for_pickup', CAST(:payload AS jsonb), now(), 0)"
            ),
            {"id": uuid.uuid4(), "payload": json.dumps({"data": {"fulfillment_id": str(uuid.uuid4())}})},
        )
        await uow.commit()
    _, fo = await _ready_for_pickup(db, clock)
    ctx = _worker_ctx(db, arq_pool, database_url, redis_url, stream, clock, batch=200)
    assert await drain_outbox(ctx) == len(await _outbox(db))
    assert {j.function: j.args for j in await arq_pool.queued_jobs()} == {
        "remind_pickup": (fo["id"],),
        "expire_pickup": (fo["id"],),
    }


async def _rows_holding(db, needle: str) -> dict[str, int]:
    """Rows of every table whose text holds ``needle`` as a whole number (bytea as hex, too)."""
    pattern = f"(^|[^0-9]){needle}([^0-9]|$)"
    hex_needle = needle.encode().hex()
    found = {}
    async with db.unit_of_work() as uow:
        tables = (
            await uow.session.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        ).scalars()
        for table in list(tables):
            n = (
                await uow.session.execute(
                    text(f'SELECT count(*) FROM "{table}" t WHERE t::text ~ :pattern OR strpos(t::text, :hex) > 0'),
                    {"pattern": pattern, "hex": hex_needle},
                )
            ).scalar_one()
            if n:
                found[table] = n
    return found


async def test_once_relayed_the_pickup_code_rests_in_no_table(
    db, clock, store, stream, arq_pool, database_url, redis_url
):
    _, fo = await _ready_for_pickup(db, clock)
    ctx = _worker_ctx(db, arq_pool, database_url, redis_url, stream, clock)
    await drain_outbox(ctx)
    ready = [
        json.loads(fields[b"payload"])
        for _, fields in await arq_pool.xrange(stream)
        if fields[b"type"] == b"fulfillment.ready_for_pickup"
    ]
    code = ready[0]["data"]["pickup_code"]  # the customer's notification still gets it
    assert len(code) == 6 and code.isdigit()
    assert await _rows_holding(db, code) == {}
    async with db.unit_of_work() as uow:
        payload = (
            await uow.session.execute(text("SELECT payload FROM outbox WHERE type = 'fulfillment.ready_for_pickup'"))
        ).scalar_one()
    assert payload["data"] == {k: v for k, v in ready[0]["data"].items() if k != "pickup_code"}


async def test_the_stream_keeps_events_only_for_its_retention(db, redis, clock, store, stream):
    seconds, micros = await redis.time()
    redis_now_ms = seconds * 1000 + micros // 1000
    too_old = f"{redis_now_ms - _ms(timedelta(hours=73))}-0"
    recent = f"{redis_now_ms - _ms(timedelta(hours=71))}-0"
    await redis.xadd(stream, {"id": "too-old"}, id=too_old)
    await redis.xadd(stream, {"id": "recent"}, id=recent)
    await place(db, clock, [("A", 1)])
    assert await relay_outbox(db, redis, stream=stream, retention=timedelta(hours=72)) == 2
    ids = await _stream_ids(redis, stream)
    assert ids[0] == "recent" and len(ids) == 3


async def test_on_a_quiet_system_the_worker_schedule_still_trims_the_stream_to_its_retention(
    db, clock, store, stream, arq_pool, database_url, redis_url
):
    """Nothing to publish, so no publish trims: the worker's every-minute jobs, each run once as
    its schedule would, drop the entry (it may carry a pickup code) that outlived the retention."""
    from orchestrator.worker import worker_settings

    ctx = _worker_ctx(db, arq_pool, database_url, redis_url, stream, clock)
    retention = timedelta(hours=ctx["settings"].events_stream_retention_hours)
    seconds, micros = await arq_pool.time()
    redis_now_ms = seconds * 1000 + micros // 1000
    await arq_pool.xadd(stream, {"id": "too-old"}, id=f"{redis_now_ms - _ms(retention + timedelta(hours=1))}-0")
    await arq_pool.xadd(stream, {"id": "recent"}, id=f"{redis_now_ms - _ms(retention - timedelta(hours=1))}-0")
    every_minute = [job for job in worker_settings(ctx["settings"])["cron_jobs"] if job.minute is None]
    assert every_minute, "the worker has jobs that run every minute"
    for job in every_minute:
        await job.coroutine(ctx)
    assert await _outbox(db) == [], "no new events"
    assert await _stream_ids(arq_pool, stream) == ["recent"]


async def test_the_running_worker_is_woken_by_a_commit_and_publishes_without_waiting_for_a_poll(
    db, redis, redis_url, database_url, stream, store, clock
):
    """`orchestrator worker` end to end: the outbox trigger NOTIFYs at commit and the worker's
    listener drains at once. Its fallback poll is an hour and no cron job runs here, and the
    order is placed only once the listener's first drain is over: only the notification can
    deliver its events."""
    from orchestrator.worker import worker_settings

    settings = Settings(database_url=database_url, redis_url=redis_url, events_stream=stream, outbox_poll_seconds=3600)
    options = worker_settings(settings)
    options["queue_name"] = f"test:jobs:{uuid.uuid4().hex}"
    options["cron_jobs"] = []  # only the listener may deliver in this test
    watcher = await asyncpg.connect(database_url)  # opened before the worker's connections
    worker = Worker(**options)
    running = asyncio.create_task(worker.main())
    try:
        await _until_listening_and_idle(watcher)
        placed = await place(db, clock, [("A", 2)])
        entries = await _wait_for_stream(redis, stream, 2, within=5)
        assert [e[1][b"type"] for e in entries] == [b"order.placed", b"order.sourced"]
        assert json.loads(entries[0][1][b"payload"])["order_id"] == placed["id"]
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()
        await watcher.close()


async def _wait_for_stream(redis, stream: str, count: int, within: float) -> list:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    entries = await redis.xrange(stream)
    while len(entries) < count and loop.time() < deadline:
        await asyncio.sleep(0.02)
        entries = await redis.xrange(stream)
    return entries


async def _until_listening_and_idle(watcher: asyncpg.Connection) -> None:
    """The worker's listener ran LISTEN and then its first drain (an empty claim) to its COMMIT,
    on a connection opened after the listening one (the drain's, not one of the test's)."""
    facts = """
        SELECT EXISTS (
            SELECT FROM pg_stat_activity l JOIN pg_stat_activity d USING (datname)
            WHERE l.datname = current_database() AND l.query LIKE 'LISTEN %'
              AND d.pid NOT IN (l.pid, pg_backend_pid()) AND d.backend_start > l.backend_start
              AND d.state = 'idle' AND d.query = 'COMMIT;'
        )
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not await watcher.fetchval(facts):
        assert loop.time() < deadline, "the worker's listener never started"
        await asyncio.sleep(0.02)
