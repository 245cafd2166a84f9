"""Request bodies are read here, strictly: JSON only, UTF-8 only, shallow, and decoded straight
into the handler's declared type.

litestar would parse any Content-Type as JSON, decode to Python objects with the interpreter's
recursion (a 2 KB body of 1,000 brackets is a RecursionError) and then convert leniently
(``"quantity": "1"`` → 1). One decode into the declared type with ``strict=True`` refuses all of
that; the value it returns is what the handler gets (litestar's own conversion passes a Struct of
the right type through unchanged).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState

# Deeper than any body this API takes (an order is four levels); deeper is malformed, not invalid.
MAX_NESTING = 32
_AT = re.compile(r" - at `\$(.*)`$")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_body_types: dict[HTTPRouteHandler, Any] = {}


class MalformedBody(ValidationException):
    """400: not JSON this API can read (syntax, encoding, nesting)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail, extra=[{"message": f"malformed: {detail}"}])


def is_json_media_type(content_type: str) -> bool:
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.IGNORECASE)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        return False
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def nesting_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text go (strings may hold any bracket)."""
    depth = deepest = 0
    for byte in _STRINGS.sub(b"", body):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def body_type(handler: HTTPRouteHandler) -> Any:
    """The type the handler declares for ``data`` (Any when it declares none)."""
    if handler not in _body_types:
        field = handler.parsed_fn_signature.parameters.get("data")
        _body_types[handler] = field.annotation if field is not None else Any
    return _body_types[handler]


def field_error(exc: msgspec.ValidationError) -> dict[str, Any]:
    """litestar's shape of a validation message: the field path (``lines[0].quantity``) as key."""
    text = str(exc)
    at = _AT.search(text)
    key = at.group(1).lstrip(".") if at else ""
    message = text[: at.start()] if at else text
    return {"key": key or None, "message": message, "source": "body"}


def decode_strictly(body: bytes, target: Any) -> Any:
    try:
        text = body.decode("utf-8")  # msgspec checks only the strings it decodes, and raises mid-way
    except UnicodeDecodeError:
        raise MalformedBody("the request body is not valid UTF-8") from None
    try:
        return msgspec.json.decode(text, type=target, strict=True)
    except RecursionError:
        raise MalformedBody(f"JSON nested deeper than {MAX_NESTING} levels") from None
    except msgspec.ValidationError as exc:
        # A body that fails the schema may be one too deep to be anything this API takes: say so.
        if nesting_depth(body) > MAX_NESTING:
            raise MalformedBody(f"JSON nested deeper than {MAX_NESTING} levels") from None
        raise ValidationException(detail="the request does not match the schema", extra=[field_error(exc)]) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"the request body is not valid JSON: {exc}") from None


class StrictJsonRequest(Request):
    """The request class of the app: ``json()`` is what litestar's body extractor calls, for
    handlers that take a JSON body only (bodyless actions never read one)."""

    async def json(self) -> Any:
        state = ScopeState.from_scope(self.scope)
        if state.json is not Empty:
            return state.json
        body = await self.body()
        if body and not is_json_media_type(self.headers.get("content-type", "")):
            raise HTTPException(status_code=415, detail="send the request body as application/json")
        state.json = decode_strictly(body or b"null", body_type(self.route_handler))
        return state.json


async def stand_in_for_an_absent_body(request: Request) -> None:
    """``before_request`` step: litestar hands a handler no ``data`` at all for an empty body (a
    422 whose message was the bare name ``'data'``). An optional body is left to the handler's
    default; one whose fields are all optional (``POST .../arrival`` with nothing to say) reads
    as ``{}``; any other is a 422 saying a body is required."""
    target = body_type(request.route_handler)
    if target is Any or await request.body():
        return
    try:
        msgspec.json.decode(b"null", type=target, strict=True)
        return  # the handler's default stands
    except msgspec.ValidationError:
        pass
    try:
        no_fields = msgspec.json.decode(b"{}", type=target, strict=True)
    except msgspec.ValidationError:
        extra = [{"key": None, "message": "a JSON body is required", "source": "body"}]
        raise ValidationException(detail="the request does not match the schema", extra=extra) from None
    # litestar reads ``data`` only from a non-empty body; the request caches the body it read.
    state = ScopeState.from_scope(request.scope)
    state.body = request._body = b"{}"
    state.json = no_fields
