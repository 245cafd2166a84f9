"""Sourcing: which location fulfils which line, and the rule that decided."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.order_record.states import Method
from orchestrator.platform.geo import Coordinates, distance_km
from orchestrator.sourcing.engine import plan_sourcing
from orchestrator.sourcing.model import (
    Allocation,
    Candidate,
    LineDemand,
    PickupShortfall,
    Rule,
    SourcingPlan,
    SourcingProfile,
    SourcingRequest,
)

HOME = Coordinates(0.0, 0.0)
KM_PER_DEGREE = 2 * math.pi * 6371.0088 / 360


def at(km: float) -> Coordinates:
    """A point ``km`` east of HOME along the equator."""
    return Coordinates(0.0, km / KM_PER_DEGREE)


def loc(
    code: str,
    stock: dict[str, int],
    *,
    km: float | None = 10.0,
    caps: Iterable[str] = ("ship",),
    capacity: int | None = None,
    open_: int = 0,
) -> Candidate:
    return Candidate(
        code=code,
        coordinates=at(km) if km is not None else None,
        capabilities=frozenset(caps),
        available=stock,
        daily_capacity=capacity,
        open_fulfillments=open_,
    )


def line(key: str, sku: str | None = None, qty: int = 1, price: int = 0) -> LineDemand:
    return LineDemand(key, sku or key, qty, price)


def ship(*lines: LineDemand, excluded: Iterable[str] = (), destination=HOME) -> SourcingRequest:
    return SourcingRequest(tuple(lines), Method.SHIP, destination=destination, excluded=frozenset(excluded))


def pickup(
    store: str, *lines: LineDemand, method: Method = Method.PICKUP, excluded: Iterable[str] = ()
) -> SourcingRequest:
    return SourcingRequest(tuple(lines), method, pickup_location=store, excluded=frozenset(excluded))


def placed(plan: SourcingPlan) -> dict[tuple[str, str], int]:
    """(location, line_key) → quantity."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for a in plan.allocations:
        out[(a.location, a.line_key)] += a.quantity
    return dict(out)


DEFAULT = SourcingProfile()
SUGGEST = SourcingProfile(on_pickup_shortfall=PickupShortfall.ASK_CUSTOMER)
TRANSFER = SourcingProfile(on_pickup_shortfall=PickupShortfall.TRANSFER)
STORE_CAPS = ("pickup", "curbside", "ship")


# ---------------------------------------------------------------------------------------------
# Ship
# ---------------------------------------------------------------------------------------------


def test_ship_uses_the_nearest_location_that_has_everything() -> None:
    pool = [loc("FAR", {"A": 5, "B": 5}, km=300), loc("NEAR", {"A": 5, "B": 5}, km=20)]
    plan = plan_sourcing(ship(line("1", "A", 2), line("2", "B", 1)), pool, DEFAULT)
    assert plan.rule is Rule.SHIP_SINGLE
    assert plan.complete
    assert placed(plan) == {("NEAR", "1"): 2, ("NEAR", "2"): 1}


def test_ship_prefers_one_location_over_a_nearer_split() -> None:
    pool = [
        loc("NEAR-A", {"A": 5}, km=1),
        loc("NEAR-B", {"B": 5}, km=1),
        loc("FAR-AB", {"A": 5, "B": 5}, km=800),
    ]
    plan = plan_sourcing(ship(line("1", "A"), line("2", "B")), pool, DEFAULT)
    assert plan.rule is Rule.SHIP_SINGLE
    assert plan.locations == ["FAR-AB"]


def test_ship_single_location_ties_on_distance_go_to_more_capacity_headroom() -> None:
    pool = [
        loc("TIGHT", {"A": 5}, km=10, capacity=10, open_=8),
        loc("ROOMY", {"A": 5}, km=10, capacity=10, open_=1),
    ]
    assert plan_sourcing(ship(line("1", "A")), pool, DEFAULT).locations == ["ROOMY"]


def test_ship_treats_a_location_without_a_capacity_limit_as_having_the_most_headroom() -> None:
    pool = [loc("LIMITED", {"A": 5}, capacity=1000), loc("UNLIMITED", {"A": 5}, capacity=None)]
    assert plan_sourcing(ship(line("1", "A")), pool, DEFAULT).locations == ["UNLIMITED"]


def test_ship_single_location_full_ties_are_broken_by_code() -> None:
    pool = [loc("S-2", {"A": 5}), loc("S-3", {"A": 5}), loc("S-1", {"A": 5})]
    assert plan_sourcing(ship(line("1", "A")), pool, DEFAULT).locations == ["S-1"]


def test_ship_distance_beats_headroom() -> None:
    pool = [loc("NEAR", {"A": 5}, km=5, capacity=2, open_=1), loc("FAR", {"A": 5}, km=50)]
    assert plan_sourcing(ship(line("1", "A")), pool, DEFAULT).locations == ["NEAR"]


def test_ship_ranks_locations_with_unknown_coordinates_after_known_ones() -> None:
    pool = [loc("NOWHERE", {"A": 5}, km=None), loc("KNOWN", {"A": 5}, km=5000)]
    assert plan_sourcing(ship(line("1", "A")), pool, DEFAULT).locations == ["KNOWN"]


def test_ship_without_a_destination_ranks_by_headroom_then_code() -> None:
    pool = [
        loc("B", {"A": 5}, capacity=5),
        loc("A", {"A": 5}, capacity=9),
        loc("C", {"A": 5}, capacity=9),
    ]
    plan = plan_sourcing(ship(line("1", "A"), destination=None), pool, DEFAULT)
    assert plan.locations == ["A"]


