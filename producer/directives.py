"""Segment mapping directives, compiled once into closures over the event dict.

A mapping field is either a literal (string, number, boolean, null, or a plain list/object of those) or a
directive object: an object whose single key starts with ``@``. Supported, with Segment's semantics
(``@segment/actions-core`` mapping-kit):

- ``{"@path": "$.context.traits.email"}``: the value at a path; ``None`` when any step is missing. Paths are a
  JSONPath subset: ``$``, ``.name``, ``['name']`` / ``["name"]`` for keys with dots or spaces, ``[0]`` for
  list items. Like Segment, the leading ``$.`` may be left out (``properties.email``).
- ``{"@if": {"exists": <value>, "then": <value>, "else": <value>}}``: ``then`` when ``exists`` resolves to a
  non-null value, else ``else`` (``None`` when a branch is absent). ``{"@if": {"blank": ...}}`` is Segment's
  variant whose condition also treats ``""`` (and the values JavaScript's ``!= ''`` treats like it: ``false``,
  ``0``, ``[]``) as absent; despite its name, ``then`` is taken when the value is *not* blank.
- ``{"@literal": <value>}``: the value itself (resolved, as Segment does).
- ``{"@template": "{{properties.first}} {{{properties.raw}}}"}``: string interpolation; ``{{ }}`` HTML-escapes
  like Segment's renderer, ``{{{ }}}`` does not; a missing value renders as ``""``.

Anything else starting with ``@`` is a :class:`DirectiveError` naming it, raised at load time: the per-event
path only calls the closures built here and never looks at the mapping spec again.

The path getters are also what :mod:`producer.fql` uses for trigger paths, so both agree on what "missing" is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from producer.describe import kind_of

Event = dict[str, Any]
Resolver = Callable[[Event], Any]
Segment = str | int  # a path step: a key, or an index into a list

SUPPORTED = ("@path", "@if", "@literal", "@template")
_IF_KEYS = frozenset({"exists", "blank", "then", "else"})


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


def _is_blank(value: Any) -> bool:
    # Segment: `value !== undefined && value !== null && value != ''`, with JavaScript's loose `!=`.
    if value is None or value == "" or value is False or value == []:
        return True
    return value.__class__ in (int, float) and value == 0


# ------------------------------------------------------------------------------------------ directives


def is_directive(spec: Any) -> bool:
    return isinstance(spec, dict) and any(isinstance(k, str) and k.startswith("@") for k in spec)


def compile_value(spec: Any) -> Resolver:
    """Compile a field value (literal or directive, nested) into ``resolver(event) -> value``."""
    if spec is None or isinstance(spec, str | int | float | bool):
        return lambda e: spec
    if isinstance(spec, list):
        items = [compile_value(item) for item in spec]
        return lambda e: [item(e) for item in items]
    if isinstance(spec, dict):
        if is_directive(spec):
            return _compile_directive(spec)
        fields = [(str(k), compile_value(v)) for k, v in spec.items()]
        return lambda e: {k: resolve(e) for k, resolve in fields}
    raise DirectiveError(f"unsupported value of type {type(spec).__name__}")


def _compile_directive(spec: dict[Any, Any]) -> Resolver:
    names = [k for k in spec if isinstance(k, str) and k.startswith("@")]
    others = [k for k in spec if k not in names and k != "_metadata"]
    if others:
        raise DirectiveError(
            f"a directive object may hold only its directive; found {names[0]} next to {others[0]!r}"
        )
    if len(names) > 1:
        raise DirectiveError(f"one directive per object; found {', '.join(names)}")
    name = names[0]
    arg = spec[name]
    if name == "@path":
        if not isinstance(arg, str):
            raise DirectiveError(f'@path expects a string path like "$.properties.email", got {kind_of(arg)}')
        return compile_getter(parse_path(arg))
    if name == "@if":
        return _compile_if(arg)
    if name == "@literal":
        return compile_value(arg)
    if name == "@template":
        if not isinstance(arg, str):
            raise DirectiveError(f"@template expects a string, got {kind_of(arg)}")
        return _compile_template(arg)
    raise DirectiveError(f"unknown directive {name} (supported: {', '.join(SUPPORTED)})")


def _compile_if(arg: Any) -> Resolver:
    if not isinstance(arg, dict):
        raise DirectiveError('@if expects an object with an "exists" or "blank" key')
    unknown = sorted(str(k) for k in arg if k not in _IF_KEYS)
    if unknown:
        raise DirectiveError(
            f"@if does not take {', '.join(repr(k) for k in unknown)} (it takes exists or blank, then, else)"
        )
    if "exists" in arg:
        condition_spec, blank = arg["exists"], False  # Segment checks "exists" first
    elif "blank" in arg:
        condition_spec, blank = arg["blank"], True
    else:
        raise DirectiveError('@if needs an "exists" or a "blank" key')
    condition = compile_value(condition_spec)
    then = compile_value(arg["then"]) if "then" in arg else None
    otherwise = compile_value(arg["else"]) if "else" in arg else None

    if not blank and then is not None and arg["then"] == condition_spec:
        # The common "this path if present, else that one" (Segment's default email/phone): resolve the
        # path once instead of twice.
        if otherwise is None:
            return condition
        fallback = otherwise

        def coalesce(e: Event) -> Any:
            v = condition(e)
            return v if v is not None else fallback(e)

        return coalesce

    def resolve_if(e: Event) -> Any:
        v = condition(e)
        holds = not _is_blank(v) if blank else v is not None
        if holds:
            return then(e) if then is not None else None
        return otherwise(e) if otherwise is not None else None

    return resolve_if


_PLACEHOLDER = re.compile(r"\{\{\{([^}]+)\}\}\}|\{\{([^}]+)\}\}")
_HTML_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#39;",
        "/": "&#x2F;",
        "`": "&#x60;",
        "=": "&#x3D;",
    }
)


def _compile_template(template: str) -> Resolver:
    parts: list[str | tuple[Resolver, bool]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        if m.start() > pos:
            parts.append(template[pos : m.start()])
        raw, escaped = m.group(1), m.group(2)
        path = (raw if raw is not None else escaped).strip()
        parts.append((compile_getter(parse_path(path)), escaped is not None))
        pos = m.end()
    if pos < len(template):
        parts.append(template[pos:])

    def render(e: Event) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            getter, escape = part
            text = js_text(getter(e)) or ""
            out.append(text.translate(_HTML_ESCAPES) if escape else text)
        return "".join(out)

    return render
