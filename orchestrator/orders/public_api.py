"""Guest tracking over HTTP, without an API key (``orders/public_lookup.py``): the lookup that
issues a tracking token, and what the token may do: read the redacted order, check in at the
curbside, choose one of the changes the order offers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import CacheControlHeader, State
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent
from msgspec import Meta
from redis.asyncio import Redis

from orchestrator.fulfillment.counter import LookupLimit
from orchestrator.fulfillment.dependencies import LifecycleDep
from orchestrator.order_record.numbers import normalise_order_number
from orchestrator.orders import change_payment, order_changes, public_lookup
from orchestrator.orders.api import ArrivalIn
from orchestrator.orders.order_changes_api import ChangeIn, to_action
from orchestrator.orders.order_stream import parse_last_event_id
from orchestrator.orders.order_stream_api import LastEventId, open_stream
from orchestrator.orders.public_view import PublicOrderView
from orchestrator.payments.dependencies import GatewayDep
from orchestrator.platform.db import committing
from orchestrator.platform.http.dependencies import DB, ClockDep, SettingsDep
from orchestrator.platform.http.lookup_limits import counted
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import RequestBody

PATH = "/v1/public"
# Failures count. Per address: the customers behind one address (a household, a carrier's NAT)
# still get their typos; per number: guessing one order's email is slow from any number of them.
PER_ADDRESS = LookupLimit(attempts=20, window=timedelta(minutes=10), scope="guest-lookup:address", per="address")
PER_NUMBER = LookupLimit(attempts=10, window=timedelta(minutes=15), scope="guest-lookup:number", per="order number")

TokenPath = FromPath[str]


class OrderLookupIn(RequestBody, kw_only=True):
    number: Annotated[str, Meta(max_length=40, description="the order number, as on the confirmation")]
    email: Annotated[str, Meta(max_length=320, description="the email the order was placed with")] | None = None
    phone: Annotated[str, Meta(max_length=40, description="or its phone, any spelling")] | None = None


class TrackingTokenOut(msgspec.Struct, kw_only=True):
    token: str
    expires_at: datetime


class OptionIn(RequestBody, kw_only=True):
    option: Annotated[str, Meta(min_length=1, max_length=100, description="an id of `action_required.options`")]


def _redis(state: State) -> Redis:
    return state.redis


def _tokens(state: State) -> public_lookup.TrackingTokens:
    return public_lookup.TrackingTokens.from_settings(state.settings)


async def _count(redis: Redis, address: str, number: str, now: datetime) -> None:
    await counted(
        lambda: PER_ADDRESS.count(redis, address, now),
        lambda: PER_NUMBER.count(redis, normalise_order_number(number), now),
    )


def _public_event(payload: dict) -> dict:
    """What a tracking link's stream tells: that the order changed, how and when, never the
    event's data (identities, addresses, amounts): the page reads the redacted view again."""
    return {key: payload[key] for key in ("type", "occurred_at", "order_version") if key in payload}


