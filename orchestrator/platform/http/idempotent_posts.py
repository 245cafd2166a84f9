"""A POST under an ``Idempotency-Key`` at the HTTP edge: the claim it makes and the answer it
sends, first or replayed (``platform.idempotency`` holds the key's semantics and storage)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import MediaType, Response
from litestar.params import HeaderParameter

from orchestrator.platform.actors import Actor
from orchestrator.platform.idempotency import IdempotencyClaim, idempotency_scope, request_fingerprint
from orchestrator.platform.problems import PROBLEM_MEDIA_TYPE


def post_claim(actor: Actor, key: str, path: str, body: Any) -> IdempotencyClaim:
    """The key in its principal's space, and the request it stands for: the same key with another
    body (or to another path) is another request, refused rather than replayed."""
    return IdempotencyClaim(idempotency_scope(actor), key, request_fingerprint("POST", path, body))


def keyed_answer(body: bytes, status: int, *, replayed: bool, headers: dict[str, str] | None = None) -> Response[bytes]:
    """The answer stored under the key, as sent: a refusal (4xx) as its problem document; a replay
    says so, so a client can tell its retry from the first attempt."""
    sent = dict(headers or {})
    if replayed:
        sent["Idempotent-Replayed"] = "true"
    media = PROBLEM_MEDIA_TYPE if status >= 400 else MediaType.JSON
    return Response(body, status_code=status, media_type=media, headers=sent or None)


def idempotency_key_header(description: str, *, required: bool = True) -> Any:
    """The ``Idempotency-Key`` header parameter of a POST, documented as ``description``."""
    header = HeaderParameter(
        name="Idempotency-Key", min_length=1, max_length=255, required=required, description=description
    )
    return Annotated[str, header] if required else Annotated[str | None, header]
