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

- ``@case``, ``@replace``, ``@arrayPath``, ``@json``, ``@flatten``, ``@merge``, ``@transform``,
  ``@excludeWhenNull`` and ``@liquid``: see :mod:`producer.directive_transforms`.

Anything else starting with ``@`` is a :class:`DirectiveError` naming it, raised at load time: the per-event
path only calls the closures built here and never looks at the mapping spec again. Paths are parsed by
:mod:`producer.paths`, which the triggers use too.
"""

from __future__ import annotations

import re
from typing import Any

from producer.describe import kind_of
from producer.directive_transforms import COMPILERS, OMIT
from producer.paths import (
    DirectiveError,
    Event,
    Resolver,
    Segment,
    compile_getter,
    js_text,
    parse_path,
)

__all__ = [
    "DirectiveError",
    "Event",
    "Resolver",
    "Segment",
    "compile_getter",
    "compile_value",
    "is_directive",
    "js_text",
    "parse_path",
]

SUPPORTED = ("@path", "@if", "@literal", "@template", *COMPILERS)
_IF_KEYS = frozenset({"exists", "blank", "then", "else"})


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
    resolver = _compile(spec)
    if "@excludeWhenNull" not in repr(spec):
        return resolver
    return lambda e: _none_if_omitted(resolver(e))


def _none_if_omitted(value: Any) -> Any:
    return None if value is OMIT else value


def _compile(spec: Any) -> Resolver:
    if spec is None or isinstance(spec, str | int | float | bool):
        return lambda e: spec
    if isinstance(spec, list):
        items = [_compile(item) for item in spec]
        return lambda e: [v for v in (item(e) for item in items) if v is not OMIT]
    if isinstance(spec, dict):
        if is_directive(spec):
            return _compile_directive(spec)
        fields = [(str(k), _compile(v)) for k, v in spec.items()]
        return lambda e: {k: v for k, v in ((k, resolve(e)) for k, resolve in fields) if v is not OMIT}
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
        return _compile(arg)
    if name == "@template":
        if not isinstance(arg, str):
            raise DirectiveError(f"@template expects a string, got {kind_of(arg)}")
        return _compile_template(arg)
    if name in COMPILERS:
        return COMPILERS[name](arg, _compile)
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
    condition = _compile(condition_spec)
    then = _compile(arg["then"]) if "then" in arg else None
    otherwise = _compile(arg["else"]) if "else" in arg else None

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
