"""What a fulfillment does to stock: consume reservations when picking, release them when a line
goes elsewhere, put picked goods back on the shelf, and receive transfers.

The transitions decide the moves (``model.StockMove``); ``record`` turns each into ledger changes
and reservation edits, and ``apply`` locks the stock rows (``lock_stock``) and applies the changes
in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment.model import MoveKind, StockMove
from orchestrator.inventory.model import MovementKind
from orchestrator.inventory.stock_sql import StockChange, apply_stock_changes, ensure_stock_row, lock_stock
from orchestrator.order_record.tables import FulfillmentOrderLine, Reservation


class StockLedger:
    """Collects the stock effects of one use case, then locks and applies them at once."""

    def __init__(self, session: AsyncSession, reference: str, now: datetime) -> None:
        self.session = session
        self.reference = reference
        self.now = now
        self.changes: list[StockChange] = []
        self._reservations: dict[uuid.UUID, list[Reservation]] | None = None

    async def reservations(self, line_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[Reservation]]:
        """Active reservations per fulfillment line (loaded once per use case)."""
        if self._reservations is None:
            self._reservations = {}
        missing = [i for i in line_ids if i not in self._reservations]
        if missing:
            for i in missing:
                self._reservations[i] = []
            rows = await self.session.execute(
                select(Reservation)
                .where(Reservation.fulfillment_order_line_id.in_(missing), Reservation.status == "active")
                .order_by(Reservation.created_at, Reservation.id)
            )
            for r in rows.scalars():
                self._reservations[r.fulfillment_order_line_id].append(r)
        return self._reservations

    async def record(self, move: StockMove, line: FulfillmentOrderLine) -> None:
        """The ledger changes and reservation edits of one move of ``line``'s product."""
        match move.kind:
            case MoveKind.PICK | MoveKind.TRANSFER_OUT:
                kind = MovementKind.TRANSFER_OUT if move.kind is MoveKind.TRANSFER_OUT else MovementKind.PICK
                await self.consume(move.location_id, line, move.quantity, kind)
            case MoveKind.RELEASE:
                await self.release(line, move.quantity, move.reason)
            case MoveKind.RESTOCK:
                self.restock(move.location_id, line, move.quantity, move.reason)
            case MoveKind.WRITE_OFF:
                self.write_off(move.location_id, line, move.quantity, move.reason)
            case MoveKind.RECEIVE_TRANSFER:
                self.receive_transfer(move.location_id, line, move.quantity)

    async def consume(self, location_id: int, line: FulfillmentOrderLine, quantity: int, kind: MovementKind) -> None:
        """Picked units leave the shelf and the reservation (kind: pick or transfer_out)."""
        await self._take(line, quantity, "consumed")
        self.changes.append(
            StockChange(location_id, line.product_id, kind, -quantity, -quantity, "picked", self.reference)
        )

    async def release(self, line: FulfillmentOrderLine, quantity: int, reason: str) -> None:
        """Reserved units go back to being available where they are."""
        reservations = (await self.reservations([line.id]))[line.id]
        remaining = quantity
        for r in reservations:
            if remaining == 0 or r.status != "active":
                continue
            part = min(r.quantity, remaining)
            self._split(r, part, "released")
            self.changes.append(
                StockChange(r.location_id, r.product_id, MovementKind.RELEASE, 0, -part, reason, self.reference)
            )
            remaining -= part
        if remaining:
            raise AssertionError(f"line {line.id} has {remaining} fewer reserved units than released")

    def restock(self, location_id: int, line: FulfillmentOrderLine, quantity: int, reason: str) -> None:
        """Picked goods that will not leave go back on the shelf."""
        if quantity > 0:
            self.changes.append(
                StockChange(location_id, line.product_id, MovementKind.RESTOCK, quantity, 0, reason, self.reference)
            )

    def write_off(self, location_id: int, line: FulfillmentOrderLine, quantity: int, reason: str) -> None:
        """Units the shelf count promised but that are not there."""
        if quantity > 0:
            self.changes.append(
                StockChange(location_id, line.product_id, MovementKind.ADJUSTMENT, -quantity, 0, reason, self.reference)
            )

    def receive_transfer(self, destination_id: int, pickup_line: FulfillmentOrderLine, quantity: int) -> None:
        """Units arriving at the pickup store are shelved and at once reserved for the order."""
        self.session.add(
            Reservation(
                id=uuid.uuid4(),
                fulfillment_order_line_id=pickup_line.id,
                location_id=destination_id,
                product_id=pickup_line.product_id,
                quantity=quantity,
                status="active",
                created_at=self.now,
            )
        )
        self.changes.append(
            StockChange(
                destination_id,
                pickup_line.product_id,
                MovementKind.TRANSFER_IN,
                quantity,
                quantity,
                "transfer received",
                self.reference,
            )
        )

    async def _take(self, line: FulfillmentOrderLine, quantity: int, status: str) -> None:
        reservations = (await self.reservations([line.id]))[line.id]
        remaining = quantity
        for r in reservations:
            if remaining == 0:
                break
            if r.status != "active":
                continue
            part = min(r.quantity, remaining)
            self._split(r, part, status)
            remaining -= part
        if remaining:
            raise AssertionError(f"line {line.id} has {remaining} fewer reserved units than picked")

    def _split(self, r: Reservation, part: int, status: str) -> None:
        """Mark ``part`` units of ``r`` with ``status``; the rest stays an active reservation."""
        if part < r.quantity:
            rest = Reservation(
                id=uuid.uuid4(),
                fulfillment_order_line_id=r.fulfillment_order_line_id,
                location_id=r.location_id,
                product_id=r.product_id,
                quantity=r.quantity - part,
                status="active",
                expires_at=r.expires_at,
                created_at=r.created_at,
            )
            self.session.add(rest)
            assert self._reservations is not None
            self._reservations[r.fulfillment_order_line_id].append(rest)
        r.quantity = part
        r.status = status
        r.updated_at = self.now

    async def apply(self, actor: str) -> None:
        if not self.changes:
            return
        keys = {(c.location_id, c.product_id) for c in self.changes}
        locked = await lock_stock(self.session, keys)
        for location_id, product_id in sorted(keys - locked.keys()):
            # Goods arriving where the product was never stocked: the row is new, nobody holds it.
            await ensure_stock_row(self.session, location_id, product_id)
        if keys - locked.keys():
            await lock_stock(self.session, keys - locked.keys())
        await self.session.flush()
        await apply_stock_changes(self.session, self.changes, actor)
