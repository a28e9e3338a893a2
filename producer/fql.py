"""Mapping triggers: Segment's Filter Query Language (FQL), compiled once to a predicate over the event.

What Segment's trigger builder and destination filters write, with the semantics Segment documents for FQL::

    trigger    := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := ("!" | "not") unary | comparison
    comparison := operand [("=" | "!=" | "<" | "<=" | ">" | ">=") operand | "in" operand]
    operand    := "(" or_expr ")" | literal | "[" literal ("," literal)* "]" | function "(" args ")" | path
    path       := name ("." name)*     e.g. event, properties.plan, properties.product\\ 1.price
    literal    := "string" | 'string' | number | true | false | null
    function   := contains | match | length | lowercase | uppercase | snakecase | kebabcase | typeof

Semantics:

- ``=`` holds when both sides have the same type (string, number, bool, list, null) and are equal:
  ``properties.n = 5`` matches the number ``5`` (or ``5.0``) but not the string ``"5"``; ``!=`` is its exact
  negation. A missing path is ``null``.
- ``<``, ``<=``, ``>``, ``>=`` hold only between two numbers.
- ``contains(s, sub)`` holds when ``s`` is a string containing ``sub``; ``match(s, pattern)`` when the glob
  ``pattern`` matches all of ``s`` (``*`` any run, ``?`` one character, ``[abc]``, ``[a-z]``, ``\\x`` a literal
  ``x``; case sensitive). Both are false on ``null``.
- ``x in [..]`` holds when ``x`` equals (as ``=``) an item of the list.
- ``and``, ``or`` and ``!`` read anything but ``true`` as false, so a bare ``properties.enabled`` holds only
  when it is the boolean ``true``.
- A field name with a character outside ``a-z A-Z 0-9 _ -`` is escaped with ``\\`` (``properties.a\\ b``).
- On ``identify`` and ``group`` events ``properties.*`` reads ``traits``.

:func:`compile_trigger` parses at load time; a syntax error is a :class:`TriggerError` carrying the 1-based
character position and what was expected there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from producer.directives import compile_getter
from producer.fql_values import FUNCTIONS, equal, glob_regex, less

Event = dict[str, Any]
Predicate = Callable[[Event], bool]
Value = Callable[[Event], Any]

_LITERAL_WORDS = {"true": True, "false": False, "null": None}
_RESERVED = frozenset({"and", "or", "not", "in", *_LITERAL_WORDS})
_TRAITS_TYPES = ("identify", "group")  # a tuple: `in` must not hash odd event values
_NAME_CHAR = re.compile(r"[A-Za-z0-9_$\-]")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_COMPARE = ("=", "!=", "<", "<=", ">", ">=")


class TriggerError(ValueError):
    """A trigger that does not parse. ``position`` is 1-based; ``expected`` says what would have fitted."""

    def __init__(self, position: int, expected: str, found: str) -> None:
        self.position = position
        self.expected = expected
        self.found = found
        super().__init__(f"at position {position}: expected {expected}, found {found}")


class _Token:
    __slots__ = ("kind", "pos", "text", "value")

    def __init__(self, kind: str, value: Any, pos: int, text: str) -> None:
        self.kind = kind  # name, string, number, an operator or punctuation, end
        self.value = value
        self.pos = pos  # 1-based
        self.text = text

    def describe(self) -> str:
        return "end of trigger" if self.kind == "end" else repr(self.text)


# ---------------------------------------------------------------------------------------------- tokens


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i + 1
        if ch in "\"'":
            value, i = _read_string(text, i)
            tokens.append(_Token("string", value, start, text[start - 1 : i]))
            continue
        two = text[i : i + 2]
        if two == "==":
            raise TriggerError(start, "'=' (FQL compares with a single '=')", "'=='")
        if two in ("!=", "<=", ">="):
            tokens.append(_Token(two, None, start, two))
            i += 2
            continue
        if ch in "=!<>()[],":
            tokens.append(_Token(ch, None, start, ch))
            i += 1
            continue
        m = _NUMBER.match(text, i)
        if m and (ch == "-" or ch.isdigit()):
            tokens.append(_Token("number", _number(m.group()), start, m.group()))
            i = m.end()
            continue
        if _NAME_CHAR.match(ch) or ch == "\\":
            steps, i = _read_path(text, i)
            tokens.append(_Token("name", steps, start, text[start - 1 : i]))
            continue
        raise TriggerError(start, "a path, a literal, '(', 'not' or an operator", repr(ch))
    tokens.append(_Token("end", None, n + 1, ""))
    return tokens


def _read_path(text: str, i: int) -> tuple[list[str], int]:
    """A dotted path whose names may escape any character with a backslash; returns its names."""
    steps: list[str] = []
    name: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                raise TriggerError(i + 1, "a character after '\\'", "end of trigger")
            name.append(text[i + 1])
            i += 2
        elif _NAME_CHAR.match(ch):
            name.append(ch)
            i += 1
        elif ch == ".":
            if not name:
                raise TriggerError(i + 1, "a name before '.'", "'.'")
            steps.append("".join(name))
            name = []
            i += 1
        else:
            break
    if not name:  # the path ends with '.': point at it
        raise TriggerError(i, "a name after '.'", repr(text[i]) if i < n else "end of trigger")
    steps.append("".join(name))
    return steps, i


def _read_string(text: str, i: int) -> tuple[str, int]:
    """Read the string literal opening at ``text[i]``; return its value and the index after its end."""
    quote = text[i]
    out: list[str] = []
    j, n = i + 1, len(text)
    while j < n:
        ch = text[j]
        if ch == quote:
            return "".join(out), j + 1
        if ch == "\\":
            esc = text[j + 1 : j + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                j += 2
                continue
            if esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[j + 2 : j + 6]):
                out.append(chr(int(text[j + 2 : j + 6], 16)))
                j += 6
                continue
            raise TriggerError(
                j + 1, "an escape (\\\" \\' \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)", repr("\\" + esc)
            )
        out.append(ch)
        j += 1
    raise TriggerError(n + 1, f"{quote!r} closing the string opened at position {i + 1}", "end of trigger")


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


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

    def expect(self, kind: str, what: str) -> _Token:
        tok = self.take()
        if tok.kind != kind:
            raise TriggerError(tok.pos, what, tok.describe())
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.value == [word]

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
        while self.is_word("or"):
            self.take()
            parts.append(self.and_expr())
        return _any(parts)

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.is_word("and"):
            self.take()
            parts.append(self.unary())
        return _all(parts)

    def unary(self) -> Predicate:
        if self.peek().kind == "!" or self.is_word("not"):
            self.take()
            inner = self.unary()
            return lambda e: not inner(e)
        return self.comparison()

    def comparison(self) -> Predicate:
        first = self.peek()
        left, left_literal = self.operand()
        tok = self.peek()
        if tok.kind in _COMPARE:
            if left_literal is not None:
                raise TriggerError(first.pos, "a path or a function left of the operator", first.describe())
            self.take()
            literal = self.operand()[1]
            if literal is None:
                at = self.tokens[self.i - 1]
                raise TriggerError(
                    at.pos, 'a literal ("string", number, true, false, null or a list)', at.describe()
                )
            return _compare(tok.kind, left, literal[0])
        if self.is_word("in"):
            self.take()
            items = self.operand()[0]
            return lambda e: _is_in(left(e), items(e))
        if tok.kind in ("string", "number"):
            raise TriggerError(tok.pos, "'=', '!=', '<', '<=', '>', '>=' or 'in'", tok.describe())
        if left_literal is not None:
            raise TriggerError(tok.pos, "a comparison after a literal", tok.describe())
        return lambda e: left(e) is True

    def operand(self) -> tuple[Value, tuple[Any] | None]:
        """An operand's value getter, and ``(value,)`` when it is a literal known at load time."""
        tok = self.take()
        if tok.kind == "(":
            inner = self.or_expr()
            self.expect(")", "')' or 'and' or 'or'")
            return inner, None
        if tok.kind in ("string", "number"):
            return _const(tok.value), (tok.value,)
        if tok.kind == "[":
            items = self.list_items()
            return _const(items), (items,)
        if tok.kind == "name" and len(tok.value) == 1 and tok.value[0] in _LITERAL_WORDS:
            value = _LITERAL_WORDS[tok.value[0]]
            return _const(value), (value,)
        if tok.kind == "name" and not (len(tok.value) == 1 and tok.value[0] in _RESERVED):
            if self.peek().kind == "(" and len(tok.value) == 1:
                return self.call(tok), None
            return _path_getter(tok.value), None
        raise TriggerError(
            tok.pos, "a path (such as event or properties.x), a literal, '(' or 'not'", tok.describe()
        )

    def list_items(self) -> list[Any]:
        items: list[Any] = []
        while True:
            value = self.operand()[1]
            if value is None:
                tok = self.tokens[self.i - 1]
                raise TriggerError(tok.pos, "a literal in the list", tok.describe())
            items.append(value[0])
            tok = self.take()
            if tok.kind == "]":
                return items
            if tok.kind != ",":
                raise TriggerError(tok.pos, "',' or ']'", tok.describe())

    def call(self, name_tok: _Token) -> Value:
        name = name_tok.value[0]
        self.take()  # (
        args: list[tuple[Value, tuple[Any] | None]] = []
        if self.peek().kind != ")":
            args.append(self.operand())
            while self.peek().kind == ",":
                self.take()
                args.append(self.operand())
        self.expect(")", "',' or ')' closing the function's arguments")
        if name == "match":
            return self.match(name_tok, args)
        if name not in FUNCTIONS:
            known = ", ".join(["match", *FUNCTIONS])
            raise TriggerError(name_tok.pos, f"a function ({known})", repr(name))
        function, arity = FUNCTIONS[name]
        if len(args) != arity:
            raise TriggerError(name_tok.pos, f"{name}() with {arity} argument(s)", f"{len(args)}")
        getters = [getter for getter, _ in args]
        if arity == 1:
            (only,) = getters
            return lambda e: function(only(e))
        first, second = getters
        return lambda e: function(first(e), second(e))

    def match(self, name_tok: _Token, args: list[tuple[Value, tuple[Any] | None]]) -> Value:
        if len(args) != 2 or args[1][1] is None or not isinstance(args[1][1][0], str):
            raise TriggerError(name_tok.pos, 'match(value, "glob pattern")', f"{len(args)} argument(s)")
        try:
            regex = glob_regex(args[1][1][0])
        except re.error as exc:
            raise TriggerError(name_tok.pos, "a valid glob pattern", f"{args[1][1][0]!r} ({exc})") from None
        subject = args[0][0]

        def matches(e: Event) -> bool:
            value = subject(e)
            return value.__class__ is str and regex.fullmatch(value) is not None

        return matches


