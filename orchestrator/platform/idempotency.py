"""Idempotency keys with Stripe's semantics: the first response is the answer for that key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from orchestrator.platform.actors import Actor, Role


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """The same JSON document in any key order or spacing is the same request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def lock_id(principal: str, key: str) -> int:
    """A signed 64-bit number for ``pg_try_advisory_xact_lock``: held while the key is in flight."""
    digest = hashlib.blake2b(f"{principal}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def idempotency_scope(actor: Actor) -> str:
    """Whose key space an ``Idempotency-Key`` lives in: a channel's (every key of that channel
    places the same channel's orders), else the API key's own. Never a key's display name, which
    any number of keys may share."""
    if actor.kind == Role.CHANNEL and actor.channel:
        return f"channel:{actor.channel}"
    return f"key:{actor.key_id or actor.label}"
