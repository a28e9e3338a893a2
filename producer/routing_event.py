"""What routing reads from an event besides identifiers and targets: the Engage ``context.personas`` object,
a ``syncAudience`` membership, and Segment's ``integrations`` opt-out."""

from __future__ import annotations

from typing import Any

from producer.describe import kind_of
from producer.routing_result import Rejected
from worker.operations import Action

_EMPTY: dict[str, Any] = {}


def personas_of(event: dict[str, Any]) -> dict[str, Any]:
    """``context.personas`` (empty when absent or not an object)."""
    context = event.get("context")
    if isinstance(context, dict):
        personas = context.get("personas")
        if isinstance(personas, dict):
            return personas
    return _EMPTY


def membership(event: dict[str, Any], personas: dict[str, Any]) -> Action:
    """``syncAudience``: add when ``properties[computation_key]`` (track) / ``traits[computation_key]``, else
    ``context.traits[computation_key]`` (identify) is ``true``, delete when it is ``false``."""
    key = personas.get("computation_key")
    if not isinstance(key, str) or not key:
        raise Rejected(
            "invalid_membership",
            "syncAudience needs context.personas.computation_key to find the audience membership",
        )
    kind = event.get("type")
    if kind == "track":
        where, bag = "properties", event.get("properties")
    elif kind == "identify":
        # Segment's libraries put identify traits at the top; RudderStack's in context.traits.
        where, bag = "traits", event.get("traits")
        if not isinstance(bag, dict) or bag.get(key) is None:
            context = event.get("context")
            inner = context.get("traits") if isinstance(context, dict) else None
            if isinstance(inner, dict) and inner.get(key) is not None:
                where, bag = "context.traits", inner
    else:
        raise Rejected(
            "invalid_membership", f"syncAudience reads membership from track or identify events, not {kind}"
        )
    value = bag.get(key) if isinstance(bag, dict) else None
    if value is True:
        return "add"
    if value is False:
        return "delete"
    if value is None:
        raise Rejected(
            "invalid_membership", f"{where}.{key} is missing: it must be true (add) or false (remove)"
        )
    raise Rejected("invalid_membership", f"{where}.{key} must be true or false, not {kind_of(value)}")


def opted_out(integrations: dict[str, Any], integration_name: str) -> bool:
    """Segment's ``integrations`` rule: ``{name: false}`` turns the destination off; ``{"All": false}`` turns
    it off unless ``{name: true}`` (or an options object) turns it back on."""
    own = integrations.get(integration_name)
    if own is False:
        return True
    return integrations.get("All") is False and not own
