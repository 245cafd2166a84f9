"""Amazon's orders, polled: each due Amazon connector asks ``getOrders`` for what changed since its
cursor, fetches each order's items, keeps every order version as a receipt and processes it
through the receipts machinery (``amazon_receipts``), so unmapped, replay and status work as
for the webhooks.

- Order of work: the HTTP calls run outside any transaction; each fetched order is stored in a
  short transaction of its own (dedupe key ``AmazonOrderId:LastUpdateDate``, so a version seen
  again, as the cursor's own second is, is skipped and a race stores it as a ``duplicate``).
- The cursor (``LastUpdatedAfter``) moves to the latest ``LastUpdateDate`` seen only when the
  whole poll succeeded; one that gave up (throttled past the limits, 5xx, refused token) records
  ``last_poll_error`` and leaves it, and the next poll asks again (what was stored is skipped).
- Pending orders carry no prices yet (Amazon), canceled ones need none, and orders Amazon
  fulfils (``AFN``) are none of ours: their items are not fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from connectors.amazon import sp_api
from connectors.amazon.mapping import MappingError, timestamp
from orchestrator.connections import polls, receipts
from orchestrator.connections.handlers import processing
from orchestrator.connections.model import Kind
from orchestrator.connections.receipts import Processing
from orchestrator.platform.errors import NotFound

log = structlog.get_logger("orchestrator.connectors")
DEFAULT_LOOKBACK = timedelta(days=1)
TOPIC = "getOrders"
NO_ITEMS = frozenset({"Pending", "PendingAvailability", "Canceled"})
# Under the worker's job timeout (120 s): a poll that runs out ends as one that gave up, with its
# error recorded, rather than being cut off by arq before it could say so.
POLL_BUDGET_SECONDS = 90.0


@dataclass(frozen=True)
class Polled:
    connector_id: uuid.UUID
    fetched: int  # orders getOrders gave
    stored: int  # new receipts
    error: str | None
    cursor: dict[str, Any]


async def poll_due(flow: Processing, *, http: httpx.AsyncClient | None = None, **options: Any) -> list[Polled]:
    now = flow.clock.now()
    due = await polls.due_now(flow.db, Kind.AMAZON.value, now)
    done = []
    async with _client(http) as client:
        for connector_id in due:
            try:
                result = await poll(flow, connector_id, http=client, **options)
            except Exception as exc:  # noqa: BLE001 - one connector must not stop the others
                log.warning("amazon poll failed", connector_id=str(connector_id), error=type(exc).__name__)
                continue
            if result is not None:
                done.append(result)
    return done


async def poll(
    flow: Processing,
    connector_id: uuid.UUID,
    *,
    http: httpx.AsyncClient | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    limits: sp_api.Limits | None = None,
    force: bool = False,
    budget_seconds: float = POLL_BUDGET_SECONDS,
) -> Polled | None:
    """One poll of one connector; None when it was not due (or polled by another worker)."""
    now = flow.clock.now()
    target = await polls.start(flow.db, connector_id, now, force=force)
    if target is None:
        return None
    since = _since(target, now)
    stored: list[uuid.UUID] = []
    fetched, latest, error = 0, since, None
    async with _client(http) as client:
        try:
            async with asyncio.timeout(budget_seconds):
                api = _api(target, client, sleep, limits or sp_api.Limits())
                marketplaces = target.settings.get("marketplace_ids") or []
                if not marketplaces:
                    raise sp_api.SpApiError("settings.marketplace_ids is required to poll Amazon")
                async for page in api.orders(list(marketplaces), since):
                    fetched += len(page)
                    keys = {_key(o): o for o in page}
                    seen = await polls.seen(flow.db, target.id, list(keys))
                    for key, order in keys.items():
                        latest = max(latest, _updated(order) or latest)
                        if key in seen:
                            continue
                        items = None if _needs_no_items(order) else await api.order_items(str(order["AmazonOrderId"]))
                        stored.append(await _store(flow, target, key, order, items))
        except sp_api.SpApiError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"the poll ran out of its {budget_seconds:g} s (throttled or slow answers); it goes on next time"
    cursor = target.cursor if error else {**target.cursor, "last_updated_after": latest.isoformat()}
    try:
        await polls.end(flow.db, target.id, cursor, error)
    except NotFound:
        return None  # removed while it was polled
    if error:
        log.warning("amazon poll gave up; the cursor stays", connector_id=str(target.id), error=error)
    for receipt_id in stored:
        try:
            await receipts.process(flow, receipt_id)
        except Exception as exc:  # noqa: BLE001 - left pending: the sweep processes it again
            log.warning("amazon receipt left pending", receipt_id=str(receipt_id), error=type(exc).__name__)
    return Polled(target.id, fetched, len(stored), error, cursor)


async def poll_amazon_connectors(ctx: dict[str, Any]) -> int:
    """The worker's cron job: every Amazon connector that is due, polled."""
    flow = processing(ctx["db"], ctx["clock"], ctx["lifecycle"], ctx["settings"], ctx["gateway"])
    return len(await poll_due(flow))


def _since(target: polls.PollTarget, now: datetime) -> datetime:
    try:
        return timestamp(target.cursor.get("last_updated_after"))
    except MappingError:
        hours = target.settings.get("lookback_hours")
        return now - (timedelta(hours=hours) if isinstance(hours, int) else DEFAULT_LOOKBACK)


def _api(target: polls.PollTarget, client: httpx.AsyncClient, sleep: Any, limits: sp_api.Limits) -> sp_api.SpApi:
    c = target.credentials
    if not all(isinstance(c.get(k), str) for k in ("client_id", "client_secret", "refresh_token")):
        raise sp_api.SpApiError("credentials need client_id, client_secret and refresh_token")
    credentials = sp_api.Credentials(c["client_id"], c["client_secret"], c["refresh_token"])
    return sp_api.SpApi(
        api_base=target.settings.get("api_base") or sp_api.DEFAULT_API_BASE,
        token_url=target.settings.get("token_url") or sp_api.DEFAULT_TOKEN_URL,
        credentials=credentials,
        http=client,
        limits=limits,
        sleep=sleep,
    )


def _key(order: dict[str, Any]) -> str:
    return f"{order.get('AmazonOrderId')}:{order.get('LastUpdateDate')}"


def _updated(order: dict[str, Any]) -> datetime | None:
    try:
        return timestamp(order.get("LastUpdateDate"))
    except MappingError:
        return None


def _needs_no_items(order: dict[str, Any]) -> bool:
    return (
        order.get("OrderStatus") in NO_ITEMS
        or order.get("FulfillmentChannel") == "AFN"
        or not isinstance(order.get("AmazonOrderId"), str)
    )


async def _store(
    flow: Processing, target: polls.PollTarget, key: str, order: dict[str, Any], items: list | None
) -> uuid.UUID:
    body = {"Order": order} if items is None else {"Order": order, "OrderItems": items}
    delivery = receipts.Delivery(
        connector_id=target.id,
        topic=TOPIC,
        dedupe_key=key,
        headers={"operation": TOPIC, "marketplace-id": str(order.get("MarketplaceId", ""))[:40]},
        body=json.dumps(body, separators=(",", ":")).encode(),
    )
    return (await receipts.receive(flow.db, delivery, flow.clock.now())).id


@contextlib.asynccontextmanager
async def _client(http: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The caller's HTTP client, or one of this poll's own (closed after it)."""
    if http is not None:
        yield http
        return
    async with httpx.AsyncClient(follow_redirects=False) as own:
        yield own
