"""Pickup codes, the wrong-code lockout and the uncollected-order clock."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.fulfillment.pickup import (
    CODE_DIGITS,
    PickupGuard,
    code_matches,
    pickup_code,
    pickup_deadline,
    reminder_at,
)

SECRET = "server-secret"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PICKUP = uuid.UUID("7f0c1a52-93c4-4d1e-9a55-0c4bd1f8e001")


def test_a_pickup_code_is_six_digits_keeping_leading_zeros_and_varies_per_pickup() -> None:
    assert CODE_DIGITS == 6
    codes = [pickup_code(SECRET, uuid.UUID(int=n), 1) for n in range(2000)]
    assert all(re.fullmatch(r"\d{6}", code) for code in codes)
    assert len(set(codes)) > 1990  # a million possibilities: collisions in 2,000 are rare
    assert any(code.startswith("0") for code in codes)


def test_the_code_is_derived_the_same_every_time() -> None:
    assert pickup_code(SECRET, PICKUP, 1) == pickup_code(SECRET, PICKUP, 1)
    assert pickup_code(SECRET, PICKUP, 1) == pickup_code(SECRET, str(PICKUP), 1)


def test_the_code_differs_per_issue_pickup_and_secret() -> None:
    code = pickup_code(SECRET, PICKUP, 1)
    assert pickup_code(SECRET, PICKUP, 2) != code
    assert pickup_code(SECRET, uuid.UUID(int=PICKUP.int + 1), 1) != code
    assert pickup_code("other-secret", PICKUP, 1) != code


def test_no_code_exists_before_the_first_issue() -> None:
    with pytest.raises(ValueError):
        pickup_code(SECRET, PICKUP, 0)
    assert not code_matches(SECRET, PICKUP, 0, pickup_code(SECRET, PICKUP, 1))


def test_the_code_matches_its_pickup_and_issue_ignoring_surrounding_whitespace() -> None:
    code = pickup_code(SECRET, PICKUP, 3)
    assert code_matches(SECRET, PICKUP, 3, code)
    assert code_matches(SECRET, PICKUP, 3, f" {code}\n")


def test_the_code_does_not_match_another_issue_pickup_secret_or_nothing() -> None:
    code = pickup_code(SECRET, PICKUP, 3)
    assert not code_matches(SECRET, PICKUP, 4, code)
    assert not code_matches(SECRET, uuid.uuid4(), 3, code)
    assert not code_matches("other-secret", PICKUP, 3, code)
    assert not code_matches(SECRET, PICKUP, 3, "")
    assert not code_matches(SECRET, PICKUP, 3, None)


@settings(max_examples=100, deadline=None)
@given(st.uuids(), st.integers(min_value=1, max_value=1000))
def test_property_only_the_derived_code_matches(pickup: uuid.UUID, issue: int) -> None:
    code = pickup_code(SECRET, pickup, issue)
    assert code_matches(SECRET, pickup, issue, code)
    assert not code_matches(SECRET, pickup, issue, f"{(int(code) + 1) % 10**6:06d}")


def test_guard_counts_wrong_codes_without_locking_before_the_fifth() -> None:
    guard = PickupGuard()
    failures = 0
    for expected in range(1, 5):
        failures, locked_until = guard.after_failure(failures, NOW)
        assert failures == expected
        assert locked_until is None


def test_guard_locks_for_fifteen_minutes_after_five_wrong_codes() -> None:
    guard = PickupGuard()
    failures, locked_until = guard.after_failure(4, NOW)
    assert locked_until == NOW + timedelta(minutes=15)
    assert failures == 0  # the count starts again once the lockout has passed


def test_guard_defaults_are_five_failures_and_fifteen_minutes() -> None:
    assert PickupGuard().max_failures == 5
    assert PickupGuard().lockout == timedelta(minutes=15)


def test_guard_walks_five_failures_into_a_lockout() -> None:
    guard = PickupGuard()
    failures, locked_until = 0, None
    for _ in range(5):
        failures, locked_until = guard.after_failure(failures, NOW)
    assert locked_until == NOW + timedelta(minutes=15)
    assert guard.is_locked(locked_until, NOW)


def test_guard_honours_custom_limits() -> None:
    guard = PickupGuard(max_failures=2, lockout=timedelta(minutes=1))
    assert guard.after_failure(0, NOW) == (1, None)
    assert guard.after_failure(1, NOW) == (0, NOW + timedelta(minutes=1))


def test_a_pickup_is_locked_until_the_lockout_ends() -> None:
    guard = PickupGuard()
    until = NOW + timedelta(minutes=15)
    assert guard.is_locked(until, NOW)
    assert guard.is_locked(until, until - timedelta(microseconds=1))
    assert not guard.is_locked(until, until)
    assert not guard.is_locked(until, until + timedelta(seconds=1))


def test_a_pickup_that_was_never_locked_is_not_locked() -> None:
    assert not PickupGuard().is_locked(None, NOW)


@pytest.mark.parametrize("hold_days", [0, 1, 3, 7, 14])
def test_pickup_deadline_is_ready_time_plus_the_locations_hold_days(hold_days: int) -> None:
    assert pickup_deadline(NOW, hold_days) == NOW + timedelta(days=hold_days)


def test_pickup_deadline_keeps_the_time_zone() -> None:
    assert pickup_deadline(NOW, 3).tzinfo is UTC


def test_reminder_is_sent_ahead_of_the_deadline() -> None:
    deadline = pickup_deadline(NOW, 7)
    assert reminder_at(deadline, timedelta(days=1), NOW) == NOW + timedelta(days=6)


def test_reminder_is_never_before_the_order_was_ready() -> None:
    deadline = pickup_deadline(NOW, 1)
    assert reminder_at(deadline, timedelta(days=2), NOW) == NOW
    assert reminder_at(deadline, timedelta(days=1), NOW) == NOW


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=30), st.integers(min_value=0, max_value=60 * 24 * 40))
def test_property_the_reminder_falls_between_ready_and_deadline(hold_days: int, ahead_minutes: int) -> None:
    deadline = pickup_deadline(NOW, hold_days)
    at = reminder_at(deadline, timedelta(minutes=ahead_minutes), NOW)
    assert NOW <= at <= deadline
    assert at == max(NOW, deadline - timedelta(minutes=ahead_minutes))
