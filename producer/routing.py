"""Routing: one Segment event in, the operations its destinations' mappings make of it out.

The intake validates the envelope first (:func:`producer.events.validate_event`), then routes the same dict
with :meth:`Router.route_into`. Every enabled mapping's compiled trigger runs; each mapping that matches turns
the event into operations (or, for ``createAudience``, an :class:`AudienceCreate`): identifiers come from the
mapping's fields, normalised and hashed (:mod:`producer.routing_identifiers`), targets from the event and the
destination (:mod:`producer.routing_targets`), and ``syncAudience`` reads add or delete from the event
(:mod:`producer.routing_event`).

Each matched mapping is judged on its own (Segment runs each mapping as its own action): one mapping's
refusal never stops another's operation, and when one refuses, the result lists every matched mapping's
outcome. The event as a whole is rejected only when every matched mapping refused it; the rejection names
each mapping (``"mapping 2 (addToAudience): <reason>"``) with a short code for counting. Rejection texts never
contain identifier values. Every operation carries the event's time and message id
(:mod:`producer.event_time`). An event whose ``integrations`` object turns a destination off (Segment's rule,
by the destination's ``integration_name``) skips that destination's mappings. Identical operations from
several mappings (e.g. ``addToAudience`` and ``syncAudience`` on one "Audience Entered" event) are sent once.

Cost: this runs for every event the intake accepts, tens of thousands a second per process. The per-event
path is closures and ``dict.get`` chains built at load time, one SHA-256 per distinct identifier, cached
targets, and no result object for an event every matched mapping accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.destinations import DestinationsFile
from producer.limits import NewAudienceGate
from producer.mappings import CompiledMapping, compile_destination
from producer.routing_event import membership, opted_out, personas_of
from producer.routing_identifiers import NO_IDENTIFIER, Identifiers, event_identifiers
from producer.routing_result import AudienceCreate, MappingOutcome, Rejected, RouteResult
from producer.routing_targets import RouteDestination, TargetResolver
from worker.keys import Target
from worker.operations import ACTION_CODE, ACTION_FROM_CODE, ADID_TYPE_CODE, ADID_TYPE_FROM_CODE, Action, Operation

__all__ = ["NO_IDENTIFIER", "AudienceCreate", "MappingOutcome", "RouteResult", "RoutedOperation", "Router"]

# One operation as routing emits it: the target's name, the target, and the operation packed for the queue
# (:meth:`worker.operations.Operation.pack`).
RoutedOperation = tuple[str, Target, list[Any]]

_NO_IDENTIFIERS: Identifiers = ("", "", "", "", ())


@dataclass(frozen=True, slots=True)
class _Route:
    """One enabled mapping, with the memo slots it shares with equivalent mappings of the same event."""

    dest: RouteDestination
    mapping: CompiledMapping
    identifiers_slot: int  # mappings with one slot read and hash identifiers identically
    target_slot: int  # native mappings with one slot resolve the same target


class Router:
    """The destinations file compiled for routing: turns each event into the queue operations (and legacy
    audience creates) its matching mappings make, and says which mapping refused it and why.

    Built once per process (:meth:`from_destinations`) and kept: it caches resolved targets across events.
    ``audience_gate``, when set, caps the audiences events may introduce (:class:`producer.limits.NewAudienceGate`).
    """

    def __init__(self, routes: list[_Route], mappings: list[CompiledMapping],
                 audience_gate: NewAudienceGate | None = None) -> None:
        self._routes = tuple(routes)  # enabled mappings only, in file order
        self._destinations = tuple({r.dest.id: r.dest for r in routes}.values())  # with an enabled mapping
        self.mappings = tuple(mappings)  # every compiled mapping (also disabled ones), for `config check`
        self._targets = TargetResolver(audience_gate)

    @classmethod
    def from_destinations(cls, destinations: DestinationsFile, *, default_phone_country: str = "US",
                          audience_gate: NewAudienceGate | None = None) -> Router:
        """Compile every destination's mappings; a ConfigError names destination, mapping and problem."""
        routes: list[_Route] = []
        everything: list[CompiledMapping] = []
        slots: dict[tuple[Any, ...], int] = {}
        for dest in destinations.destinations:
            info = RouteDestination(dest.id, frozenset(dest.advertiser_ids), dest.native_advertiser_id,
                                    dest.auto_create, dest.integration_name)
            compiled = compile_destination(dest, default_phone_country=default_phone_country)
            everything.extend(compiled)
            for m in compiled:
                if not m.enabled:
                    continue
                ids_slot = slots.setdefault(("ids", m.identity_key), len(slots))
                target_slot = slots.setdefault(("target", dest.id, m.audience_key), len(slots))
                routes.append(_Route(info, m, ids_slot, target_slot))
        return cls(routes, everything, audience_gate)

    @property
    def audience_gate(self) -> NewAudienceGate | None:
        return self._targets.gate

    @audience_gate.setter
    def audience_gate(self, gate: NewAudienceGate | None) -> None:
        self._targets.gate = gate

    def forget_targets(self, names: frozenset[str]) -> None:
        """Drop ``names`` from the target caches, so routing asks the audience gate about them again (after
        it refused them, or could not ask Redis)."""
        self._targets.forget(names)

    def route(self, event: dict[str, Any], event_ms: int = 0, message_id: str = "") -> RouteResult:
        """The event's operations (each carrying ``event_ms`` and ``message_id``), creates and per-mapping
        outcomes, in one result: :meth:`route_into` collected into a list."""
        sink: list[RoutedOperation] = []
        outcome = self.route_into(event, sink, event_ms, message_id)
        operations = [Operation(target, ACTION_FROM_CODE[p[0]], p[1], p[2], p[3], ADID_TYPE_FROM_CODE[p[4]], p[5],
                                p[6]) for _, target, p in sink]
        if isinstance(outcome, int):
            return RouteResult(operations, [], None, None, outcome)
        outcome.operations = operations
        return outcome

    def route_into(self, event: dict[str, Any], sink: list[RoutedOperation], event_ms: int = 0,
                   message_id: str = "") -> int | RouteResult:
        """Append the event's operations to ``sink``, all or none, in mapping order without duplicates.

        Returns how many mappings matched when that is all there is to say (every matched mapping accepted
        the event, nothing was dropped or opted out): the intake's usual event makes no result object. Else a
        :class:`RouteResult` with everything but the operations (they are in ``sink``): creates, dropped
        identifiers, the opt-out, each matched mapping's outcome and, when every one refused, the rejection."""
        routes = self._routes
        opted = False
        integrations = event.get("integrations")
        if integrations and integrations.__class__ is dict:
            off = {d.id for d in self._destinations if opted_out(integrations, d.integration_name)}
            if off:
                routes = tuple(r for r in routes if r.dest.id not in off)
                opted = True
        start = len(sink)
        matched: list[_Route] = []
        refused: dict[int, MappingOutcome] | None = None  # by position in ``matched``
        creates: list[AudienceCreate] | None = None
        dropped: dict[int, tuple[str, ...]] | None = None  # identifiers dropped, by identifiers slot
        # Memos of the last slot read: mappings sharing a slot read identically, so only a change of slot
        # reads again (a slot seen before is read again too, only slower).
        ids_slot = target_slot = -1
        ids = _NO_IDENTIFIERS
        personas: dict[str, Any] | None = None
        targets = self._targets
        try:
            for route in routes:
                m = route.mapping
                if not m.trigger(event):
                    continue
                matched.append(route)
                try:
                    kind = m.kind
                    if kind == "create":
                        create = targets.create(route.dest, m, event)
                        if creates is None:
                            creates = [create]
                        elif create not in creates:
                            creates.append(create)
                        continue
                    if route.identifiers_slot != ids_slot:
                        ids = event_identifiers(m, event)
                        if ids[4]:
                            if dropped is None:
                                dropped = {}
                            dropped[route.identifiers_slot] = ids[4]
                        ids_slot = route.identifiers_slot
                    action: Action
                    if kind == "legacy":
                        name, target = targets.legacy(route.dest, m, event)
                        action = m.operation or "add"
                    else:
                        if personas is None:
                            personas = personas_of(event)
                        if route.target_slot != target_slot:
                            native = targets.native(route.dest, m, event, personas, route.target_slot)
                            target_slot = route.target_slot
                        name, target = native
                        action = m.operation or membership(event, personas)
                except Rejected as rejected:
                    if refused is None:
                        refused = {}
                    refused[len(matched) - 1] = MappingOutcome(route.dest.id, m.index, m.action, rejected.code,
                                                               f"{m.label}: {rejected.reason}")
                    continue
                email, phone, adid, adid_type, _ = ids
                packed = [ACTION_CODE[action], email, phone, adid, ADID_TYPE_CODE[adid_type] if adid else "",
                          event_ms, message_id]
                if len(sink) == start or not _made_already(sink, start, name, packed):
                    sink.append((name, target, packed))
        except BaseException:
            del sink[start:]  # all or none: a routing bug leaves nothing of the event behind
            raise
        if refused is None and creates is None and dropped is None and not opted:
            return len(matched)
        return _full_result(matched, refused, creates, dropped, opted, made=len(sink) != start)


