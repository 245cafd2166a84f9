"""What the platforms' webhook receivers answer alike."""

from __future__ import annotations

from litestar import Response

from orchestrator.platform.problems import Problem, problem_response, problem_type


def signature_invalid(detail: str, instance: str) -> Response[Problem]:
    """401 ``webhook-signature-invalid``: the platform signs its deliveries, and this one's
    signature is missing or wrong (nothing of it is stored)."""
    return problem_response(
        Problem(
            type=problem_type("webhook-signature-invalid"),
            title="Webhook signature invalid",
            status=401,
            detail=detail,
            instance=instance,
        )
    )
