"""The expected-ready rule (``sourcing/ready_time.py``): a location's preparation time, plus the
profile's transfer time for a pickup that waits for stock to travel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.order_record.states import Method
from orchestrator.sourcing.model import (
    DEFAULT_PREP_MINUTES,
    DEFAULT_TRANSFER_HOURS,
    Allocation,
    Rule,
    SourcingPlan,
    SourcingProfile,
    profile_from_row,
)
from orchestrator.sourcing.ready_time import expected_ready_at, plan_ready_times

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def plan(*allocations: Allocation) -> SourcingPlan:
    return SourcingPlan(Rule.PICKUP_WITH_TRANSFER, allocations, ())


@pytest.mark.parametrize("method", list(Method))
def test_from_the_shelf_it_is_the_location_prep_time(method):
    assert expected_ready_at(method, NOW, prep_minutes=45, transfer_hours=24) == NOW + timedelta(minutes=45)


@pytest.mark.parametrize("method", [Method.PICKUP, Method.CURBSIDE])
def test_a_pickup_waiting_for_a_transfer_adds_the_transfer_hours(method):
    got = expected_ready_at(method, NOW, prep_minutes=30, transfer_hours=6, awaits_transfer=True)
    assert got == NOW + timedelta(hours=6, minutes=30)


@pytest.mark.parametrize("method", [Method.SHIP, Method.TRANSFER])
def test_only_a_pickup_waits_for_travel(method):
    got = expected_ready_at(method, NOW, prep_minutes=30, transfer_hours=6, awaits_transfer=True)
    assert got == NOW + timedelta(minutes=30)


def test_a_pickup_plan_with_a_transfer_times_the_pickup_and_each_transfer():
    p = plan(
        Allocation("S1", "1", "A", 1),
        Allocation("S2", "1", "A", 2, transfer_to="S1"),
        Allocation("S3", "2", "B", 1, transfer_to="S1"),
    )
    times = plan_ready_times(p, Method.PICKUP, NOW, prep_minutes={"S1": 30, "S2": 45, "S3": 0}, transfer_hours=24)
    assert times == {
        ("S1", None): NOW + timedelta(hours=24, minutes=30),
        ("S2", "S1"): NOW + timedelta(minutes=45),
        ("S3", "S1"): NOW,
    }


def test_a_pickup_the_store_serves_alone_is_its_prep_time():
    p = plan(Allocation("S1", "1", "A", 2), Allocation("S1", "2", "B", 1))
    times = plan_ready_times(p, Method.CURBSIDE, NOW, prep_minutes={"S1": 15}, transfer_hours=24)
    assert times == {("S1", None): NOW + timedelta(minutes=15)}


def test_a_pickup_fed_only_by_transfers_still_waits_for_them():
    # Re-sourcing a short pickup: the plan holds only the transfers into the store.
    p = plan(Allocation("S2", "1", "A", 2, transfer_to="S1"))
    times = plan_ready_times(p, Method.PICKUP, NOW, prep_minutes={"S1": 30, "S2": 45}, transfer_hours=2)
    assert times == {("S1", None): NOW + timedelta(hours=2, minutes=30), ("S2", "S1"): NOW + timedelta(minutes=45)}


def test_a_split_shipment_times_each_location():
    p = SourcingPlan(Rule.SHIP_SPLIT, (Allocation("W1", "1", "A", 1), Allocation("S2", "2", "B", 1)), ())
    times = plan_ready_times(p, Method.SHIP, NOW, prep_minutes={"W1": 240, "S2": 60}, transfer_hours=24)
    assert times == {("W1", None): NOW + timedelta(minutes=240), ("S2", None): NOW + timedelta(minutes=60)}


def test_an_empty_plan_times_nothing():
    assert plan_ready_times(plan(), Method.PICKUP, NOW, prep_minutes={}, transfer_hours=24) == {}


@given(prep=st.integers(0, 43_200), hours=st.integers(0, 720), waits=st.booleans())
def test_never_before_now_and_a_transfer_never_makes_it_sooner(prep, hours, waits):
    got = expected_ready_at(Method.PICKUP, NOW, prep_minutes=prep, transfer_hours=hours, awaits_transfer=waits)
    shelf = expected_ready_at(Method.PICKUP, NOW, prep_minutes=prep, transfer_hours=hours)
    assert NOW <= shelf <= got


def test_the_defaults_and_a_stored_profile_without_a_transfer_time():
    assert (DEFAULT_PREP_MINUTES, DEFAULT_TRANSFER_HOURS) == (120, 24)
    assert SourcingProfile().transfer_hours == DEFAULT_TRANSFER_HOURS
    row = {"version": 3, "on_pickup_shortfall": "ask_customer", "min_split_line_value": 0, "suggestion_limit": 5}
    assert profile_from_row(row).transfer_hours == DEFAULT_TRANSFER_HOURS
    assert profile_from_row({**row, "transfer_hours": 6}).transfer_hours == 6
