"""What a key may do: scopes, and the defaults each kind of key gets.

Owned channels (the retailer's web shop, app, store POS, agents) read every channel's orders and
the customers behind them: that is what lets the app change a web order and the chat agent see a
store visit. A marketplace's key (``marketplace:<platform>``, or just the platform's name) reads and
writes only its own channel's orders and sees no customer: marketplaces own their buyers'
relationship, and one must not learn about another's customers or the web shop's.
"""

from __future__ import annotations

from enum import StrEnum

from orchestrator.platform.actors import Role


class Scope(StrEnum):
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    ORDERS_READ_ALL_CHANNELS = "orders:read:all-channels"
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    FULFILLMENT = "fulfillment"
    INVENTORY_WRITE = "inventory:write"
    ADMIN = "admin"


ALL = frozenset(Scope)
# The platforms whose channel is a marketplace even when not spelled ``marketplace:<platform>``.
MARKETPLACES = frozenset({"marketplace", "amazon", "walmart", "shopify", "ebay", "etsy", "zalando", "target"})

_OWNED_CHANNEL = frozenset(
    {Scope.ORDERS_READ, Scope.ORDERS_WRITE, Scope.ORDERS_READ_ALL_CHANNELS, Scope.CUSTOMERS_READ, Scope.CUSTOMERS_WRITE}
)
_MARKETPLACE = frozenset({Scope.ORDERS_READ, Scope.ORDERS_WRITE})
_STAFF = frozenset({Scope.ORDERS_READ, Scope.ORDERS_WRITE, Scope.FULFILLMENT, Scope.INVENTORY_WRITE})
# What may be granted beyond the defaults: a marketplace may be let see its own buyers; staff the
# customers of their stores' orders. Only admin keys hold ``admin`` or read every channel unasked.
_GRANTABLE = {
    "owned": _OWNED_CHANNEL,
    "marketplace": _MARKETPLACE | {Scope.CUSTOMERS_READ},
    Role.STAFF.value: _STAFF | {Scope.CUSTOMERS_READ},
    Role.ADMIN.value: ALL,
}


def is_marketplace(channel: str | None) -> bool:
    return bool(channel) and channel.split(":", 1)[0].lower() in MARKETPLACES  # type: ignore[union-attr]


def _kind(role: Role, channel: str | None) -> str:
    if role is Role.CHANNEL:
        return "marketplace" if is_marketplace(channel) else "owned"
    return role.value


def defaults(role: Role, channel: str | None) -> frozenset[Scope]:
    """The scopes a key of ``role`` (for ``channel``) gets when none are chosen."""
    kind = _kind(role, channel)
    if kind == "marketplace":
        return _MARKETPLACE
    if kind == "owned":
        return _OWNED_CHANNEL
    return _STAFF if role is Role.STAFF else ALL


def grantable(role: Role, channel: str | None) -> frozenset[Scope]:
    """Every scope a key of ``role`` (for ``channel``) may be given."""
    return _GRANTABLE[_kind(role, channel)]
