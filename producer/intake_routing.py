"""The intake's route step: a request's events in, what they make out (target groups of packed operations,
audience creates, refusals and counters), with no I/O, logging or awaits.

This is the per-event hot loop of the whole service: at ~100k+ events/s every microsecond per event is a tenth
of the budget, so it hoists what it can out of the loop and makes no object per event it does not need.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from producer.event_time import MESSAGE_ID_MAX, EventTimeError, event_ms
from producer.events import EventError, validate_event
from producer.intake_result import IntakeResult
from producer.routing import RoutedOperation, Router
from producer.routing_result import AudienceCreate, MappingOutcome
from worker.event_order import METRIC_CLAMPED

Grouped = dict[str, list[list[Any]]]  # target name -> packed operations, in order (worker.queue's input)

_MESSAGE_ID_MAX = 200  # of the message ids echoed in answers and the rejected-events log


class Refusal(NamedTuple):
    """An event refused whole, or one mapping's refusal of an event others accepted (``partial``)."""

    position: int  # index of the event in the request
    message_id: str | None
    reason: str
    code: str
    destination: str | None = None  # the destination and 1-based mapping that refused it, when one did
    mapping: int | None = None
    # Every matched mapping's outcome, when mappings judged the event.
    outcomes: tuple[MappingOutcome, ...] = ()
    partial: bool = False

    def codes(self) -> list[str]:
        """The refusal codes this counts under: each refusing mapping's, or the event's one code."""
        codes = [o.code for o in self.outcomes if o.code is not None]
        return codes or [self.code]


@dataclass(slots=True)
class RoutedRequest:
    """What a request's events made, before anything is written."""

    grouped: Grouped
    creates: list[AudienceCreate]
    refusals: list[Refusal]
    unmatched: int
    dropped: dict[str, int]
    count: int  # events in the request
    now: float  # when it was received
    opted_out: int = 0
    clamped: int = 0
    # Exceptions routing raised (bugs): each rejected its event; the front end logs them once per request.
    routing_errors: tuple[BaseException, ...] = ()

    @property
    def operations(self) -> int:
        return sum(len(packed) for packed in self.grouped.values())

    def writes_anything(self) -> bool:
        return bool(self.grouped or self.creates or self.refusals or self.counters())

    def only_operations(self) -> bool:
        """Whether the request writes operations and counters only (no creates, no refusals)."""
        return bool(self.grouped) and not self.creates and not self.refusals

    def counters(self) -> dict[str, int]:
        """The intake counters (``keys.METRICS`` fields) this request adds to; only non-zero ones."""
        return {name: n for name, n in (("unmatched", self.unmatched), ("opted_out", self.opted_out),
                                        (METRIC_CLAMPED, self.clamped)) if n}

    def result(self, operations: int, creates: int) -> IntakeResult:
        """The answer, once ``operations`` and ``creates`` were stored."""
        rejected_by_code: dict[str, int] = {}
        results = []
        partial = 0
        for r in self.refusals:
            entry: dict[str, Any] = {"index": r.position, "messageId": r.message_id,
                                     "status": "partial" if r.partial else "rejected",
                                     "reason": r.reason, "code": r.code}
            if r.outcomes:
                entry["mappings"] = [o.describe() for o in r.outcomes]
            results.append(entry)
            partial += r.partial
            for code in r.codes():
                rejected_by_code[code] = rejected_by_code.get(code, 0) + 1
        rejected = len(self.refusals) - partial
        return IntakeResult(accepted=self.count - rejected, rejected=rejected, results=results,
                            operations=operations, creates=creates, unmatched=self.unmatched,
                            opted_out=self.opted_out, clamped=self.clamped, dropped_identifiers=self.dropped,
                            rejected_by_code=rejected_by_code)


def route_request(router: Router, events: Iterable[object], *, now: float, max_skew_ms: int,
                  sent_at: str | None = None) -> RoutedRequest:
    """Validate and route ``events`` received at ``now``; ``sent_at``: the ``sentAt`` of the body that carried
    them (a ``/v1/batch``), for events without their own.

    Each event gets its time (:func:`producer.event_time.event_ms`, against one receive time for the request;
    one more than ``max_skew_ms`` ahead is clamped to it) and goes through :meth:`Router.route_into`, which
    appends its operations to one list for the request; they are grouped by target at the end."""
    route_into = router.route_into
    received_ms = int(now * 1000)
    if sent_at.__class__ is not str:
        sent_at = None
    sink: list[RoutedOperation] = []
    creates: list[AudienceCreate] = []
    refusals: list[Refusal] = []
    dropped: dict[str, int] = {}
    unmatched = opted_out = clamped = count = 0
    routing_errors: list[BaseException] = []
    for index, obj in enumerate(events):
        count += 1
        try:
            event = validate_event(obj)
            ms = event_ms(event, received_ms, sent_at)
        except (EventError, EventTimeError) as exc:
            code = getattr(exc, "code", None)
            refusals.append(Refusal(index, _message_id(obj), str(exc),
                                    code if isinstance(code, str) else "invalid_event"))
            continue
        if ms - received_ms > max_skew_ms:  # producer.event_time.clamp, inline
            ms = received_ms
            clamped += 1
        mid = event.get("messageId")  # producer.event_time.message_id, inline: this runs per event
        if mid.__class__ is not str or not ms:  # an event without a time of its own goes by arrival
            mid = ""
        elif len(mid) > MESSAGE_ID_MAX:
            mid = mid[:MESSAGE_ID_MAX]
        try:
            outcome = route_into(event, sink, ms, mid)
        except Exception as exc:
            # A routing bug on one event must not fail (and make the sender resend) the whole request;
            # the rejection is answered and counted so it is not silent.
            routing_errors.append(exc)
            refusals.append(Refusal(index, _message_id(event),
                                    f"internal error while routing the event ({type(exc).__name__})",
                                    "internal_error"))
            continue
        if isinstance(outcome, int):  # every matched mapping accepted it: its operations are in the sink
            if not outcome:
                unmatched += 1
            continue
        if outcome.rejection is not None:
            refusals.append(Refusal(index, _message_id(event), outcome.rejection, outcome.rejection_code or "rejected",
                                    outcome.rejected_destination, outcome.rejected_mapping, tuple(outcome.outcomes)))
            continue
        refused = outcome.refusals
        if refused:
            first = refused[0]
            refusals.append(Refusal(index, _message_id(event), "; ".join(str(o.reason) for o in refused),
                                    first.code or "rejected", first.destination, first.mapping,
                                    tuple(outcome.outcomes), partial=True))
        if outcome.creates:
            creates.extend(outcome.creates)
        if outcome.opted_out:
            opted_out += 1
        elif not outcome.matched_mappings:
            unmatched += 1
        for name, n in outcome.dropped_identifiers.items():
            dropped[name] = dropped.get(name, 0) + n
    grouped: Grouped = {}
    for name, _, packed in sink:
        group = grouped.get(name)
        if group is None:
            grouped[name] = [packed]
        else:
            group.append(packed)
    return RoutedRequest(grouped, creates, refusals, unmatched, dropped, count, now, opted_out, clamped,
                         tuple(routing_errors))


def _message_id(obj: object) -> str | None:
    if isinstance(obj, dict):
        mid = obj.get("messageId")
        if isinstance(mid, str):
            return mid[:_MESSAGE_ID_MAX]
    return None
