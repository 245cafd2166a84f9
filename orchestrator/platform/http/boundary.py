"""The outermost layer of the app, in front of litestar's router: what must hold for every request,
routed or not.

* Request headers are capped (``ORCHESTRATOR_MAX_HEADER_BYTES``, 431): the HTTP server in front
  (uvicorn with httptools) accepts a 1 MB header.
* An error answered in plain text or HTML (litestar's page for an unknown ``/schema/...`` path)
  leaves as a problem of the same status: every error the API controls is problem+json.
* ``OPTIONS`` lists every method of the path. litestar builds a path's OPTIONS handler with the
  first handlers registered there and keeps it when more are merged in (``OPTIONS /v1/orders``
  said ``OPTIONS, POST``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.platform.problems import PROBLEM_MEDIA_TYPE, http_problem

_REPLACED_MEDIA_TYPES = (b"text/plain", b"text/html")


def problem_messages(status: int, detail: str | None, instance: str) -> tuple[Message, Message]:
    body = msgspec.json.encode(http_problem(status, detail, instance))
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


def header_bytes(scope: Scope) -> int:
    # As on the wire: "name: value\r\n" per header.
    return sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def path_methods(app: Any) -> dict[Any, str]:
    """Every generated OPTIONS handler → the methods of the route that finally holds it."""
    allow: dict[Any, str] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if handler.http_methods == {"OPTIONS"}:
                    allow[handler] = ", ".join(sorted(route.methods))
    return allow


class HttpBoundary:
    def __init__(self, app: ASGIApp, *, max_header_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self._allow: dict[Any, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if header_bytes(scope) > self.max_header_bytes:
            detail = f"request headers may take at most {self.max_header_bytes} bytes"
            for message in problem_messages(431, detail, scope["path"]):
                await send(message)
            return
        replacing = False

        async def send_problems_only(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = {k.lower(): v for k, v in message.get("headers") or []}
                media = headers.get(b"content-type", b"").split(b";")[0].strip()
                if status >= 400 and media in _REPLACED_MEDIA_TYPES:
                    replacing = True
                    start, body = problem_messages(status, None, scope["path"])
                    await send(start)
                    await send(body)
                    return
                if scope["method"] == "OPTIONS" and b"allow" in headers and (allow := self.allow_for(scope)):
                    others = [(k, v) for k, v in message["headers"] if k.lower() != b"allow"]
                    message["headers"] = [*others, (b"allow", allow.encode())]
            elif replacing:  # the original body of a replaced response
                return
            await send(message)

        await self.app(scope, receive, send_problems_only)

    def allow_for(self, scope: Scope) -> str | None:
        if self._allow is None:  # the routes are final once the app serves
            self._allow = path_methods(scope["app"])
        return self._allow.get(scope.get("route_handler"))
