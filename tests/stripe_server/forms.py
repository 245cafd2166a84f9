"""Stripe's request encoding: ``application/x-www-form-urlencoded`` with bracketed keys
(``metadata[order]=1``, ``expand[0]=latest_charge``, ``payment_method_options[card][x]=y``)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_PART = re.compile(r"\[([^\]]*)\]")


def decode(body: str) -> dict[str, Any]:
    """The nested parameters of a form body or query string; indexed keys become lists."""
    tree: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head = key.split("[", 1)[0]
        parts = [head, *_PART.findall(key[len(head) :])]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        last = parts[-1]
        if last == "":  # ``expand[]=x``: append
            last = str(len(node))
        node[last] = value
    return _lists(tree)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def flag(value: Any) -> bool | None:
    """Stripe's booleans arrive as ``true``/``false``."""
    if value is None:
        return None
    return str(value).lower() == "true"
