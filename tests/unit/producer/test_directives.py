"""Mapping directives: literals, @path, @if (exists / blank), @literal, @template; compiled once; unknown or
malformed directives are load-time errors that name the problem."""

from __future__ import annotations

import re
from typing import Any

import pytest

from producer.directives import DirectiveError, compile_value, js_text, parse_path

EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Audience Entered",
    "properties": {"email": "props@example.com", "first name": "Ada", "empty": "", "zero": 0, "no": False},
    "context": {
        "traits": {"email": "traits@example.com", "phone": None},
        "personas": {"external_audience_id": "1234345"},
    },
    "items": [{"sku": "a-1"}, {"sku": "b-2"}],
    "0": "zero key",
}


def resolve(spec: Any, event: dict[str, Any] = EVENT) -> Any:
    return compile_value(spec)(event)


# ----------------------------------------------------------------------------------------------- literals


@pytest.mark.parametrize("literal", ["text", "", 7, 1.5, True, False, None])
def test_literals_resolve_to_themselves(literal: Any) -> None:
    assert resolve(literal) == literal


def test_plain_objects_and_lists_resolve_their_members() -> None:
    spec = {"to": {"@path": "$.context.traits.email"}, "fixed": 1, "list": [{"@path": "$.event"}, "x"]}
    assert resolve(spec) == {"to": "traits@example.com", "fixed": 1, "list": ["Audience Entered", "x"]}


# ---------------------------------------------------------------------------------------------------- @path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.event", "Audience Entered"),
        ("$.context.traits.email", "traits@example.com"),
        ("context.traits.email", "traits@example.com"),  # Segment also takes paths without "$."
        ("$.context.personas.external_audience_id", "1234345"),
        ("$.properties['first name']", "Ada"),
        ('$.properties["first name"]', "Ada"),
        ("$['event']", "Audience Entered"),
        ("$.items[1].sku", "b-2"),
        ("$.items.0.sku", "a-1"),  # a numeric dotted step indexes lists too
        ("$.0", "zero key"),  # ...and is a key on objects
        ("$.items[5].sku", None),
        ("$.context.traits.missing", None),
        ("$.event.length", None),  # through a string: missing, not an error
        ("$.nothing.at.all.here", None),
    ],
)
def test_path(path: str, expected: Any) -> None:
    assert resolve({"@path": path}) == expected


def test_path_dollar_is_the_whole_event() -> None:
    assert resolve({"@path": "$"}) is EVENT


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$.a.b", ("a", "b")),
        ("a.b", ("a", "b")),
        ("$.a['b c'].d", ("a", "b c", "d")),
        ("$.a[0]", ("a", 0)),
        ("$.a.0", ("a", 0)),
        ("$", ()),
    ],
)
def test_parse_path(path: str, steps: tuple[Any, ...]) -> None:
    assert parse_path(path) == steps


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("$.a..b", "empty key"),
        ("$.a.", "ends with '.'"),
        ("$.a[", "never closed"),
        ("$.a[*]", "wildcards are not supported"),
        ("$.a[b]", "a quoted key or a list index"),
        ("$.", "is empty"),
        ("$.a]", "expected '.' or '[' at character 4"),
        ("$.a.]", "unexpected ']' at character 5"),
        ("$.a['b]", "'[' at character 4 is never closed"),
    ],
)
def test_bad_paths_are_errors(path: str, problem: str) -> None:
    with pytest.raises(DirectiveError, match=re.escape(problem)):
        compile_value({"@path": path})


def test_path_must_be_a_string() -> None:
    with pytest.raises(DirectiveError, match="@path expects a string"):
        compile_value({"@path": ["$.a"]})


# ------------------------------------------------------------------------------------------------------ @if


def if_exists(path: str, then: Any, otherwise: Any = ...) -> dict[str, Any]:
    body: dict[str, Any] = {"exists": {"@path": path}, "then": then}
    if otherwise is not ...:
        body["else"] = otherwise
    return {"@if": body}


def test_if_exists_takes_then_when_the_value_is_present() -> None:
    assert resolve(if_exists("$.context.traits.email", "yes", "no")) == "yes"


def test_if_exists_takes_else_when_missing_or_null() -> None:
    assert resolve(if_exists("$.context.traits.nope", "yes", "no")) == "no"
    assert resolve(if_exists("$.context.traits.phone", "yes", "no")) == "no"  # null is not "exists"


