"""Availability across locations for a basket."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from orchestrator.inventory.availability import AvailabilityQuery, LocationAvailability, availability
from orchestrator.platform.auth import ANY_KEY
from orchestrator.platform.errors import InvalidRequest
from orchestrator.platform.geo import Coordinates
from orchestrator.platform.http.dependencies import DB
from orchestrator.platform.problems import problems


def parse_skus(skus: str) -> list[str]:
    parsed = list(dict.fromkeys(s.strip() for s in skus.split(",") if s.strip()))
    if not parsed:
        raise InvalidRequest("name at least one sku", field="skus")
    if len(parsed) > 100:
        raise InvalidRequest("at most 100 skus per query", field="skus")
    return parsed


class AvailabilityController(Controller):
    path = "/v1/availability"
    tags = ["inventory"]

    @get(
        "/",
        operation_id="getAvailability",
        summary="Available units per location for a basket (on_hand − reserved − safety stock)",
        description="Only active locations with the method's capability and some stock are listed; "
        "nearest first when `near` is given.",
        guards=[ANY_KEY],
        responses=problems(400, 401, 403, 422),
    )
    async def get_availability(
        self,
        db: DB,
        skus: Annotated[str, QueryParameter(description="comma-separated skus", min_length=1, max_length=6500)],
        method: FromQuery[Literal["pickup", "curbside", "ship"]] = "pickup",
        near: Annotated[str | None, QueryParameter(description="lat,lon", max_length=60)] = None,
        radius_km: Annotated[float | None, QueryParameter(gt=0, le=20_000)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[LocationAvailability]:
        center = None
        if near is not None:
            try:
                center = Coordinates.parse(near)
            except ValueError as exc:
                raise InvalidRequest(f"near: {exc}", field="near") from None
        if radius_km is not None and center is None:
            raise InvalidRequest("radius_km needs near", field="radius_km")
        query = AvailabilityQuery(parse_skus(skus), method, center, radius_km, limit)
        return await db.run(lambda uow: availability(uow, query))
