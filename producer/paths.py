"""Paths into an event (Segment's ``@path`` syntax), compiled to fast getters; JavaScript's spelling of scalars.

Shared by the mapping directives (:mod:`producer.directives`) and the triggers (:mod:`producer.fql`), so both
agree on what "missing" is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

Event = dict[str, Any]
Resolver = Callable[[Event], Any]
Segment = str | int  # a path step: a key, or an index into a list


class DirectiveError(ValueError):
    """A field value that cannot be compiled; the message says which directive and why."""


# --------------------------------------------------------------------------------------------------- paths


def compile_getter(steps: Sequence[Segment]) -> Resolver:
    """A closure returning the value at ``steps`` inside an event dict, or ``None`` if any step is missing.

    Specialised by depth because this runs for every trigger comparison and identifier field of every event:
    an unrolled ``dict.get`` chain is about twice as fast as a generic loop.
    """
    steps = tuple(steps)
    if not steps:
        return _identity
    keys = [s for s in steps if isinstance(s, str)]
    if len(keys) == len(steps):
        if len(keys) == 1:
            (a,) = keys
            return lambda e: e.get(a)
        if len(keys) == 2:
            a, b = keys

            def get2(e: Event) -> Any:
                v = e.get(a)
                return v.get(b) if isinstance(v, dict) else None

            return get2
        if len(keys) == 3:
            a, b, c = keys

            def get3(e: Event) -> Any:
                v = e.get(a)
                if not isinstance(v, dict):
                    return None
                v = v.get(b)
                return v.get(c) if isinstance(v, dict) else None

            return get3

    def get_n(e: Event) -> Any:
        v: Any = e
        for step in steps:
            if isinstance(v, dict):
                v = v.get(step if isinstance(step, str) else str(step))
            elif isinstance(v, list) and isinstance(step, int):
                v = v[step] if -len(v) <= step < len(v) else None
            else:
                return None
        return v

    return get_n


def _identity(e: Event) -> Any:
    return e


_NAME = re.compile(r"[^.\[\]]+")


def parse_path(path: str) -> tuple[Segment, ...]:
    """``$.a.b``, ``$.a['b c']``, ``$.items[0].sku`` (or the same without ``$.``) -> steps.

    A purely numeric bracket step is a list index; a numeric dotted step (``a.0``) is kept as a key but also
    indexes lists (see :func:`compile_getter`), which is what Segment's ``get`` does.
    """
    # Work on the path as given so error positions count characters of what the user wrote.
    text = path
    i, n = len(path) - len(path.lstrip()), len(path.rstrip())
    if text[i:n] == "$":
        return ()
    if text.startswith("$.", i):
        i += 2
    elif text.startswith("$[", i):
        i += 1
    if i >= n:
        raise DirectiveError(f"@path {path!r} is empty")
    steps: list[Segment] = []
    expect_name = True  # at the start, or right after a '.'
    while i < n:
        ch = text[i]
        if ch == "[":
            close = _bracket_end(text, i, path)
            inner = text[i + 1 : close].strip()
            if inner[:1] in ("'", '"'):
                if len(inner) < 2 or inner[-1] != inner[0]:
                    raise DirectiveError(f"@path {path!r}: unterminated quoted key at character {i + 1}")
                steps.append(inner[1:-1])
            elif inner.isdigit():
                steps.append(int(inner))
            elif inner == "*":
                raise DirectiveError(f"@path {path!r}: wildcards are not supported")
            else:
                raise DirectiveError(
                    f"@path {path!r}: expected a quoted key or a list index inside [] at character {i + 1}"
                )
            i = close + 1
            expect_name = False
        elif ch == ".":
            if expect_name:
                raise DirectiveError(f"@path {path!r}: empty key at character {i + 1}")
            i += 1
            expect_name = True
        else:
            if not expect_name:
                raise DirectiveError(f"@path {path!r}: expected '.' or '[' at character {i + 1}")
            if ch == "]":
                raise DirectiveError(f"@path {path!r}: unexpected ']' at character {i + 1}")
            m = _NAME.match(text, i)
            assert m is not None  # ch is none of . [ ]
            name = m.group().strip()
            steps.append(int(name) if name.isdigit() and steps else name)
            i = m.end()
            expect_name = False
    if expect_name:
        raise DirectiveError(f"@path {path!r} ends with '.'")
    return tuple(steps)


def _bracket_end(text: str, start: int, path: str) -> int:
    quote = text[start + 1 : start + 2]
    if quote in ("'", '"'):
        end = text.find(quote, start + 2)
        close = text.find("]", end + 1) if end >= 0 else -1
    else:
        close = text.find("]", start)
    if close < 0:
        raise DirectiveError(f"@path {path!r}: '[' at character {start + 1} is never closed")
    return close


# --------------------------------------------------------------------------------------------- scalars


def js_text(value: Any) -> str | None:
    """A scalar's text as JavaScript's ``String()`` spells it (Segment compares and renders with it).

    ``True`` -> ``"true"``, ``5.0`` -> ``"5"``, ``1.5`` -> ``"1.5"``; ``None`` for null, objects and lists.
    """
    cls = value.__class__
    if cls is str:
        return value
    if cls is bool:
        return "true" if value else "false"
    if cls is int:
        return str(value)
    if cls is float:
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    return None

