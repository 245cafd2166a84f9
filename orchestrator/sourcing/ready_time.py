"""When a fulfillment is expected to be ready: now plus the fulfilling location's preparation time,
plus the profile's transfer time when the units must travel to the pickup store first. Pure: the
caller brings the clock's ``now``; persistence only stores the answer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from orchestrator.order_record.states import Method
from orchestrator.sourcing.model import SourcingPlan

# A fulfillment of a plan: where the units leave from and, for a transfer, the store they go to.
Site = tuple[str, str | None]


def expected_ready_at(
    method: Method, now: datetime, *, prep_minutes: int, transfer_hours: int, awaits_transfer: bool = False
) -> datetime:
    """A pickup waiting for a transfer is ready once the units travelled (``transfer_hours``) and
    the store prepared them; anything else (a pickup from the store's own shelf, a shipment, the
    transfer itself leaving its source) once its location prepared it."""
    wait = timedelta(minutes=prep_minutes)
    if method.is_pickup and awaits_transfer:
        wait += timedelta(hours=transfer_hours)
    return now + wait


def plan_ready_times(
    plan: SourcingPlan, method: Method, now: datetime, *, prep_minutes: Mapping[str, int], transfer_hours: int
) -> dict[Site, datetime]:
    """The expected ready time of every fulfillment the plan makes, by site: a pickup's own
    fulfillment is ``(store, None)``, a transfer feeding it ``(source, store)``, a shipment
    ``(location, None)``. ``prep_minutes``: each planned location's preparation time."""
    times: dict[Site, datetime] = {}
    awaits_transfer = any(a.transfer_to for a in plan.allocations)
    for a in plan.allocations:
        if a.transfer_to:
            times[(a.location, a.transfer_to)] = expected_ready_at(
                Method.TRANSFER, now, prep_minutes=prep_minutes[a.location], transfer_hours=transfer_hours
            )
        if method.is_pickup:
            store = a.transfer_to or a.location
            times[(store, None)] = expected_ready_at(
                method,
                now,
                prep_minutes=prep_minutes[store],
                transfer_hours=transfer_hours,
                awaits_transfer=awaits_transfer,
            )
        elif not a.transfer_to:
            times[(a.location, None)] = expected_ready_at(
                method, now, prep_minutes=prep_minutes[a.location], transfer_hours=transfer_hours
            )
    return times
