"""Heroku's JSON, read defensively for both streams.

No verbatim Heroku chunk or agent message is published, so nothing here trusts a shape: a
missing field, or one of the wrong type, reads as empty instead of failing.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str) -> dict[str, Any] | None:
    """``data`` as a JSON object; None for anything else, including JSON that is not one."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def error_details(data: str) -> dict[str, Any] | str:
    """What an ``error`` event says: its JSON object, else its text, else that it said nothing."""
    return loads(data) or data or "no details"


def first_choice(payload: object) -> dict[str, Any]:
    """``choices[0]`` of a completion or a chunk; empty when there is none."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    return as_dict(choices[0] if isinstance(choices, list) and choices else None)


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""
