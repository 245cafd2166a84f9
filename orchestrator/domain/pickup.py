"""Pickup codes and the uncollected-order clock.

A code is six digits: short enough to read out at a counter, so it is stored only as an HMAC
keyed by the server secret (a plain hash of a six-digit number is reversed in milliseconds),
and guessing is cut short by a lockout.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256

CODE_DIGITS = 6


def new_pickup_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def pickup_code_digest(secret: str, location_id: int, code: str) -> str:
    """Keyed per location, so "unique among the store's open pickups" is a unique index."""
    message = f"{location_id}:{code.strip()}".encode()
    return hmac.new(secret.encode(), message, sha256).hexdigest()


def codes_match(secret: str, location_id: int, code: str, digest: str | None) -> bool:
    if digest is None:
        return False
    return hmac.compare_digest(pickup_code_digest(secret, location_id, code), digest)


@dataclass(frozen=True, slots=True)
class PickupGuard:
    """Wrong codes are counted; after ``max_failures`` the pickup locks for ``lockout``."""

    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)

    def is_locked(self, locked_until: datetime | None, now: datetime) -> bool:
        return locked_until is not None and now < locked_until

    def after_failure(self, failures: int, now: datetime) -> tuple[int, datetime | None]:
        """(failures to store, locked_until to store) after one more wrong code."""
        failures += 1
        if failures >= self.max_failures:
            return 0, now + self.lockout
        return failures, None


def pickup_deadline(ready_at: datetime, hold_days: int) -> datetime:
    return ready_at + timedelta(days=hold_days)


def reminder_at(deadline: datetime, ahead: timedelta, ready_at: datetime) -> datetime:
    """A reminder ``ahead`` of the deadline, but never before the order was ready."""
    return max(ready_at, deadline - ahead)
