"""The Segment event envelope: what the intake accepts before any mapping looks at an event.

Two implementations of one set of rules:

- :class:`SegmentEvent`, a pydantic v2 model: the readable, documented statement of the envelope (and a JSON
  schema for anyone who wants one). ``SegmentEvent.model_validate`` costs ~3-4 µs an event.
- :func:`validate_event`, the hand-written check the intake runs on every event (~1 µs, a quarter of the
  model's cost): it checks the same envelope fields with plain type tests, returns the *same* dict (no copy,
  no coercion) so routing keeps working on the raw ``orjson`` output, and raises :class:`EventError` with one
  clear reason and a short ``code``. A unit test runs both over the same cases so they cannot drift apart.

Where validation happens: the intake calls ``validate_event`` once per event, then
:meth:`producer.routing.Router.route`. ``route`` trusts that shape and does no validation of its own beyond
the per-field checks mappings need (it stays safe on odd nested values: a path through a non-object is
missing).

Rules: ``type`` is one of track, identify, page, screen, group, alias; a track event needs a non-empty
``event``; every event needs ``userId`` or ``anonymousId`` (Segment's rule); ``group`` needs ``groupId`` and
``alias`` needs ``previousId``; ids are strings or numbers; ``properties``, ``traits``, ``context`` and
``integrations`` are objects when present; ``event``, ``name``, ``messageId`` and the timestamps are strings
when present. ``null`` counts as absent. Other keys are allowed and kept.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr, model_validator

from producer.describe import kind_of

EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
_TYPES = frozenset(EVENT_TYPES)
_NONE = type(None)
# Envelope key -> the classes its value may have (null counts as absent), and how to say so.
_STRING: tuple[frozenset[type], str] = (frozenset({str, _NONE}), "a string")
_OBJECT: tuple[frozenset[type], str] = (frozenset({dict, _NONE}), "an object")
_ID: tuple[frozenset[type], str] = (frozenset({str, int, float, _NONE}), "a string or a number")
_CHECKS: dict[str, tuple[frozenset[type], str]] = {
    **dict.fromkeys(
        ("event", "name", "messageId", "timestamp", "originalTimestamp", "sentAt", "receivedAt"), _STRING
    ),
    **dict.fromkeys(("properties", "traits", "context", "integrations"), _OBJECT),
    **dict.fromkeys(("userId", "anonymousId", "groupId", "previousId"), _ID),
}
_ALLOWED: dict[str, frozenset[type]] = {key: classes for key, (classes, _) in _CHECKS.items()}

Id = StrictStr | StrictInt | StrictFloat


class EventError(ValueError):
    """An event the intake refuses. ``reason`` is one sentence naming the problem (never a field's value);
    ``code`` a short stable name for counting (invalid_event, invalid_type, invalid_field, missing_event,
    missing_identity, missing_group_id, missing_previous_id)."""

    def __init__(self, reason: str, code: str = "invalid_event") -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)


class SegmentEvent(BaseModel):
    """A Segment spec event envelope (``extra`` keys allowed). Strict: nothing is coerced."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["track", "identify", "page", "screen", "group", "alias"]
    event: StrictStr | None = None
    name: StrictStr | None = None
    messageId: StrictStr | None = None
    userId: Id | None = None
    anonymousId: Id | None = None
    groupId: Id | None = None
    previousId: Id | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    timestamp: StrictStr | None = None
    originalTimestamp: StrictStr | None = None
    sentAt: StrictStr | None = None
    receivedAt: StrictStr | None = None

    @model_validator(mode="after")
    def _per_type_rules(self) -> SegmentEvent:
        problem = _type_rules(
            self.type, self.event, self.userId, self.anonymousId, self.groupId, self.previousId
        )
        if problem:
            raise ValueError(problem[1])
        return self


def _present_id(value: Any) -> bool:
    return value is not None and value != ""


def _type_rules(
    kind: str, event: Any, user_id: Any, anonymous_id: Any, group_id: Any, previous_id: Any
) -> tuple[str, str] | None:
    """The per-type rule an envelope breaks, as (code, reason); None when it keeps them all."""
    if kind == "track" and not event:
        return "missing_event", "track event needs 'event' (the event name)"
    if not _present_id(user_id) and not _present_id(anonymous_id):
        return "missing_identity", "event needs 'userId' or 'anonymousId'"
    if kind == "group" and not _present_id(group_id):
        return "missing_group_id", "group event needs 'groupId'"
    if kind == "alias" and not _present_id(previous_id):
        return "missing_previous_id", "alias event needs 'previousId'"
    return None


def validate_event(obj: Any) -> dict[str, Any]:
    """Check a decoded event's envelope; return it unchanged or raise :class:`EventError`."""
    if not isinstance(obj, dict):
        raise EventError(f"an event must be a JSON object, not {kind_of(obj)}")
    get = obj.get
    kind = get("type")
    if kind.__class__ is not str or kind not in _TYPES:
        if kind is None:
            raise EventError(f"event needs 'type' (one of {', '.join(EVENT_TYPES)})", "invalid_type")
        raise EventError(f"type must be one of {', '.join(EVENT_TYPES)}", "invalid_type")
    # One pass over the event's own keys (usually ~8) is cheaper than looking up every envelope key.
    allowed = _ALLOWED.get
    for key, value in obj.items():
        classes = allowed(key)
        if classes is not None and value.__class__ not in classes:
            raise EventError(f"'{key}' must be {_CHECKS[key][1]}, not {kind_of(value)}", "invalid_field")
    if kind == "track" and get("event"):
        user_id = get("userId")
        if user_id is not None and user_id != "":
            return obj  # the usual Engage call: none of the per-type rules below can fail
    problem = _type_rules(
        kind, get("event"), get("userId"), get("anonymousId"), get("groupId"), get("previousId")
    )
    if problem:
        raise EventError(problem[1], problem[0])
    return obj
