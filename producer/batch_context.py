"""Segment's batch-level objects: a ``/v1/batch`` body may carry ``context`` and ``integrations`` beside its
``batch`` array, applying to every event in it (libraries put the library, device and app there once instead
of in each event). They are merged into each event before validation, the event's own values winning."""

from __future__ import annotations

from typing import Any

# Objects a /v1/batch body may carry beside "batch", applying to every event in it (Segment's HTTP API).
BATCH_LEVEL_KEYS = ("context", "integrations")
# Deepest nesting of objects and arrays accepted in the batch-level objects, which the merge walks recursively;
# far beyond any real context, far below Python's recursion limit.
MAX_DEPTH = 64


class BatchLevelError(ValueError):
    """A batch-level object the intake refuses (with the whole request): ``reason`` is one sentence, ``code``
    a stable snake_case name (invalid_field, too_deep)."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def batch_level(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The non-empty batch-level objects of a ``/v1/batch`` body, by key; :class:`BatchLevelError` when one
    is not an object or nests deeper than :data:`MAX_DEPTH`."""
    shared: dict[str, dict[str, Any]] = {}
    for key in BATCH_LEVEL_KEYS:
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise BatchLevelError(f'the batch-level "{key}" must be an object', "invalid_field")
        if depth_exceeds(value, MAX_DEPTH):
            raise BatchLevelError(f'the batch-level "{key}" is nested deeper than {MAX_DEPTH} levels', "too_deep")
        if value:
            shared[key] = value
    return shared


def with_batch_level(event: Any, shared: dict[str, dict[str, Any]]) -> Any:
    """``event`` with the batch-level ``context`` and ``integrations`` merged in: key by key, recursively
    through objects, the event's own values winning. An event that is not an object, or whose own value is
    not one, is left as it is for validation to refuse or keep."""
    if not isinstance(event, dict):
        return event
    merged = dict(event)
    for key, defaults in shared.items():
        own = event.get(key)
        if own is None:
            merged[key] = defaults
        elif isinstance(own, dict):
            merged[key] = _merge(defaults, own)
    return merged


def _merge(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in own.items():
        base = out.get(key)
        out[key] = _merge(base, value) if isinstance(base, dict) and isinstance(value, dict) else value
    return out


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether objects/arrays in ``value`` nest deeper than ``limit`` levels (iterative: the value itself may
    be nested deeper than Python's recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
