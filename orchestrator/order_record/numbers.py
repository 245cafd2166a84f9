"""Short, human order numbers: ``R7K-2Q9M``. Crockford's alphabet has no I, L, O or U to misread."""

from __future__ import annotations

import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PATTERN = re.compile(rf"^[{ALPHABET}]{{3}}-[{ALPHABET}]{{4}}$")


def new_order_number() -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(7))
    return f"{chars[:3]}-{chars[3:]}"


def normalise_order_number(text: str) -> str:
    """What a customer reads out over the phone: case and the misread letters forgiven."""
    cleaned = "".join(text.split()).upper().replace("O", "0").replace("I", "1").replace("L", "1")
    if len(cleaned) == 7 and "-" not in cleaned:
        cleaned = f"{cleaned[:3]}-{cleaned[3:]}"
    return cleaned
