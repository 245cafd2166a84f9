"""Square's Orders API, the one call processing needs: ``GET /v2/orders/{order_id}``
(RetrieveOrder), Bearer access token, pinned ``Square-Version``.

What Square may answer better later (a timeout, 429, a 5xx) raises ``SquareUnavailable``: the
receipt stays ``pending`` and the sweep fetches again. What it will answer again (401, 403, 404)
is ``SquareRefused``: the receipt is ``invalid`` until the credentials are fixed and it is replayed."""

from __future__ import annotations

import re
from typing import Any

import httpx

DEFAULT_API_BASE = "https://connect.squareup.com"
SQUARE_VERSION = "2025-01-23"
TIMEOUT = httpx.Timeout(5.0)  # processing runs in the webhook's request: Square waits for the answer


class SquareUnavailable(Exception):
    """Square could not answer now; worth asking again."""


class SquareRefused(Exception):
    """Square answered, and will answer the same: the detail says what."""


async def retrieve_order(api_base: str | None, access_token: str, order_id: str) -> Any:
    """The RetrieveOrder body (``{"order": {…}}``), decoded JSON."""
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,80}", order_id):
        raise SquareRefused("the order id is not one Square issues")  # never a path of our choosing
    url = f"{(api_base or DEFAULT_API_BASE).rstrip('/')}/v2/orders/{order_id}"
    headers = {
        "Authorization": f"Bearer {access_token}",
        "Square-Version": SQUARE_VERSION,
        "Accept": "application/json",
    }
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client:
            answer = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise SquareUnavailable(f"GET /v2/orders/{order_id}: {type(exc).__name__}") from None
    if answer.status_code == 429 or answer.status_code >= 500:
        raise SquareUnavailable(f"GET /v2/orders/{order_id} answered {answer.status_code}")
    if answer.status_code != 200:
        raise SquareRefused(f"GET /v2/orders/{order_id} answered {answer.status_code}")
    try:
        return answer.json()
    except ValueError:
        raise SquareUnavailable(f"GET /v2/orders/{order_id} answered a body that is not JSON") from None
