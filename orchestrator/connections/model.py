"""Connectors (a configured platform: Shopify, Amazon, Walmart, Square) and what they receive.
Pure: the kinds, each kind's credential schema, the outcomes a receipt can have.

Credentials are write-only: they are checked against their kind's schema when given, stored, and
never shown again (a view says only which keys are set) nor logged."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import msgspec

from orchestrator.platform.errors import InvalidRequest

Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class Kind(StrEnum):
    SHOPIFY = "shopify"
    AMAZON = "amazon"
    WALMART = "walmart"
    SQUARE = "square"


class Outcome(StrEnum):
    """What came of one receipt. ``pending``: stored, not processed yet (the sweep retries it)."""

    PENDING = "pending"
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    UNMAPPED = "unmapped"
    INVALID = "invalid"
    IGNORED = "ignored"


# What a replay may process again: what the maps or the stock may now allow, and what a crash left.
REPLAYABLE = frozenset({Outcome.UNMAPPED, Outcome.INVALID, Outcome.PENDING})


class _Credentials(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class ShopifyCredentials(_Credentials, kw_only=True):
    """``webhook_secret``: the app's client secret, which signs the webhooks (HMAC-SHA256)."""

    webhook_secret: Secret
    access_token: Secret | None = None


class SquareCredentials(_Credentials, kw_only=True):
    """``signature_key``: the webhook subscription's signature key."""

    signature_key: Secret
    access_token: Secret | None = None


class AmazonCredentials(_Credentials, kw_only=True):
    """Login with Amazon: the app's client id and secret, the seller's refresh token."""

    client_id: Secret
    client_secret: Secret
    refresh_token: Secret


class WalmartCredentials(_Credentials, kw_only=True):
    client_id: Secret
    client_secret: Secret


CREDENTIALS: dict[Kind, type[_Credentials]] = {
    Kind.SHOPIFY: ShopifyCredentials,
    Kind.SQUARE: SquareCredentials,
    Kind.AMAZON: AmazonCredentials,
    Kind.WALMART: WalmartCredentials,
}


def checked_credentials(kind: Kind, raw: Any) -> dict[str, str]:
    """``raw`` against ``kind``'s schema: the keys set, as given. The error never repeats a value."""
    schema = CREDENTIALS[kind]
    try:
        parsed = msgspec.convert(raw, schema)
    except msgspec.ValidationError as exc:
        # msgspec's message names the field and the rule, never the value
        raise InvalidRequest(f"{kind.value} credentials: {exc}", field="credentials") from None
    return {k: v for k, v in msgspec.structs.asdict(parsed).items() if v is not None}


def credential_keys(credentials: dict[str, Any]) -> list[str]:
    """What a view shows of the credentials: which keys are set."""
    return sorted(k for k, v in credentials.items() if v)
