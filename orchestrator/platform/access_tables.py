"""API keys and idempotency records."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, text_array, timestamp


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=120)
    # SHA-256 of a 256-bit random secret: a slow hash adds nothing at that entropy.
    secret_digest: str = Field(unique=True, max_length=64)
    prefix: str = Field(max_length=16)
    role: str = Field(max_length=20)
    channel: str | None = Field(default=None, max_length=80)
    location_codes: list[str] = text_array()
    created_at: datetime = created_at()
    revoked_at: datetime | None = timestamp()


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    principal: str = Field(primary_key=True, max_length=120)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int
    response_body: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = created_at()
