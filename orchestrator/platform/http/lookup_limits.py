"""Counting a lookup against its rate limits in Redis, for the endpoints that find an order by
what a person knows (a counter lookup, a guest's tracking lookup): when Redis cannot count, the
lookup is refused with 503 rather than let through, since without the counters guessing would
be unbounded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.exceptions import HTTPException
from redis.exceptions import RedisError

from orchestrator.platform.problems import RETRY_AFTER_SECONDS


async def counted(*counts: Callable[[], Awaitable[None]]) -> None:
    """Run each count in turn (each raises ``RateLimited`` when its limit is used up)."""
    try:
        for count in counts:
            await count()
    except RedisError:
        raise HTTPException(
            status_code=503,
            detail="lookups are unavailable for a moment; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