def test_ship_splits_across_the_nearest_pair_when_no_location_has_everything() -> None:
    pool = [
        loc("FAR-A", {"A": 5}, km=500),
        loc("NEAR-A", {"A": 5}, km=10),
        loc("FAR-B", {"B": 5}, km=400),
        loc("NEAR-B", {"B": 5}, km=20),
    ]
    plan = plan_sourcing(ship(line("1", "A", 3), line("2", "B", 3)), pool, DEFAULT)
    assert plan.rule is Rule.SHIP_SPLIT
    assert plan.complete
    assert placed(plan) == {("NEAR-A", "1"): 3, ("NEAR-B", "2"): 3}


def test_ship_split_uses_the_fewest_locations_even_without_the_widest_location() -> None:
    # WIDE holds the most units, but WIDE plus anyone still needs a third location; P + Q suffice.
    pool = [
        loc("WIDE", {"A": 3, "B": 3, "C": 3}, km=1),
        loc("P", {"A": 4, "B": 2}, km=50),
        loc("Q", {"B": 2, "C": 4}, km=60),
    ]
    plan = plan_sourcing(ship(line("1", "A", 4), line("2", "B", 4), line("3", "C", 4)), pool, DEFAULT)
    assert plan.complete
    assert sorted(plan.locations) == ["P", "Q"]
    assert placed(plan) == {("P", "1"): 4, ("P", "2"): 2, ("Q", "2"): 2, ("Q", "3"): 4}


def test_ship_falls_back_to_a_greedy_cover_when_no_pair_suffices() -> None:
    pool = [
        loc("A-ONLY", {"A": 5}, km=1),
        loc("B-ONLY", {"B": 5}, km=2),
        loc("C-ONLY", {"C": 5}, km=3),
        loc("AB-LITTLE", {"A": 1, "B": 1}, km=4),
    ]
    plan = plan_sourcing(ship(line("1", "A", 2), line("2", "B", 2), line("3", "C", 2)), pool, DEFAULT)
    assert plan.rule is Rule.SHIP_SPLIT
    assert plan.complete
    assert sorted(plan.locations) == ["A-ONLY", "B-ONLY", "C-ONLY"]


def test_ship_greedy_takes_the_location_serving_the_most_units_first() -> None:
    pool = [
        loc("BIG", {"A": 3, "B": 3, "C": 1}, km=100),
        loc("A1", {"A": 3}, km=1),
        loc("B1", {"B": 3}, km=1),
        loc("C1", {"C": 3}, km=1),
        loc("D1", {"D": 3}, km=1),
    ]
    plan = plan_sourcing(
        ship(line("1", "A", 3), line("2", "B", 3), line("3", "C", 3), line("4", "D", 3)),
        pool,
        DEFAULT,
    )
    assert plan.complete
    # No pair covers four skus; greedy: BIG (7 units), then D1 (3) and C1 (2).
    assert sorted(plan.locations) == ["BIG", "C1", "D1"]
    assert placed(plan)[("BIG", "3")] == 1
    assert placed(plan)[("C1", "3")] == 2


def test_ship_splits_one_line_across_locations_when_no_single_location_has_enough() -> None:
    pool = [loc("X", {"A": 3}, km=1), loc("Y", {"A": 4}, km=2)]
    plan = plan_sourcing(ship(line("1", "A", 6)), pool, DEFAULT)
    assert plan.complete
    assert sum(a.quantity for a in plan.allocations) == 6
    assert all(a.quantity <= {"X": 3, "Y": 4}[a.location] for a in plan.allocations)


@pytest.mark.parametrize(
    "blocked, reason",
    [
        (loc("BLOCKED", {"A": 5}, km=1, caps=("pickup",)), "lacks capability ship"),
        (loc("BLOCKED", {"A": 5}, km=1, capacity=3, open_=3), "at capacity"),
        (loc("BLOCKED", {"A": 5}, km=1, capacity=3, open_=7), "at capacity"),
        (loc("BLOCKED", {"A": 5}, km=1, capacity=0), "at capacity"),
    ],
)
def test_ship_skips_an_incapable_or_full_location_even_when_it_is_nearest(blocked, reason) -> None:
    pool = [blocked, loc("OTHER", {"A": 5}, km=900)]
    plan = plan_sourcing(ship(line("1", "A", 2)), pool, DEFAULT)
    assert plan.locations == ["OTHER"]
    scored = {c.location: c for c in plan.candidates}
    assert scored["BLOCKED"].eligible is False
    assert scored["BLOCKED"].reason == reason
    assert scored["BLOCKED"].chosen is False
    assert scored["OTHER"].chosen is True


def test_ship_skips_excluded_locations() -> None:
    pool = [loc("FAILED", {"A": 5}, km=1), loc("OTHER", {"A": 5}, km=900)]
    plan = plan_sourcing(ship(line("1", "A"), excluded=["FAILED"]), pool, DEFAULT)
    assert plan.locations == ["OTHER"]
    assert {c.location: c.reason for c in plan.candidates}["FAILED"] == "excluded"


def test_ship_with_one_free_slot_left_is_still_eligible() -> None:
    plan = plan_sourcing(ship(line("1", "A")), [loc("S", {"A": 1}, capacity=4, open_=3)], DEFAULT)
    assert plan.locations == ["S"]


def test_ship_short_everywhere_places_nothing_and_reports_what_is_missing() -> None:
    pool = [loc("X", {"A": 2}, km=1), loc("Y", {"A": 1, "B": 1}, km=2)]
    plan = plan_sourcing(ship(line("1", "A", 5), line("2", "B", 1)), pool, DEFAULT)
    assert not plan.complete
    assert plan.allocations == ()
    assert plan.unfilled == {"1": 2}


def test_ship_short_suggests_pickup_stores_that_hold_the_whole_order() -> None:
    pool = [
        loc("DC", {"A": 1}, km=1),
        loc("STORE-FAR", {"A": 3}, km=90, caps=("pickup",)),
        loc("STORE-NEAR", {"A": 3}, km=9, caps=("pickup",)),
        loc("STORE-SMALL", {"A": 2}, km=2, caps=("pickup",)),
        loc("WAREHOUSE", {"A": 9}, km=2, caps=("ship",), capacity=1, open_=1),
    ]
    plan = plan_sourcing(ship(line("1", "A", 3)), pool, DEFAULT)
    assert not plan.complete
    assert plan.suggestions == ("STORE-NEAR", "STORE-FAR")


