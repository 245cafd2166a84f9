"""A query string says only what the operation declares: an unknown parameter or a value outside
a declared set is a 422 listing what is allowed. Silently ignoring ``?customer_phone=...`` answered
with every order. A single-valued parameter given twice is a 422 too (the last one won, silently).
Outside ``/v1`` (documentation, health) any query string is accepted: cache-busters are normal there."""

from __future__ import annotations

import enum
import typing
from typing import Any, Literal

from litestar import Request
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler

API_PREFIX = "/v1/"
_MANY = (list, tuple, set, frozenset)


class Declared(typing.NamedTuple):
    values: tuple[str, ...] | None  # the values it allows, None for any
    many: bool  # whether it may be given more than once


# handler → declared name → what it takes
_declared: dict[HTTPRouteHandler, dict[str, Declared]] = {}


def allowed_values(annotation: Any) -> tuple[str, ...] | None:
    """The values a Literal or Enum parameter (optional or a list of them) allows; None: any."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return tuple(str(v) for v in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(str(m.value) for m in annotation)
    if origin is not None:  # Optional[X], list[X], Annotated[X, ...]
        for arg in typing.get_args(annotation):
            if arg is not type(None) and (values := allowed_values(arg)) is not None:
                return values
    return None


def takes_many(annotation: Any) -> bool:
    """Whether a parameter (optional or annotated) is a list of values."""
    origin = typing.get_origin(annotation)
    if origin in _MANY or annotation in _MANY:
        return True
    return origin is not None and origin is not Literal and any(takes_many(a) for a in typing.get_args(annotation))


def declared_query_parameters(handler: HTTPRouteHandler, path_params: dict[str, Any]) -> dict[str, Declared]:
    if handler not in _declared:
        model = handler.create_kwargs_model(path_parameters=path_params)  # only its keys are read
        fields = handler.parsed_fn_signature.parameters
        annotations = {
            p.field_alias: fields[p.field_name].annotation if p.field_name in fields else Any
            for p in model.expected_query_params
        }
        _declared[handler] = {
            alias: Declared(allowed_values(annotation), takes_many(annotation))
            for alias, annotation in annotations.items()
        }
    return _declared[handler]


async def reject_undeclared_query_parameters(request: Request) -> None:
    """``before_request`` of the app: runs before litestar parses the handler's parameters."""
    handler = request.route_handler
    if not handler.include_in_schema or not request.query_params or not request.url.path.startswith(API_PREFIX):
        return
    declared = declared_query_parameters(handler, dict(request.path_params))
    errors: list[dict[str, Any]] = []
    listing = ", ".join(sorted(declared)) or "none"
    for name in request.query_params:
        if name not in declared:
            errors.append({"key": name, "message": f"unknown query parameter; allowed: {listing}", "source": "query"})
            continue
        given = request.query_params.getall(name)
        if len(given) > 1 and not declared[name].many:
            errors.append({"key": name, "message": "given more than once; it takes one value", "source": "query"})
            continue
        if (values := declared[name].values) is not None:
            wrong = [v for v in given if v not in values]
            if wrong:
                message = f"{wrong[0]!r} is not one of: {', '.join(values)}"
                errors.append({"key": name, "message": message, "source": "query"})
    if errors:
        raise ValidationException(detail="the request does not match the schema", extra=errors)
