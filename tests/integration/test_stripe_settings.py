"""Payment settings, the unconfigured gateway and the idempotency-key derivation."""

from __future__ import annotations

import pytest

from orchestrator.payments.gateway import (
    AuthoriseRequest,
    Operation,
    UnconfiguredGateway,
    idempotency_key,
)
from orchestrator.payments.stripe_gateway import StripeGateway, payment_gateway
from orchestrator.platform.errors import PaymentsNotConfigured
from orchestrator.settings import Settings

ORDER = "0b6c7d1e-0000-4000-8000-000000000003"


def key(operation: Operation, ref: str | None = None) -> str:
    return idempotency_key(ORDER, operation, ref)


def test_the_key_names_order_operation_and_reference():
    assert key(Operation.CAPTURE, "f1") == key(Operation.CAPTURE, "f1")
    keys = {
        key(Operation.CAPTURE, "f1"),
        key(Operation.CAPTURE, "f2"),
        key(Operation.REFUND, "f1"),
        key(Operation.VOID),
    }
    assert len(keys) == 4 and all(ORDER in k and len(k) <= 255 for k in keys)
    assert idempotency_key("other", Operation.VOID) != key(Operation.VOID)


async def test_without_a_key_stripe_payments_are_refused_by_name():
    unconfigured = payment_gateway(Settings(stripe_api_key=None))
    assert isinstance(unconfigured, UnconfiguredGateway)
    with pytest.raises(PaymentsNotConfigured) as refused:
        await unconfigured.authorise(
            AuthoriseRequest(amount=1, currency="USD", payment_method="pm_card_visa"), idempotency_key="k"
        )
    assert refused.value.field == "payment.provider"
    configured = payment_gateway(Settings(stripe_api_key="sk_test_x", stripe_api_base="http://127.0.0.1:9"))
    assert isinstance(configured, StripeGateway)
    await configured.aclose()


def test_payment_settings_come_from_the_environment(monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("ORCHESTRATOR_STRIPE_API_KEY", "sk_test_env")
    monkeypatch.setenv("ORCHESTRATOR_STRIPE_WEBHOOK_SECRET", "whsec_env")
    monkeypatch.setenv("ORCHESTRATOR_STRIPE_API_BASE", "http://127.0.0.1:12111")
    monkeypatch.setenv("ORCHESTRATOR_PAYMENT_REQUIRED_CHANNELS", '["web", "pos:S1"]')
    settings = Settings(_env_file=None)
    assert settings.stripe_api_key is not None and settings.stripe_api_key.get_secret_value() == "sk_test_env"
    assert (
        settings.stripe_webhook_secret is not None and settings.stripe_webhook_secret.get_secret_value() == "whsec_env"
    )
    assert (settings.stripe_api_base, settings.payment_required_channels) == (
        "http://127.0.0.1:12111",
        ["web", "pos:S1"],
    )
    assert settings.payment_action_timeout_minutes == 30