def test_ship_reads_availability_as_given_because_it_is_already_net_of_safety_stock() -> None:
    plan = plan_sourcing(ship(line("1", "A", 3)), [loc("S", {"A": 3})], DEFAULT)
    assert placed(plan) == {("S", "1"): 3}
    short = plan_sourcing(ship(line("1", "A", 4)), [loc("S", {"A": 3})], DEFAULT)
    assert short.unfilled == {"1": 4 - 3}


def test_ship_ignores_negative_or_missing_availability() -> None:
    pool = [
        loc("NEG", {"A": -4, "B": 5}, km=1),
        loc("OK", {"A": 2}, km=50),
        loc("OK-B", {"B": 5}, km=60),
    ]
    plan = plan_sourcing(ship(line("1", "A", 2), line("2", "B", 1)), pool, DEFAULT)
    assert plan.complete
    # NEG can still ship B: the nearest pair is NEG + OK, not OK + OK-B.
    assert placed(plan) == {("NEG", "2"): 1, ("OK", "1"): 2}


def test_two_lines_of_the_same_sku_never_overdraw_one_location() -> None:
    pool = [loc("SMALL", {"A": 4}, km=1), loc("BIG", {"A": 6}, km=500)]
    plan = plan_sourcing(ship(line("1", "A", 3), line("2", "A", 3)), pool, DEFAULT)
    assert plan.complete
    assert plan.locations == ["BIG"]


def test_two_lines_of_the_same_sku_are_short_when_together_they_exceed_stock() -> None:
    plan = plan_sourcing(ship(line("1", "A", 3), line("2", "A", 3)), [loc("S", {"A": 4})], DEFAULT)
    assert not plan.complete
    assert plan.allocations == ()
    assert sum(plan.unfilled.values()) == 2


def test_ship_with_no_candidates_reports_every_line_unfilled() -> None:
    plan = plan_sourcing(ship(line("1", "A", 2), line("2", "B", 1)), [], DEFAULT)
    assert not plan.complete
    assert plan.allocations == ()
    assert plan.unfilled == {"1": 2, "2": 1}
    assert plan.candidates == ()


def test_two_lines_of_the_same_sku_at_a_pickup_store_share_its_stock() -> None:
    pool = [
        loc("STORE", {"A": 4}, km=0, caps=STORE_CAPS),
        loc("SMALL", {"A": 5}, km=1, caps=STORE_CAPS),
        loc("BIG", {"A": 6}, km=2, caps=STORE_CAPS),
    ]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 3), line("2", "A", 3)), pool, SUGGEST)
    assert plan.rule is Rule.PICKUP_SHORT
    assert plan.allocations == ()
    assert plan.unfilled == {"2": 2}
    assert plan.suggestions == ("BIG",)
    assert {c.location: c.covers_units for c in plan.candidates} == {
        "STORE": 4,
        "SMALL": 5,
        "BIG": 6,
    }


def test_lines_with_nothing_to_source_give_an_empty_complete_plan() -> None:
    for request in (ship(), ship(line("1", "A", 0))):
        plan = plan_sourcing(request, [loc("S", {"A": 5})], DEFAULT)
        assert plan.rule is Rule.NOTHING_TO_SOURCE
        assert plan.complete
        assert plan.allocations == ()


def test_ship_candidates_are_scored_nearest_first_with_coverage() -> None:
    pool = [
        loc("FAR", {"A": 5, "B": 5}, km=300),
        loc("MID", {"A": 1}, km=100),
        loc("EMPTY", {}, km=50),
        loc("NEAR", {"A": 5}, km=10),
    ]
    plan = plan_sourcing(ship(line("1", "A", 2), line("2", "B", 1)), pool, DEFAULT)
    assert [c.location for c in plan.candidates] == ["NEAR", "EMPTY", "MID", "FAR"]
    scored = {c.location: c for c in plan.candidates}
    assert scored["NEAR"].covers_units == 2 and not scored["NEAR"].covers_all
    assert scored["MID"].covers_units == 1
    assert scored["FAR"].covers_units == 3 and scored["FAR"].covers_all and scored["FAR"].chosen
    assert scored["EMPTY"].reason == "no stock" and not scored["EMPTY"].eligible
    assert scored["NEAR"].distance_km == pytest.approx(10.0, abs=0.01)


# ---------------------------------------------------------------------------------------------
# Minimum split line value
# ---------------------------------------------------------------------------------------------


def test_a_line_is_not_split_into_a_part_worth_less_than_the_minimum() -> None:
    # 10 x 100 wanted; X and Y have 8 each: 8 + 2 would leave a part worth 200 < 300, so the
    # nearer store takes fewer units (7 + 3) and both parts are worth the minimum.
    pool = [loc("X", {"A": 8}, km=1), loc("Y", {"A": 8}, km=2)]
    profile = SourcingProfile(min_split_line_value=300)
    plan = plan_sourcing(ship(line("1", "A", 10, price=100)), pool, profile)
    assert plan.complete
    assert placed(plan) == {("X", "1"): 7, ("Y", "1"): 3}
    # With a minimum no split can meet (600 per part of a 1,000 line), nothing is placed.
    strict = plan_sourcing(ship(line("1", "A", 10, price=100)), pool, SourcingProfile(min_split_line_value=600))
    assert not strict.complete
    assert strict.allocations == ()


