"""Routing: one Segment event in, the operations its destinations' mappings make of it out.

The intake validates the envelope first (:func:`producer.events.validate_event`), then calls
:meth:`Router.route` on the same dict. ``route`` runs every enabled mapping's compiled trigger; each mapping
that matches turns the event into operations (or, for ``createAudience``, an :class:`AudienceCreate`):

- identifiers come from the mapping's fields, normalised and hashed (:mod:`producer.identifiers`); an unusable
  identifier (an unreadable phone, a non-string email) is dropped and counted in ``dropped_identifiers``
  while the others carry the event; with none left the event is rejected;
- native actions (``addToAudience``, ``removeFromAudience``, ``syncAudience``) send to the advertiser in
  ``context.personas.audience_settings.advertiserId``, else the destination's ``native.advertiser_id``, and
  to the audience in ``external_audience_id``; without one, a destination with ``native.auto_create`` targets
  ``@<context.personas.computation_key>`` (the worker creates that audience once);
- ``syncAudience`` adds when ``properties[computation_key]`` (track) / ``traits[computation_key]``, else
  ``context.traits[computation_key]`` (identify) is ``true`` and deletes when it is ``false``;
- legacy actions send to the mapping's ``selected_advertiser_id`` / ``audience_id``.

Each matched mapping is judged on its own (Segment runs each mapping as its own action): one mapping's
rejection never stops another's operation, and when one refuses, the result lists every matched mapping's
outcome. The event
as a whole is rejected only when every matched mapping refused it; the rejection names each mapping
(``"mapping 2 (addToAudience): <reason>"``) with a short code for counting. Rejection texts never contain
identifier values. Every operation carries the event's time and message id (:mod:`producer.event_time`).
An event whose ``integrations`` object turns a destination off (Segment's rule, by the destination's
``integration_name``) skips that destination's mappings. Identical operations from several mappings (e.g.
``addToAudience`` and ``syncAudience`` on one "Audience Entered" event) are sent once.

Cost: the per-event path is closures and ``dict.get`` chains built at load time, one SHA-256 per distinct
identifier, and cached :class:`~worker.keys.Target` objects (building one runs a regex per part).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.destinations import DEFAULT_INTEGRATION_NAME, DestinationsFile
from producer.describe import kind_of
from producer.directives import js_text
from producer.id_type import advertising_id_column, audience_id_type
from producer.identifiers import (
    InvalidIdentifier,
    advertising_id_type,
)
from producer.limits import NewAudienceGate, audience_name_problem, target_problem
from producer.mappings import CompiledMapping, compile_destination
from worker.keys import Target
from worker.operations import ACTION_CODE as _ACTION_CODE
from worker.operations import ADID_TYPE_CODE as _ADID_TYPE_CODE
from worker.operations import IDFA_SHA256, Action, Operation

NO_IDENTIFIER = "At least one enabled identifier (Email, Phone, or Advertising ID) must have a value."

_TARGET_CACHE_LIMIT = 16_384  # distinct (destination, advertiser, audience) triples kept; cleared when full


@dataclass(frozen=True, slots=True)
class AudienceCreate:
    """A legacy ``createAudience`` request made by an event."""

    destination: str
    advertiser_id: str
    name: str  # as given; the worker cuts names over 70 characters


@dataclass(frozen=True, slots=True)
class MappingOutcome:
    """What one matched mapping made of an event: ``code`` and ``reason`` are None when it accepted it."""

    destination: str
    mapping: int  # 1-based index in the destination's mappings
    action: str
    code: str | None = None
    reason: str | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"destination": self.destination, "mapping": self.mapping, "action": self.action,
                               "status": "accepted" if self.code is None else "rejected"}
        if self.code is not None:
            out["code"] = self.code
            out["reason"] = self.reason
        return out


@dataclass(slots=True)
class RouteResult:
    operations: list[Operation] = field(default_factory=list)
    creates: list[AudienceCreate] = field(default_factory=list)
    # Set when the event is rejected: nothing of it may be enqueued. Names the mapping and the problem.
    rejection: str | None = None
    # A short, stable reason code for counting rejections (e.g. "no_identifier", "missing_audience_id").
    rejection_code: str | None = None
    matched_mappings: int = 0
    # Identifiers dropped from an otherwise accepted event, e.g. {"invalid_phone": 1}.
    dropped_identifiers: dict[str, int] = field(default_factory=dict)
    # With a rejection: the destination id and 1-based mapping index that rejected the event.
    rejected_destination: str | None = None
    rejected_mapping: int | None = None
    # When a mapping refused the event: every matched mapping's outcome, in file order (empty when all accepted).
    outcomes: list[MappingOutcome] = field(default_factory=list)
    # Whether the event's ``integrations`` turned at least one destination off (Segment's opt-out).
    opted_out: bool = False

    @property
    def refusals(self) -> list[MappingOutcome]:
        return [o for o in self.outcomes if o.code is not None]


class Rejected(Exception):
    """Raised inside routing when a mapping cannot handle the event; becomes the RouteResult's rejection."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class _Destination:
    id: str
    advertiser_ids: frozenset[str]
    native_advertiser_id: str | None
    auto_create: bool
    integration_name: str = DEFAULT_INTEGRATION_NAME


