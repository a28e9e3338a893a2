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
from producer.fql_tokens import Token, TriggerError, tokenize
from producer.fql_values import FUNCTIONS, equal, glob_regex, less

__all__ = ["Predicate", "TriggerError", "compile_trigger"]

Event = dict[str, Any]
Predicate = Callable[[Event], bool]
Value = Callable[[Event], Any]

_LITERAL_WORDS = {"true": True, "false": False, "null": None}
_RESERVED = frozenset({"and", "or", "not", "in", *_LITERAL_WORDS})
_TRAITS_TYPES = ("identify", "group")  # a tuple: `in` must not hash odd event values
_COMPARE = ("=", "!=", "<", "<=", ">", ">=")


# ---------------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str, what: str) -> Token:
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
        first, start = self.peek(), self.i
        left, left_literal = self.operand()
        plain_name = first.kind == "name" and len(first.value) == 1 and self.i == start + 1
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
            if plain_name and tok.kind in ("=", "!=") and literal[0].__class__ is str:
                # `event = "Audience Entered"`: nearly every trigger; one closure, no getter call
                key, text = first.value[0], literal[0]
                if tok.kind == "=":
                    return lambda e: e.get(key) == text
                return lambda e: e.get(key) != text
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

    def call(self, name_tok: Token) -> Value:
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

    def match(self, name_tok: Token, args: list[tuple[Value, tuple[Any] | None]]) -> Value:
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