def test_a_line_may_be_split_when_every_part_is_worth_at_least_the_minimum() -> None:
    pool = [loc("X", {"A": 7}, km=1), loc("Y", {"A": 7}, km=2)]
    profile = SourcingProfile(min_split_line_value=300)
    plan = plan_sourcing(ship(line("1", "A", 10, price=100)), pool, profile)
    assert plan.complete
    assert placed(plan) == {("X", "1"): 7, ("Y", "1"): 3}


def test_the_minimum_keeps_a_line_whole_at_a_farther_location_that_has_it_all() -> None:
    # Another line forces a second location; A's line goes whole to FAR rather than 9 + 1.
    pool = [loc("NEAR", {"A": 9, "B": 1}, km=1), loc("FAR", {"A": 10}, km=50)]
    profile = SourcingProfile(min_split_line_value=500)
    plan = plan_sourcing(ship(line("1", "A", 10, price=100), line("2", "B", 1, price=100)), pool, profile)
    assert plan.complete
    assert placed(plan) == {("NEAR", "2"): 1, ("FAR", "1"): 10}


def test_the_minimum_never_stops_a_whole_line_going_to_one_location() -> None:
    profile = SourcingProfile(min_split_line_value=10_000)
    plan = plan_sourcing(ship(line("1", "A", 1, price=1)), [loc("S", {"A": 1})], profile)
    assert placed(plan) == {("S", "1"): 1}


# ---------------------------------------------------------------------------------------------
# Pickup
# ---------------------------------------------------------------------------------------------


def test_pickup_at_the_chosen_store_when_it_holds_everything() -> None:
    pool = [
        loc("STORE", {"A": 2, "B": 1}, km=50, caps=STORE_CAPS),
        loc("OTHER", {"A": 9, "B": 9}, km=0, caps=STORE_CAPS),
    ]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 2), line("2", "B", 1)), pool, SUGGEST)
    assert plan.rule is Rule.PICKUP_AT_STORE
    assert placed(plan) == {("STORE", "1"): 2, ("STORE", "2"): 1}
    assert all(a.transfer_to is None for a in plan.allocations)
    assert [c.location for c in plan.candidates if c.chosen] == ["STORE"]


def test_curbside_needs_the_curbside_capability() -> None:
    pool = [
        loc("STORE", {"A": 2}, km=0, caps=("pickup",)),
        loc("CURB", {"A": 2}, km=5, caps=("curbside",)),
    ]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 1), method=Method.CURBSIDE), pool, SUGGEST)
    assert plan.allocations == ()
    assert plan.suggestions == ("CURB",)
    ok = plan_sourcing(pickup("CURB", line("1", "A", 1), method=Method.CURBSIDE), pool, SUGGEST)
    assert ok.rule is Rule.PICKUP_AT_STORE


def test_pickup_is_not_refused_because_the_store_is_at_capacity() -> None:
    pool = [loc("STORE", {"A": 2}, caps=STORE_CAPS, capacity=3, open_=3)]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 2)), pool, SUGGEST)
    assert plan.rule is Rule.PICKUP_AT_STORE
    assert placed(plan) == {("STORE", "1"): 2}


def test_pickup_short_with_suggest_places_nothing_and_reports_what_the_store_lacks() -> None:
    pool = [loc("STORE", {"A": 1, "B": 4}, km=0, caps=STORE_CAPS)]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 3), line("2", "B", 2)), pool, SUGGEST)
    assert plan.rule is Rule.PICKUP_SHORT
    assert plan.allocations == ()
    assert plan.unfilled == {"1": 2}
    assert not plan.complete


def test_pickup_short_suggests_the_nearest_capable_stores_that_cover_the_whole_order() -> None:
    store = loc("STORE", {"A": 1}, km=0, caps=STORE_CAPS)
    pool = [
        store,
        loc("S-40", {"A": 3, "B": 1}, km=40, caps=("pickup",)),
        loc("S-10", {"A": 3, "B": 1}, km=10, caps=("pickup", "ship")),
        loc("S-20", {"A": 3, "B": 1}, km=20, caps=("pickup",)),
        loc("S-5-PARTIAL", {"A": 3}, km=5, caps=("pickup",)),
        loc("DC-1-NOPICKUP", {"A": 9, "B": 9}, km=1, caps=("ship",)),
        loc("S-2-EXCLUDED", {"A": 9, "B": 9}, km=2, caps=("pickup",)),
    ]
    request = pickup("STORE", line("1", "A", 3), line("2", "B", 1), excluded=["S-2-EXCLUDED"])
    plan = plan_sourcing(request, pool, SUGGEST)
    assert plan.suggestions == ("S-10", "S-20", "S-40")


def test_pickup_suggestions_are_capped_by_the_profile_limit() -> None:
    pool = [loc("STORE", {}, km=0, caps=STORE_CAPS)] + [
        loc(f"S-{i:02d}", {"A": 1}, km=i, caps=("pickup",)) for i in range(1, 9)
    ]
    profile = SourcingProfile(suggestion_limit=3)
    plan = plan_sourcing(pickup("STORE", line("1", "A")), pool, profile)
    assert plan.suggestions == ("S-01", "S-02", "S-03")
    assert len(plan_sourcing(pickup("STORE", line("1", "A")), pool, DEFAULT).suggestions) == 5


def test_pickup_suggestions_are_ranked_from_the_pickup_store_not_the_customer() -> None:
    store = Candidate("STORE", Coordinates(48.0, 11.0), frozenset(STORE_CAPS), {})
    near_store = Candidate("NEAR-STORE", Coordinates(48.1, 11.0), frozenset({"pickup"}), {"A": 1})
    near_home = Candidate("NEAR-HOME", Coordinates(0.1, 0.0), frozenset({"pickup"}), {"A": 1})
    request = SourcingRequest((line("1", "A"),), Method.PICKUP, pickup_location="STORE", destination=HOME)
    plan = plan_sourcing(request, [near_home, store, near_store], SUGGEST)
    assert plan.suggestions == ("NEAR-STORE", "NEAR-HOME")


