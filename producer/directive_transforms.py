"""Mapping-kit's value-shaping directives: @case, @replace, @arrayPath, @json, @flatten, @merge, @transform,
@excludeWhenNull and @liquid, with the semantics of Segment's ``@segment/actions-core`` mapping-kit.

Each ``compile_*`` takes the directive's argument and the compiler of nested values, checks the argument at
load time (a :class:`DirectiveError` names the directive and the problem) and returns a resolver. Where
mapping-kit returns ``undefined`` these return ``None``; ``@excludeWhenNull`` returns :data:`OMIT`, which the
enclosing object or list drops (as mapping-kit drops undefined keys).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import liquid
import orjson
from liquid.exceptions import LiquidError

from producer.describe import kind_of
from producer.paths import DirectiveError, Event, Resolver, compile_getter, js_text, parse_path

Compile = Callable[[Any], Resolver]

OMIT: Any = type("Omit", (), {"__repr__": lambda self: "OMIT"})()
# mapping-kit refuses longer ones: @replace is for small clean-ups, not for regular expressions
MAX_REPLACE_PATTERN = 10
MAX_REPLACE_REPLACEMENT = 10


def _object_arg(name: str, arg: Any, needs: tuple[str, ...], takes: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(arg, dict):
        raise DirectiveError(f"{name} expects an object with {' and '.join(repr(k) for k in needs)}")
    for key in needs:
        if key not in arg or arg[key] in (None, "", False):
            raise DirectiveError(f"{name} requires a {key!r} key")
    unknown = sorted(str(k) for k in arg if k not in takes)
    if unknown:
        raise DirectiveError(f"{name} does not take {unknown[0]!r} (it takes {', '.join(takes)})")
    return arg


def _const_none(e: Event) -> Any:
    return None


def compile_case(arg: Any, compile_value: Compile) -> Resolver:
    """``{"operator": "lower" | "upper", "value": ...}``: the value's case changed; non-strings unchanged."""
    arg = _object_arg("@case", arg, ("operator",), ("operator", "value"))
    operator = arg["operator"]
    if operator not in ("lower", "upper"):
        raise DirectiveError(f'@case operator must be "lower" or "upper", not {operator!r}')
    if not arg.get("value"):
        return _const_none
    value = compile_value(arg["value"])
    change = str.lower if operator == "lower" else str.upper

    def case(e: Event) -> Any:
        v = value(e)
        return change(v) if v.__class__ is str else v

    return case


def _literal_pattern(name: str, key: str, text: Any, limit: int, *, required: bool) -> str:
    if text is None and not required:
        return ""
    if not isinstance(text, str) or (required and not text):
        raise DirectiveError(f"@replace {key} must be a non-empty string" if required else f"{name} must be a string")
    if len(text) > limit:
        raise DirectiveError(f"@replace {key} must be at most {limit} characters, not {len(text)}")
    return text


def compile_replace(arg: Any, compile_value: Compile) -> Resolver:
    """Replace a literal substring (``pattern``, then optionally ``pattern2``) in the value's text.

    ``global`` (default true) replaces every occurrence, ``ignorecase`` (default false) ignores case. Numbers
    and booleans are replaced in their text; any other value (missing included) gives ``""``, as in Segment.
    """
    takes = ("pattern", "replacement", "pattern2", "replacement2", "ignorecase", "global", "value")
    arg = _object_arg("@replace", arg, ("pattern",), takes)
    steps = []
    for pattern_key, replacement_key in (("pattern", "replacement"), ("pattern2", "replacement2")):
        if pattern_key == "pattern2" and not arg.get("pattern2"):
            break
        pattern = _literal_pattern("@replace", pattern_key, arg.get(pattern_key), MAX_REPLACE_PATTERN, required=True)
        replacement = _literal_pattern(
            f"@replace {replacement_key}", replacement_key, arg.get(replacement_key), MAX_REPLACE_REPLACEMENT,
            required=False,
        )
        steps.append((pattern, replacement))
    flags = {}
    for key, default in (("ignorecase", False), ("global", True)):
        flags[key] = arg.get(key, default)
        if not isinstance(flags[key], bool):
            raise DirectiveError(f"@replace {key} must be true or false")
    count = 0 if flags["global"] else 1
    regex_flags = re.IGNORECASE if flags["ignorecase"] else 0
    compiled = [(re.compile(re.escape(p), regex_flags), r) for p, r in steps]
    if not arg.get("value"):
        return _const_none
    value = compile_value(arg["value"])

    def replace(e: Event) -> str:
        v = value(e)
        text = js_text(v) if v.__class__ in (bool, int, float) else v
        if text.__class__ is not str:
            return ""
        for regex, replacement in compiled:
            # a function, so the replacement is taken literally (no backreferences)
            text = regex.sub(_literally(replacement), text, count=count)
        return text

    return replace


