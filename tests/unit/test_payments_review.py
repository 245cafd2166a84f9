"""Review of issue 9: a remainder Stripe cannot charge in the order's currency is never sent, and
never crashes the authorisation sweep."""

from __future__ import annotations

import uuid

from orchestrator.orders.authorisation_timers import reauthorise
from orchestrator.payments.expiry import Reauthorise


class NoCalls:
    """A gateway that must not be asked."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the gateway was asked: {name}")


async def test_a_remainder_stripe_cannot_charge_is_left_to_the_counter():
    due = Reauthorise(uuid.uuid4(), uuid.uuid4(), "pi_1", 1003, "BHD")  # BHD: the last digit must be 0
    assert await reauthorise(None, NoCalls(), None, due) is False  # type: ignore[arg-type]