def test_pickup_at_an_unknown_store_places_nothing_and_suggests_others() -> None:
    pool = [loc("S-1", {"A": 1}, km=1, caps=("pickup",))]
    request = SourcingRequest((line("1", "A"),), Method.PICKUP, pickup_location="GONE", destination=HOME)
    plan = plan_sourcing(request, pool, SUGGEST)
    assert plan.rule is Rule.PICKUP_SHORT
    assert plan.allocations == ()
    assert plan.unfilled == {"1": 1}
    assert plan.suggestions == ("S-1",)


@pytest.mark.parametrize("policy", [PickupShortfall.ASK_CUSTOMER, PickupShortfall.TRANSFER])
def test_an_excluded_pickup_store_gets_nothing_placed(policy: PickupShortfall) -> None:
    pool = [
        loc("STORE", {"A": 5}, km=0, caps=STORE_CAPS),
        loc("OTHER", {"A": 5}, km=3, caps=STORE_CAPS),
    ]
    plan = plan_sourcing(
        pickup("STORE", line("1", "A", 2), excluded=["STORE"]),
        pool,
        SourcingProfile(on_pickup_shortfall=policy),
    )
    assert plan.allocations == ()
    assert plan.unfilled == {"1": 2}
    assert "STORE" not in plan.suggestions
    assert plan.suggestions == ("OTHER",)


def test_pickup_at_a_store_without_the_pickup_capability_places_nothing() -> None:
    pool = [
        loc("DC", {"A": 5}, km=0, caps=("ship",)),
        loc("OTHER", {"A": 5}, km=3, caps=STORE_CAPS),
    ]
    plan = plan_sourcing(pickup("DC", line("1", "A", 2)), pool, TRANSFER)
    assert plan.allocations == ()
    assert plan.suggestions == ("OTHER",)


def test_pickup_short_with_transfer_moves_the_short_units_from_another_store() -> None:
    pool = [
        loc("STORE", {"A": 1, "B": 2}, km=0, caps=STORE_CAPS),
        loc("SOURCE", {"A": 5}, km=30, caps=("ship",)),
    ]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 3), line("2", "B", 2)), pool, TRANSFER)
    assert plan.rule is Rule.PICKUP_WITH_TRANSFER
    assert plan.complete
    assert set(plan.allocations) == {
        Allocation("STORE", "1", "A", 1),
        Allocation("STORE", "2", "B", 2),
        Allocation("SOURCE", "1", "A", 2, transfer_to="STORE"),
    }
    assert {c.location for c in plan.candidates if c.chosen} == {"STORE", "SOURCE"}


def test_pickup_transfer_comes_from_the_source_nearest_the_pickup_store() -> None:
    pool = [
        loc("STORE", {}, km=100, caps=STORE_CAPS),
        loc("NEAR-HOME", {"A": 5}, km=0, caps=("ship",)),
        loc("NEAR-STORE", {"A": 5}, km=110, caps=("ship",)),
    ]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 2)), pool, TRANSFER)
    assert plan.allocations == (Allocation("NEAR-STORE", "1", "A", 2, transfer_to="STORE"),)


def test_pickup_transfer_only_uses_ship_capable_eligible_sources() -> None:
    pool = [
        loc("STORE", {"A": 1}, km=0, caps=STORE_CAPS),
        loc("PICKUP-ONLY", {"A": 5}, km=1, caps=("pickup",)),
        loc("FULL", {"A": 5}, km=2, caps=("ship",), capacity=2, open_=2),
        loc("EXCLUDED", {"A": 5}, km=3, caps=("ship",)),
        loc("OK", {"A": 5}, km=90, caps=("ship",)),
    ]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 3), excluded=["EXCLUDED"]), pool, TRANSFER)
    assert placed(plan) == {("STORE", "1"): 1, ("OK", "1"): 2}


def test_pickup_transfer_that_cannot_cover_the_shortfall_falls_back_to_suggestions() -> None:
    pool = [
        loc("STORE", {"A": 1}, km=0, caps=STORE_CAPS),
        loc("PICKUP-ONLY", {"A": 5}, km=1, caps=("pickup",)),
    ]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 3)), pool, TRANSFER)
    assert plan.rule is Rule.PICKUP_SHORT
    assert plan.allocations == ()
    assert plan.unfilled == {"1": 2}
    assert plan.suggestions == ("PICKUP-ONLY",)


def test_pickup_with_transfer_from_an_empty_store_transfers_everything() -> None:
    pool = [loc("STORE", {}, km=0, caps=STORE_CAPS), loc("SRC", {"A": 4}, km=5, caps=("ship",))]
    plan = plan_sourcing(pickup("STORE", line("1", "A", 4)), pool, TRANSFER)
    assert plan.allocations == (Allocation("SRC", "1", "A", 4, transfer_to="STORE"),)


def test_pickup_with_transfer_never_splits_below_the_minimum_at_the_store() -> None:
    # The store has 1 of 5 (worth 100 < 300): the whole line comes from the source instead.
    pool = [
        loc("STORE", {"A": 1}, km=0, caps=STORE_CAPS),
        loc("SRC", {"A": 5}, km=5, caps=("ship",)),
    ]
    profile = SourcingProfile(on_pickup_shortfall=PickupShortfall.TRANSFER, min_split_line_value=300)
    plan = plan_sourcing(pickup("STORE", line("1", "A", 5, price=100)), pool, profile)
    assert plan.complete
    assert placed(plan) == {("SRC", "1"): 5}


def test_pickup_with_no_lines_has_nothing_to_source() -> None:
    plan = plan_sourcing(pickup("STORE"), [loc("STORE", {}, caps=STORE_CAPS)], SUGGEST)
    assert plan.rule is Rule.NOTHING_TO_SOURCE
    assert plan.complete


# ---------------------------------------------------------------------------------------------
# Transfer (re-sourcing units a pickup store still needs)
# ---------------------------------------------------------------------------------------------