@dataclass(frozen=True, slots=True)
class _Route:
    """One enabled mapping, with the memo slots it shares with equivalent mappings of the same event."""

    dest: _Destination
    mapping: CompiledMapping
    identifiers_slot: int  # mappings with one slot read and hash identifiers identically
    target_slot: int  # native mappings with one slot resolve the same target


# (email digest, phone digest, advertising id digest, advertising id type) — "" where absent
_Identifiers = tuple[str, str, str, str]


class Router:
    def __init__(self, routes: list[_Route], mappings: list[CompiledMapping]) -> None:
        self._routes = tuple(routes)  # enabled mappings only, in file order
        self._destinations = tuple({r.dest.id: r.dest for r in routes}.values())
        self.mappings = tuple(mappings)  # every compiled mapping (also disabled ones), for `config check`
        self._targets: dict[tuple[str, str, str], Target] = {}
        # route_into's memo: (target slot, advertiserId, external_audience_id, computation_key) -> target name
        self._native_names: dict[tuple[int, str | None, str | None, str | None], str] = {}
        # Caps new audiences per destination per minute when set (the HTTP intake sets it: producer.limits).
        self.audience_gate: NewAudienceGate | None = None

    @classmethod
    def from_destinations(
        cls, destinations: DestinationsFile, *, default_phone_country: str = "US"
    ) -> Router:
        """Compile every destination's mappings; a ConfigError names destination, mapping and problem."""
        routes: list[_Route] = []
        everything: list[CompiledMapping] = []
        slots: dict[tuple[Any, ...], int] = {}
        for dest in destinations.destinations:
            info = _Destination(
                dest.id, frozenset(dest.advertiser_ids), dest.native_advertiser_id, dest.auto_create,
                dest.integration_name,
            )
            compiled = compile_destination(dest, default_phone_country=default_phone_country)
            everything.extend(compiled)
            for m in compiled:
                if not m.enabled:
                    continue
                ids_slot = slots.setdefault(("ids", m.identity_key), len(slots))
                target_slot = slots.setdefault(("target", dest.id, m.audience_key), len(slots))
                routes.append(_Route(info, m, ids_slot, target_slot))
        return cls(routes, everything)

    def forget_targets(self, names: frozenset[str]) -> None:
        """Drop ``names`` from the target caches, so routing asks the audience gate about them again (after
        it refused them, or could not ask Redis)."""
        self._targets = {k: t for k, t in self._targets.items() if t.name not in names}
        self._native_names = {k: n for k, n in self._native_names.items() if n not in names}

    # ------------------------------------------------------------------------------------------- route

    def route(self, event: dict[str, Any], event_ms: int = 0, message_id: str = "") -> RouteResult:
        """The event's operations (each carrying ``event_ms`` and ``message_id``), creates and per-mapping
        outcomes. Each matched mapping is judged on its own: one mapping's rejection never stops another's."""
        operations: list[Operation] = []
        creates: list[AudienceCreate] = []
        dropped: dict[str, int] = {}
        matched: list[_Route] = []
        refused: dict[int, MappingOutcome] = {}  # by position in ``matched``
        # Per-event memos by slot: mappings that read identifiers or targets the same way share the result.
        identifiers: dict[int, _Identifiers] = {}
        targets: dict[int, Target] = {}
        personas: dict[str, Any] | None = None  # context.personas, looked up once
        integrations = event.get("integrations")
        opted_out = False
        for route in self._routes:
            m = route.mapping
            if integrations and _opted_out(integrations, route.dest):
                opted_out = True
                continue
            if not m.trigger(event):
                continue
            matched.append(route)
            try:
                kind = m.kind
                if kind == "create":
                    create = self._create(route.dest, m, event)
                    if create not in creates:
                        creates.append(create)
                    continue
                ids = identifiers.get(route.identifiers_slot)
                if ids is None:
                    ids = identifiers[route.identifiers_slot] = _identifiers(m, event, dropped)
                action: Action
                if kind == "legacy":
                    target = self._legacy_target(route.dest, m, event)
                    action = m.operation or "add"
                else:
                    if personas is None:
                        personas = _personas(event)
                    cached = targets.get(route.target_slot)
                    if cached is None:
                        cached = targets[route.target_slot] = self._native_target(
                            route.dest, m, event, personas
                        )
                    target = cached
                    action = m.operation or _membership(event, personas)
            except Rejected as rejected:
                refused[len(matched) - 1] = MappingOutcome(route.dest.id, m.index, m.action, rejected.code,
                                                           f"{m.label}: {rejected.reason}")
                continue
            email, phone, adid, adid_type = ids
            for op in operations:
                if (
                    op.target is target
                    and op.action == action
                    and op.email == email
                    and op.phone == phone
                    and op.advertising_id == adid
                ):
                    break  # the same operation from another mapping: send it once
            else:
                operations.append(Operation(target, action, email, phone, adid, adid_type, event_ms, message_id))
        result = RouteResult(operations, creates, None, None, len(matched), dropped, opted_out=opted_out)
        if not refused:
            return result
        result.outcomes = [refused.get(i) or MappingOutcome(r.dest.id, r.mapping.index, r.mapping.action)
                           for i, r in enumerate(matched)]
        refusals = list(refused.values())
        if not operations and not creates:
            first = refusals[0]
            result.rejection = "; ".join(str(o.reason) for o in refusals)
            result.rejection_code = first.code
            result.rejected_destination = first.destination
            result.rejected_mapping = first.mapping
        return result

    def route_into(self, event: dict[str, Any], groups: dict[str, list[list[Any]]], event_ms: int = 0,
                   message_id: str = "") -> int | None:
        """:meth:`route` for the intake's common case, without per-event result objects: append the event's
        operations, packed (:meth:`Operation.pack`), to ``groups`` (target name -> packed operations, in
        order) and return how many mappings matched.

        Returns ``None`` and leaves ``groups`` untouched when the event needs :meth:`route`'s full answer: a
        mapping rejects it, makes an audience create, an identifier is dropped, or its ``integrations`` turn a
        destination off. ``route`` is pure (but for its target cache), so the caller routes such an event again
        with it and gets the same outcome.
        Operations are the ones ``route`` makes, in its order, with its de-duplication."""
        # Memos of the last slot read (mappings sharing a slot read identically; recomputing is only slower).
        ids_slot = target_slot = -1
        target_name = ""
        ids: _Identifiers = ("", "", "", "")
        personas: dict[str, Any] | None = None
        made: list[tuple[str, list[Any]]] = []
        matched = 0
        dropped: dict[str, int] = {}
        integrations = event.get("integrations")
        if integrations and self._any_opted_out(integrations):
            return None
        try:
            for route in self._routes:
                m = route.mapping
                if not m.trigger(event):
                    continue
                matched += 1
                kind = m.kind
                if kind == "create":
                    return None
                if route.identifiers_slot != ids_slot:
                    ids_slot = route.identifiers_slot
                    ids = _identifiers(m, event, dropped)
                    if dropped:
                        return None
                action: Action
                if kind == "legacy":
                    name = self._legacy_target(route.dest, m, event).name
                    action = m.operation or "add"
                else:
                    if personas is None:
                        personas = _personas(event)
                    if route.target_slot != target_slot:
                        target_slot = route.target_slot
                        target_name = self._native_name(route, event, personas)
                    name = target_name
                    action = m.operation or _membership(event, personas)
                email, phone, adid, adid_type = ids
                code = _ACTION_CODE[action]
                for made_name, packed in made:
                    if (made_name == name and packed[0] == code and packed[1] == email
                            and packed[2] == phone and packed[3] == adid):
                        break  # the same operation from another mapping: send it once
                else:
                    made.append((name, [code, email, phone, adid, _ADID_TYPE_CODE[adid_type] if adid else "",
                                       event_ms, message_id]))
        except Rejected:
            return None
        for name, packed in made:
            group = groups.get(name)
            if group is None:
                groups[name] = [packed]
            else:
                group.append(packed)
        return matched

    def _native_name(self, route: _Route, event: dict[str, Any], personas: dict[str, Any]) -> str:
        """``_native_target(...).name``, memoised by the raw values it reads when they are all strings or
        absent (other values, and any rejection, take the full path every time)."""
        m = route.mapping
        if not m.external_audience_id_is_default:
            return self._native_target(route.dest, m, event, personas).name
        settings = personas.get("audience_settings")
        advertiser = settings.get("advertiserId") if settings.__class__ is dict else None
        audience = personas.get("external_audience_id")
        key = personas.get("computation_key")
        if ((advertiser is None or advertiser.__class__ is str) and (audience is None or audience.__class__ is str)
                and (key is None or key.__class__ is str)):
            memo = (route.target_slot, advertiser, audience, key)
            name = self._native_names.get(memo)
            if name is None:
                name = self._native_target(route.dest, m, event, personas).name
                if len(self._native_names) >= _TARGET_CACHE_LIMIT:
                    self._native_names.clear()
                self._native_names[memo] = name
            return name
        return self._native_target(route.dest, m, event, personas).name

    def _any_opted_out(self, integrations: Any) -> bool:
        return any(_opted_out(integrations, dest) for dest in self._destinations)

    # ----------------------------------------------------------------------------------------- targets

    def _target(self, destination: str, advertiser: str, audience: str, source: str) -> Target:
        key = (destination, advertiser, audience)
        target = self._targets.get(key)
        if target is None:
            problem = target_problem(advertiser, audience, source)  # producer.limits: ids and keys bounded
            if problem is None and self.audience_gate is not None and audience.startswith("@"):
                problem = self.audience_gate.problem(destination, f"{destination}|{advertiser}|{audience}")
            if problem is not None:
                raise Rejected(*problem)
            try:
                target = Target(destination, advertiser, audience)
            except ValueError:
                raise Rejected(
                    "invalid_field",
                    f"{source} is not a usable audience id (letters, digits, '.', '_' and '-' only)",
                ) from None
            if len(self._targets) >= _TARGET_CACHE_LIMIT:
                self._targets.clear()
            self._targets[key] = target
        return target

    def _native_target(
        self, dest: _Destination, m: CompiledMapping, event: dict[str, Any], personas: dict[str, Any]
    ) -> Target:
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

    def _legacy_target(self, dest: _Destination, m: CompiledMapping, event: dict[str, Any]) -> Target:
        advertiser = _legacy_advertiser(dest, m, event)
        assert m.audience_id is not None
        audience = _id_text(m.audience_id(event), "audience_id")
        if audience is None:
            raise Rejected("missing_audience_id", "audience_id has no value")
        return self._target(dest.id, advertiser, audience, "audience_id")

    def _create(self, dest: _Destination, m: CompiledMapping, event: dict[str, Any]) -> AudienceCreate:
        advertiser = _legacy_advertiser(dest, m, event)
        assert m.custom_audience_name is not None
        name = js_text(m.custom_audience_name(event))
        if name is None or not name.strip():
            raise Rejected("missing_field", "custom_audience_name has no value")
        problem = audience_name_problem(name.strip())  # producer.limits
        if problem is None and self.audience_gate is not None:
            problem = self.audience_gate.problem(dest.id, f"create:{dest.id}|{advertiser}|{name.strip()}")
        if problem is not None:
            raise Rejected(*problem)
        return AudienceCreate(dest.id, advertiser, name.strip())


