"""The connector registry's request bodies and views (separate from the tables)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from orchestrator.connections.model import credential_keys
from orchestrator.connections.tables import Connector, ConnectorReceipt
from orchestrator.platform.pagination import PageResponse
from orchestrator.platform.schemas import Code, RequestBody, Sku

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Channel = Annotated[str, Meta(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$")]
PlatformKey = Annotated[str, Meta(min_length=1, max_length=200)]
Url = Annotated[str, Meta(min_length=8, max_length=2000, pattern=r"^https?://")]
LocationMap = Annotated[dict[PlatformKey, Code], Meta(max_length=1000)]
SkuMap = Annotated[dict[Annotated[str, Meta(min_length=1, max_length=200)], Sku], Meta(max_length=100_000)]
Credentials = Annotated[dict[Annotated[str, Meta(max_length=60)], Any], Meta(max_length=20)]


class ConnectorSettings(RequestBody, kw_only=True, omit_defaults=True):
    """``api_base``: the platform's API; ``token_url``: Amazon's token endpoint; ``notification_url``:
    the URL Square signs with; ``marketplace_ids``: Amazon's; ``poll_interval_seconds``: pollers'."""

    api_base: Url | None = None
    token_url: Url | None = None
    notification_url: Url | None = None
    marketplace_ids: Annotated[list[Annotated[str, Meta(min_length=1, max_length=40)]], Meta(max_length=50)] | None = (
        None
    )
    poll_interval_seconds: Annotated[int, Meta(ge=10, le=86_400)] | None = None
    lookback_hours: Annotated[int, Meta(ge=1, le=24 * 30)] | None = None  # a poller's first window


class ConnectorIn(RequestBody, kw_only=True):
    kind: Literal["shopify", "amazon", "walmart", "square"]
    name: Name
    channel: Channel
    # Write-only, a schema per kind: shopify {webhook_secret, access_token?}, square {signature_key,
    # access_token?}, amazon {client_id, client_secret, refresh_token}, walmart {client_id, client_secret}.
    credentials: Credentials
    location_map: LocationMap = {}
    sku_map: SkuMap = {}
    settings: ConnectorSettings = msgspec.field(default_factory=ConnectorSettings)


class ConnectorPatch(RequestBody, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    channel: Channel | msgspec.UnsetType = msgspec.UNSET
    credentials: Credentials | msgspec.UnsetType = msgspec.UNSET  # replaces the credentials whole
    location_map: LocationMap | msgspec.UnsetType = msgspec.UNSET
    sku_map: SkuMap | msgspec.UnsetType = msgspec.UNSET
    settings: ConnectorSettings | msgspec.UnsetType = msgspec.UNSET


class ConnectorView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    kind: str
    name: str
    channel: str
    credentials_set: list[str]  # which credential keys are stored; their values are never shown
    location_map: dict[str, str]
    sku_map: dict[str, str]
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime | None


class ConnectorPage(PageResponse, kw_only=True):
    items: list[ConnectorView]


class ConnectorStatusView(msgspec.Struct, kw_only=True):
    connector_id: uuid.UUID
    last_receipt_at: datetime | None
    counts: dict[str, int]  # receipts by outcome
    backlog: int  # receipts still pending
    last_error: str | None  # the latest invalid or unmapped receipt's detail
    last_error_at: datetime | None
    cursor: dict[str, Any] | None = None  # a poller's (Amazon: last_updated_after)
    last_polled_at: datetime | None = None
    last_poll_error: str | None = None  # the last poll gave up (the cursor stayed where it was)


class ReceiptView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    connector_id: uuid.UUID
    topic: str
    dedupe_key: str
    outcome: str
    detail: str | None
    unmapped: list[str]
    duplicate_of: uuid.UUID | None
    order_id: uuid.UUID | None
    resource_id: str | None
    attempts: int
    headers: dict[str, str]  # as received, without the signature
    body: str  # as received (bytes that are not UTF-8 shown replaced)
    received_at: datetime
    processed_at: datetime | None


class ReceiptPage(PageResponse, kw_only=True):
    items: list[ReceiptView]


def connector_view(c: Connector) -> ConnectorView:
    return ConnectorView(
        id=c.id,
        kind=c.kind,
        name=c.name,
        channel=c.channel,
        credentials_set=credential_keys(c.credentials),
        location_map=dict(c.location_map),
        sku_map=dict(c.sku_map),
        settings=dict(c.settings),
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def receipt_view(r: ConnectorReceipt) -> ReceiptView:
    return ReceiptView(
        id=r.id,
        connector_id=r.connector_id,
        topic=r.topic,
        dedupe_key=r.dedupe_key,
        outcome=r.outcome,
        detail=r.detail,
        unmapped=list(r.unmapped),
        duplicate_of=r.duplicate_of,
        order_id=r.order_id,
        resource_id=r.resource_id,
        attempts=r.attempts,
        headers=dict(r.headers),
        body=bytes(r.body).decode("utf-8", errors="replace"),
        received_at=r.received_at,
        processed_at=r.processed_at,
    )
