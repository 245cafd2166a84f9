"""Idempotency keys with Stripe's semantics: the first response is the answer for that key."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """The same JSON document in any key order or spacing is the same request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def lock_id(principal: str, key: str) -> int:
    """A signed 64-bit number for ``pg_try_advisory_xact_lock``: held while the key is in flight."""
    digest = hashlib.blake2b(f"{principal}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
