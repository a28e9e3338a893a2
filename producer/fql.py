"""Mapping triggers: the subset of Segment's FQL that subscriptions use, compiled to a predicate.

Grammar (precedence ``not`` > ``and`` > ``or``; keywords are lower case)::

    trigger    := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := ("not" | "!") not_expr | "(" or_expr ")" | comparison
    comparison := path ("=" | "!=") literal
    path       := name ("." name)*          e.g. type, event, userId, properties.plan, context.traits.email
    literal    := "string with \\" escapes" | number | true | false | null

Semantics follow Segment's ``destination-subscriptions`` so a pasted trigger behaves the same:

- a missing path is null: ``properties.x = null`` holds when ``x`` is absent or null, ``!= null`` when
  present;
- other comparisons compare text the way JavaScript's ``String()`` spells values, so ``properties.n = 5``
  matches ``5``, ``5.0`` and ``"5"``, and ``properties.flag = true`` matches ``true`` and ``"true"``; objects,
  lists and missing values equal no literal; ``!=`` is always the exact negation of ``=``;
- on ``identify`` and ``group`` events ``properties.*`` reads ``traits`` (Segment does the same).

:func:`compile_trigger` parses once at load time; a syntax error is a :class:`TriggerError` carrying the
1-based character position and what was expected there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from producer.directives import compile_getter, js_text

Event = dict[str, Any]
Predicate = Callable[[Event], bool]

_KEYWORDS = frozenset({"and", "or", "not", "true", "false", "null"})
_TRAITS_TYPES = ("identify", "group")  # a tuple: `in` must not hash odd event values


class TriggerError(ValueError):
    """A trigger that does not parse. ``position`` is 1-based; ``expected`` says what would have fitted."""

    def __init__(self, position: int, expected: str, found: str) -> None:
        self.position = position
        self.expected = expected
        self.found = found
        super().__init__(f"at position {position}: expected {expected}, found {found}")


# ---------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, string, number, =, !=, !, (, ), end
    value: Any
    pos: int  # 1-based
    text: str

    def describe(self) -> str:
        return "end of trigger" if self.kind == "end" else repr(self.text)


_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$\-]*(?:\.[A-Za-z0-9_$\-]+)*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i + 1
        if ch == '"':
            value, i = _read_string(text, i)
            tokens.append(_Token("string", value, start, text[start - 1 : i]))
            continue
        if text.startswith("!=", i):
            tokens.append(_Token("!=", None, start, "!="))
            i += 2
            continue
        if text.startswith("==", i):
            raise TriggerError(start, "'=' (FQL compares with a single '=')", "'=='")
        if ch in "=!()":
            tokens.append(_Token(ch, None, start, ch))
            i += 1
            continue
        m = _NUMBER.match(text, i)
        if m and (ch == "-" or ch.isdigit()):
            tokens.append(_Token("number", _number(m.group()), start, m.group()))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            tokens.append(_Token("name", m.group(), start, m.group()))
            i = m.end()
            if i < n and text[i] == ".":
                raise TriggerError(i + 1, "a name after '.'", _found_at(text, i + 1))
            continue
        raise TriggerError(start, "a path, a literal, '(', 'not' or an operator", repr(ch))
    tokens.append(_Token("end", None, n + 1, ""))
    return tokens


def _read_string(text: str, i: int) -> tuple[str, int]:
    """Read the string literal opening at ``text[i]``; return its value and the index after its end."""
    out: list[str] = []
    j = i + 1
    n = len(text)
    while j < n:
        ch = text[j]
        if ch == '"':
            return "".join(out), j + 1
        if ch == "\\":
            if j + 1 >= n:
                break
            esc = text[j + 1]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                j += 2
                continue
            if esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[j + 2 : j + 6]):
                out.append(chr(int(text[j + 2 : j + 6], 16)))
                j += 6
                continue
            raise TriggerError(
                j + 1, 'an escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)', repr("\\" + esc)
            )
        out.append(ch)
        j += 1
    raise TriggerError(n + 1, f"'\"' closing the string opened at position {i + 1}", "end of trigger")


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _found_at(text: str, pos: int) -> str:
    return repr(text[pos - 1]) if pos <= len(text) else "end of trigger"


# ---------------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_keyword(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.value == word

    def trigger(self) -> Predicate:
        if self.peek().kind == "end":
            raise TriggerError(
                self.peek().pos, 'a condition such as event = "Audience Entered"', "an empty trigger"
            )
        pred = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            raise TriggerError(tok.pos, "'and', 'or' or end of trigger", tok.describe())
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.is_keyword("or"):
            self.take()
            parts.append(self.and_expr())
        return _any(parts)

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.is_keyword("and"):
            self.take()
            parts.append(self.not_expr())
        return _all(parts)

    def not_expr(self) -> Predicate:
        tok = self.peek()
        if tok.kind == "!" or self.is_keyword("not"):
            self.take()
            inner = self.not_expr()
            return lambda e: not inner(e)
        if tok.kind == "(":
            self.take()
            pred = self.or_expr()
            close = self.take()
            if close.kind != ")":
                raise TriggerError(close.pos, "')' or 'and' or 'or'", close.describe())
            return pred
        return self.comparison()

    def comparison(self) -> Predicate:
        tok = self.take()
        if tok.kind != "name" or tok.value in _KEYWORDS:
            raise TriggerError(
                tok.pos, "a path (such as event or properties.x), '(' or 'not'", tok.describe()
            )
        op = self.take()
        if op.kind not in ("=", "!="):
            raise TriggerError(op.pos, "'=' or '!='", op.describe())
        lit = self.take()
        if lit.kind in ("string", "number"):
            value = lit.value
        elif lit.kind == "name" and lit.value in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[lit.value]
        else:
            raise TriggerError(lit.pos, 'a literal ("string", number, true, false or null)', lit.describe())
        pred = _compare(tok.value, value)
        if op.kind == "!=":
            positive = pred
            return lambda e: not positive(e)
        return pred


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda e: a(e) and b(e)
    return lambda e: all(p(e) for p in parts)


def _any(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda e: a(e) or b(e)
    return lambda e: any(p(e) for p in parts)


# --------------------------------------------------------------------------------------------- compile


def _path_getter(path: str) -> Callable[[Event], Any]:
    steps = path.split(".")
    if steps[0] != "properties" or len(steps) == 1:
        return compile_getter(steps)
    in_properties = compile_getter(steps)
    in_traits = compile_getter(["traits", *steps[1:]])

    def properties_or_traits(e: Event) -> Any:
        return in_traits(e) if e.get("type") in _TRAITS_TYPES else in_properties(e)

    return properties_or_traits


def _compare(path: str, literal: Any) -> Predicate:
    """The predicate for ``path = literal`` (``!=`` negates it)."""
    expected = js_text(literal)
    plain = isinstance(literal, str) and not _could_be_scalar_text(literal)
    if "." not in path:
        # Top-level keys (type, event, userId): one closure, no getter call. These are nearly every trigger.
        if literal is None:
            return lambda e: e.get(path) is None
        if plain:
            return lambda e: e.get(path) == expected
        return lambda e: js_text(e.get(path)) == expected
    get = _path_getter(path)
    if literal is None:
        return lambda e: get(e) is None
    if plain:
        # Only a string can spell this literal, so plain equality is exact.
        return lambda e: get(e) == expected
    return lambda e: js_text(get(e)) == expected


def _could_be_scalar_text(text: str) -> bool:
    """Whether a boolean or a number could have ``text`` as its JavaScript spelling."""
    if text in ("true", "false", "NaN", "Infinity", "-Infinity"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def compile_trigger(text: str) -> Predicate:
    """Parse an FQL trigger and return ``predicate(event) -> bool``. Raises :class:`TriggerError`."""
    return _Parser(text).trigger()
