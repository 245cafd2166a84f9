"""The effects of one fulfillment, collected while a transition works them out, and frozen into
its ``Outcome`` at the end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.fulfillment.model import (
    Fulfillment,
    Line,
    LineChange,
    MoveKind,
    OrderLineChange,
    Outcome,
    Shortage,
    StockMove,
)
from orchestrator.order_record.states import Status
from orchestrator.platform.events import EventType, OrderEventDraft


@dataclass
class Effects:
    fo: Fulfillment
    fields: dict[str, object] = field(default_factory=dict)
    moves: list[StockMove] = field(default_factory=list)
    shortages: list[Shortage] = field(default_factory=list)
    events: list[OrderEventDraft] = field(default_factory=list)
    closed: list[Outcome] = field(default_factory=list)
    _lines: dict[uuid.UUID, Line] = field(default_factory=dict)
    _changes: dict[uuid.UUID, LineChange] = field(default_factory=dict)
    _order_lines: dict[uuid.UUID, OrderLineChange] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lines = {ln.id: ln for ln in self.fo.lines}

    @property
    def lines(self) -> list[Line]:
        """The lines with the quantities changed so far."""
        return list(self._lines.values())

    def change(self, line: Line, *, picked: int = 0, cancelled: int = 0, handed_over: int = 0) -> None:
        now = self._lines[line.id]
        self._lines[line.id] = replace(
            now,
            picked=now.picked + picked,
            cancelled=now.cancelled + cancelled,
            handed_over=now.handed_over + handed_over,
        )
        was = self._changes.get(line.id, LineChange(line.id))
        self._changes[line.id] = LineChange(
            line.id, was.picked + picked, was.cancelled + cancelled, was.handed_over + handed_over
        )

    def change_order_line(self, order_line_id: uuid.UUID, *, fulfilled: int = 0, cancelled: int = 0) -> None:
        was = self._order_lines.get(order_line_id, OrderLineChange(order_line_id))
        self._order_lines[order_line_id] = replace(
            was, fulfilled=was.fulfilled + fulfilled, cancelled=was.cancelled + cancelled
        )

    def move(self, kind: MoveKind, line: Line, quantity: int, reason: str = "") -> None:
        if quantity > 0:
            self.moves.append(StockMove(kind, line.id, self.fo.location_id, quantity, reason))

    def event(
        self, type_: EventType, data: dict[str, Any] | None = None, private: dict[str, Any] | None = None
    ) -> None:
        base = {"fulfillment_id": str(self.fo.id), "location": self.fo.location, "method": self.fo.method.value}
        self.events.append(OrderEventDraft(type_, {**base, **(data or {})}, private or {}))

    def outcome(self, state: Status, error_after_commit: Exception | None = None) -> Outcome:
        return Outcome(
            self.fo.id,
            state,
            dict(self.fields),
            tuple(c for c in self._changes.values() if c.picked or c.cancelled or c.handed_over),
            tuple(c for c in self._order_lines.values() if c.fulfilled or c.cancelled or c.unsourced),
            tuple(self.moves),
            tuple(self.shortages),
            tuple(self.events),
            tuple(self.closed),
            error_after_commit,
        )
