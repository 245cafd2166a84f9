"""Customers over HTTP: one customer across channels, their identities, merges, interactions and
timeline. A merged-away id answers 308 to the survivor's same path (method and body kept)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta

from orchestrator.customers.model import CustomerMerged, Identity, IdentityKind, normalise_identity
from orchestrator.customers.records import InteractionRecord, NewInteraction
from orchestrator.orders import customer_cases as cases
from orchestrator.orders.customer_timeline import TimelinePage
from orchestrator.orders.customer_views import CustomerFullView
from orchestrator.platform.auth import ADMIN, READ_CUSTOMERS, WRITE_CUSTOMERS
from orchestrator.platform.db import committing
from orchestrator.platform.errors import DomainError
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep, SettingsDep
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import RequestBody


class SearchNeedsIdentity(DomainError):
    """A customer search names no identity: there is no listing every customer (400)."""


class CustomerPage(msgspec.Struct, kw_only=True):
    items: list[CustomerFullView]


class IdentityIn(RequestBody, kw_only=True):
    kind: Literal["email", "phone", "loyalty_id", "account"]
    value: Annotated[str, Meta(min_length=1, max_length=320)]


class PreferredContactIn(RequestBody, kw_only=True):
    channel: Literal["email", "sms", "whatsapp", "push"]
    identity: Annotated[str, Meta(min_length=1, max_length=320)]


class CustomerPatch(RequestBody, kw_only=True):
    name: Annotated[str, Meta(max_length=200)] | msgspec.UnsetType = msgspec.UNSET
    # null: notifications go to the channel the customer was last reached on (webhooks/notification_rules).
    preferred_contact: PreferredContactIn | None | msgspec.UnsetType = msgspec.UNSET


class MergeIn(RequestBody, kw_only=True):
    survivor_id: uuid.UUID
    merged_id: uuid.UUID


class InteractionIn(RequestBody, kw_only=True):
    kind: Literal["chat", "phone", "whatsapp", "email", "store_visit", "social"]
    channel: Annotated[str, Meta(min_length=1, max_length=80)]
    summary: Annotated[str, Meta(min_length=1, max_length=4000)]
    order_id: uuid.UUID | None = None
    agent: Annotated[str, Meta(min_length=1, max_length=120)] | None = None


class SuggestionView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    customer_id: uuid.UUID  # the other customer of the pair
    identities: list[dict[str, str]]
    order_id: uuid.UUID | None
    created_at: datetime


class SuggestionPage(msgspec.Struct, kw_only=True):
    items: list[SuggestionView]


class MovedView(msgspec.Struct, kw_only=True):
    merged_into: uuid.UUID
    location: str


def to_survivor(request: Request, exc: CustomerMerged) -> Response[MovedView]:
    """308 (method and body kept) to the same path under the survivor's id."""
    old = request.path_params.get("customer_id")
    path = request.url.path.replace(f"/v1/customers/{old}", f"/v1/customers/{exc.survivor}", 1)
    location = path + (f"?{request.url.query}" if request.url.query else "")
    return Response(
        MovedView(merged_into=exc.survivor, location=location), status_code=308, headers={"Location": location}
    )


def _identity(kind: str, value: str, region: str, field: str) -> Identity:
    return kind, normalise_identity(kind, value, region, field)


