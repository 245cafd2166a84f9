"""Idempotency records: the first answer given for each (principal, key)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    principal: str = Field(primary_key=True, max_length=120)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int
    response_body: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = created_at()
