"""Where a mapping sends an event's operations: the advertiser and audience (a :class:`~worker.keys.Target`),
checked against the destination and cached.

- native actions (``addToAudience``, ``removeFromAudience``, ``syncAudience``) send to the advertiser in
  ``context.personas.audience_settings.advertiserId``, else the destination's ``native.advertiser_id``, and
  to the audience in ``external_audience_id``; without one, a destination with ``native.auto_create`` targets
  ``@<context.personas.computation_key>`` (the worker creates that audience once);
- legacy actions send to the mapping's ``selected_advertiser_id`` / ``audience_id``;
- the legacy ``createAudience`` asks for an audience named by ``custom_audience_name``.

Building a :class:`Target` runs a regex per part and its ``name`` is formatted on each read, so resolved
targets are cached with their name, and native ones also by the raw values they were read from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.destinations import DEFAULT_INTEGRATION_NAME
from producer.describe import kind_of
from producer.directives import js_text
from producer.limits import NewAudienceGate, audience_name_problem, target_problem
from producer.mappings import CompiledMapping
from producer.routing_result import AudienceCreate, Rejected
from worker.keys import Target

TARGET_CACHE_LIMIT = 16_384  # entries kept per cache; a full cache is cleared

ResolvedTarget = tuple[str, Target]  # the target's name, and the target


@dataclass(frozen=True, slots=True)
class RouteDestination:
    """What routing needs of a destination."""

    id: str
    advertiser_ids: frozenset[str]
    native_advertiser_id: str | None
    auto_create: bool
    integration_name: str = DEFAULT_INTEGRATION_NAME


class TargetResolver:
    """Resolves the targets mappings name; caps new audiences through ``gate`` when one is set."""

    def __init__(self, gate: NewAudienceGate | None = None) -> None:
        self.gate = gate
        self._targets: dict[tuple[str, str, str], ResolvedTarget] = {}
        # Native targets by (mapping's target slot, advertiserId, external_audience_id, computation_key) as the
        # event holds them, when they are all strings or absent: the usual event skips the checks below.
        self._native: dict[tuple[int, str | None, str | None, str | None], ResolvedTarget] = {}

    def forget(self, names: frozenset[str]) -> None:
        """Drop ``names`` from the caches, so the gate is asked about them again."""
        self._targets = {k: t for k, t in self._targets.items() if t[0] not in names}
        self._native = {k: t for k, t in self._native.items() if t[0] not in names}

    def native(self, dest: RouteDestination, m: CompiledMapping, event: dict[str, Any], personas: dict[str, Any],
               slot: int) -> ResolvedTarget:
        """A native mapping's target; ``slot`` is shared by the destination's mappings that resolve the same
        way. Memoised by the raw values read when they are all strings or absent (other values, and any
        refusal, take the full path every time)."""
        if not m.external_audience_id_is_default:
            return self._native_target(dest, m, event, personas)
        settings = personas.get("audience_settings")
        advertiser = settings.get("advertiserId") if settings.__class__ is dict else None
        audience = personas.get("external_audience_id")
        key = personas.get("computation_key")
        if ((advertiser is None or advertiser.__class__ is str) and (audience is None or audience.__class__ is str)
                and (key is None or key.__class__ is str)):
            memo = (slot, advertiser, audience, key)
            resolved = self._native.get(memo)
            if resolved is None:
                resolved = self._native_target(dest, m, event, personas)
                if len(self._native) >= TARGET_CACHE_LIMIT:
                    self._native.clear()
                self._native[memo] = resolved
            return resolved
        return self._native_target(dest, m, event, personas)

    def legacy(self, dest: RouteDestination, m: CompiledMapping, event: dict[str, Any]) -> ResolvedTarget:
        advertiser = _legacy_advertiser(dest, m, event)
        assert m.audience_id is not None
        audience = _id_text(m.audience_id(event), "audience_id")
        if audience is None:
            raise Rejected("missing_audience_id", "audience_id has no value")
        return self._target(dest.id, advertiser, audience, "audience_id")

    def create(self, dest: RouteDestination, m: CompiledMapping, event: dict[str, Any]) -> AudienceCreate:
        advertiser = _legacy_advertiser(dest, m, event)
        assert m.custom_audience_name is not None
        name = js_text(m.custom_audience_name(event))
        if name is None or not name.strip():
            raise Rejected("missing_field", "custom_audience_name has no value")
        problem = audience_name_problem(name.strip())  # producer.limits
        if problem is None and self.gate is not None:
            problem = self.gate.problem(dest.id, f"create:{dest.id}|{advertiser}|{name.strip()}")
        if problem is not None:
            raise Rejected(*problem)
        return AudienceCreate(dest.id, advertiser, name.strip())

    def _target(self, destination: str, advertiser: str, audience: str, source: str) -> ResolvedTarget:
        key = (destination, advertiser, audience)
        resolved = self._targets.get(key)
        if resolved is None:
            problem = target_problem(advertiser, audience, source)  # producer.limits: ids and keys bounded
            if problem is None and self.gate is not None and audience.startswith("@"):
                problem = self.gate.problem(destination, f"{destination}|{advertiser}|{audience}")
            if problem is not None:
                raise Rejected(*problem)
            try:
                target = Target(destination, advertiser, audience)
            except ValueError:
                raise Rejected(
                    "invalid_field",
                    f"{source} is not a usable audience id (letters, digits, '.', '_' and '-' only)",
                ) from None
            if len(self._targets) >= TARGET_CACHE_LIMIT:
                self._targets.clear()
            resolved = self._targets[key] = (target.name, target)
        return resolved

    def _native_target(self, dest: RouteDestination, m: CompiledMapping, event: dict[str, Any],
                       personas: dict[str, Any]) -> ResolvedTarget:
        settings = personas.get("audience_settings")
        advertiser = settings.get("advertiserId") if settings.__class__ is dict else None
        if advertiser.__class__ is str:  # the usual case, without a call
            advertiser = advertiser.strip() or None
        elif advertiser is not None:
            advertiser = _id_text(advertiser, "context.personas.audience_settings.advertiserId")
        if advertiser is None:
            advertiser = dest.native_advertiser_id
            if advertiser is None:
                raise Rejected(
                    "missing_advertiser",
                    "no advertiser: the event has no context.personas.audience_settings.advertiserId and "
                    f"destination {dest.id!r} has no native.advertiser_id",
                )
        elif advertiser not in dest.advertiser_ids:
            raise Rejected(
                "advertiser_not_allowed",
                f"advertiser {_shown(advertiser)} (context.personas.audience_settings.advertiserId) "
                "is not one of "
                f"destination {dest.id!r}'s advertiser_ids",
            )

        if m.external_audience_id_is_default:
            raw_audience = personas.get("external_audience_id")
        else:
            raw_audience = m.external_audience_id(event) if m.external_audience_id is not None else None
        audience = (
            (raw_audience.strip() or None)
            if raw_audience.__class__ is str
            else _id_text(raw_audience, "external_audience_id")
        )
        if audience is not None:
            return self._target(dest.id, advertiser, audience, "external_audience_id")
        if not dest.auto_create:
            raise Rejected(
                "missing_audience_id",
                "external_audience_id has no value (Engage sends context.personas.external_audience_id) "
                f"and destination {dest.id!r} does not create audiences (native.auto_create is off)",
            )
        key = personas.get("computation_key")
        if not isinstance(key, str) or not key.strip():
            raise Rejected(
                "missing_audience_id",
                "external_audience_id has no value and there is no context.personas.computation_key "
                "to create the audience from",
            )
        return self._target(dest.id, advertiser, "@" + key.strip(), "context.personas.computation_key")


def _legacy_advertiser(dest: RouteDestination, m: CompiledMapping, event: dict[str, Any]) -> str:
    assert m.selected_advertiser_id is not None
    advertiser = _id_text(m.selected_advertiser_id(event), "selected_advertiser_id")
    if advertiser is None:
        raise Rejected("missing_advertiser", "selected_advertiser_id has no value")
    if advertiser not in dest.advertiser_ids:
        raise Rejected(
            "advertiser_not_allowed",
            f"selected_advertiser_id {_shown(advertiser)} is not one of "
            f"destination {dest.id!r}'s advertiser_ids",
        )
    return advertiser


def _id_text(value: Any, source: str) -> str | None:
    """An id field's text: strings trimmed, whole numbers as digits; None when absent or blank."""
    if value is None:
        return None
    cls = value.__class__
    if cls is str:
        text = value.strip()
        return text or None
    if cls is int:
        return str(value)
    if cls is float and value.is_integer():
        return str(int(value))
    raise Rejected("invalid_field", f"{source} must be a string or a number, not {kind_of(value)}")


def _shown(advertiser: str) -> str:
    """An advertiser id fit for a rejection message: ids are digits; anything else is not echoed."""
    return advertiser if advertiser.isdigit() and len(advertiser) <= 32 else "(not an advertiser id)"
