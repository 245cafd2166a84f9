"""What happened to an order, as the timeline and the outbox will record it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class OrderEventDraft:
    """``data`` goes on the timeline every channel can read; ``private`` only into the outbox
    message for the customer's notification (a pickup code is shown once, never on the timeline).
    """

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)