class PublicOrderController(Controller):
    path = PATH
    tags = ["guest tracking"]
    # Public (no API key): an empty requirement overrides the document's global bearer one.
    security = [{}]
    # A token and what it opens are the customer's: no shared cache keeps either.
    cache_control = CacheControlHeader(no_store=True)
    dependencies = {
        "redis": Provide(_redis, sync_to_thread=False),
        "tokens": Provide(_tokens, sync_to_thread=False),
    }

    @post(
        "/order-lookup",
        operation_id="lookUpGuestOrder",
        summary="A tracking token for an order, found by its number and the customer's email or phone",
        description=(
            "No API key. Send the order `number` and exactly one of `email` or `phone` it was "
            "placed with. The `token` reads the order at `GET /v1/public/orders/{token}` until "
            "`expires_at`. An unknown number and a wrong email or phone are the same 404. At most "
            f"{PER_ADDRESS.attempts} lookups per {PER_ADDRESS.window} per client address and "
            f"{PER_NUMBER.attempts} per {PER_NUMBER.window} per order number (failures count): "
            "429 with `Retry-After`."
        ),
        status_code=200,
        responses=problems(400, 404, 413, 415, 422, 429, 503),
    )
    async def look_up(
        self,
        request: Request,
        data: JSONBody[OrderLookupIn],
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
        redis: NamedDependency[Redis],
        tokens: NamedDependency[public_lookup.TrackingTokens],
    ) -> TrackingTokenOut:
        now = clock.now()
        await _count(redis, request.client.host if request.client else "unknown", data.number, now)
        lookup = public_lookup.GuestLookup(data.number, data.email, data.phone)
        region = settings.default_phone_region
        issued = await db.run(lambda uow: public_lookup.look_up(uow, lookup, tokens, phone_region=region, now=now))
        return TrackingTokenOut(token=issued.token, expires_at=issued.expires_at)

    @get(
        "/orders/{token:str}",
        operation_id="getTrackedOrder",
        summary="The order a tracking token names, as its customer may see it",
        description=(
            "No API key: the token is the credential. Status, lines, totals, each pickup or "
            "shipment (store, ready times, pickup deadline, carrier and tracking number), the "
            "delivery town, the customer status and any changes offered. Never an email, phone, "
            "street, payment or pickup code. A tampered, expired or unknown token is 404."
        ),
        responses=problems(404),
    )
    async def read(
        self, token: TokenPath, db: DB, clock: ClockDep, tokens: NamedDependency[public_lookup.TrackingTokens]
    ) -> PublicOrderView:
        now = clock.now()
        return await db.run(lambda uow: public_lookup.read(uow, tokens, token, now))

    @post(
        "/orders/{token:str}/arrival",
        operation_id="recordGuestArrival",
        summary="Curbside check-in: the customer holding the token has arrived",
        description="Recorded as `POST /v1/orders/{id}/arrival` records it; answers the order.",
        status_code=200,
        responses=problems(400, 404, 409, 413, 415, 422),
    )
    async def arrive(
        self,
        token: TokenPath,
        data: JSONBody[ArrivalIn],
        db: DB,
        clock: ClockDep,
        tokens: NamedDependency[public_lookup.TrackingTokens],
    ) -> PublicOrderView:
        spot, vehicle = data.parking_spot, data.vehicle
        return await db.run(committing(lambda uow: public_lookup.arrive(uow, tokens, token, clock, spot, vehicle)))

    @post(
        "/orders/{token:str}/changes",
        operation_id="chooseOfferedChange",
        summary="Apply one of the changes the order offers (its `action_required.options`)",
        description=(
            "The option's change is applied as `POST /v1/orders/{id}/changes` applies it, against "
            "the order as it was offered (412 when the order changed meanwhile). Any id the order "
            "does not offer now is 422; nothing else can be changed with a token."
        ),
        status_code=200,
        responses=problems(400, 402, 404, 409, 412, 413, 415, 422, 503),
    )
    async def choose(
        self,
        token: TokenPath,
        data: JSONBody[OptionIn],
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        gateway: GatewayDep,
        tokens: NamedDependency[public_lookup.TrackingTokens],
    ) -> PublicOrderView:
        chosen = await db.run(lambda uow: public_lookup.chosen_option(uow, tokens, token, data.option, clock.now()))
        # The option's body is parsed as the channel endpoint parses it, and its added lines (if
        # any) are named the way that endpoint names them.
        body = msgspec.convert(chosen.change, ChangeIn)
        order_id, version = chosen.order_id, chosen.version
        actions = tuple(to_action(a, uuid.uuid5(order_id, f"{version}:{i}")) for i, a in enumerate(body.actions))
        change = order_changes.ChangeRequest(order_id, actions, version, public_lookup.GUEST, clock, lifecycle)
        await change_payment.change(db, gateway, change, None)
        return await db.run(lambda uow: public_lookup.read_by_id(uow, order_id, clock.now()))

    @get(
        "/orders/{token:str}/stream",
        operation_id="streamTrackedOrder",
        summary="The tracked order's changes as they happen (Server-Sent Events)",
        description=(
            "No API key: the token is the credential. One message per event of the order (`id` = "
            "stream position, `event` = event type, `data` = `{type, occurred_at, order_version}` "
            "only: read `GET /v1/public/orders/{token}` for what it now says); a comment line as a "
            "heartbeat; `Last-Event-ID` resumes. A tampered, expired or unknown token is 404."
        ),
        responses={
            200: ResponseSpec(
                data_container=str,
                media_type="text/event-stream",
                description="Server-Sent Events, without end",
                generate_examples=False,
            ),
            **problems(404, 422, 429),
        },
        media_type="text/event-stream",
    )
    async def stream(
        self,
        token: TokenPath,
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
        state: State,
        tokens: NamedDependency[public_lookup.TrackingTokens],
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        resume = parse_last_event_id(last_event_id)
        now = clock.now()
        order_id = await db.run(lambda uow: public_lookup.tracked_id(uow, tokens, token, now))
        no_store = {"Cache-Control": "no-store"}
        return await open_stream(
            state, settings, order_id, f"tracking:{order_id}", resume, shape=_public_event, headers=no_store
        )
