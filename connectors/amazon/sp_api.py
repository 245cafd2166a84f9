"""The SP-API calls the poller makes (Orders API v0 ``getOrders`` and ``getOrderItems``) and the
Login with Amazon access token they carry. HTTP only: no database.

- Token: ``POST token_url`` with ``grant_type=refresh_token`` and the app's client id and secret
  gives an ``access_token`` good for ``expires_in`` seconds (an hour); it is kept until a minute
  before that and sent as ``x-amz-access-token``. A 401 or 403 answer (Amazon: "expired token")
  refreshes it once and retries the call.
- Rate limits: a 429 is retried after ``Retry-After`` when Amazon sends it, else after the time
  one request's token takes to come back at the operation's rate (``x-amzn-RateLimit-Limit`` of
  the last answer, else the documented default: getOrders 0.0167/s, getOrderItems 0.5/s),
  doubling; a 5xx after a short doubling backoff. Bounded (``Limits``): past them ``SpApiError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

DEFAULT_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
DEFAULT_API_BASE = "https://sellingpartnerapi-na.amazon.com"
# Orders API v0 usage plans (requests per second), ordersV0.json.
GET_ORDERS_RATE = 0.0167
GET_ORDER_ITEMS_RATE = 0.5
TOKEN_MARGIN_SECONDS = 60


class SpApiError(Exception):
    """A call that did not succeed within the limits (what the connector's status shows)."""


class _Retryable(Exception):
    """``wait``: as asked (``fixed``: Retry-After, a refreshed token) or a base doubled per attempt."""

    def __init__(self, wait: float, detail: str, *, fixed: bool = False) -> None:
        super().__init__(detail)
        self.wait = wait
        self.fixed = fixed


@dataclass(frozen=True)
class Limits:
    attempts: int = 5
    max_wait_seconds: float = 60.0  # one wait, whatever Retry-After asks (the job has a timeout)
    server_error_base_seconds: float = 1.0
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    refresh_token: str

    def key(self, token_url: str) -> str:
        raw = "\x00".join((token_url, self.client_id, self.refresh_token)).encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass
class _Token:
    value: str
    expires_at: float


# Process-wide: a token serves every poll of the connector for its hour (Amazon asks apps not to
# refresh per call). Keyed by a digest, so no secret is a dictionary key.
_TOKENS: dict[str, _Token] = {}


@dataclass
class SpApi:
    api_base: str
    token_url: str
    credentials: Credentials
    http: httpx.AsyncClient
    limits: Limits = field(default_factory=Limits)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    waits: list[float] = field(default_factory=list)  # what was waited, for the status and tests

    async def orders(
        self, marketplace_ids: list[str], last_updated_after: datetime
    ) -> AsyncIterator[tuple[dict[str, Any], ...]]:
        """``getOrders`` pages: the first by ``LastUpdatedAfter``, the next by ``NextToken`` (which
        Amazon uses instead of the other criteria). A page may be empty and still have a next."""
        params: dict[str, str] = {
            "MarketplaceIds": ",".join(marketplace_ids),
            "LastUpdatedAfter": last_updated_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        while True:
            payload = await self._get("/orders/v0/orders", params, GET_ORDERS_RATE)
            orders = payload.get("Orders") or []
            if not isinstance(orders, list):
                raise SpApiError("getOrders: payload.Orders is not a list")
            yield tuple(o for o in orders if isinstance(o, dict))
            token = payload.get("NextToken")
            if not isinstance(token, str) or not token:
                return
            params = {"MarketplaceIds": ",".join(marketplace_ids), "NextToken": token}

    async def order_items(self, order_id: str) -> list[dict[str, Any]]:
        path = f"/orders/v0/orders/{quote(order_id, safe='')}/orderItems"
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        while True:
            payload = await self._get(path, params, GET_ORDER_ITEMS_RATE)
            page = payload.get("OrderItems") or []
            if not isinstance(page, list):
                raise SpApiError("getOrderItems: payload.OrderItems is not a list")
            items.extend(i for i in page if isinstance(i, dict))
            token = payload.get("NextToken")
            if not isinstance(token, str) or not token:
                return items
            params = {"NextToken": token}

    async def _get(self, path: str, params: dict[str, str], rate: float) -> dict[str, Any]:
        state = {"rate": rate, "refreshed": False}
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self.limits.attempts),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(path, params, state)
        except _Retryable as exc:
            raise SpApiError(f"{path}: {exc} ({self.limits.attempts} attempts)") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, path: str, params: dict[str, str], state: dict[str, Any]) -> dict[str, Any]:
        token = await self._token(force=False)
        try:
            r = await self.http.get(
                self.api_base.rstrip("/") + path,
                params=params,
                headers={"x-amz-access-token": token, "accept": "application/json"},
                timeout=self.limits.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise _Retryable(self.limits.server_error_base_seconds, f"unreachable ({type(exc).__name__})") from None
        state["rate"] = _rate(r.headers.get("x-amzn-RateLimit-Limit"), state["rate"])
        if r.status_code in (401, 403) and not state["refreshed"]:
            state["refreshed"] = True
            await self._token(force=True)
            raise _Retryable(0.0, f"{r.status_code}: access token refused; refreshed", fixed=True)
        if r.status_code == 429:
            after = _retry_after(r.headers.get("retry-after"))
            if after is not None:
                raise _Retryable(after, "429 throttled", fixed=True)
            raise _Retryable(1.0 / state["rate"], "429 throttled")
        if r.status_code >= 500:
            raise _Retryable(self.limits.server_error_base_seconds, f"{r.status_code} from Amazon")
        if r.status_code >= 400:
            raise SpApiError(f"{path}: {r.status_code} {_errors(r)}")
        try:
            body = r.json()
        except ValueError:
            raise SpApiError(f"{path}: the answer is not JSON") from None
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            raise SpApiError(f"{path}: the answer has no payload object")
        return payload

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, _Retryable):
            return self.limits.server_error_base_seconds
        wait = exc.wait if exc.fixed else exc.wait * 2 ** (state.attempt_number - 1)
        return min(wait, self.limits.max_wait_seconds)

    async def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self.sleep(seconds)

    async def _token(self, *, force: bool) -> str:
        key = self.credentials.key(self.token_url)
        held = _TOKENS.get(key)
        if held is not None and not force and held.expires_at > time.monotonic():
            return held.value
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.credentials.refresh_token,
            "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret,
        }
        try:
            r = await self.http.post(self.token_url, data=form, timeout=self.limits.timeout_seconds)
        except httpx.HTTPError as exc:
            raise _Retryable(
                self.limits.server_error_base_seconds, f"token endpoint unreachable ({type(exc).__name__})"
            ) from None
        if r.status_code >= 500 or r.status_code == 429:
            raise _Retryable(self.limits.server_error_base_seconds, f"token endpoint answered {r.status_code}")
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if r.status_code != 200 or not isinstance(token, str) or not token:
            # Never the body: an error may echo what was sent.
            raise SpApiError(f"Login with Amazon refused the refresh token ({r.status_code} {body.get('error', '')})")
        lifetime = body.get("expires_in")
        lifetime = lifetime if isinstance(lifetime, int) and not isinstance(lifetime, bool) else 3600
        _TOKENS[key] = _Token(token, time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, 0))
        return token


def _rate(raw: str | None, default: float) -> float:
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


def _retry_after(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def _errors(r: httpx.Response) -> str:
    try:
        errors = r.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}"[:200] for e in errors if isinstance(e, dict))[:500]
    except (ValueError, AttributeError):
        return ""
