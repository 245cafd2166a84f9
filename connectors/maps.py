"""What every platform's mapping shares: the connector's translation tables and the error a
payload no mapping can read raises (its receipt is ``invalid``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class MappingError(ValueError):
    """The payload is not one the platform's mapping can read (the receipt is ``invalid``)."""


@dataclass(frozen=True, slots=True)
class Maps:
    """A connector's translation tables: the platform's location id or name → our location code
    (matched without regard to case or surrounding spaces), and the platform's sku (or the key its
    mapping reads a line by) → ours; a sku absent from ``skus`` is taken as it is."""

    channel: str
    locations: Mapping[str, str]
    skus: Mapping[str, str]

    def location(self, key: str | None) -> str | None:
        if key is None:
            return None
        wanted = key.strip().casefold()
        return next((code for name, code in self.locations.items() if name.strip().casefold() == wanted), None)


# --- reading a platform's JSON: a wrong shape is a MappingError naming the field, never a crash ---


def read_list(raw: Any, field: str) -> list[Any]:
    """A JSON array (absent: empty)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise MappingError(f"{field} is not a list")
    return raw


def read_text(raw: Any) -> str | None:
    """A non-blank string, trimmed; anything else (or one holding NUL) is None."""
    if isinstance(raw, str) and raw.strip() and "\x00" not in raw:
        return raw.strip()
    return None


def read_time(raw: Any, field: str) -> datetime:
    """An ISO 8601 / RFC 3339 timestamp with its UTC offset (``Z`` too)."""
    if not isinstance(raw, str):
        raise MappingError(f"{field} is missing or not a timestamp")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise MappingError(f"{field} {raw[:40]!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise MappingError(f"{field} {raw[:40]!r} has no UTC offset")
    return moment


def read_objects(raw: Any, field: str, at_most: int) -> list[dict[str, Any]]:
    """A non-empty JSON array of objects, at most ``at_most`` of them (an order's lines)."""
    items = read_list(raw, field)
    if not items:
        raise MappingError(f"the order has no {field}")
    if len(items) > at_most:
        raise MappingError(f"more than {at_most} {field}")
    if not all(isinstance(item, dict) for item in items):
        raise MappingError(f"one of {field} is not an object")
    return items