def test_if_exists_counts_empty_string_as_present() -> None:
    assert resolve(if_exists("$.properties.empty", "yes", "no")) == "yes"


def test_if_without_else_is_null() -> None:
    assert resolve(if_exists("$.nope", "yes")) is None


def test_if_without_then_is_null_when_it_holds() -> None:
    assert resolve({"@if": {"exists": {"@path": "$.event"}, "else": "no"}}) is None


def test_segment_default_email_falls_back_from_traits_to_properties() -> None:
    default = if_exists(
        "$.context.traits.email", {"@path": "$.context.traits.email"}, {"@path": "$.properties.email"}
    )
    assert resolve(default) == "traits@example.com"
    assert resolve(default, {"properties": {"email": "props@example.com"}}) == "props@example.com"
    assert resolve(default, {}) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.properties.email", "present"),
        ("$.properties.empty", "blank"),
        ("$.properties.missing", "blank"),
        ("$.context.traits.phone", "blank"),
        ("$.properties.zero", "blank"),  # JavaScript: 0 != '' is false
        ("$.properties.no", "blank"),  # false != '' is false
    ],
)
def test_if_blank_variant(path: str, expected: str) -> None:
    assert resolve({"@if": {"blank": {"@path": path}, "then": "present", "else": "blank"}}) == expected


def test_if_nests_in_its_branches() -> None:
    spec = if_exists("$.nope", "a", if_exists("$.properties.email", {"@path": "$.properties.email"}, "c"))
    assert resolve(spec) == "props@example.com"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("$.a", "expects an object"),
        ({"then": "x"}, 'needs an "exists" or a "blank" key'),
        ({"exists": {"@path": "$.a"}, "otherwise": "x"}, "does not take 'otherwise'"),
        ({"exists": {"@unknown": 1}}, "unknown directive @unknown"),
    ],
)
def test_bad_if_is_an_error(body: Any, problem: str) -> None:
    with pytest.raises(DirectiveError, match=problem):
        compile_value({"@if": body})


# ------------------------------------------------------------------------------------ @literal, @template


def test_literal() -> None:
    assert resolve({"@literal": "as is"}) == "as is"
    assert resolve({"@literal": 5}) == 5


def test_template_renders_and_escapes_like_segment() -> None:
    event = {"properties": {"first": "Ada", "last": "<Lovelace>", "n": 3, "t": True}}
    assert (
        resolve({"@template": "{{properties.first}} {{ properties.last }}"}, event) == "Ada &lt;Lovelace&gt;"
    )
    assert resolve({"@template": "{{{properties.last}}}"}, event) == "<Lovelace>"
    assert resolve({"@template": "n={{properties.n}} t={{properties.t}} x={{properties.x}}"}, event) == (
        "n=3 t=true x="
    )


# ------------------------------------------------------------------------------------------ shape errors


def test_unknown_directive_is_named() -> None:
    with pytest.raises(DirectiveError, match="unknown directive @arrayPaths") as err:
        compile_value({"@arrayPaths": ["$.items", {}]})
    assert "@path" in str(err.value) and "@arrayPath," in str(err.value)  # and says what is supported


def test_one_directive_per_object() -> None:
    with pytest.raises(DirectiveError, match="one directive per object"):
        compile_value({"@path": "$.a", "@literal": "b"})


def test_directive_mixed_with_plain_keys() -> None:
    with pytest.raises(DirectiveError, match="only its directive"):
        compile_value({"@path": "$.a", "other": 1})


def test_segment_metadata_key_is_allowed() -> None:
    assert resolve({"@path": "$.event", "_metadata": {"label": "Event"}}) == "Audience Entered"


def test_nested_errors_surface() -> None:
    with pytest.raises(DirectiveError, match="unknown directive @nope"):
        compile_value({"a": [{"b": {"@nope": 1}}]})


# ------------------------------------------------------------------------------------------------ js_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("s", "s"),
        (True, "true"),
        (False, "false"),
        (5, "5"),
        (5.0, "5"),
        (1.5, "1.5"),
        (None, None),
        ({}, None),
    ],
)
def test_js_text(value: Any, text: str | None) -> None:
    assert js_text(value) == text