def transfer(store: str, *lines: LineDemand, excluded: Iterable[str] = ()) -> SourcingRequest:
    return SourcingRequest(tuple(lines), Method.TRANSFER, pickup_location=store, excluded=frozenset(excluded))


def test_transfer_resources_units_for_the_pickup_store_from_another_ship_capable_location() -> None:
    pool = [
        loc("STORE", {"A": 9}, km=0, caps=STORE_CAPS),
        loc("FAILED", {"A": 9}, km=1, caps=("ship",)),
        loc("PICKUP-ONLY", {"A": 9}, km=2, caps=("pickup",)),
        loc("SRC-FAR", {"A": 9}, km=80, caps=("ship",)),
        loc("SRC", {"A": 9}, km=20, caps=("ship",)),
    ]
    plan = plan_sourcing(transfer("STORE", line("1", "A", 2), excluded=["FAILED"]), pool, DEFAULT)
    assert plan.rule is Rule.PICKUP_WITH_TRANSFER
    assert plan.allocations == (Allocation("SRC", "1", "A", 2, transfer_to="STORE"),)


def test_transfer_may_split_across_sources() -> None:
    pool = [
        loc("STORE", {}, km=0, caps=STORE_CAPS),
        loc("S1", {"A": 2}, km=10, caps=("ship",)),
        loc("S2", {"A": 2}, km=20, caps=("ship",)),
    ]
    plan = plan_sourcing(transfer("STORE", line("1", "A", 3)), pool, DEFAULT)
    assert plan.complete
    assert sum(a.quantity for a in plan.allocations) == 3
    assert {a.transfer_to for a in plan.allocations} == {"STORE"}
    assert set(plan.locations) == {"S1", "S2"}


def test_transfer_without_enough_stock_elsewhere_places_nothing() -> None:
    pool = [
        loc("STORE", {"A": 9}, km=0, caps=STORE_CAPS),
        loc("S1", {"A": 1}, km=10, caps=("ship",)),
    ]
    plan = plan_sourcing(transfer("STORE", line("1", "A", 3)), pool, DEFAULT)
    assert not plan.complete
    assert plan.allocations == ()
    assert plan.unfilled == {"1": 2}


def test_transfer_with_nothing_to_move_is_empty() -> None:
    plan = plan_sourcing(transfer("STORE", line("1", "A", 0)), [], DEFAULT)
    assert plan.rule is Rule.NOTHING_TO_SOURCE


# ---------------------------------------------------------------------------------------------
# Ties and pair ranking
# ---------------------------------------------------------------------------------------------


def test_ship_pair_ranking_puts_unknown_coordinates_last_as_single_ranking_does() -> None:
    pool = [
        loc("NEAR-A", {"A": 3}, km=5),
        loc("NEAR-B", {"B": 3}, km=5),
        loc("UNKNOWN-A", {"A": 3}, km=None),
        loc("UNKNOWN-B", {"B": 3}, km=None),
    ]
    plan = plan_sourcing(ship(line("1", "A", 3), line("2", "B", 3)), pool, DEFAULT)
    assert sorted(plan.locations) == ["NEAR-A", "NEAR-B"]


def test_ship_pair_ties_on_distance_go_to_more_headroom() -> None:
    pool = [
        loc("A-TIGHT", {"A": 3}, km=5, capacity=5, open_=4),
        loc("A-ROOMY", {"A": 3}, km=5, capacity=50),
        loc("B", {"B": 3}, km=5),
    ]
    plan = plan_sourcing(ship(line("1", "A", 3), line("2", "B", 3)), pool, DEFAULT)
    assert sorted(plan.locations) == ["A-ROOMY", "B"]


def test_ship_pair_treats_unlimited_capacity_as_the_most_headroom() -> None:
    pool = [
        loc("A-LIMITED", {"A": 3}, km=5, capacity=50),
        loc("A-UNLIMITED", {"A": 3}, km=5, capacity=None),
        loc("B", {"B": 3}, km=5, capacity=10),
    ]
    plan = plan_sourcing(ship(line("1", "A", 3), line("2", "B", 3)), pool, DEFAULT)
    assert sorted(plan.locations) == ["A-UNLIMITED", "B"]


def test_ship_plan_does_not_depend_on_the_order_candidates_are_listed_in() -> None:
    pool = [loc(f"S-{i}", {"A": 1 + i % 3, "B": i % 2 * 2}, km=5 * (i % 4)) for i in range(12)]
    request = ship(line("1", "A", 4), line("2", "B", 3))
    expected = plan_sourcing(request, pool, DEFAULT)
    shuffled = list(pool)
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert plan_sourcing(request, shuffled, DEFAULT) == expected


def test_plan_locations_lists_each_location_once_in_allocation_order() -> None:
    plan = SourcingPlan(
        Rule.SHIP_SPLIT,
        (Allocation("X", "1", "A", 1), Allocation("Y", "2", "B", 1), Allocation("X", "3", "C", 1)),
        (),
    )
    assert plan.locations == ["X", "Y"]
    assert plan.complete


# ---------------------------------------------------------------------------------------------
# Properties over random candidate pools and orders
# ---------------------------------------------------------------------------------------------

SKUS = ["A", "B", "C", "D"]
# A few shared points (and "unknown") so that distance ties are common.
POINTS = [None, HOME, at(5), at(5), at(40), Coordinates(0.3, 0.1), Coordinates(-0.2, 0.4)]
CAPABILITIES = ["pickup", "curbside", "ship"]


# Drawn whole (one draw each keeps generation fast); repeats weight the common cases.
ALL = frozenset({"pickup", "curbside", "ship"})
CAPABILITY_SETS = [
    ALL,
    ALL,
    ALL,
    frozenset({"ship"}),
    frozenset({"ship"}),
    frozenset({"pickup", "ship"}),
    frozenset({"pickup"}),
    frozenset({"curbside"}),
    frozenset(),
]
STOCK = st.sampled_from([3, 5, 8, 2, 1, 4, 6, 0, None, -2])  # None: no stock row for the sku