# ------------------------------------------------------------------------------------------- per event


def _identifiers(m: CompiledMapping, event: dict[str, Any], dropped: dict[str, int]) -> _Identifiers:
    assert m.read_identifiers is not None and m.phone_hash is not None
    raw_email, raw_phone, raw_adid = m.read_identifiers(event)
    email = phone = adid = adid_type = ""
    unusable: list[InvalidIdentifier] = []
    if raw_email is not None:
        try:
            email = m.email_hash(raw_email) or ""
        except InvalidIdentifier as exc:
            unusable.append(exc)
    if raw_phone is not None:
        try:
            phone = m.phone_hash(raw_phone) or ""
        except InvalidIdentifier as exc:
            unusable.append(exc)
    if raw_adid is not None:
        try:
            adid = m.advertising_id_hash(raw_adid) or ""
        except InvalidIdentifier as exc:
            unusable.append(exc)
        if adid:
            try:
                adid_type = _advertising_id_column(m, event)
            except InvalidIdentifier as exc:
                unusable.append(exc)
                adid = ""
    if unusable:
        if not (email or phone or adid):
            details = "; ".join(str(problem) for problem in unusable)
            raise Rejected("invalid_identifier", f"{NO_IDENTIFIER} ({details})")
        for dropped_one in unusable:
            reason = f"invalid_{dropped_one.kind}"
            dropped[reason] = dropped.get(reason, 0) + 1
    elif not (email or phone or adid):
        raise Rejected("no_identifier", NO_IDENTIFIER)
    return email, phone, adid, adid_type


