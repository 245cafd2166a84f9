"""What each capture of an order's payment charges: one rule for how shipping, tax and discount
split across captures.

Money follows the goods. The goods handed over or shipped so far are worth ``V`` (quantity × unit
price of those units); the order's goods are worth ``S`` (its subtotal) and it costs ``T`` (its
total: subtotal + shipping + tax − discount). What is due for them is

    due(V) = floor(V × T / S)

— their value plus their share of shipping, tax and discount, in proportion to their value over
the subtotal, rounded down. A capture charges what became due since the captures before it:
``due(V_before + V_now) − due(V_before)``. So:

- captures are never negative (``due`` only grows with ``V``: ``T ≥ 0`` because a discount never
  exceeds subtotal + shipping + tax) and never add up to more than ``T``;
- each is within one minor unit of its exact proportional share; the rounding never accumulates,
  and the capture that closes the order's goods takes what is left, so when everything was handed
  over the captures add up to exactly the total (``due(S) = T``);
- units cancelled, expired or never handed over are never charged, nor is their share of
  shipping, tax and discount: nothing makes them due.

An order whose goods are worth nothing (``S = 0``: free samples with a shipping fee) has no
proportion to go by: nothing is due until the capture that closes the order's goods, which takes
the whole total.

Amounts are minor units of the order's currency (``platform.money``: JPY 0 digits, USD 2, BHD 3);
what Stripe is sent for them is ``platform.money.to_stripe_amount``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from orchestrator.platform.money import OrderTotals


class GoodsLine(NamedTuple):
    """Units of one order line handed over or shipped together."""

    quantity: int
    unit_price: int


def goods_value(lines: Iterable[GoodsLine]) -> int:
    return sum(line.quantity * line.unit_price for line in lines)


def due_for(totals: OrderTotals, value: int, *, closes_order: bool = False) -> int:
    """What is due, all captures together, once goods worth ``value`` were handed over."""
    if not 0 <= value <= totals.subtotal:
        raise ValueError(f"goods worth {value} are not part of an order worth {totals.subtotal}")
    if totals.subtotal == 0:
        return totals.total if closes_order else 0
    return value * totals.total // totals.subtotal


def capture_amount(
    totals: OrderTotals,
    lines_now: Iterable[GoodsLine],
    lines_already_captured: Iterable[GoodsLine],
    *,
    closes_order: bool = False,
) -> int:
    """What the capture for ``lines_now`` charges, after captures for ``lines_already_captured``
    (the module's rule). ``closes_order``: no open fulfillment is left after this one (only
    needed for an order whose goods are worth nothing)."""
    before = goods_value(lines_already_captured)
    after = before + goods_value(lines_now)
    return due_for(totals, after, closes_order=closes_order) - due_for(totals, before)