def _made_already(sink: list[RoutedOperation], start: int, name: str, packed: list[Any]) -> bool:
    """Whether ``sink[start:]`` (this event's operations so far) holds the same operation."""
    for index in range(start, len(sink)):
        made_name, _, made = sink[index]
        if (made_name == name and made[0] == packed[0] and made[1] == packed[1] and made[2] == packed[2]
                and made[3] == packed[3]):
            return True
    return False


def _full_result(matched: list[_Route], refused: dict[int, MappingOutcome] | None, creates: list[AudienceCreate] | None,
          dropped: dict[int, tuple[str, ...]] | None, opted: bool, *, made: bool) -> RouteResult:
    """The result of an event with more to say than its operations (see :meth:`Router.route_into`)."""
    counts: dict[str, int] = {}
    for reasons in (dropped or {}).values():  # once per identifiers slot, however many mappings read it
        for reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
    result = RouteResult(creates=creates or [], matched_mappings=len(matched), opted_out=opted,
                         dropped_identifiers=counts)
    if refused is None:
        return result
    result.outcomes = [refused.get(i) or MappingOutcome(r.dest.id, r.mapping.index, r.mapping.action)
                       for i, r in enumerate(matched)]
    if not made and not creates:
        first = next(iter(refused.values()))
        result.rejection = "; ".join(str(o.reason) for o in refused.values())
        result.rejection_code = first.code
        result.rejected_destination = first.destination
        result.rejected_mapping = first.mapping
    return result
