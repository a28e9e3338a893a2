"""The mapping actions this service runs (Segment's TikTok Audiences actions, native and legacy) and the
default fields Segment fills in for a mapping that does not set them.

Each action has a kind that decides how routing treats it: ``native`` (add or remove in the event's Engage
audience), ``sync`` (add or remove as the event's membership says), ``legacy`` (add or remove in the mapping's
own advertiser and audience) and ``create`` (ask for a new audience).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["native", "sync", "legacy", "create"]

_IDENTIFIER_FIELDS = frozenset(
    {
        "email",
        "phone",
        "advertising_id",
        "send_email",
        "send_phone",
        "send_advertising_id",
        "event_name",
        "enable_batching",
    }
)
OPTIONS = ("phone_normalization", "advertising_id_type")  # set on a mapping, or inside its fields


@dataclass(frozen=True, slots=True)
class ActionSpec:
    slug: str
    title: str
    default_trigger: str
    kind: Kind
    operation: Literal["add", "delete"] | None  # None: decided per event (sync) or not an operation (create)
    fields: frozenset[str]


def _spec(
    slug: str, title: str, trigger: str, kind: Kind, op: Literal["add", "delete"] | None, fields: set[str]
) -> ActionSpec:
    return ActionSpec(slug, title, trigger, kind, op, frozenset(fields))


ACTIONS: dict[str, ActionSpec] = {
    s.slug: s
    for s in (
        _spec(
            "addToAudience",
            "Add to Audience",
            'event = "Audience Entered"',
            "native",
            "add",
            {*_IDENTIFIER_FIELDS, "external_audience_id", "id_type", *OPTIONS},
        ),
        _spec(
            "removeFromAudience",
            "Remove from Audience",
            'event = "Audience Exited"',
            "native",
            "delete",
            {*_IDENTIFIER_FIELDS, "external_audience_id", "id_type", *OPTIONS},
        ),
        _spec(
            "syncAudience",
            "Sync Audience",
            'type = "track"',
            "sync",
            None,
            {*_IDENTIFIER_FIELDS, "external_audience_id", "batch_keys", "id_type", *OPTIONS},
        ),
        _spec(
            "addUser",
            "Add Users (Legacy)",
            'event = "Audience Entered"',
            "legacy",
            "add",
            {*_IDENTIFIER_FIELDS, "selected_advertiser_id", "audience_id", "id_type", *OPTIONS},
        ),
        _spec(
            "removeUser",
            "Remove Users (Legacy)",
            'event = "Audience Exited"',
            "legacy",
            "delete",
            {*_IDENTIFIER_FIELDS, "selected_advertiser_id", "audience_id", "id_type", *OPTIONS},
        ),
        _spec(
            "createAudience",
            "Create Audience (Legacy)",
            'event = "Create Audience"',
            "create",
            None,
            {"selected_advertiser_id", "custom_audience_name", "id_type"},
        ),
    )
}


def _path(path: str) -> dict[str, str]:
    return {"@path": path}


def _first_present(*paths: str) -> dict[str, Any]:
    """The first of ``paths`` that exists (the last one whether or not it does)."""
    if len(paths) == 1:
        return _path(paths[0])
    return {"@if": {"exists": _path(paths[0]), "then": _path(paths[0]), "else": _first_present(*paths[1:])}}


# Segment's defaults, written as the directives a user would paste (a mapping's field overrides its default).
# Identify calls carry traits at the top (Segment's libraries) or in context.traits (RudderStack's), so both
# are read.
DEFAULT_FIELDS: dict[str, Any] = {
    "email": _first_present("$.context.traits.email", "$.traits.email", "$.properties.email"),
    "phone": _first_present("$.context.traits.phone", "$.traits.phone", "$.properties.phone"),
    "advertising_id": _path("$.context.device.advertisingId"),
    "external_audience_id": _path("$.context.personas.external_audience_id"),
    "event_name": _path("$.event"),
}

# event -> (raw email, raw phone, raw advertising id), before normalisation; None where absent or not sent.
IdentifierReader = Callable[[dict[str, Any]], tuple[Any, Any, Any]]


def read_default_identifiers(e: dict[str, Any]) -> tuple[Any, Any, Any]:
    """DEFAULT_FIELDS' email, phone and advertising_id in one pass over the event.

    Equivalent to resolving the three default directives (a test holds them to that) but walks ``context``
    once instead of five times: this runs for nearly every event, so it is worth the duplication.
    """
    email = phone = adid = None
    context = e.get("context")
    if context.__class__ is dict:
        traits = context.get("traits")
        if traits.__class__ is dict:
            email = traits.get("email")
            phone = traits.get("phone")
        device = context.get("device")
        if device.__class__ is dict:
            adid = device.get("advertisingId")
    if email is None or phone is None:
        traits = e.get("traits")
        if traits.__class__ is dict:
            if email is None:
                email = traits.get("email")
            if phone is None:
                phone = traits.get("phone")
    if email is None or phone is None:
        properties = e.get("properties")
        if properties.__class__ is dict:
            if email is None:
                email = properties.get("email")
            if phone is None:
                phone = properties.get("phone")
    return email, phone, adid
