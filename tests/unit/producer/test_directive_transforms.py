"""Mapping-kit's value-shaping directives, as Segment's action destinations use them: each resolves as
mapping-kit does, and a malformed one is a load-time error naming the directive."""

from __future__ import annotations

from typing import Any

import pytest

from producer.directives import DirectiveError, compile_value

EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Audience Entered",
    "userId": "u-1",
    "properties": {
        "email": "Ada.Lovelace@Example.COM",
        "phone": "+1 (415) 555-0100",
        "score": 12,
        "flag": True,
        "json": '{"a": 1, "b": [true, null]}',
        "not_json": "{oops",
        "nested": {"a": {"b": 1, "c": None}, "list": [1, 2]},
        "items": [{"sku": "a-1", "qty": 1}, {"sku": "b-2", "qty": 2}],
        "one": {"sku": "c-3"},
    },
    "context": {"traits": {"first": "Ada", "last": None}},
}


def resolve(spec: Any, event: dict[str, Any] = EVENT) -> Any:
    return compile_value(spec)(event)


def p(path: str) -> dict[str, str]:
    return {"@path": path}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # @case
        ({"@case": {"operator": "lower", "value": p("$.properties.email")}}, "ada.lovelace@example.com"),
        ({"@case": {"operator": "upper", "value": p("$.event")}}, "AUDIENCE ENTERED"),
        ({"@case": {"operator": "lower", "value": p("$.properties.score")}}, 12),  # non-strings unchanged
        ({"@case": {"operator": "lower", "value": p("$.properties.missing")}}, None),
        # @replace: a literal pattern, every occurrence unless global is false
        ({"@replace": {"pattern": " ", "replacement": "", "value": p("$.properties.phone")}}, "+1(415)555-0100"),
        ({"@replace": {"pattern": "-", "value": p("$.properties.phone")}}, "+1 (415) 5550100"),
        ({"@replace": {"pattern": "5", "replacement": "x", "global": False, "value": "a5b5"}}, "ax" + "b5"),
        ({"@replace": {"pattern": "ADA", "replacement": "x", "ignorecase": True, "value": "ada Ada"}}, "x x"),
        ({"@replace": {"pattern": "ADA", "replacement": "x", "value": "ada"}}, "ada"),  # case sensitive
        ({"@replace": {"pattern": ".", "replacement": "", "value": "a.b.c"}}, "abc"),  # not a regex
        ({"@replace": {"pattern": "(", "pattern2": ")", "value": p("$.properties.phone")}}, "+1 415 555-0100"),
        ({"@replace": {"pattern": "1", "replacement": "9", "value": p("$.properties.score")}}, "92"),
        ({"@replace": {"pattern": "true", "replacement": "yes", "value": p("$.properties.flag")}}, "yes"),
        ({"@replace": {"pattern": "a", "value": p("$.properties.missing")}}, ""),  # Segment gives "" too
        ({"@replace": {"pattern": "a", "value": p("$.properties.nested")}}, ""),  # not text: ""
        # @arrayPath
        ({"@arrayPath": ["$.properties.items", {"id": p("$.sku")}]}, [{"id": "a-1"}, {"id": "b-2"}]),
        ({"@arrayPath": ["$.properties.one", {"id": p("sku")}]}, [{"id": "c-3"}]),
        ({"@arrayPath": ["$.properties.items"]}, EVENT["properties"]["items"]),
        ({"@arrayPath": ["$.properties.missing", {"id": p("$.sku")}]}, None),
        ({"@arrayPath": [p("$.properties.items"), {"n": p("$.qty")}]}, [{"n": 1}, {"n": 2}]),
        # @json
        ({"@json": {"mode": "encode", "value": p("$.properties.nested.list")}}, "[1,2]"),
        ({"@json": {"mode": "encode", "value": p("$.properties.missing")}}, "null"),
        ({"@json": {"mode": "decode", "value": p("$.properties.json")}}, {"a": 1, "b": [True, None]}),
        ({"@json": {"mode": "decode", "value": p("$.properties.not_json")}}, "{oops"),
        ({"@json": {"mode": "decode", "value": p("$.properties.score")}}, 12),
        # @flatten
        (
            {"@flatten": {"separator": ".", "value": p("$.properties.nested")}},
            {"a.b": 1, "a.c": None, "list.0": 1, "list.1": 2},
        ),
        (
            {"@flatten": {"separator": "_", "value": p("$.properties.nested"), "omitArrays": True}},
            {"a_b": 1, "a_c": None, "list": [1, 2]},
        ),
        # @merge
        ({"@merge": {"direction": "right", "objects": [{"a": 1, "b": 1}, {"b": 2}]}}, {"a": 1, "b": 2}),
        ({"@merge": {"direction": "left", "objects": [{"a": 1, "b": 1}, {"b": 2}]}}, {"a": 1, "b": 1}),
        ({"@merge": {"direction": "right", "objects": [p("$.properties.one"), p("$.nope")]}}, {"sku": "c-3"}),
        # @transform
        (
            {"@transform": {"apply": {"name": p("$.context.traits.first")}, "mapping": {"who": p("$.name")}}},
            {"who": "Ada"},
        ),
        # @excludeWhenNull: a null value leaves its key out; null members are removed
        (
            {"first": p("$.context.traits.first"), "last": {"@excludeWhenNull": p("$.context.traits.last")}},
            {"first": "Ada"},
        ),
        ({"@excludeWhenNull": p("$.properties.nested.a")}, {"b": 1}),
        ({"@excludeWhenNull": p("$.context.traits.last")}, None),
        ([{"@excludeWhenNull": p("$.nope")}, 1], [1]),
        # @liquid
        ({"@liquid": "{{ properties.email | downcase }}"}, "ada.lovelace@example.com"),
        ({"@liquid": "{% if properties.score > 10 %}high{% else %}low{% endif %}"}, "high"),
        # nesting with the classic three
        ({"@case": {"operator": "lower", "value": {"@template": "{{event}}"}}}, "audience entered"),
        ({"@if": {"exists": p("$.nope"), "then": 1, "else": {"@case": {"operator": "upper", "value": "x"}}}}, "X"),
    ],
)
def test_directives_resolve_as_mapping_kit_does(spec: Any, expected: Any) -> None:
    assert resolve(spec) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"@case": "lower"}, "@case expects an object"),
        ({"@case": {"value": "x"}}, "@case requires a 'operator' key"),
        ({"@case": {"operator": "title", "value": "x"}}, '@case operator must be "lower" or "upper"'),
        ({"@replace": {"value": "x"}}, "@replace requires a 'pattern' key"),
        ({"@replace": {"pattern": "0123456789a", "value": "x"}}, "pattern must be at most 10 characters"),
        ({"@replace": {"pattern": "a", "replacement": "0123456789a", "value": "x"}}, "at most 10 characters"),
        ({"@replace": {"pattern": "a", "global": "yes", "value": "x"}}, "@replace global must be true or false"),
        ({"@replace": {"pattern": "a", "regex": True, "value": "x"}}, "@replace does not take 'regex'"),
        ({"@arrayPath": "$.a"}, "@arrayPath expects a list"),
        ({"@arrayPath": ["$.a..b"]}, "empty key"),
        ({"@json": {"mode": "yaml", "value": "x"}}, '@json mode must be "encode" or "decode"'),
        ({"@json": {"mode": "encode"}}, "@json requires a 'value' key"),
        ({"@flatten": {"value": "x"}}, "@flatten requires a 'separator' key"),
        ({"@merge": {"direction": "right", "objects": {"a": 1}}}, "@merge objects must be a list"),
        ({"@merge": {"direction": "right"}}, "@merge requires a 'objects' key"),
        ({"@merge": {"direction": "up", "objects": [{}]}}, '@merge direction must be "left" or "right"'),
        ({"@transform": {"apply": {}}}, "@transform requires a 'mapping' key"),
        ({"@transform": {"apply": "x", "mapping": {"a": 1}}}, "@transform apply must be an object"),
        ({"@liquid": 5}, "@liquid expects a template string"),
        ({"@liquid": "{% if %}"}, "@liquid template does not parse"),
        ({"@case": {"operator": "lower", "value": {"@nope": 1}}}, "unknown directive @nope"),
    ],
)
def test_malformed_directives_are_load_time_errors(spec: Any, problem: str) -> None:
    with pytest.raises(DirectiveError) as err:
        compile_value(spec)
    assert problem in str(err.value)
