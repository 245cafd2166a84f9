"""What the controllers receive by injection: the payment gateway, built once by the app factory
from settings (``stripe_gateway.payment_gateway``)."""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from orchestrator.payments.gateway import PaymentGateway


def _gateway(state: State) -> PaymentGateway:
    return state.gateway


PAYMENT_DEPENDENCIES = {"gateway": Provide(_gateway, sync_to_thread=False)}
GatewayDep: TypeAlias = NamedDependency[PaymentGateway]
