"""Issue #10 — a pickup store that cannot serve, the pure part: the engine's ``on_pickup_shortfall``
at placement (``move`` to the nearest store holding all of it, ``transfer`` in, ``ask_customer``
places nothing and suggests), and the ready-made options an order that waits is offered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.order_record.states import Method
from orchestrator.platform.geo import Coordinates
from orchestrator.sourcing.engine import plan_sourcing
from orchestrator.sourcing.model import (
    Candidate,
    LineDemand,
    PickupShortfall,
    Rule,
    ShortfallFallback,
    SourcingProfile,
    SourcingRequest,
    profile_from_row,
)
from orchestrator.sourcing.shortfall_options import (
    GO_WITHOUT,
    WAIT_FOR_TRANSFER,
    PickupLine,
    PickupShortfallCase,
    shortfall_options,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ALL = frozenset({"pickup", "curbside", "ship"})


def store(code: str, km: float, stock: dict[str, int], caps: frozenset[str] = ALL, prep: int = 120) -> Candidate:
    # One degree of latitude is ~111 km: stores lie north of the origin at ``km``.
    return Candidate(code, Coordinates(52.0 + km / 111.0, 13.0), caps, stock, prep_minutes=prep)


def profile(policy: PickupShortfall, **more) -> SourcingProfile:  # type: ignore[no-untyped-def]
    return SourcingProfile(on_pickup_shortfall=policy, **more)


def pickup_request(*lines: LineDemand, at: str = "S1", excluded: frozenset[str] = frozenset()) -> SourcingRequest:
    return SourcingRequest(lines, Method.PICKUP, pickup_location=at, excluded=excluded)


# --- placement -----------------------------------------------------------------------------------


def test_move_places_the_whole_pickup_at_the_nearest_store_holding_all_of_it() -> None:
    pool = [store("S1", 0, {"A": 1}), store("S3", 30, {"A": 5}), store("S2", 10, {"A": 5}), store("S4", 5, {"A": 2})]
    plan = plan_sourcing(pickup_request(LineDemand("1", "A", 3)), pool, profile(PickupShortfall.MOVE))
    assert plan.rule is Rule.PICKUP_MOVED
    assert [(a.location, a.quantity, a.transfer_to) for a in plan.allocations] == [("S2", 3, None)]
    assert plan.complete
    assert [c.location for c in plan.candidates if c.chosen] == ["S2"]


def test_move_takes_nothing_from_the_chosen_store_even_when_it_holds_part() -> None:
    pool = [store("S1", 0, {"A": 2, "B": 0}), store("S2", 10, {"A": 2, "B": 1})]
    plan = plan_sourcing(
        pickup_request(LineDemand("1", "A", 2), LineDemand("2", "B", 1)), pool, profile(PickupShortfall.MOVE)
    )
    assert plan.rule is Rule.PICKUP_MOVED
    assert {a.location for a in plan.allocations} == {"S2"}


def test_move_with_no_store_holding_all_of_it_places_nothing() -> None:
    pool = [store("S1", 0, {"A": 1}), store("S2", 10, {"A": 2})]
    plan = plan_sourcing(pickup_request(LineDemand("1", "A", 3)), pool, profile(PickupShortfall.MOVE))
    assert plan.rule is Rule.PICKUP_SHORT and plan.allocations == () and plan.unfilled == {"1": 2}


def test_move_skips_excluded_stores_and_stores_without_the_capability() -> None:
    pool = [
        store("S1", 0, {"A": 0}),
        store("S2", 5, {"A": 5}, caps=frozenset({"ship"})),
        store("S3", 8, {"A": 5}),
        store("S4", 9, {"A": 5}),
    ]
    plan = plan_sourcing(
        pickup_request(LineDemand("1", "A", 1), excluded=frozenset({"S3"})), pool, profile(PickupShortfall.MOVE)
    )
    assert [a.location for a in plan.allocations] == ["S4"]


def test_a_store_that_can_serve_is_chosen_whatever_the_policy() -> None:
    pool = [store("S1", 0, {"A": 5}), store("S2", 1, {"A": 5})]
    for policy in PickupShortfall:
        plan = plan_sourcing(pickup_request(LineDemand("1", "A", 3)), pool, profile(policy))
        assert plan.rule is Rule.PICKUP_AT_STORE and plan.allocations[0].location == "S1"


def test_ask_customer_places_nothing_and_suggests_the_nearest_stores_that_could_serve() -> None:
    pool = [store("S1", 0, {"A": 1}), store("S3", 30, {"A": 5}), store("S2", 10, {"A": 5})]
    plan = plan_sourcing(pickup_request(LineDemand("1", "A", 3)), pool, profile(PickupShortfall.ASK_CUSTOMER))
    assert plan.rule is Rule.PICKUP_SHORT and plan.allocations == ()
    assert plan.suggestions == ("S2", "S3")


def test_transfer_feeds_the_chosen_store() -> None:
    pool = [store("S1", 0, {"A": 1}), store("S2", 10, {"A": 5})]
    plan = plan_sourcing(pickup_request(LineDemand("1", "A", 3)), pool, profile(PickupShortfall.TRANSFER))
    assert plan.rule is Rule.PICKUP_WITH_TRANSFER
    assert sorted((a.location, a.quantity, a.transfer_to) for a in plan.allocations) == [
        ("S1", 1, None),
        ("S2", 2, "S1"),
    ]


def test_the_default_profile_asks_the_customer_and_falls_back_to_a_transfer_after_a_day() -> None:
    p = SourcingProfile()
    assert p.on_pickup_shortfall is PickupShortfall.ASK_CUSTOMER
    assert p.ask_customer_fallback is ShortfallFallback.TRANSFER
    assert p.ask_customer_timeout_hours == 24
    row = {
        "version": 2,
        "on_pickup_shortfall": "move",
        "ask_customer_fallback": "cancel",
        "ask_customer_timeout_hours": 6,
        "min_split_line_value": 0,
        "suggestion_limit": 5,
        "transfer_hours": 12,
    }
    stored = profile_from_row(row)
    assert (stored.on_pickup_shortfall, stored.ask_customer_fallback, stored.ask_customer_timeout_hours) == (
        PickupShortfall.MOVE,
        ShortfallFallback.CANCEL,
        6,
    )
    with pytest.raises(ValueError):
        profile_from_row({**row, "on_pickup_shortfall": "suggest"})


# --- options for an order that waits -----------------------------------------------------------


def case(open_: int = 3, unsourced: int = 2, excluded: frozenset[str] = frozenset()) -> PickupShortfallCase:
    return PickupShortfallCase(
        store("S1", 0, {}, prep=60), Method.PICKUP, (PickupLine("line-1", "A", open_, unsourced),), excluded
    )


def test_options_offer_each_store_holding_the_whole_pickup_nearest_first_then_a_transfer_then_going_without():
    candidates = [store("S3", 30, {"A": 5}, prep=90), store("S2", 10, {"A": 3}, prep=30), store("S4", 5, {"A": 2})]
    p = profile(PickupShortfall.ASK_CUSTOMER, transfer_hours=12)
    offered = shortfall_options(case(), candidates, p, NOW)
    assert [o["id"] for o in offered.options] == ["move_pickup:S2", "move_pickup:S3", WAIT_FOR_TRANSFER, GO_WITHOUT]
    by_id = {o["id"]: o for o in offered.options}
    assert by_id["move_pickup:S2"]["change"] == {"actions": [{"type": "move_pickup", "location": "S2"}]}
    assert by_id["move_pickup:S2"]["expected_ready_at"] == NOW + timedelta(minutes=30)
    assert by_id["move_pickup:S3"]["expected_ready_at"] == NOW + timedelta(minutes=90)
    assert by_id[WAIT_FOR_TRANSFER]["change"] == {"actions": [{"type": "move_pickup", "location": "S1"}]}
    # The units travel (12 h) and the pickup store prepares them (60 min).
    assert by_id[WAIT_FOR_TRANSFER]["expected_ready_at"] == NOW + timedelta(hours=12, minutes=60)
    assert by_id[GO_WITHOUT]["change"] == {"actions": [{"type": "cancel_line", "line_id": "line-1", "quantity": 2}]}
    assert by_id[GO_WITHOUT]["expected_ready_at"] == NOW + timedelta(minutes=60)
    assert not offered.only_going_without
    assert "S2" in offered.describe() and "go without 2 × A" in offered.describe()


def test_options_respect_the_suggestion_limit_and_never_offer_a_store_that_rejected():
    candidates = [store(f"S{i}", i, {"A": 5}) for i in range(2, 8)]
    p = profile(PickupShortfall.ASK_CUSTOMER, suggestion_limit=2)
    offered = shortfall_options(case(excluded=frozenset({"S2"})), candidates, p, NOW)
    assert [o["id"] for o in offered.options][:2] == ["move_pickup:S3", "move_pickup:S4"]
    assert len([o for o in offered.options if o["id"].startswith("move_pickup:")]) == 2


def test_a_rejecting_store_is_no_transfer_source_either():
    offered = shortfall_options(
        case(excluded=frozenset({"S2"})), [store("S2", 1, {"A": 5})], profile(PickupShortfall.ASK_CUSTOMER), NOW
    )
    assert [o["id"] for o in offered.options] == [GO_WITHOUT]


def test_a_transfer_needs_a_store_that_ships():
    pickup_only = store("S2", 5, {"A": 5}, caps=frozenset({"pickup"}))
    offered = shortfall_options(case(), [pickup_only], profile(PickupShortfall.ASK_CUSTOMER), NOW)
    assert [o["id"] for o in offered.options] == ["move_pickup:S2", GO_WITHOUT]


def test_nothing_anywhere_leaves_only_going_without_and_nothing_to_collect_has_no_ready_time():
    offered = shortfall_options(case(open_=2, unsourced=2), [], profile(PickupShortfall.ASK_CUSTOMER), NOW)
    assert [o["id"] for o in offered.options] == [GO_WITHOUT]
    assert offered.only_going_without
    assert offered.options[0]["expected_ready_at"] is None


def test_the_pickup_store_itself_is_never_a_move_target():
    # The current store appears among the candidates with stock (a count that arrived): the
    # customer is already there, the option to wait covers it.
    offered = shortfall_options(
        case(), [store("S1", 0, {"A": 9}), store("S2", 4, {"A": 1})], profile(PickupShortfall.ASK_CUSTOMER), NOW
    )
    assert not any(o["id"] == "move_pickup:S1" for o in offered.options)
    assert [o["id"] for o in offered.options] == [GO_WITHOUT]  # S2's one unit covers neither
