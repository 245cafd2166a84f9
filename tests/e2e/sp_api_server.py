"""Amazon for tests: a real HTTP server on a loopback port serving Login with Amazon's token
endpoint and the Orders API v0 ``getOrders`` / ``getOrderItems`` in their documented shapes,
answering as a test scripts it (pages, 429 with Retry-After, 5xx, an expired token)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

ORDERS = "/orders/v0/orders"


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class SpApiServer:
    port: int = 0
    # Scripted answers per path, in turn; a path with none left answers an empty page.
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    items: dict[str, list[dict]] = field(default_factory=dict)  # order id → its OrderItems
    requests: list[Request] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)
    client: tuple[str, str, str] = ("amzn1.application-oa2-client.test", "client-secret", "Atzr|refresh")
    _server: asyncio.Server | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def page(self, orders: list[dict], next_token: str | None = None, **headers: str) -> Answer:
        payload: dict[str, Any] = {"Orders": orders, "LastUpdatedBefore": "2026-12-01T23:00:00Z"}
        if next_token:
            payload["NextToken"] = next_token
        return Answer(200, {"payload": payload}, {"x-amzn-RateLimit-Limit": "0.0167", **headers})

    def script(self, path: str, *answers: Answer) -> None:
        self.answers.setdefault(path, []).extend(answers)

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def expire_tokens(self) -> None:
        self.expired.update(self.issued)

    def _route(self, req: Request) -> Answer:
        if req.path == "/auth/o2/token":
            return self._token(req)
        token = req.headers.get("x-amz-access-token")
        if token not in self.issued:
            return Answer(
                403, {"errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied."}]}
            )
        if token in self.expired:
            return Answer(
                403, {"errors": [{"code": "Unauthorized", "message": "The access token you provided has expired."}]}
            )
        queued = self.answers.get(req.path)
        if queued:
            return queued.pop(0)
        if req.path == ORDERS:
            return self.page([])
        if req.path.startswith(ORDERS + "/") and req.path.endswith("/orderItems"):
            order_id = req.path.split("/")[4]
            payload = {"AmazonOrderId": order_id, "OrderItems": self.items.get(order_id, [])}
            return Answer(200, {"payload": payload}, {"x-amzn-RateLimit-Limit": "0.5"})
        return Answer(404, {"errors": [{"code": "NotFound", "message": "no such resource"}]})

    def _token(self, req: Request) -> Answer:
        client_id, secret, refresh = self.client
        form = req.form
        if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != (
            "refresh_token",
            client_id,
            secret,
        ):
            return Answer(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        if form.get("refresh_token") != refresh:
            return Answer(
                400, {"error": "invalid_grant", "error_description": "The request has an invalid grant parameter"}
            )
        token = f"Atza|IQEBLjAsAh{len(self.issued) + 1}"
        self.issued.append(token)
        return Answer(
            200, {"access_token": token, "refresh_token": refresh, "token_type": "bearer", "expires_in": 3600}
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {}
            for line in lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            url = urlsplit(target)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()} if raw else {}
            req = Request(method, url.path, query, headers, form)
            self.requests.append(req)
            answer = self._route(req)
            body = json.dumps(answer.body).encode() if answer.body is not None else b""
            extra = "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items())
            writer.write(
                f"HTTP/1.1 {answer.status} X\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def running(server: SpApiServer) -> AsyncIterator[SpApiServer]:
    server._server = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    server.port = server._server.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server._server.close()
        await server._server.wait_closed()
