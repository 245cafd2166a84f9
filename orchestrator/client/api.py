"""The client: requests with retries (429 and 503 honouring ``Retry-After``, and connection errors
for requests that are safe to repeat), typed answers, the order stream and webhook verification."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import msgspec
from standardwebhooks.webhooks import Webhook

RETRIED_STATUSES = frozenset({429, 503})


class Order(msgspec.Struct, kw_only=True):
    """An order as every channel reads it (the fields a storefront needs; ``raw`` has them all)."""

    id: str
    number: str
    version: int
    channel: str
    status: str
    currency: str
    total: int
    customer_status: dict[str, Any] | None = None
    lines: list[dict[str, Any]] = []
    fulfillment_orders: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}


class StreamEvent(msgspec.Struct, kw_only=True):
    id: str | None
    event: str
    data: dict[str, Any]


class ApiError(Exception):
    """An RFC 9457 problem answered by the service (``problem`` holds it whole)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem

    @property
    def type(self) -> str:
        return str(self.problem.get("type", "")).rsplit("/", 1)[-1]


def _order(body: dict[str, Any]) -> Order:
    order = msgspec.convert(body, Order)
    order.raw = body
    return order


def _retry_after(response: httpx.Response, attempt: int) -> float:
    """The server's ``Retry-After`` (seconds) when it gives one, else exponential with jitter."""
    given = response.headers.get("retry-after")
    if given is not None:
        try:
            return max(0.0, float(given))
        except ValueError:
            pass
    return min(8.0, 0.25 * 2**attempt) * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not secrets


class OrchestratorClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        attempts: int = 5,
        max_wait_seconds: float = 30.0,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self._attempts = attempts
        self._max_wait = max_wait_seconds

    async def __aenter__(self) -> OrchestratorClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        repeatable: bool | None = None,
    ) -> httpx.Response:
        """One call, retried on 429/503 (waiting what ``Retry-After`` says, at most
        ``max_wait_seconds``) and, when ``repeatable`` (GETs, and POSTs carrying an
        Idempotency-Key), on connection errors. Other 4xx/5xx raise ``ApiError``."""
        safe = repeatable if repeatable is not None else method == "GET" or "Idempotency-Key" in (headers or {})
        for attempt in range(self._attempts):
            last = attempt == self._attempts - 1
            try:
                response = await self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError:
                if not safe or last:
                    raise
                await asyncio.sleep(min(self._max_wait, 0.25 * 2**attempt))
                continue
            if response.status_code in RETRIED_STATUSES and not last:
                await asyncio.sleep(min(self._max_wait, _retry_after(response, attempt)))
                continue
            if response.status_code >= 400:
                try:
                    problem = response.json()
                except ValueError:
                    problem = {"detail": response.text}
                raise ApiError(response.status_code, problem)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    # --- orders -------------------------------------------------------------------------------

    async def place_order(self, order: Mapping[str, Any], *, idempotency_key: str | None = None) -> Order:
        """Place an order; every retry of this call sends the same Idempotency-Key, so a lost
        answer never makes a second order."""
        key = idempotency_key or str(uuid.uuid4())
        response = await self.request("POST", "/v1/orders", json=order, headers={"Idempotency-Key": key})
        return _order(response.json())

    async def get_order(self, order_id: str) -> Order:
        return _order((await self.request("GET", f"/v1/orders/{order_id}")).json())

    async def get_order_by_number(self, number: str) -> Order:
        return _order((await self.request("GET", f"/v1/orders/by-number/{number}")).json())

    async def list_orders(self, **filters: Any) -> list[Order]:
        """One page (``cursor=`` for the next); filters as ``GET /v1/orders`` takes them."""
        body = (await self.request("GET", "/v1/orders", params=filters)).json()
        return [_order(o) for o in body["items"]]

    async def change_order(
        self,
        order_id: str,
        version: int,
        actions: Sequence[Mapping[str, Any]],
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Apply (or with ``dry_run`` preview) a change based on ``version`` (If-Match: a 412
        ``ApiError`` when the order moved on meanwhile). Returns the change's answer."""
        headers = {"If-Match": f'"{version}"', "Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        params = {"dry_run": "true"} if dry_run else None
        body = {"actions": list(actions), **extra}
        response = await self.request(
            "POST", f"/v1/orders/{order_id}/changes", json=body, params=params, headers=headers
        )
        return response.json()

    async def cancel_order(self, order_id: str, version: int, reason: str | None = None) -> Order:
        body = {"reason": reason} if reason else {}
        headers = {"If-Match": f'"{version}"'}
        return _order((await self.request("POST", f"/v1/orders/{order_id}/cancel", json=body, headers=headers)).json())

    # --- the order stream -----------------------------------------------------------------------

    async def follow(
        self, order_id: str, *, last_event_id: str | None = None, reconnects: int = 10
    ) -> AsyncIterator[StreamEvent]:
        """The order's events as they happen (Server-Sent Events). A dropped connection is
        reopened with ``Last-Event-ID`` so nothing in between is missed (up to ``reconnects``
        times in a row); heartbeats are skipped."""
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                async with self._http.stream(
                    "GET", f"/v1/orders/{order_id}/stream", headers=headers, timeout=httpx.Timeout(10, read=None)
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise ApiError(response.status_code, response.json())
                    async for event in _events(response):
                        failures = 0
                        last_event_id = event.id or last_event_id
                        yield event
            except (httpx.TransportError, httpx.RemoteProtocolError):
                failures += 1
                if failures > reconnects:
                    raise
                await asyncio.sleep(min(self._max_wait, 0.25 * 2**failures))


async def _events(response: httpx.Response) -> AsyncIterator[StreamEvent]:
    """Server-Sent Events, as the WHATWG spec frames them: fields until a blank line."""
    event_id, name, data = None, "message", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield StreamEvent(id=event_id, event=name, data=msgspec.json.decode("\n".join(data).encode()))
            event_id, name, data = None, "message", []
            continue
        if line.startswith(":"):
            continue  # a comment: the heartbeat
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            event_id = value
        elif field == "event":
            name = value
        elif field == "data":
            data.append(value)


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """A webhook delivery's event, verified (signature and timestamp, per Standard Webhooks);
    raises ``standardwebhooks.webhooks.WebhookVerificationError`` otherwise."""
    text = body.decode() if isinstance(body, bytes) else body
    lowered = {k.lower(): v for k, v in headers.items()}
    return Webhook(secret).verify(text, lowered)
