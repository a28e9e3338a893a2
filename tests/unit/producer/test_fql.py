"""Triggers: Segment's FQL subset, compiled once; errors point at the character that is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from producer.fql import TriggerError, compile_trigger

ENTERED: dict[str, Any] = {
    "type": "track",
    "event": "Audience Entered",
    "userId": "user-1",
    "properties": {"audience_key": "vip", "vip": True, "count": 5, "ratio": 1.5, "nested": {"deep": "yes"}},
    "context": {
        "traits": {"email": "person@example.com", "plan": "pro"},
        "personas": {"computation_key": "vip"},
    },
}


def holds(trigger: str, event: dict[str, Any] = ENTERED) -> bool:
    return compile_trigger(trigger)(event)


# --------------------------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ('event = "Audience Entered"', True),
        ('event = "Audience Exited"', False),
        ('event != "Audience Exited"', True),
        ('type = "track"', True),
        ('type = "identify"', False),
        ('userId = "user-1"', True),
        ('properties.audience_key = "vip"', True),
        ('context.traits.plan = "pro"', True),
        ('context.personas.computation_key = "vip"', True),
        ('properties.nested.deep = "yes"', True),
    ],
)
def test_comparisons(trigger: str, expected: bool) -> None:
    assert holds(trigger) is expected


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("properties.missing = null", True),
        ("properties.missing != null", False),
        ("properties.vip = null", False),
        ("properties.vip != null", True),
        ("context.nothing.here = null", True),
        ("properties.nested.deep.deeper = null", True),  # a path through a string is missing
        ('properties.missing != "x"', True),  # != is the exact negation of =
        ('properties.missing = "x"', False),
    ],
)
def test_missing_paths_are_null(trigger: str, expected: bool) -> None:
    assert holds(trigger) is expected


def test_an_explicit_null_value_is_null() -> None:
    assert holds("properties.x = null", {"type": "track", "properties": {"x": None}})


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("properties.count = 5", True),
        ('properties.count = "5"', False),  # same type and equal: a number is not the string "5"
        ("properties.count = 5.0", True),  # numbers compare by value
        ("properties.count != 5", False),
        ('properties.count != "5"', True),  # != is true across types
        ("properties.count = 6", False),
        ("properties.ratio = 1.5", True),
        ("properties.vip = true", True),
        ('properties.vip = "true"', False),
        ("properties.vip = 1", False),  # a boolean is not a number
        ("properties.vip = false", False),
        ("properties.vip != false", True),
        ("properties.nested = true", False),  # objects equal no literal
        ('properties.nested = "[object Object]"', False),
    ],
)
def test_equality_needs_the_same_type(trigger: str, expected: bool) -> None:
    assert holds(trigger) is expected


def test_string_values_do_not_match_number_or_boolean_literals() -> None:
    assert not holds("properties.n = 5", {"type": "track", "properties": {"n": "5"}})
    assert not holds("properties.b = true", {"type": "track", "properties": {"b": "true"}})
    assert holds("userId = 123", {"type": "track", "userId": 123})
    assert not holds('userId = "123"', {"type": "track", "userId": 123})
    assert holds('userId = "123"', {"type": "track", "userId": "123"})


def test_negative_and_exponent_numbers() -> None:
    assert holds("properties.t = -2", {"type": "track", "properties": {"t": -2}})
    assert holds("properties.t = 1e3", {"type": "track", "properties": {"t": 1000}})


def test_string_escapes() -> None:
    event = {"type": "track", "event": 'say "hi"\\\n\u00e9'}
    assert holds(r'event = "say \"hi\"\\\n\u00e9"', event)


def test_properties_on_identify_read_traits_like_segment() -> None:
    identify = {"type": "identify", "traits": {"vip": True}, "properties": {"vip": False}}
    assert holds("properties.vip = true", identify)
    assert holds("traits.vip = true", identify)
    assert holds("properties.vip = false", dict(identify, type="track"))


# -------------------------------------------------------------------------------------------- precedence


T, F = 'type = "track"', 'type = "page"'


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (f"{T} or {T} and {F}", True),  # or binds loosest: T or (T and F)
        (f"({T} or {T}) and {F}", False),
        (f"{F} and {T} or {T}", True),  # (F and T) or T
        (f"{F} and ({T} or {T})", False),
        (f"not {F} and {F}", False),  # not binds tightest: (not F) and F
        (f"not ({F} and {F})", True),
        (f"not not {T}", True),
        (f"! {F}", True),
        (f"{F} or {F} or {F} or {T}", True),
        (f"{T} and {T} and {T} and {F}", False),
        (f"(({T}))", True),
    ],
)
def test_precedence_not_and_or(trigger: str, expected: bool) -> None:
    assert holds(trigger) is expected


def test_keywords_inside_paths_are_names() -> None:
    assert holds('properties.and = "x"', {"type": "track", "properties": {"and": "x"}})
    assert holds("properties.audience-key = 1", {"type": "track", "properties": {"audience-key": 1}})


def test_default_triggers_of_the_actions() -> None:
    exited = dict(ENTERED, event="Audience Exited")
    assert holds('event = "Audience Entered"') and not holds('event = "Audience Entered"', exited)
    assert holds('event = "Audience Exited"', exited)
    assert holds('type = "track"') and not holds('type = "track"', {"type": "identify"})


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("trigger", "position", "expected"),
    [
        ("", 1, "a condition"),
        ("event = ", 9, "a literal"),
        ('event == "x"', 7, "'='"),
        ('event "x"', 7, "'=', '!='"),
        ('= "x"', 1, "a path"),
        ("event = Audience", 9, "a literal"),
        ('event = "x" and', 16, "a path"),
        ('event = "x" extra', 13, "'and', 'or' or end of trigger"),
        ('(event = "x"', 13, "')'"),
        ('event = "x" & type = "y"', 13, "a path, a literal"),
        ('event = "unterminated', 22, "'\"' closing the string opened at position 9"),
        (r'event = "bad \q escape"', 14, "an escape"),
        ('properties. = "x"', 11, "a name after '.'"),
        ('not = "x"', 5, "a path"),
        ('event = "x" and and type = "y"', 17, "a path"),
    ],
)
def test_parse_errors_name_the_position_and_what_was_expected(
    trigger: str, position: int, expected: str
) -> None:
    with pytest.raises(TriggerError) as err:
        compile_trigger(trigger)
    assert err.value.position == position
    assert expected in err.value.expected
    assert f"at position {position}: expected" in str(err.value)


def test_error_says_what_it_found() -> None:
    with pytest.raises(TriggerError) as err:
        compile_trigger("event = Audience")
    assert err.value.found == "'Audience'"
    with pytest.raises(TriggerError) as err:
        compile_trigger("event =")
    assert err.value.found == "end of trigger"


# ------------------------------------------------- what Segment's trigger builder and destination filters write

PLAN: dict[str, Any] = {
    "type": "track",
    "event": "Audience Entered",
    "properties": {
        "plan": "enterprise pro",
        "score": 12,
        "ratio": 0.5,
        "flag": True,
        "label": "10",
        "features": ["discounts", "dark-mode"],
        "product 1": {"price": "19.99"},
        "a.b": "dotted",
    },
    "context": {"library": {"name": "analytics.js", "version": "1.0"}},
}


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ('contains(properties.plan, "pro")', True),
        ('contains(properties.plan, "basic")', False),
        ('!contains(properties.plan, "basic")', True),
        ('!contains(properties.plan, "pro")', False),
        ('contains(properties.missing, "pro")', False),  # contains(null, s) is false
        ('!contains(properties.missing, "pro")', True),
        ('contains(properties.score, "1")', False),  # only strings contain
        ('contains( context.library.name, "js" )', True),
        ("contains(event, 'Entered')", True),  # single quotes, as Segment's documentation writes them
    ],
)
def test_contains(trigger: str, expected: bool) -> None:
    assert holds(trigger, PLAN) is expected


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ('match(event, "Audience Ent*")', True),
        ('match(event, "Audience Ex*")', False),
        ('!match(event, "Audience Ex*")', True),
        ('match(event, "*Entered")', True),
        ('match(event, "Audience")', False),  # the pattern must match the whole string
        ('match(event, "Audience?Entered")', True),
        ('match(event, "audience*")', False),  # case sensitive
        ('match(event, "[Aa]udience*")', True),
        ('match(event, "[a-z]udience*")', False),
        ('match(context.library.version, "1.*")', True),
        ('match(context.library.version, "2.*")', False),
        ('match(properties.missing, "*")', False),  # match(null, pattern) is false
        ('match(properties.score, "*")', False),
    ],
)
def test_match_is_a_glob(trigger: str, expected: bool) -> None:
    assert holds(trigger, PLAN) is expected


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("abcd", "a*d", True),
        ("", "*", True),
        ("abc", "ab", False),
        ("abcd", "a??d", True),
        ("abcd", "*d", True),
        ("ab*d", r"ab\\*d", True),  # \\ in the FQL string is one backslash: \* is a literal star
        ("abxd", r"ab\\*d", False),
        ("abCd", "ab[cC]d", True),
        ("abcd", "ab[a-z]d", True),
        ("abcd", "ab[A-Z]d", False),
        ("a.c", "a.c", True),  # regex characters are plain characters
        ("abc", "a.c", False),
    ],
)
def test_glob_patterns_as_segment_documents_them(text: str, pattern: str, expected: bool) -> None:
    assert holds(f'match(properties.s, "{pattern}")', {"properties": {"s": text}}) is expected


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("properties.score >= 10", True),
        ("properties.score >= 12", True),
        ("properties.score > 12", False),
        ("properties.score < 12.5", True),
        ("properties.score <= 11", False),
        ("properties.ratio < 1", True),
        ("properties.score > -1", True),
        ("properties.label > 5", False),  # a string is not a number
        ("properties.flag > 0", False),  # nor is a boolean
        ("properties.missing < 5", False),
        ("!(properties.score < 10)", True),
    ],
)
def test_numeric_order(trigger: str, expected: bool) -> None:
    assert holds(trigger, PLAN) is expected


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (r'properties.product\ 1.price = "19.99"', True),
        (r'properties.a\.b = "dotted"', True),
        ('properties.a.b = "dotted"', False),  # unescaped, the dot separates names
        (r"properties.product\ 1 != null", True),
    ],
)
def test_backslash_escaped_paths(trigger: str, expected: bool) -> None:
    assert holds(trigger, PLAN) is expected


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ('"dark-mode" in properties.features', True),
        ('"blink" in properties.features', False),
        ('type in ["track", "identify"]', True),
        ('!(type in ["page", "identify"])', True),
        ("properties.score in [10, 12]", True),
        ('properties.score in ["12"]', False),
        ('"x" in properties.missing', False),
        ("properties.flag", True),  # a bare value holds when it is true
        ("properties.plan", False),
        ("properties.missing or properties.flag", True),
        ('length(properties.features) = 2', True),
        ('length(properties.plan) > 3', True),
        ("length(properties.missing) = 0", True),
        ('lowercase(event) = "audience entered"', True),
        ('uppercase(properties.missing) = null', True),
        ('typeof(properties.score) = "number"', True),
        ('typeof(properties.features) = "list"', True),
        ('snakecase(event) = "Audience_Entered"', True),
        ('kebabcase(event) = "Audience-Entered"', True),
    ],
)
def test_in_lists_bare_values_and_functions(trigger: str, expected: bool) -> None:
    assert holds(trigger, PLAN) is expected


@pytest.mark.parametrize(
    ("trigger", "position", "expected"),
    [
        ('nope(event, "x")', 1, "a function"),
        ("contains(event)", 1, "contains() with 2 argument(s)"),
        ("match(event, properties.x)", 1, "match(value"),
        ('match(event, "[z-a]")', 1, "a valid glob pattern"),
        ('contains(event, "x"', 20, "',' or ')'"),
        ("properties.score >= properties.other", 21, "a literal"),
        ('type in ["track", properties.x]', 19, "a literal in the list"),
        ('type in ["track" "page"]', 18, "',' or ']'"),
        ('"x" = "y"', 1, "a path"),
    ],
)
def test_function_and_operator_errors(trigger: str, position: int, expected: str) -> None:
    with pytest.raises(TriggerError) as err:
        compile_trigger(trigger)
    assert err.value.position == position
    assert expected in err.value.expected
