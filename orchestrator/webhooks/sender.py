"""One attempt to deliver: sign per Standard Webhooks, resolve the host and refuse addresses the
settings do not allow, connect to the address that was checked (not a second resolution an
attacker's DNS could answer differently), never follow a redirect."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook

from orchestrator.webhooks.model import AttemptResult, address_allowed


def body_of(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signature_headers(event_id: str, body: str, secrets: list[str], at: datetime) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one ``v1,...`` per secret,
    space-separated: a rotation's overlap carries the new and the old)."""
    signatures = " ".join(Webhook(s).sign(event_id, at, body) for s in secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": "orchestrator-webhooks/1",
    }


async def _addresses(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _pinned(url: str, address: str) -> tuple[str, str]:
    """``url`` with its host replaced by ``address``, and the Host header it keeps."""
    parts = urlsplit(url)
    shown = f"[{address}]" if ":" in address else address
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    host_header = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header


async def attempt(
    client: httpx.AsyncClient,
    url: str,
    body: str,
    headers: dict[str, str],
    *,
    seconds: float,
    allow_private: bool,
) -> AttemptResult:
    """One POST, answered or not within ``seconds`` (resolution included)."""
    started = time.perf_counter()

    def took() -> int:
        return int((time.perf_counter() - started) * 1000)

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(seconds):
            addresses = await _addresses(host, port)
            refused = [a for a in addresses if not address_allowed(a, allow_private)]
            if refused or not addresses:
                return AttemptResult(None, took(), f"address not allowed: {', '.join(refused) or 'none'}")
            target, host_header = _pinned(url, addresses[0])
            extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
            response = await client.post(
                target,
                content=body.encode(),
                headers={**headers, "host": host_header},
                extensions=extensions,
                follow_redirects=False,
            )
    except TimeoutError:
        return AttemptResult(None, took(), f"no answer within {seconds:g} s")
    except (httpx.HTTPError, OSError) as exc:
        return AttemptResult(None, took(), f"{type(exc).__name__}: {exc}"[:500])
    code = response.status_code
    return AttemptResult(code, took(), None if 200 <= code < 300 else f"HTTP {code}")
