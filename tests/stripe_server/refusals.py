"""Stripe's refusals: ``StripeFailure`` carries the status and the ``error`` body Stripe answers,
and the parameter checks the ledger shares raise them."""

from __future__ import annotations

from typing import Any


class StripeFailure(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error


def invalid(message: str, *, code: str | None = None, param: str | None = None, status: int = 400) -> StripeFailure:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return StripeFailure(status, error)


def integer(params: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise invalid(f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    try:
        number = int(value)
    except ValueError:
        raise invalid(f"Invalid integer: {value}", code="parameter_invalid_integer", param=name) from None
    if number < 1:
        raise invalid("This value must be greater than or equal to 1.", code="parameter_invalid_integer", param=name)
    return number


def valid_metadata(params: dict[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata") or {}
    for name, value in metadata.items():
        # Stripe's metadata limits: keys up to 40 characters, values up to 500.
        if len(name) > 40 or not isinstance(value, str) or len(value) > 500:
            raise invalid(f"Invalid metadata[{name}]", code="parameter_invalid", param=f"metadata[{name}]")
    return metadata
