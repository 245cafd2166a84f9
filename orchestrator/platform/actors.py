"""Who is acting: an API key's role decides what it may do and see."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    CHANNEL = "channel"
    STAFF = "staff"


@dataclass(frozen=True, slots=True)
class Actor:
    """The principal behind a request (or ``system`` for timers and the worker)."""

    kind: str  # admin | channel | staff | system | customer
    id: str
    channel: str | None = None
    locations: frozenset[str] = field(default_factory=frozenset)
    # The API key's stable id; ``id`` is its display name, which any number of keys may share.
    key_id: str | None = None
    # ``platform/scopes.Scope`` values; a system actor (timers, the worker) is bound by none.
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has(self, scope: str) -> bool:
        return self.kind == "system" or scope in self.scopes or "admin" in self.scopes

    @property
    def reads_all_channels(self) -> bool:
        """Whether orders (and customers) of every channel are within reach, not only its own."""
        return self.kind != Role.CHANNEL or "orders:read:all-channels" in self.scopes

    def reaches_channel(self, channel: str) -> bool:
        """Whether an order of ``channel`` is within this key's reach (staff: see ``locations``)."""
        return self.reads_all_channels or channel == self.channel

    @property
    def is_admin(self) -> bool:
        return self.kind == Role.ADMIN

    @property
    def is_staff(self) -> bool:
        return self.kind == Role.STAFF

    def may_see_location(self, code: str) -> bool:
        """Staff see only their stores; everyone else with a key sees every location."""
        return not self.is_staff or code in self.locations

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"


SYSTEM = Actor(kind="system", id="orchestrator")
