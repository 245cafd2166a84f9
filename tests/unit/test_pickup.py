"""Pickup codes, the wrong-code lockout and the uncollected-order clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.pickup import (
    CODE_DIGITS,
    PickupGuard,
    codes_match,
    new_pickup_code,
    pickup_code_digest,
    pickup_deadline,
    reminder_at,
)

SECRET = "server-secret"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_a_pickup_code_is_six_digits() -> None:
    assert CODE_DIGITS == 6
    codes = [new_pickup_code() for _ in range(500)]
    assert all(re.fullmatch(r"\d{6}", code) for code in codes)


def test_pickup_codes_keep_leading_zeros_and_vary() -> None:
    codes = {new_pickup_code() for _ in range(2000)}
    assert len(codes) > 1900  # a million possibilities: collisions in 2,000 draws are rare
    assert any(code.startswith("0") for code in codes)


def test_the_digest_is_a_keyed_hmac_not_the_code() -> None:
    digest = pickup_code_digest(SECRET, 12, "042137")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert "042137" not in digest
    assert digest == pickup_code_digest(SECRET, 12, "042137")


def test_the_digest_differs_per_location() -> None:
    assert pickup_code_digest(SECRET, 1, "123456") != pickup_code_digest(SECRET, 2, "123456")


def test_the_digest_differs_per_secret() -> None:
    assert pickup_code_digest("a", 1, "123456") != pickup_code_digest("b", 1, "123456")


def test_the_digest_differs_per_code() -> None:
    assert pickup_code_digest(SECRET, 1, "123456") != pickup_code_digest(SECRET, 1, "123457")


def test_the_digest_ignores_surrounding_whitespace_in_the_code() -> None:
    assert pickup_code_digest(SECRET, 7, " 123456\n") == pickup_code_digest(SECRET, 7, "123456")


def test_the_location_and_code_cannot_be_shifted_into_each_other() -> None:
    # "1:23456" vs "12:3456" would collide if the parts were simply concatenated.
    assert pickup_code_digest(SECRET, 1, "23456") != pickup_code_digest(SECRET, 12, "3456")


def test_codes_match_the_right_code_at_the_right_location() -> None:
    digest = pickup_code_digest(SECRET, 3, "555123")
    assert codes_match(SECRET, 3, "555123", digest)
    assert codes_match(SECRET, 3, " 555123 ", digest)


def test_codes_do_not_match_a_wrong_code_location_or_secret() -> None:
    digest = pickup_code_digest(SECRET, 3, "555123")
    assert not codes_match(SECRET, 3, "555124", digest)
    assert not codes_match(SECRET, 4, "555123", digest)
    assert not codes_match("other-secret", 3, "555123", digest)
    assert not codes_match(SECRET, 3, "", digest)


def test_codes_never_match_when_no_code_was_issued() -> None:
    assert not codes_match(SECRET, 3, "555123", None)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=10**6 - 1), st.integers(min_value=1, max_value=10**6))
def test_property_a_code_matches_only_its_own_digest(number: int, location: int) -> None:
    code = f"{number:06d}"
    digest = pickup_code_digest(SECRET, location, code)
    assert codes_match(SECRET, location, code, digest)
    assert not codes_match(SECRET, location, f"{(number + 1) % 10**6:06d}", digest)


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
