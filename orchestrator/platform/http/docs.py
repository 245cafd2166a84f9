"""The API's documentation pages and its OpenAPI document.

The pages (Swagger UI at ``/schema`` and ``/schema/swagger``, Redoc at ``/schema/redoc``) load
their scripts from the installed ``openapi-ui-bundles`` package, never from a CDN: a store's
network may have no internet.

The document is litestar's, completed with constraints its generator drops, taken from the
declarations the service validates with: ``ge=0`` on an optional value (a falsy 0 is skipped),
the items of a list (``exclude``' pattern) and ``schema_extra`` on optional parameters (the
``If-Match`` pattern lands beside ``oneOf`` instead of on the string), and that a request body
refuses fields it does not know (``additionalProperties: false``). A body an operation
takes can also be refused as malformed (400) or of the wrong media type (415): both documented.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec
import openapi_ui_bundles
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin
from litestar.params import ParameterKwarg
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router

from orchestrator.platform.http.json_bodies import body_type
from orchestrator.platform.problems import PROBLEM_MEDIA_TYPE

ASSETS = "/schema/assets"
SWAGGER_ASSETS = f"{ASSETS}/swagger-ui"
REDOC_ASSETS = f"{ASSETS}/redoc"
FAVICON = f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>"

_NUMERIC = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
_TEXTUAL = {"min_length": "minLength", "max_length": "maxLength", "pattern": "pattern"}
_BY_TYPE = {
    "integer": ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"),
    "number": ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"),
    "string": ("minLength", "maxLength", "pattern"),
    "array": ("minItems", "maxItems"),
}
_BODY_PROBLEMS = {"400": "Malformed JSON (syntax, UTF-8, nesting)", "415": "The body is not application/json"}


def asset_routers() -> list[Any]:
    return [
        create_static_files_router(
            path=SWAGGER_ASSETS, directories=[openapi_ui_bundles.swagger_ui.static_path], include_in_schema=False
        ),
        create_static_files_router(
            path=REDOC_ASSETS, directories=[openapi_ui_bundles.redoc.static_path], include_in_schema=False
        ),
    ]


def _alternatives(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema itself, or the non-null branches of an optional one."""
    branches = schema.get("oneOf") or schema.get("anyOf")
    if not branches:
        return [schema]
    return [b for b in branches if isinstance(b, dict) and b.get("type") != "null"]


def tighten(target: dict[str, Any], constraints: dict[str, Any]) -> None:
    """Put each constraint on the branches of ``target`` whose type it applies to (if missing)."""
    for branch in _alternatives(target):
        for key in {key for kind in _types(branch) for key in _BY_TYPE.get(kind, ())}:
            if key in constraints and key not in branch:
                branch[key] = constraints[key]


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) else list(kind or [])


def merge_schema(target: dict[str, Any], source: dict[str, Any]) -> None:
    """Copy what msgspec's schema of a field says (``source``) into litestar's (``target``)."""
    for source_branch in _alternatives(source):
        kinds = set(_types(source_branch))
        for target_branch in _alternatives(target):
            if not kinds & set(_types(target_branch)):
                continue
            tighten(target_branch, source_branch)
            if isinstance(source_branch.get("items"), dict) and isinstance(target_branch.get("items"), dict):
                merge_schema(target_branch["items"], source_branch["items"])


def _body_structs(annotation: Any) -> list[type[msgspec.Struct]]:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [s for arg in typing.get_args(annotation) for s in _body_structs(arg)]
    return []


def parameter_constraints(kwarg: ParameterKwarg) -> dict[str, Any]:
    found = {key: getattr(kwarg, name) for name, key in {**_NUMERIC, **_TEXTUAL}.items()}
    found = {k: v for k, v in found.items() if v is not None}
    return {**found, **(kwarg.schema_extra or {})}


def _problem_response(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}


def complete_document(document: dict[str, Any], app: Any) -> None:
    """Complete litestar's document in place (it is built once and cached)."""
    structs: set[type[msgspec.Struct]] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        item = document.get("paths", {}).get(route.path_format or "/")
        for handler in route.route_handlers:
            operations = [item.get(m.lower()) for m in handler.http_methods] if item else []
            for operation in filter(None, operations):
                complete_operation(operation, handler)
            structs.update(_body_structs(body_type(handler)))  # Any (no body): none
    _, components = msgspec.json.schema_components(sorted(structs, key=lambda s: s.__name__))
    ours = document.get("components", {}).get("schemas", {})
    for name, component in components.items():
        if component.get("additionalProperties") is False and isinstance(ours.get(name), dict):
            ours[name]["additionalProperties"] = False  # forbid_unknown_fields: an unknown field is a 422
        for field, schema in component.get("properties", {}).items():
            target = ours.get(name, {}).get("properties", {}).get(field)
            if isinstance(target, dict):
                merge_schema(target, schema)


def complete_operation(operation: dict[str, Any], handler: Any) -> None:
    by_alias: dict[str, ParameterKwarg] = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            by_alias[kwarg.name or name] = kwarg
    for parameter in operation.get("parameters", []):
        kwarg = by_alias.get(parameter["name"])
        if kwarg is not None and isinstance(parameter.get("schema"), dict):
            tighten(parameter["schema"], parameter_constraints(kwarg))
    if "requestBody" in operation:
        responses = operation.setdefault("responses", {})
        for status, description in _BODY_PROBLEMS.items():
            responses.setdefault(status, _problem_response(description))


class CompletedDocument(OpenAPIRenderPlugin):
    """Mixin: render the completed document (each page that embeds or serves it). Completing is
    idempotent and cheap next to a page load; no cache keyed by the document's identity."""

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        complete_document(openapi_schema, request.app)
        return super().render(request, openapi_schema)  # type: ignore[safe-super]


class DocumentJson(CompletedDocument, JsonRenderPlugin):
    pass


class RedocPage(CompletedDocument, RedocRenderPlugin):
    pass


class SwaggerPage(CompletedDocument, SwaggerRenderPlugin):
    pass


def render_plugins() -> list[OpenAPIRenderPlugin]:
    swagger = SwaggerPage(
        js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
        css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
        path=["/", "/swagger"],
        favicon=FAVICON,
    )
    redoc = RedocPage(js_url=f"{REDOC_ASSETS}/redoc.standalone.js", google_fonts=False, path="/redoc", favicon=FAVICON)
    return [swagger, redoc, DocumentJson()]
