"""Segment's batch-level context and integrations: merged into every event of the batch key by key, the
event's own values winning; refused when they are not objects or nest too deep."""

from __future__ import annotations

from typing import Any

import pytest

from producer.batch_context import MAX_DEPTH, BatchLevelError, batch_level, with_batch_level


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_batch_level_objects_merge_key_by_key_through_nested_objects() -> None:
    shared: dict[str, dict[str, Any]] = {
        "context": {"traits": {"email": "a@example.com", "plan": "pro"}, "library": {"name": "x"}},
        "integrations": {"All": False}}
    event = {"type": "track", "context": {"traits": {"email": "b@example.com"}}, "integrations": "odd"}

    merged = with_batch_level(event, shared)

    assert merged["context"] == {"traits": {"email": "b@example.com", "plan": "pro"}, "library": {"name": "x"}}
    assert merged["integrations"] == "odd"  # not an object: left for validation to refuse
    assert event["context"] == {"traits": {"email": "b@example.com"}}  # the event itself is not changed
    assert with_batch_level("junk", shared) == "junk"


def test_an_event_without_its_own_object_takes_the_batch_level_one() -> None:
    shared: dict[str, dict[str, Any]] = {"context": {"library": {"name": "x"}}}
    assert with_batch_level({"type": "track", "context": None}, shared)["context"] == {"library": {"name": "x"}}
    assert with_batch_level({"type": "track"}, shared)["context"] == {"library": {"name": "x"}}


def test_only_non_empty_batch_level_objects_are_kept() -> None:
    doc = {"batch": [], "context": {"library": {"name": "x"}}, "integrations": {}, "sentAt": "now"}
    assert batch_level(doc) == {"context": {"library": {"name": "x"}}}
    assert batch_level({"batch": [], "context": None}) == {}


@pytest.mark.parametrize(("doc", "code", "words"), [
    ({"context": [1]}, "invalid_field", 'the batch-level "context" must be an object'),
    ({"integrations": "all"}, "invalid_field", 'the batch-level "integrations" must be an object'),
    ({"context": nested(MAX_DEPTH + 1)}, "too_deep", f"nested deeper than {MAX_DEPTH} levels"),
], ids=["context a list", "integrations a string", "context too deep"])
def test_a_batch_level_object_that_cannot_be_merged_is_refused(doc: dict[str, Any], code: str,
                                                                words: str) -> None:
    with pytest.raises(BatchLevelError, match=words) as refused:
        batch_level(doc)
    assert refused.value.code == code


def test_nesting_up_to_the_limit_is_taken() -> None:
    assert batch_level({"context": nested(MAX_DEPTH)}) == {"context": nested(MAX_DEPTH)}
