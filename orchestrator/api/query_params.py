"""A query string says only what the operation declares: an unknown parameter or a value outside
a declared set is a 422 listing what is allowed. Silently ignoring ``?customer_phone=...`` answered
with every order."""

from __future__ import annotations

import enum
import typing
from typing import Any, Literal

from litestar import Request
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler

# handler → (declared name → the values it allows, None for any)
_declared: dict[HTTPRouteHandler, dict[str, tuple[str, ...] | None]] = {}


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


def declared_query_parameters(
    handler: HTTPRouteHandler, path_params: dict[str, Any]
) -> dict[str, tuple[str, ...] | None]:
    if handler not in _declared:
        model = handler.create_kwargs_model(path_parameters=path_params)  # only its keys are read
        fields = handler.parsed_fn_signature.parameters
        _declared[handler] = {
            p.field_alias: allowed_values(fields[p.field_name].annotation) if p.field_name in fields else None
            for p in model.expected_query_params
        }
    return _declared[handler]


async def reject_undeclared_query_parameters(request: Request) -> None:
    """``before_request`` of the app: runs before litestar parses the handler's parameters."""
    handler = request.route_handler
    if not handler.include_in_schema or not request.query_params:
        return
    declared = declared_query_parameters(handler, dict(request.path_params))
    errors: list[dict[str, Any]] = []
    listing = ", ".join(sorted(declared)) or "none"
    for name in request.query_params:
        if name not in declared:
            errors.append({"key": name, "message": f"unknown query parameter; allowed: {listing}", "source": "query"})
            continue
        if (values := declared[name]) is not None:
            wrong = [v for v in request.query_params.getall(name) if v not in values]
            if wrong:
                message = f"{wrong[0]!r} is not one of: {', '.join(values)}"
                errors.append({"key": name, "message": message, "source": "query"})
    if errors:
        raise ValidationException(detail="the request does not match the schema", extra=errors)