def _candidate(i: int, fields: tuple) -> Candidate:
    coordinates, caps, stock, capacity, open_count = fields
    available = {sku: q for sku, q in zip(SKUS, stock, strict=True) if q is not None}
    return Candidate(f"L{i}", coordinates, caps, available, capacity, open_count)


candidate_fields = st.tuples(
    st.sampled_from(POINTS),
    st.sampled_from(CAPABILITY_SETS),
    st.tuples(*[STOCK] * len(SKUS)),
    st.sampled_from([None, None, None, 6, 3, 1, 0]),  # daily capacity
    st.sampled_from([0, 0, 1, 3]),  # open fulfillments
)


@st.composite
def candidate_pools(draw) -> list[Candidate]:
    fields = draw(st.lists(candidate_fields, min_size=1, max_size=8))
    return [_candidate(i, f) for i, f in enumerate(fields)]


line_fields = st.tuples(
    st.sampled_from(SKUS),
    st.sampled_from([1, 2, 3, 1, 2, 5, 7, 0]),
    st.sampled_from([100, 50, 250, 0]),
)


@st.composite
def orders(draw) -> tuple[LineDemand, ...]:
    fields = draw(st.lists(line_fields, min_size=1, max_size=3))
    return tuple(LineDemand(f"line-{i}", sku, qty, price) for i, (sku, qty, price) in enumerate(fields))


@st.composite
def scenarios(draw, methods: Iterable[Method] = tuple(Method), floors: Iterable[int] = (0, 0, 100, 300)):
    pool = draw(candidate_pools())
    lines = draw(orders())
    method = draw(st.sampled_from(list(methods)))
    codes = [c.code for c in pool]
    excluded = draw(st.frozensets(st.sampled_from(codes), max_size=2))
    store = draw(st.sampled_from([*codes, "MISSING"])) if method is not Method.SHIP else None
    destination = draw(st.one_of(st.none(), st.just(HOME), st.just(Coordinates(0.5, -0.5))))
    request = SourcingRequest(lines, method, pickup_location=store, destination=destination, excluded=excluded)
    profile = SourcingProfile(
        on_pickup_shortfall=draw(st.sampled_from(list(PickupShortfall))),
        min_split_line_value=draw(st.sampled_from(list(floors))),
        suggestion_limit=draw(st.integers(min_value=0, max_value=4)),
    )
    return request, pool, profile


@st.composite
def split_scenarios(draw):
    """Big lines of two skus over locations holding part of them: lines get split, or refused."""
    stock = st.sampled_from([0, 2, 3, 4, 5, 6, 8, 9])
    pool = [
        Candidate(f"L{i}", draw(st.sampled_from(POINTS)), ALL, {"A": draw(stock), "B": draw(stock)})
        for i in range(draw(st.integers(min_value=2, max_value=6)))
    ]
    lines = tuple(
        LineDemand(
            f"line-{i}",
            sku,
            draw(st.integers(min_value=4, max_value=14)),
            draw(st.sampled_from([50, 100, 250])),
        )
        for i, sku in enumerate(draw(st.sampled_from([["A"], ["A", "B"], ["A", "A"]])))
    )
    method = draw(st.sampled_from([Method.SHIP, Method.SHIP, Method.PICKUP, Method.TRANSFER]))
    store = "L0" if method is not Method.SHIP else None
    request = SourcingRequest(lines, method, pickup_location=store, destination=HOME)
    floor = draw(st.sampled_from([100, 200, 300, 500]))
    return (
        request,
        pool,
        SourcingProfile(on_pickup_shortfall=PickupShortfall.TRANSFER, min_split_line_value=floor),
    )


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def demand_of(request: SourcingRequest) -> dict[str, int]:
    return {ln.line_key: ln.quantity for ln in request.lines if ln.quantity > 0}


def headroom_ok(c: Candidate) -> bool:
    return c.headroom is None or c.headroom > 0


def need_per_sku(request: SourcingRequest) -> dict[str, int]:
    need: dict[str, int] = defaultdict(int)
    for ln in request.lines:
        if ln.quantity > 0:
            need[ln.sku] += ln.quantity
    return need


def ship_eligible(c: Candidate, request: SourcingRequest) -> bool:
    return c.code not in request.excluded and "ship" in c.capabilities and headroom_ok(c)


@PROPERTY
@given(scenarios())
def test_property_a_plan_never_allocates_more_than_a_location_has_of_a_sku(scenario) -> None:
    request, pool, profile = scenario
    plan = plan_sourcing(request, pool, profile)
    by_code = {c.code: c for c in pool}
    used: dict[tuple[str, str], int] = defaultdict(int)
    for a in plan.allocations:
        assert a.quantity > 0
        used[(a.location, a.sku)] += a.quantity
    for (code, sku), quantity in used.items():
        assert quantity <= by_code[code].available.get(sku, 0), (code, sku)


@PROPERTY
@given(scenarios())
def test_property_allocations_and_unfilled_account_for_every_line_exactly(scenario) -> None:
    request, pool, profile = scenario
    plan = plan_sourcing(request, pool, profile)
    demand = demand_of(request)
    sku_of = {ln.line_key: ln.sku for ln in request.lines}
    for a in plan.allocations:
        assert a.sku == sku_of[a.line_key]
    if plan.complete:
        allocated: dict[str, int] = defaultdict(int)
        for a in plan.allocations:
            allocated[a.line_key] += a.quantity
        assert dict(allocated) == demand
    else:
        assert plan.allocations == ()
        assert set(plan.unfilled) <= set(demand)
        assert all(0 < plan.unfilled[k] <= demand[k] for k in plan.unfilled)


