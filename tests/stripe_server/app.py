"""The HTTP face of the Stripe-shaped server: exactly the endpoints the gateway calls.

Requests are authenticated by a bearer secret key, bodies are Stripe's form encoding, answers
are Stripe's JSON (errors as ``{"error": {...}}`` with Stripe's status codes), and
``Idempotency-Key`` works as Stripe documents: the same key with the same parameters replays the
first answer byte for byte (``Idempotent-Replayed: true``); with other parameters or another
endpoint it is a 400 ``idempotency_error``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.stripe_server.forms import decode
from tests.stripe_server.ledger import Ledger
from tests.stripe_server.refusals import StripeFailure, invalid

Handler = Callable[[web.Request, dict[str, Any]], Any]


@dataclass
class Recorded:
    """One request as the server saw it, for tests that check what the gateway sent."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    stripe_version: str | None
    status: int = 0


@dataclass
class ServerState:
    ledger: Ledger = field(default_factory=Ledger)
    idempotency: dict[str, tuple[str, int, bytes]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.ledger = Ledger(clock=self.ledger.clock)
            self.idempotency.clear()
            self.requests.clear()


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=json.dumps(body, indent=2).encode(), content_type="application/json")


def _fingerprint(request: web.Request, params: dict[str, Any]) -> str:
    return json.dumps([request.method, request.path, params], sort_keys=True)


def build_app(state: ServerState) -> web.Application:
    def endpoint(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer sk_test_"):
                return _json(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}})
            raw = await request.text() if request.method == "POST" else request.query_string
            params = decode(raw)
            key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
            recorded = Recorded(request.method, request.path, params, key, request.headers.get("Stripe-Version"))
            with state.lock:
                state.requests.append(recorded)
                if key is not None and key in state.idempotency:
                    fingerprint, status, body = state.idempotency[key]
                    if fingerprint != _fingerprint(request, params):
                        recorded.status = 400
                        return _json(400, {"error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with the same parameters "
                            f"they were first used with. Try using a key other than '{key}' if you meant to "
                            "execute a different request.",
                        }})  # fmt: skip
                    recorded.status = status
                    response = web.Response(status=status, body=body, content_type="application/json")
                    response.headers["Idempotent-Replayed"] = "true"
                    response.headers["Idempotency-Key"] = key
                    return response
                try:
                    status, payload = 200, handler(request, params)
                except StripeFailure as failure:
                    status, payload = failure.status, {"error": failure.error}
                response = _json(status, payload)
                recorded.status = status
                # Stripe saves every answer of an endpoint that ran, declines included.
                if key is not None:
                    state.idempotency[key] = (_fingerprint(request, params), status, response.body)
                    response.headers["Idempotency-Key"] = key
                return response

        return serve

    def expand_of(params: dict[str, Any]) -> list[str]:
        expand = params.get("expand") or []
        return expand if isinstance(expand, list) else [expand]

    def create_intent(request: web.Request, params: dict[str, Any]) -> Any:
        try:
            intent = state.ledger.create_intent(params)
        except StripeFailure as failure:
            if "payment_intent" in failure.error:
                failure.error["payment_intent"] = state.ledger.expanded(failure.error["payment_intent"], [])
            raise
        return state.ledger.expanded(intent, expand_of(params))

    def retrieve_intent(request: web.Request, params: dict[str, Any]) -> Any:
        return state.ledger.expanded(state.ledger.intent(request.match_info["id"]), expand_of(params))

    def search_intents(request: web.Request, params: dict[str, Any]) -> Any:
        # Only the query the gateway sends: metadata['key']:'value' (Stripe's search language).
        found = re.fullmatch(r"metadata\['([^']+)'\]:'([^']*)'", str(params.get("query") or ""))
        if found is None:
            raise invalid("Unsupported search query.", code="parameter_invalid", param="query")
        key, value = found.groups()
        expand = [e.removeprefix("data.") for e in expand_of(params)]
        data = [
            state.ledger.expanded(intent, expand)
            for intent in state.ledger.intents.values()
            if intent["metadata"].get(key) == value
        ]
        return {"object": "search_result", "data": data, "has_more": False, "next_page": None, "url": request.path}

    def capture_intent(request: web.Request, params: dict[str, Any]) -> Any:
        intent = state.ledger.capture(request.match_info["id"], params)
        return state.ledger.expanded(intent, expand_of(params))

    def cancel_intent(request: web.Request, params: dict[str, Any]) -> Any:
        intent = state.ledger.cancel(request.match_info["id"], params)
        return state.ledger.expanded(intent, expand_of(params))

    def create_refund(request: web.Request, params: dict[str, Any]) -> Any:
        return state.ledger.refund(params)

    def create_customer(request: web.Request, params: dict[str, Any]) -> Any:
        return state.ledger.create_customer(params)

    def unknown(request: web.Request, params: dict[str, Any]) -> Any:
        raise invalid(f"Unrecognized request URL ({request.method}: {request.path}).", status=404)

    app = web.Application()
    app.router.add_post("/v1/customers", endpoint(create_customer))
    app.router.add_post("/v1/payment_intents", endpoint(create_intent))
    app.router.add_get("/v1/payment_intents/search", endpoint(search_intents))
    app.router.add_get("/v1/payment_intents/{id}", endpoint(retrieve_intent))
    app.router.add_post("/v1/payment_intents/{id}/capture", endpoint(capture_intent))
    app.router.add_post("/v1/payment_intents/{id}/cancel", endpoint(cancel_intent))
    app.router.add_post("/v1/refunds", endpoint(create_refund))
    app.router.add_route("*", "/{tail:.*}", endpoint(unknown))
    return app
