"""FQL's value rules: typed equality, numeric order, glob patterns and the built-in functions.

FQL's types are string, number, bool, list and null (a missing path is null). Python's ``True == 1`` and
``"5" != 5`` are not FQL's rules, so equality compares types first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def fql_type(value: Any) -> str:
    cls = value.__class__
    if cls is str:
        return "string"
    if cls is bool:
        return "bool"
    if cls is int or cls is float:
        return "number"
    if value is None:
        return "null"
    if cls is list:
        return "list"
    return "object"


def equal(left: Any, right: Any) -> bool:
    """Same FQL type and equal (numbers by value: ``5 = 5.0``; lists item by item)."""
    kind = fql_type(left)
    if kind != fql_type(right):
        return False
    if kind == "list":
        return len(left) == len(right) and all(equal(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def less(left: Any, right: Any, *, strict: bool) -> bool:
    """``left < right`` (or ``<=``) when both are numbers; false for anything else."""
    if fql_type(left) != "number" or fql_type(right) != "number":
        return False
    return bool(left < right) if strict else bool(left <= right)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """FQL's glob: ``*`` any run, ``?`` one character, ``[abc]`` / ``[a-z]`` a set, ``\\x`` a literal ``x``."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif ch == "*":
            out.append(".*")
            i += 1
        elif ch == "?":
            out.append(".")
            i += 1
        elif ch == "[" and pattern.find("]", i + 2) > i:
            close = pattern.index("]", i + 2)  # a ']' right after '[' is a member, as in shells
            body = pattern[i + 1 : close]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            # keep '-' for ranges; escape what a regex set would read otherwise
            members = "".join("\\" + c if c in "\\^[]" else c for c in body)
            out.append(f"[{'^' if negate else ''}{members}]")
            i = close + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _contains(text: Any, sub: Any) -> bool:
    return text.__class__ is str and sub.__class__ is str and sub in text


def _length(value: Any) -> int:
    if value.__class__ is str:
        return len(value.encode())  # FQL counts bytes
    if value.__class__ is list:
        return len(value)
    return 0


def _string_function(convert: Callable[[str], str]) -> Callable[[Any], Any]:
    return lambda value: convert(value) if value.__class__ is str else None


FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "contains": (_contains, 2),
    "length": (_length, 1),
    "lowercase": (_string_function(str.lower), 1),
    "uppercase": (_string_function(str.upper), 1),
    "snakecase": (_string_function(lambda s: s.replace(" ", "_")), 1),
    "kebabcase": (_string_function(lambda s: s.replace(" ", "-")), 1),
    "typeof": (fql_type, 1),
}