def _const(value: Any) -> Value:
    return lambda e: value


def _is_in(value: Any, items: Any) -> bool:
    return isinstance(items, list) and any(equal(value, item) for item in items)


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda e: a(e) is True and b(e) is True
    return lambda e: all(p(e) is True for p in parts)


def _any(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda e: a(e) is True or b(e) is True
    return lambda e: any(p(e) is True for p in parts)


# --------------------------------------------------------------------------------------------- compile


def _path_getter(steps: list[str]) -> Value:
    if steps[0] != "properties" or len(steps) == 1:
        return compile_getter(steps)
    in_properties = compile_getter(steps)
    in_traits = compile_getter(["traits", *steps[1:]])

    def properties_or_traits(e: Event) -> Any:
        return in_traits(e) if e.get("type") in _TRAITS_TYPES else in_properties(e)

    return properties_or_traits


def _compare(op: str, left: Value, literal: Any) -> Predicate:
    if op in ("=", "!="):
        positive = _equals_literal(left, literal)
        if op == "!=":
            return lambda e: not positive(e)
        return positive
    if op == "<":
        return lambda e: less(left(e), literal, strict=True)
    if op == "<=":
        return lambda e: less(left(e), literal, strict=False)
    if op == ">":
        return lambda e: less(literal, left(e), strict=True)
    return lambda e: less(literal, left(e), strict=False)


def _equals_literal(get: Value, literal: Any) -> Predicate:
    """``get(e) = literal``, specialised: nearly every trigger is a path compared with a string."""
    if literal.__class__ is str:
        return lambda e: get(e) == literal  # only a str equals a str
    if literal is None:
        return lambda e: get(e) is None
    if literal is True:
        return lambda e: get(e) is True
    if literal is False:
        return lambda e: get(e) is False
    return lambda e: equal(get(e), literal)


def compile_trigger(text: str) -> Predicate:
    """Parse an FQL trigger and return ``predicate(event) -> bool``. Raises :class:`TriggerError`."""
    return _Parser(text).trigger()
