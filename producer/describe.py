"""How error messages name the JSON type of a value they refuse (never the value itself: it may be PII)."""

from __future__ import annotations

from typing import Any

_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
          dict: "an object"}


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in _NAMES.items():  # isinstance, not type(): subclasses read as their JSON type
        if isinstance(value, kind):
            return name
    return type(value).__name__
