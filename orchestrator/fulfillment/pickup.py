"""Pickup codes and the uncollected-order clock.

A code is six digits: short enough to read out at a counter. It is derived, never stored: an
HMAC keyed by the server secret over the pickup's id and the code's issue number, recomputed to
check what the customer shows. A database dump holds neither the code nor anything that reveals
it without the secret; the code survives the pickup moving to another store (the location is not
part of it); a new issue number is a new code. Guessing is cut short by a lockout.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256

CODE_DIGITS = 6


def pickup_code(secret: str, pickup_id: object, issue: int) -> str:
    """The code of issue ``issue`` (1, 2, ...) of the pickup ``pickup_id``."""
    if issue < 1:
        raise ValueError("a pickup code is issued from 1 on")
    mac = hmac.new(secret.encode(), f"pickup-code\x00{pickup_id}\x00{issue}".encode(), sha256).digest()
    # 64 bits reduced mod 10**6: the bias (2**64 mod 10**6 of 2**64) is below 1e-13.
    return f"{int.from_bytes(mac[:8], 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"


def code_matches(secret: str, pickup_id: object, issue: int, offered: str | None) -> bool:
    """Whether ``offered`` is the pickup's current code; no code is issued while ``issue`` is 0."""
    if issue < 1 or not offered:
        return False
    return hmac.compare_digest(pickup_code(secret, pickup_id, issue).encode(), offered.strip().encode())


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
