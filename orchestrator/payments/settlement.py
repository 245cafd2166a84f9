"""What a change to an order's goods makes due on its card payment: captures queued (or held for
the last open fulfillment) and voids. Pure: the fulfillment runner's persistence asks it in the
change's own transaction and writes what it answers (``payments/captures.py``); the worker runs
the queued operations later, so a handover never waits on the processor.

- With multicapture, each handover or shipment queues a capture of the value it made due
  (``model.capture_amount``); the one that closes the order's last open fulfillment is final.
- Without it, a partial capture would release the rest: each handover's capture is *held* until
  the last open fulfillment closes (handed over, shipped, cancelled or expired), then every held
  capture is queued and the worker captures them in one final call.
- With multicapture, when the last open fulfillment closes by a cancel, an expiry or a rejection
  after non-final captures, nothing is left to capture the rest finally: the rest of the
  authorisation is *released* (Stripe: the PaymentIntent, still ``requires_capture``, is
  cancelled, which frees its ``amount_capturable``; what was captured stays captured).
- An order that closes with nothing ever handed over or shipped is voided. Units cancelled,
  expired or rejected are never charged: nothing makes them due.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.payments.model import GoodsLine, due_for, goods_value
from orchestrator.platform.money import OrderTotals


@dataclass(frozen=True, slots=True)
class GoodsMoved:
    """Units of one fulfillment handed over or shipped in one change."""

    fulfillment_id: uuid.UUID
    lines: tuple[GoodsLine, ...]


@dataclass(frozen=True, slots=True)
class NewCapture:
    fulfillment_id: uuid.UUID | None
    amount: int
    held: bool  # waits for the last open fulfillment to close (no multicapture)


@dataclass(frozen=True, slots=True)
class Due:
    captures: tuple[NewCapture, ...] = ()
    release_held: bool = False  # the last open fulfillment closed: held captures are queued
    void: bool = False
    # The rest of a partly captured authorisation is let go (multicapture, closed by a cancel).
    release_rest: bool = False


def due_after_change(
    totals: OrderTotals,
    *,
    multicapture: bool,
    before: Sequence[GoodsLine],
    moved: Sequence[GoodsMoved],
    closes: bool,
    requested: int,
    voided: bool = False,
    holds_rest: bool = False,
) -> Due:
    """``before``: the goods handed over or shipped before this change; ``moved``: by it;
    ``closes``: no open fulfillment is left after it; ``requested``: what the payment's captures
    so far (queued, held, done or refused) asked for; ``voided``: a void (or release) is already
    queued; ``holds_rest``: the payment's captures so far were all non-final and all ran, so the
    processor still holds the rest of the authorisation (a capture still to run is final when it
    runs after the last fulfillment closed, and releases the rest itself).

    Each new capture asks what became due (``model.due_for``) minus what was asked before, so a
    change that moves nothing (a delivery after the shipment) asks nothing again."""
    captures: list[NewCapture] = []
    value = goods_value(before)
    # Units, not their value: free goods handed over are goods handed over.
    anything = any(g.quantity for g in before) or any(g.quantity for m in moved for g in m.lines)
    for index, goods in enumerate(moved):
        value += goods_value(goods.lines)
        target = due_for(totals, value, closes_order=closes and index == len(moved) - 1)
        if target > requested:
            captures.append(NewCapture(goods.fulfillment_id, target - requested, held=not multicapture and not closes))
            requested = target
    if closes and not moved and anything:
        # Closed by a cancel or an expiry: only an order whose goods are worth nothing owes its
        # total only now (``due_for``'s closing rule).
        target = due_for(totals, value, closes_order=True)
        if target > requested:
            captures.append(NewCapture(None, target - requested, held=False))
    void = closes and not anything and not requested and not voided
    release_rest = multicapture and closes and not captures and holds_rest and not voided
    return Due(tuple(captures), release_held=closes and not multicapture, void=void, release_rest=release_rest)
