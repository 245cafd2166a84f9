"""Rendering a notification from its templates (``templates/<name>.txt`` with blocks subject,
text and short; ``templates/<name>.html``, autoescaped)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("orchestrator.webhooks", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=False,
    )


def render(name: str, context: dict[str, Any]) -> dict[str, str]:
    """{subject, text, short, html} of notification ``name``."""
    env = _environment()
    plain = env.get_template(f"{name}.txt")
    made = plain.new_context(context)
    parts = {block: "".join(plain.blocks[block](made)).strip() for block in ("subject", "text", "short")}
    parts["html"] = env.get_template(f"{name}.html").render(context)
    return parts
