"""Routing: one Segment event in, the operations its destinations' mappings make of it out.

(Interface fixed here; implementation in progress.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.destinations import DestinationsFile
from worker.operations import Operation


@dataclass(frozen=True, slots=True)
class AudienceCreate:
    """A legacy ``createAudience`` request made by an event."""

    destination: str
    advertiser_id: str
    name: str  # as given; the worker cuts names over 70 characters


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


class Router:
    @classmethod
    def from_destinations(cls, destinations: DestinationsFile, *, default_phone_country: str = "US") -> Router:
        raise NotImplementedError

    def route(self, event: dict[str, Any]) -> RouteResult:
        raise NotImplementedError
