"""The requests a fulfillment's transitions take, one per action, and what a transition knows
besides them (who acts, when, the pickup-code secret)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from orchestrator.fulfillment.model import Action
from orchestrator.fulfillment.pickup import PickupGuard
from orchestrator.platform.actors import Actor


class NotDue(Exception):
    """The timer fired early (clock skew, a rescheduled deadline): nothing to do yet."""


@dataclass(frozen=True)
class Context:
    actor: Actor
    now: datetime
    secret: str  # keys the pickup codes
    guard: PickupGuard = PickupGuard()


# --- Requests: one per action ----------------------------------------------------------------


@dataclass(frozen=True)
class Accept:
    action: ClassVar[Action] = Action.ACCEPT


@dataclass(frozen=True)
class Reject:
    reason: str
    action: ClassVar[Action] = Action.REJECT


@dataclass(frozen=True)
class StartPicking:
    action: ClassVar[Action] = Action.START_PICKING


@dataclass(frozen=True)
class Pick:
    """``found``: fulfillment line id → units found. Fewer than reserved here is a short pick."""

    found: Mapping[uuid.UUID, int]
    action: ClassVar[Action] = Action.PICK


@dataclass(frozen=True)
class MarkReady:
    action: ClassVar[Action] = Action.READY


@dataclass(frozen=True)
class Pack:
    action: ClassVar[Action] = Action.PACK


@dataclass(frozen=True)
class Ship:
    carrier: str
    tracking_number: str
    action: ClassVar[Action] = Action.SHIP


@dataclass(frozen=True)
class Deliver:
    action: ClassVar[Action] = Action.DELIVER


@dataclass(frozen=True)
class CounterTender:
    """Paid at the counter with the handover (minor units; ``payments/tenders.py`` decides)."""

    amount: int
    method: str  # cash | card | other
    reference: str | None = None


@dataclass(frozen=True)
class HandOver:
    """Against the pickup code, or without it on a recorded override; ``units`` (line id →
    quantity) hands over part, None everything picked; ``tender``: paid at the counter."""

    code: str | None = None
    override_reason: str | None = None
    units: Mapping[uuid.UUID, int] | None = None
    tender: CounterTender | None = None
    action: ClassVar[Action] = Action.HANDOVER


@dataclass(frozen=True)
class Cancel:
    reason: str = "cancelled by the store"
    action: ClassVar[Action] = Action.CANCEL


@dataclass(frozen=True)
class Expire:
    action: ClassVar[Action] = Action.EXPIRE


@dataclass(frozen=True)
class Remind:
    ahead: timedelta  # how long before the deadline the customer is reminded
    action: ClassVar[Action] = Action.REMIND


TransitionRequest = (
    Accept | Reject | StartPicking | Pick | MarkReady | Pack | Ship | Deliver | HandOver | Cancel | Expire | Remind
)