class CustomerController(Controller):
    path = "/v1/customers"
    tags = ["customers"]
    exception_handlers = {CustomerMerged: to_survivor}

    @get(
        "/",
        operation_id="findCustomers",
        summary="The customer with exactly these identities (no listing: at least one is needed)",
        guards=[READ_CUSTOMERS],
        responses=problems(400, 401, 403, 422),
    )
    async def find(
        self,
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
        email: Annotated[str | None, QueryParameter(max_length=320)] = None,
        phone: Annotated[str | None, QueryParameter(max_length=40)] = None,
        loyalty_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
        account: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> CustomerPage:
        given = zip(IdentityKind, (email, phone, loyalty_id, account), strict=True)
        region = settings.default_phone_region
        wanted = [_identity(k.value, v, region, k.value) for k, v in given if v is not None]
        if not wanted:
            raise SearchNeedsIdentity("name an email, phone, loyalty_id or account: customers are not listed")
        now = clock.now()
        return CustomerPage(items=await db.run(lambda uow: cases.find_customers(uow, wanted, actor, now)))

    @get(
        "/{customer_id:uuid}",
        operation_id="getCustomer",
        summary="One customer: identities, preferred contact, orders from every channel (open first)",
        guards=[READ_CUSTOMERS],
        responses=problems(401, 403, 404),
    )
    async def get_customer(
        self, customer_id: FromPath[uuid.UUID], actor: ActorDep, db: DB, clock: ClockDep
    ) -> CustomerFullView:
        now = clock.now()
        return await db.run(lambda uow: cases.get_customer(uow, customer_id, actor, now))

    @patch(
        "/{customer_id:uuid}",
        operation_id="changeCustomer",
        summary="Name the customer or choose how they are contacted",
        guards=[WRITE_CUSTOMERS],
        responses=problems(400, 401, 403, 404, 422),
    )
    async def change(
        self, customer_id: FromPath[uuid.UUID], data: JSONBody[CustomerPatch], actor: ActorDep, db: DB, clock: ClockDep
    ) -> CustomerFullView:
        now = clock.now()
        name = data.name if isinstance(data.name, str) else None
        given = data.preferred_contact is not msgspec.UNSET
        pc = data.preferred_contact if isinstance(data.preferred_contact, PreferredContactIn) else None
        contact = (pc.channel, pc.identity) if pc else None
        return await db.run(
            committing(
                lambda uow: cases.change_customer(
                    uow, customer_id, actor, now, name=name, contact=contact, contact_given=given
                )
            )
        )

    @post(
        "/{customer_id:uuid}/identities",
        operation_id="attachCustomerIdentity",
        summary="Attach an identity (201; 200 when already theirs; 409 when another customer's)",
        guards=[WRITE_CUSTOMERS],
        status_code=201,
        responses=problems(400, 401, 403, 404, 409, 422),
    )
    async def attach(
        self,
        customer_id: FromPath[uuid.UUID],
        data: JSONBody[IdentityIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        settings: SettingsDep,
    ) -> Response[CustomerFullView]:
        identity = _identity(data.kind, data.value, settings.default_phone_region, "value")
        now = clock.now()
        created, view = await db.run(
            committing(lambda uow: cases.attach_identity(uow, customer_id, identity, actor, now))
        )
        return Response(view, status_code=201 if created else 200)

    @get(
        "/{customer_id:uuid}/merge-suggestions",
        operation_id="listMergeSuggestions",
        summary="Customers an order showed to be the same person as this one",
        guards=[READ_CUSTOMERS],
        responses=problems(401, 403, 404),
    )
    async def merge_suggestions(self, customer_id: FromPath[uuid.UUID], actor: ActorDep, db: DB) -> SuggestionPage:
        found = await db.run(lambda uow: cases.suggestions(uow, customer_id, actor))
        return SuggestionPage(
            items=[
                SuggestionView(
                    id=s.id,
                    customer_id=s.customer_id,
                    identities=[{"kind": k, "value": v} for k, v in s.identities],
                    order_id=s.order_id,
                    created_at=s.created_at,
                )
                for s in found
            ]
        )

    @post(
        "/merge",
        operation_id="mergeCustomers",
        summary="Merge two customers who are one person (admin; idempotent)",
        description="Moves orders, identities, interactions and suggestions to the survivor; the merged id "
        "then answers 308 with `merged_into`.",
        guards=[ADMIN],
        status_code=200,
        responses=problems(400, 401, 403, 404, 409, 422),
    )
    async def merge(self, data: JSONBody[MergeIn], actor: ActorDep, db: DB, clock: ClockDep) -> CustomerFullView:
        now = clock.now()
        return await db.run(committing(lambda uow: cases.merge(uow, data.survivor_id, data.merged_id, actor, now)))

    @post(
        "/{customer_id:uuid}/interactions",
        operation_id="recordInteraction",
        summary="Record what was said on a channel, for the next agent",
        guards=[WRITE_CUSTOMERS],
        status_code=201,
        responses=problems(400, 401, 403, 404, 422),
    )
    async def record_interaction(
        self, customer_id: FromPath[uuid.UUID], data: JSONBody[InteractionIn], actor: ActorDep, db: DB, clock: ClockDep
    ) -> InteractionRecord:
        new = NewInteraction(data.kind, data.channel, data.summary, data.order_id, data.agent)
        now = clock.now()
        return await db.run(committing(lambda uow: cases.record_interaction(uow, customer_id, new, actor, now)))

    @get(
        "/{customer_id:uuid}/timeline",
        operation_id="customerTimeline",
        summary="Interactions and order events across channels, newest first",
        guards=[READ_CUSTOMERS],
        responses=problems(401, 403, 404, 422),
    )
    async def timeline(
        self,
        customer_id: FromPath[uuid.UUID],
        actor: ActorDep,
        db: DB,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> TimelinePage:
        page = await db.run(lambda uow: cases.customer_timeline(uow, customer_id, actor, cursor, limit))
        return TimelinePage(items=page.items, next_cursor=page.next_cursor)