def _advertising_id_column(m: CompiledMapping, event: dict[str, Any]) -> str:
    """IDFA_SHA256 or AAID_SHA256: the ID Type's choice, else the mapping's advertising_id_type option."""
    if m.hashing != "segment" and (m.id_type is not None or m.reads_audience_id_type):
        column = advertising_id_column(audience_id_type(event) if m.reads_audience_id_type else None, m.id_type)
        if column is not None:
            return column
    if m.advertising_id_type == "auto":
        return advertising_id_type("auto", _device_type(event))
    return IDFA_SHA256


def _membership(event: dict[str, Any], personas: dict[str, Any]) -> Action:
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


def _legacy_advertiser(dest: _Destination, m: CompiledMapping, event: dict[str, Any]) -> str:
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


_EMPTY: dict[str, Any] = {}


def _opted_out(integrations: Any, dest: _Destination) -> bool:
    """Segment's ``integrations`` rule: ``{name: false}`` turns the destination off; ``{"All": false}`` turns
    it off unless ``{name: true}`` (or an options object) turns it back on."""
    if integrations.__class__ is not dict:
        return False
    own = integrations.get(dest.integration_name)
    if own is False:
        return True
    return integrations.get("All") is False and not own


def _personas(event: dict[str, Any]) -> dict[str, Any]:
    context = event.get("context")
    if isinstance(context, dict):
        personas = context.get("personas")
        if isinstance(personas, dict):
            return personas
    return _EMPTY


def _device_type(event: dict[str, Any]) -> Any:
    context = event.get("context")
    device = context.get("device") if isinstance(context, dict) else None
    return device.get("type") if isinstance(device, dict) else None


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