def _literally(replacement: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: replacement


def compile_array_path(arg: Any, compile_value: Compile) -> Resolver:
    """``[path, item_shape]``: the list at ``path``; with a non-empty shape, each item mapped through it
    (paths in the shape read the item). A single object at ``path`` counts as a one-item list."""
    if not isinstance(arg, list) or not arg:
        raise DirectiveError(f"@arrayPath expects a list [path, item shape], got {kind_of(arg)}")
    path, shape = arg[0], arg[1] if len(arg) > 1 else None
    root = compile_getter(parse_path(path)) if isinstance(path, str) else compile_value(path)
    if not isinstance(shape, dict) or not shape:
        return root
    item = compile_value(shape)

    def array_path(e: Event) -> Any:
        v = root(e)
        if isinstance(v, dict):
            return [item(v)]
        if isinstance(v, list):
            return [item(x) if isinstance(x, dict) else item({}) for x in v]
        return v

    return array_path


def _js_json(value: Any) -> str | None:
    if value is None:
        return "null"
    return orjson.dumps(value, default=str).decode()


def compile_json(arg: Any, compile_value: Compile) -> Resolver:
    """``{"mode": "encode" | "decode", "value": ...}``: JSON text of the value, or the value a JSON text holds
    (a text that is not JSON stays as it is)."""
    arg = _object_arg("@json", arg, ("mode", "value"), ("mode", "value"))
    mode = arg["mode"]
    if mode not in ("encode", "decode"):
        raise DirectiveError(f'@json mode must be "encode" or "decode", not {mode!r}')
    value = compile_value(arg["value"])
    if mode == "encode":
        return lambda e: _js_json(value(e))

    def decode(e: Event) -> Any:
        v = value(e)
        if v.__class__ is not str:
            return v
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v

    return decode


def flatten(value: Any, prefix: str, separator: str, omit_arrays: bool) -> dict[str, Any]:
    if isinstance(value, dict) or (isinstance(value, list) and not omit_arrays):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        out: dict[str, Any] = {}
        for key, child in items:
            out.update(flatten(child, f"{prefix}{separator}{key}" if prefix else str(key), separator, omit_arrays))
        return out
    return {prefix: value}


def compile_flatten(arg: Any, compile_value: Compile) -> Resolver:
    """``{"separator": ".", "value": ..., "omitArrays": false}``: nested keys joined into one level."""
    arg = _object_arg("@flatten", arg, ("separator",), ("separator", "value", "omitArrays"))
    separator = compile_value(arg["separator"])
    value = compile_value(arg.get("value"))
    omit_arrays = bool(arg.get("omitArrays"))

    def flattened(e: Event) -> Any:
        sep = separator(e)
        return flatten(value(e), "", sep if isinstance(sep, str) else ".", omit_arrays)

    return flattened


def compile_merge(arg: Any, compile_value: Compile) -> Resolver:
    """``{"objects": [...], "direction": "right" | "left"}``: the objects merged key by key; later objects win
    (``right``) or earlier ones do (``left``). Values that are not objects are skipped."""
    arg = _object_arg("@merge", arg, ("objects", "direction"), ("objects", "direction"))
    if not isinstance(arg["objects"], list):
        raise DirectiveError(f"@merge objects must be a list, got {kind_of(arg['objects'])}")
    if arg["direction"] not in ("left", "right"):
        raise DirectiveError(f'@merge direction must be "left" or "right", not {arg["direction"]!r}')
    objects = [compile_value(o) for o in arg["objects"]]
    left = arg["direction"] == "left"

    def merge(e: Event) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for resolved in reversed([o(e) for o in objects]) if left else (o(e) for o in objects):
            if isinstance(resolved, dict):
                out.update(resolved)
        return out

    return merge


def compile_transform(arg: Any, compile_value: Compile) -> Resolver:
    """``{"apply": {...}, "mapping": ...}``: ``mapping`` resolved against the object ``apply`` builds."""
    arg = _object_arg("@transform", arg, ("apply", "mapping"), ("apply", "mapping"))
    if not isinstance(arg["apply"], dict):
        raise DirectiveError(f"@transform apply must be an object, got {kind_of(arg['apply'])}")
    apply = compile_value(arg["apply"])
    mapping = compile_value(arg["mapping"])
    return lambda e: mapping(apply(e))


def _clean_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean_nulls(v) for k, v in value.items() if v is not None}
    return value


def compile_exclude_when_null(arg: Any, compile_value: Compile) -> Resolver:
    """The value with null object members removed; a null value itself leaves the enclosing key out."""
    value = compile_value(arg)

    def exclude(e: Event) -> Any:
        v = value(e)
        return OMIT if v is None else _clean_nulls(v)

    return exclude


def compile_liquid(arg: Any, compile_value: Compile) -> Resolver:
    """A Liquid template (python-liquid) rendered with the event's fields as variables."""
    if not isinstance(arg, str):
        raise DirectiveError(f"@liquid expects a template string, got {kind_of(arg)}")
    if len(arg) > 1000:
        raise DirectiveError("@liquid templates are limited to 1000 characters")
    try:
        template = liquid.Environment().from_string(arg)
    except LiquidError as exc:
        raise DirectiveError(f"@liquid template does not parse: {exc}") from None

    def render(e: Event) -> str | None:
        try:
            return str(template.render(**e))
        except LiquidError:
            return None  # a template that fails on this event's values leaves the field missing

    return render


COMPILERS: dict[str, Callable[[Any, Compile], Resolver]] = {
    "@case": compile_case,
    "@replace": compile_replace,
    "@arrayPath": compile_array_path,
    "@json": compile_json,
    "@flatten": compile_flatten,
    "@merge": compile_merge,
    "@transform": compile_transform,
    "@excludeWhenNull": compile_exclude_when_null,
    "@liquid": compile_liquid,
}
