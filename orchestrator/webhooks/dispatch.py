"""The worker's sender: claims due deliveries, sends each in its own task, records the outcome.

No lock is held across a request: a delivery is *claimed* (``claimed_until``) in a short
transaction, sent, and its outcome written in another. At most ``per_subscription`` requests are
open per subscription and ``total`` in all, so a subscriber that hangs holds its own slots only
and never another subscriber's deliveries (nor intake, which never waits on any of this).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy import text

from orchestrator.platform import metrics
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.settings import Settings
from orchestrator.webhooks import sender
from orchestrator.webhooks.model import GIVE_UP_AFTER, AttemptResult, after_attempt, failing_since, should_disable
from orchestrator.webhooks.service_events import announce_disabled

log = structlog.get_logger(__name__)
_LOG_KEPT = 20  # attempts a delivery remembers

_CLAIM = text(
    """
    UPDATE webhook_deliveries d SET claimed_until = :until
    FROM webhook_subscriptions s
    WHERE s.id = d.subscription_id AND d.id IN (
        SELECT due.id FROM webhook_subscriptions s2
        CROSS JOIN LATERAL (
            SELECT d2.id, d2.next_attempt_at FROM webhook_deliveries d2
            WHERE d2.subscription_id = s2.id AND d2.status IN ('pending', 'failed') AND d2.next_attempt_at <= :now
              AND (d2.claimed_until IS NULL OR d2.claimed_until < :now)
            ORDER BY d2.next_attempt_at
            LIMIT :per_subscription
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE s2.enabled AND NOT (s2.id = ANY(CAST(:saturated AS uuid[])))
        ORDER BY due.next_attempt_at
        LIMIT :limit
    )
    RETURNING d.id, d.subscription_id, d.event_id, d.payload, s.url, s.secret, s.previous_secret,
              s.previous_secret_expires_at
    """
)
_UNCLAIM = text("UPDATE webhook_deliveries SET claimed_until = NULL WHERE id = ANY(CAST(:ids AS uuid[]))")
_RECORD = text(
    """
    WITH d AS (
        SELECT id, subscription_id, attempts, due_since, attempt_log FROM webhook_deliveries
        WHERE id = :id FOR UPDATE
    )
    SELECT d.attempts, d.due_since, d.attempt_log, s.id, s.failing_since
    FROM d JOIN webhook_subscriptions s ON s.id = d.subscription_id
    """
)
_WRITE = text(
    """
    UPDATE webhook_deliveries SET attempts = :attempts, status = CAST(:status AS text),
        next_attempt_at = CAST(:next_at AS timestamptz),
        claimed_until = NULL, last_status_code = :code, last_error = :error, last_duration_ms = :ms,
        attempt_log = CAST(:log AS jsonb),
        delivered_at = CASE WHEN CAST(:status AS text) = 'delivered' THEN CAST(:now AS timestamptz) END,
        -- Delivered or dead, a notification is not sent again: its pickup code goes.
        payload = CASE WHEN CAST(:final AS boolean) THEN coalesce(redacted_payload, payload) ELSE payload END,
        redacted_payload = CASE WHEN CAST(:final AS boolean) THEN NULL ELSE redacted_payload END
    WHERE id = :id
    RETURNING notification_id
    """
)
_NOTIFIED = text(
    """
    UPDATE notifications SET status = CAST(:status AS text), body = coalesce(redacted, body), redacted = NULL,
        sent_at = CASE WHEN CAST(:status AS text) = 'delivered' THEN CAST(:now AS timestamptz) END
    WHERE id = :id
    """
)
_HEALTH = text(
    """
    UPDATE webhook_subscriptions SET failing_since = CAST(:since AS timestamptz),
        enabled = enabled AND NOT CAST(:disable AS boolean),
        disabled_reason = CASE WHEN CAST(:disable AS boolean) THEN CAST(:reason AS text) ELSE disabled_reason END,
        updated_at = CASE WHEN CAST(:disable AS boolean) THEN CAST(:now AS timestamptz) ELSE updated_at END
    WHERE id = :id
    """
)


@dataclass(frozen=True, slots=True)
class DeliveryLimits:
    timeout_seconds: float = 10.0
    per_subscription: int = 4
    total: int = 64
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryLimits:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            per_subscription=settings.webhook_max_in_flight_per_subscription,
            total=settings.webhook_max_in_flight,
            allow_private=settings.webhook_allow_private_urls,
        )


@dataclass(frozen=True, slots=True)
class Claimed:
    id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID
    payload: dict
    url: str
    secrets: list[str]


class Dispatcher:
    def __init__(self, db: Database, clock: Clock, limits: DeliveryLimits, client: httpx.AsyncClient) -> None:
        self._db = db
        self._clock = clock
        self._limits = limits
        self._client = client
        self._open: dict[uuid.UUID, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._running: asyncio.Task[None] | None = None
        self._owns_client = False

    @classmethod
    def started(cls, db: Database, clock: Clock, limits: DeliveryLimits) -> Dispatcher:
        """The worker's: its own HTTP client, sending until ``aclose``."""
        dispatcher = cls(db, clock, limits, httpx.AsyncClient(timeout=limits.timeout_seconds))
        dispatcher._owns_client = True
        dispatcher._running = asyncio.create_task(dispatcher.run())
        return dispatcher

    def wake(self) -> None:
        """New deliveries were written (the relay just fanned out)."""
        self._wake.set()

    @property
    def open_requests(self) -> int:
        return len(self._tasks)

    async def run(self, poll_seconds: float = 0.5) -> None:
        """For ever: send what is due, then wait for a wake-up or the next poll (retries fall due
        by the clock, not by a wake-up)."""
        while True:
            self._wake.clear()
            try:
                await self.dispatch_due()
            except Exception as exc:  # noqa: BLE001 - the database may be down: try again later
                log.warning("webhook deliveries not claimed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)

    async def dispatch_due(self) -> int:
        """Claim what is due within the free slots and start sending it; returns how many."""
        free = self._limits.total - len(self._tasks)
        if free <= 0:
            return 0
        now = self._clock.now()
        saturated = [s for s, n in self._open.items() if n >= self._limits.per_subscription]
        until = now + timedelta(seconds=self._limits.timeout_seconds + 30)
        params = {
            "now": now,
            "until": until,
            "saturated": saturated,
            "limit": free,
            "per_subscription": self._limits.per_subscription,
        }
        rows = await self._db.run(committing(lambda uow: _claim(uow, params)))
        started, surplus = [], []
        for row in rows:
            if self._open.get(row.subscription_id, 0) >= self._limits.per_subscription:
                surplus.append(row.id)
                continue
            self._open[row.subscription_id] = self._open.get(row.subscription_id, 0) + 1
            task = asyncio.create_task(self._deliver(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(row)
        if surplus:  # claimable again at once, when this subscriber has a free slot
            await self._db.run(committing(lambda uow: uow.session.execute(_UNCLAIM, {"ids": surplus})))
        return len(started)

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            body = sender.body_of(claimed.payload)
            headers = sender.signature_headers(str(claimed.event_id), body, claimed.secrets, self._clock.now())
            result = await sender.attempt(
                self._client,
                claimed.url,
                body,
                headers,
                seconds=self._limits.timeout_seconds,
                allow_private=self._limits.allow_private,
            )
            now = self._clock.now()
            await self._db.run(committing(lambda uow: record(uow, claimed.id, result, now)))
        except Exception as exc:  # noqa: BLE001 - the claim lapses and the delivery is sent again
            log.warning("webhook delivery not recorded", delivery=str(claimed.id), error=repr(exc))
        finally:
            self._open[claimed.subscription_id] -= 1
            if not self._open[claimed.subscription_id]:
                del self._open[claimed.subscription_id]
            self._wake.set()  # a slot is free

    async def wait_idle(self) -> None:
        """Until every open request has finished (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop sending; requests still open are cut short (their claims lapse: sent again later)."""
        for task in [*self._tasks, *([self._running] if self._running else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._running] if self._running else []), return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()


async def _claim(uow: UnitOfWork, params: dict) -> list[Claimed]:
    rows = (await uow.session.execute(_CLAIM, params)).all()
    now = params["now"]
    claimed = []
    for d_id, sub_id, event_id, payload, url, secret, previous, previous_until in rows:
        secrets = [secret] + ([previous] if previous and previous_until and previous_until > now else [])
        claimed.append(Claimed(d_id, sub_id, event_id, payload, url, secrets))
    return claimed


async def record(uow: UnitOfWork, delivery_id: uuid.UUID, result: AttemptResult, now: datetime) -> str:
    """The attempt's outcome on the delivery (next try, dead) and on its subscription's health
    (five days of nothing but failures switch it off). Returns the delivery's new status."""
    row = (await uow.session.execute(_RECORD, {"id": delivery_id})).one_or_none()
    if row is None:  # deleted with its subscription meanwhile
        return "gone"
    attempts, due_since, attempt_log, subscription_id, since = row
    attempt_no = attempts + 1
    after = after_attempt(result, attempt_no, delivery_id, due_since, now)
    entry = {"at": now.isoformat(), "status_code": result.status_code, "duration_ms": result.duration_ms}
    if result.error:
        entry["error"] = result.error
    params = {
        "id": delivery_id,
        "attempts": attempt_no,
        "status": after.status,
        "next_at": after.next_attempt_at,
        "code": result.status_code,
        "error": result.error,
        "ms": result.duration_ms,
        "log": json.dumps([*attempt_log, entry][-_LOG_KEPT:]),
        "now": now,
        "final": after.status in ("delivered", "dead"),
    }
    notification_id = (await uow.session.execute(_WRITE, params)).scalar()
    if notification_id is not None and params["final"]:
        await uow.session.execute(_NOTIFIED, {"id": notification_id, "status": after.status, "now": now})
    metrics.WEBHOOK_ATTEMPTS.labels(outcome=after.status).inc()
    streak = failing_since(since, result, now)
    disable = should_disable(streak, now)
    reason = f"every delivery failed since {streak.isoformat()}" if disable and streak else None
    if streak != since or disable:  # the subscription's row is written only when its health changes
        health = {"id": subscription_id, "since": streak, "disable": disable, "reason": reason, "now": now}
        await uow.session.execute(_HEALTH, health)
    if disable and reason:
        metrics.WEBHOOK_SUBSCRIPTIONS_DISABLED.inc()
        log.warning("webhook.subscription_disabled", subscription=str(subscription_id), reason=reason)
        await announce_disabled(uow.session, subscription_id, reason, now)
    return after.status


_STALE = text(
    """
    WITH dead AS (
        UPDATE webhook_deliveries SET status = 'dead', next_attempt_at = NULL,
            payload = coalesce(redacted_payload, payload), redacted_payload = NULL
        WHERE status IN ('pending', 'failed') AND due_since < CAST(:cutoff AS timestamptz)
          AND (claimed_until IS NULL OR claimed_until < CAST(:now AS timestamptz))
        RETURNING notification_id
    ), scrubbed AS (
        UPDATE notifications SET status = 'dead', body = coalesce(redacted, body), redacted = NULL
        WHERE id IN (SELECT notification_id FROM dead)
        RETURNING 1
    )
    SELECT count(*) FROM dead
    """
)


_FORGET = text(
    """
    DELETE FROM webhook_deliveries
    WHERE status IN ('delivered', 'dead') AND created_at < CAST(:before AS timestamptz)
    """
)


async def expire_stale(uow: UnitOfWork, now: datetime, keep: timedelta) -> int:
    """Deliveries nobody attempted for 72 h (their subscription was switched off) are dead, and a
    notification among them loses its code, as if it had been tried and failed. Delivered and
    dead ones older than ``keep`` are forgotten (until then they can be listed and replayed)."""
    cutoff = now - GIVE_UP_AFTER
    dead = int((await uow.session.execute(_STALE, {"cutoff": cutoff, "now": now})).scalar() or 0)
    await uow.session.execute(_FORGET, {"before": now - keep})
    return dead
