"""What routing makes of one event: its operations, audience creates, and each matched mapping's verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.operations import Operation


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
    """Raised inside routing when a mapping cannot handle the event; becomes that mapping's refusal."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)
