"""Request bodies of the stock endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from orchestrator.platform.schemas import Reason, RequestBody


class StockSet(RequestBody, kw_only=True):
    on_hand: Annotated[int, Meta(ge=0, le=10**9)]
    reason: Reason = "count"
    safety_stock: Annotated[int, Meta(ge=0, le=10**9)] | None = None


class StockAdjust(RequestBody, kw_only=True):
    delta: Annotated[int, Meta(ge=-(10**9), le=10**9)]
    reason: Reason
    kind: Literal["adjustment", "receipt"] = "adjustment"
    reference: Annotated[str, Meta(max_length=120)] | None = None
