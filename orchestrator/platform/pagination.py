"""One keyset paginator for every list: an opaque cursor carries the sort key of the last row a
page showed, and the next page starts strictly after it.

    ORDERS = Keyset(Key(Order.created_at, datetime, descending=True), Key(Order.id, uuid.UUID, descending=True))

    query = ORDERS.query(select(Order.id).where(...), cursor, limit)   # filter, order, limit + 1
    page = ORDERS.page((await session.execute(query)).all(), limit)
    page.items        # [uuid, ...]: the selected columns, the key columns taken off again
    page.next_cursor  # None on the last page

The last key must make the order total (an id), or rows with equal keys could be skipped.
A cursor this API did not write is an ``InvalidRequest`` on the ``cursor`` field (422), whatever
is wrong with it; a cursor never reaches the database with a value the column cannot hold.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote

import msgspec
from sqlalchemy import Select, and_, false, or_, tuple_
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.platform.errors import InvalidRequest

BAD_CURSOR = "cursor is not one this API returned"
_BIGINT = 2**63
_SEP = "|"

T = TypeVar("T")


@dataclass(frozen=True)
class Key:
    """One sort key. ``nulls_last``: a nullable ascending column whose NULLs sort after every value."""

    column: ColumnElement[Any]
    type: type[datetime] | type[uuid.UUID] | type[int] | type[str]
    descending: bool = False
    nulls_last: bool = False

    def encode(self, value: Any) -> str:
        if value is None:
            if not self.nulls_last:
                raise ValueError(f"{self.column} is not nullable in this keyset")
            return ""
        if self.type is datetime:
            return value.isoformat()
        if self.type is str:
            return quote(value, safe="")
        return str(value)

    def decode(self, text: str) -> Any:
        if text == "" and self.nulls_last:
            return None
        if self.type is datetime:
            at = datetime.fromisoformat(text)
            at.astimezone(UTC)  # OverflowError when it falls outside the years a timestamp can hold
            return at
        if self.type is uuid.UUID:
            return uuid.UUID(text)
        if self.type is int:
            number = int(text)
            if not -_BIGINT <= number < _BIGINT:
                raise ValueError("beyond a bigint")
            return number
        return unquote(text, errors="strict")

    def equal(self, value: Any) -> ColumnElement[bool]:
        return self.column.is_(None) if value is None else self.column == value

    def after(self, value: Any) -> ColumnElement[bool]:
        """Rows strictly after ``value`` in this key's direction."""
        if self.nulls_last:
            return false() if value is None else or_(self.column > value, self.column.is_(None))
        return self.column < value if self.descending else self.column > value

    def ordering(self) -> ColumnElement[Any]:
        if self.nulls_last:
            return self.column.asc().nulls_last()
        return self.column.desc() if self.descending else self.column.asc()


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


class Keyset:
    def __init__(self, *keys: Key) -> None:
        if not keys:
            raise ValueError("a keyset needs at least one key")
        self.keys = keys
        # Same direction and no NULLs: one row comparison, which an index on the keys serves.
        self._row_comparison = not any(k.nulls_last for k in keys) and len({k.descending for k in keys}) == 1

    def encode(self, values: Sequence[Any]) -> str:
        raw = _SEP.join(key.encode(value) for key, value in zip(self.keys, values, strict=True))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[Any, ...]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            parts = raw.split(_SEP)
            if len(parts) != len(self.keys):
                raise ValueError("wrong number of keys")
            return tuple(key.decode(part) for key, part in zip(self.keys, parts, strict=True))
        except (ValueError, UnicodeDecodeError, OverflowError, binascii.Error):
            raise InvalidRequest(BAD_CURSOR, field="cursor") from None

    def after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        """Rows that sort strictly after ``values``."""
        if self._row_comparison:
            columns = tuple_(*(k.column for k in self.keys))
            bound = tuple_(*values)
            return columns < bound if self.keys[0].descending else columns > bound
        # Lexicographic: equal on the first i keys and after on key i, for some i.
        return or_(
            *(
                and_(*(k.equal(v) for k, v in zip(self.keys[:i], values[:i], strict=True)), key.after(values[i]))
                for i, key in enumerate(self.keys)
            )
        )

    def query(self, query: Select[Any], cursor: str | None, limit: int) -> Select[Any]:
        """``query`` ordered by the keys, after ``cursor``, ``limit + 1`` rows, the key columns
        appended to what it selects (``page`` takes them off)."""
        if cursor:
            query = query.where(self.after(self.decode(cursor)))
        return (
            query.add_columns(*(k.column for k in self.keys))
            .order_by(*(k.ordering() for k in self.keys))
            .limit(limit + 1)
        )

    def page(self, rows: Sequence[Any], limit: int) -> Page[Any]:
        """The first ``limit`` rows of what ``query`` read (the extra one only says a page follows),
        each without its key columns: one selected column gives that value, more give a tuple."""
        n = len(self.keys)
        items = [_strip(row, n) for row in rows[:limit]]
        next_cursor = self.encode(tuple(rows[limit - 1])[-n:]) if len(rows) > limit else None
        return Page(items, next_cursor)


def _strip(row: Any, n: int) -> Any:
    values = tuple(row)[:-n]
    return values[0] if len(values) == 1 else values


class PageResponse(msgspec.Struct, kw_only=True):
    next_cursor: str | None = None
