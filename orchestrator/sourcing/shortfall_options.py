"""What a customer can choose when their pickup store cannot serve it all: each option a ready-made
body of ``POST /v1/orders/{id}/changes`` (to apply as it is, or dry-run first) with when the order
would be ready. Pure: the caller brings the candidates (live stock) and the clock's ``now``.

- ``move_pickup:<store>``: pick everything up at another store that holds all of it, nearest
  first, at most the profile's ``suggestion_limit``;
- ``wait_for_transfer``: stay at the same store and wait for the short units to travel there
  (``move_pickup`` to the store the pickup is already at re-sources them by transfer);
- ``go_without``: cancel the short units; whatever the store has stays for pickup.

It lives with sourcing, below fulfillment (which offers the options after a rejection or short
pick) and orders (whose timer applies the profile's fallback): the layers allow no other place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestrator.order_record.states import Method
from orchestrator.sourcing.engine import plan_sourcing
from orchestrator.sourcing.model import (
    Candidate,
    LineDemand,
    PickupShortfall,
    SourcingProfile,
    SourcingRequest,
)
from orchestrator.sourcing.ready_time import expected_ready_at

GO_WITHOUT = "go_without"
WAIT_FOR_TRANSFER = "wait_for_transfer"


@dataclass(frozen=True, slots=True)
class PickupLine:
    """An order line of a pickup that falls short: what is still to collect (``open``, with the
    unsourced units) and, of that, what no location holds for the order (``unsourced``)."""

    line_id: str
    sku: str
    open: int
    unsourced: int


@dataclass(frozen=True, slots=True)
class PickupShortfallCase:
    store: Candidate  # the pickup store, as planned on (its own stock may be unknown: empty)
    method: Method
    lines: tuple[PickupLine, ...]
    excluded: frozenset[str] = frozenset()  # stores that rejected the order: neither target nor source


@dataclass(frozen=True, slots=True)
class ShortfallOptions:
    options: tuple[dict[str, Any], ...]

    @property
    def only_going_without(self) -> bool:
        """Nothing can bring the units: the customer can only go without them."""
        return all(o["id"] == GO_WITHOUT for o in self.options)

    def describe(self) -> str:
        """What can be done, in one sentence part."""
        return "; or ".join(o["description"] for o in self.options)


def shortfall_options(
    case: PickupShortfallCase, candidates: Sequence[Candidate], profile: SourcingProfile, now: datetime
) -> ShortfallOptions:
    """The options, stores nearest to the pickup store first, going without last."""
    pool = [c for c in candidates if c.code != case.store.code] + [case.store]
    short = [ln for ln in case.lines if ln.unsourced > 0]
    options = [*_move_options(case, pool, profile, now), *_transfer_option(case, short, pool, profile, now)]
    options.append(_go_without(case, short, now))
    return ShortfallOptions(tuple(options))


def _move_options(
    case: PickupShortfallCase, pool: list[Candidate], profile: SourcingProfile, now: datetime
) -> list[dict[str, Any]]:
    whole = tuple(LineDemand(ln.line_id, ln.sku, ln.open) for ln in case.lines if ln.open > 0)
    if not whole:
        return []
    # Asking, the engine places nothing and suggests the stores holding all of it, nearest first.
    request = SourcingRequest(
        whole, case.method, pickup_location=case.store.code, excluded=case.excluded | {case.store.code}
    )
    asking = _with_policy(profile, PickupShortfall.ASK_CUSTOMER)
    plan = plan_sourcing(request, pool, asking)
    by_code = {c.code: c for c in pool}
    options = []
    for code in plan.suggestions:
        ready = expected_ready_at(
            case.method, now, prep_minutes=by_code[code].prep_minutes, transfer_hours=profile.transfer_hours
        )
        options.append(
            {
                "id": f"move_pickup:{code}",
                "description": f"pick everything up at {code} instead",
                "change": {"actions": [{"type": "move_pickup", "location": code}]},
                "expected_ready_at": ready,
            }
        )
    return options


def _transfer_option(
    case: PickupShortfallCase, short: list[PickupLine], pool: list[Candidate], profile: SourcingProfile, now: datetime
) -> list[dict[str, Any]]:
    if not short:
        return []
    demand = tuple(LineDemand(ln.line_id, ln.sku, ln.unsourced) for ln in short)
    request = SourcingRequest(
        demand, Method.TRANSFER, pickup_location=case.store.code, excluded=case.excluded - {case.store.code}
    )
    plan = plan_sourcing(request, pool, profile)
    if not plan.complete:
        return []
    ready = expected_ready_at(
        case.method,
        now,
        prep_minutes=case.store.prep_minutes,
        transfer_hours=profile.transfer_hours,
        awaits_transfer=True,
    )
    return [
        {
            "id": WAIT_FOR_TRANSFER,
            "description": f"wait at {case.store.code} for {_units(short)} to be transferred there",
            "change": {"actions": [{"type": "move_pickup", "location": case.store.code}]},
            "expected_ready_at": ready,
        }
    ]


def _go_without(case: PickupShortfallCase, short: list[PickupLine], now: datetime) -> dict[str, Any]:
    rest = sum(ln.open - ln.unsourced for ln in case.lines)
    ready = expected_ready_at(case.method, now, prep_minutes=case.store.prep_minutes, transfer_hours=0)
    kept = f"; the rest stays for pickup at {case.store.code}" if rest else ""
    return {
        "id": GO_WITHOUT,
        "description": f"go without {_units(short)}{kept}",
        "change": {
            "actions": [{"type": "cancel_line", "line_id": ln.line_id, "quantity": ln.unsourced} for ln in short]
        },
        "expected_ready_at": ready if rest else None,
    }


def _units(lines: Sequence[PickupLine]) -> str:
    return ", ".join(f"{ln.unsourced} × {ln.sku}" for ln in lines)


def _with_policy(profile: SourcingProfile, policy: PickupShortfall) -> SourcingProfile:
    return replace(profile, on_pickup_shortfall=policy)
