"""Request bodies of the sourcing endpoints: a channel's profile and a what-if order."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from orchestrator.platform.money import MAX_AMOUNT
from orchestrator.platform.schemas import Code, LineIn, RequestBody

Channel = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]


class ProfileIn(RequestBody, kw_only=True):
    on_pickup_shortfall: Literal["transfer", "move", "ask_customer"] = "ask_customer"
    ask_customer_fallback: Literal["transfer", "cancel"] = "transfer"
    ask_customer_timeout_hours: Annotated[int, msgspec.Meta(ge=1, le=720)] = 24
    min_split_line_value: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT)] = 0
    suggestion_limit: Annotated[int, msgspec.Meta(ge=0, le=50)] = 5
    transfer_hours: Annotated[int, msgspec.Meta(ge=0, le=720)] = 24


class SimulateIn(RequestBody, kw_only=True):
    channel: Channel = "simulation"
    method: Literal["pickup", "curbside", "ship"]
    location: Code | None = None
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    lines: Annotated[list[LineIn], msgspec.Meta(min_length=1, max_length=200)]
    exclude: Annotated[list[Code], msgspec.Meta(max_length=1000)] = msgspec.field(default_factory=list)