@PROPERTY
@given(scenarios())
def test_property_a_plan_never_uses_an_excluded_incapable_or_full_location(scenario) -> None:
    request, pool, profile = scenario
    plan = plan_sourcing(request, pool, profile)
    by_code = {c.code: c for c in pool}
    for a in plan.allocations:
        c = by_code[a.location]
        assert a.location not in request.excluded
        if a.transfer_to is None and request.method.is_pickup:
            # Collected at the chosen store (or, moved, at the one holding all of it): capability
            # needed, capacity is not.
            if plan.rule is Rule.PICKUP_MOVED:
                assert profile.on_pickup_shortfall is PickupShortfall.MOVE
                assert a.location != request.pickup_location
            else:
                assert a.location == request.pickup_location
            assert request.method.capability in c.capabilities
        else:
            assert ship_eligible(c, request)
            if request.method is not Method.SHIP:
                assert a.transfer_to == request.pickup_location != a.location
            else:
                assert a.transfer_to is None


@PROPERTY
@given(st.one_of(split_scenarios(), scenarios()))
def test_property_no_part_of_a_split_line_is_worth_less_than_the_minimum(scenario) -> None:
    request, pool, profile = scenario
    plan = plan_sourcing(request, pool, profile)
    price = {ln.line_key: ln.unit_price for ln in request.lines}
    parts: dict[str, list[Allocation]] = defaultdict(list)
    for a in plan.allocations:
        parts[a.line_key].append(a)
    for key, allocations in parts.items():
        if len({a.location for a in allocations}) > 1:
            for a in allocations:
                assert a.quantity * price[key] >= profile.min_split_line_value, (key, allocations)


@PROPERTY
@given(scenarios())
def test_property_suggestions_can_each_serve_the_whole_order(scenario) -> None:
    request, pool, profile = scenario
    plan = plan_sourcing(request, pool, profile)
    assert len(plan.suggestions) <= profile.suggestion_limit
    assert len(set(plan.suggestions)) == len(plan.suggestions)
    by_code = {c.code: c for c in pool}
    need = need_per_sku(request)
    capability = request.method.capability if request.method.is_pickup else "pickup"
    for code in plan.suggestions:
        c = by_code[code]
        assert code not in request.excluded
        assert capability in c.capabilities
        assert all(c.available.get(sku, 0) >= q for sku, q in need.items()), code


@PROPERTY
@given(scenarios(methods=[Method.SHIP]))
def test_property_ship_uses_the_best_single_location_whenever_one_has_everything(scenario) -> None:
    request, pool, profile = scenario
    plan = plan_sourcing(request, pool, profile)
    need = need_per_sku(request)
    if not need:
        return
    whole = [c for c in pool if ship_eligible(c, request) and all(c.available.get(s, 0) >= q for s, q in need.items())]
    if not whole:
        assert plan.rule is not Rule.SHIP_SINGLE
        return

    def rank(c: Candidate):
        d = distance_km(request.destination, c.coordinates) if request.destination and c.coordinates else math.inf
        return (d, -(c.headroom if c.headroom is not None else 10**9), c.code)

    assert plan.rule is Rule.SHIP_SINGLE
    assert plan.locations == [min(whole, key=rank).code]


@PROPERTY
@given(scenarios(methods=[Method.SHIP], floors=[0]))
def test_property_without_a_minimum_ship_is_complete_exactly_when_stock_suffices(scenario) -> None:
    request, pool, profile = scenario
    plan = plan_sourcing(request, pool, profile)
    need = need_per_sku(request)
    total = {sku: sum(max(0, c.available.get(sku, 0)) for c in pool if ship_eligible(c, request)) for sku in need}
    short = {sku: q - total[sku] for sku, q in need.items() if q > total[sku]}
    assert plan.complete == (not short)
    unfilled_by_sku: dict[str, int] = defaultdict(int)
    sku_of = {ln.line_key: ln.sku for ln in request.lines}
    for key, q in plan.unfilled.items():
        unfilled_by_sku[sku_of[key]] += q
    assert dict(unfilled_by_sku) == short


@PROPERTY
@given(scenarios(methods=[Method.SHIP], floors=[0]))
def test_property_ship_uses_two_locations_whenever_two_suffice_and_one_does_not(scenario) -> None:
    request, pool, profile = scenario
    plan = plan_sourcing(request, pool, profile)
    need = need_per_sku(request)
    eligible = [c for c in pool if ship_eligible(c, request)]

    def covers(*cs: Candidate) -> bool:
        return all(sum(max(0, c.available.get(s, 0)) for c in cs) >= q for s, q in need.items())

    if not need or any(covers(c) for c in eligible):
        return
    if any(covers(a, b) for i, a in enumerate(eligible) for b in eligible[i + 1 :]):
        assert plan.complete
        assert len(plan.locations) == 2


@PROPERTY
@given(scenarios(), st.randoms(use_true_random=False))
def test_property_the_plan_does_not_depend_on_candidate_order(scenario, rnd) -> None:
    request, pool, profile = scenario
    shuffled = list(pool)
    rnd.shuffle(shuffled)
    assert plan_sourcing(request, shuffled, profile) == plan_sourcing(request, pool, profile)


@PROPERTY
@given(scenarios(methods=[Method.PICKUP, Method.CURBSIDE]))
def test_property_pickup_places_everything_at_the_store_when_it_has_everything(scenario) -> None:
    request, pool, profile = scenario
    plan = plan_sourcing(request, pool, profile)
    store = next((c for c in pool if c.code == request.pickup_location), None)
    need = need_per_sku(request)
    if (
        need
        and store is not None
        and store.code not in request.excluded
        and request.method.capability in store.capabilities
        and all(store.available.get(s, 0) >= q for s, q in need.items())
    ):
        assert plan.rule is Rule.PICKUP_AT_STORE
        assert plan.locations == [store.code]
    else:
        assert plan.rule is not Rule.PICKUP_AT_STORE
